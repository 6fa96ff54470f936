"""Real Caddy (Debian package) terminating mTLS in front of real uvicorn.

Caddy forwards ``{http.request.tls.client.certificate_der_base64}`` with the snippet the docs
ship (``example_app/proxies/caddy/asgi-mtls.caddy``, imported verbatim inside
``reverse_proxy``).  ``admin off`` and ``auto_https off``: nothing but the site listens, no
certificate is requested or installed, and Caddy's state lives in the test's directory.  The
end client connects from 127.0.0.2 so its address differs from Caddy's (127.0.0.1).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from asgi_mtls import HeaderSource
from tests.apps import PAYMENTS

from .clients import websocket_first_json, websocket_rejection_status
from .conftest import PKIFiles, require_binary
from .proxies import (
    END_CLIENT,
    PROXY_SNIPPETS,
    assert_refused_in_handshake,
    client,
    forged_request,
    free_port,
    proxy_app,
    serve_upstream,
    start_caddy,
)

pytestmark = pytest.mark.e2e

SNIPPET = PROXY_SNIPPETS / "caddy" / "asgi-mtls.caddy"
CERT = "X-Client-Cert-DER"
PLACEHOLDER = "{http.request.tls.client.certificate_der_base64}"

CADDYFILE = """
{{
	admin off
	auto_https off
	servers {{
		protocols h1 h2
	}}
}}
https://localhost:{port} {{
	bind 127.0.0.1
	tls {pki.server_cert} {pki.server_key} {{
		client_auth {{
			mode verify_if_given
			trusted_ca_cert_file {pki.client_ca_bundle}
		}}
	}}
	reverse_proxy {upstream} {{
		import {snippet}
	}}
}}
"""


def source():
    return HeaderSource("caddy", header=CERT.lower())


def b64(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


@pytest.fixture(scope="module")
def upstream(pki) -> Iterator[str]:
    with serve_upstream(proxy_app(pki, source())) as url:
        yield url


@pytest.fixture(scope="module")
def caddy(pki_files: PKIFiles, upstream, tmp_path_factory) -> Iterator[str]:
    binary = require_binary("caddy", "apt-get install caddy")
    work = tmp_path_factory.mktemp("caddy")
    port = free_port()
    caddyfile = CADDYFILE.format(port=port, pki=pki_files, upstream=upstream, snippet=SNIPPET)
    with start_caddy(binary, caddyfile, work, port):
        yield f"https://localhost:{port}"


def test_identity_arrives_through_caddy(pki, pki_files, caddy):
    with client(pki_files, pki.payments) as http:
        response = http.get(caddy + "/whoami")
    assert response.status_code == 200
    body = response.json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    assert body["source"] == "caddy"
    assert body["client_host"] == END_CLIENT  # Caddy sets X-Forwarded-For itself


def test_cn_only_client_through_caddy(pki, pki_files, caddy):
    with client(pki_files, pki.cn_only) as http:
        body = http.get(caddy + "/whoami").json()
    assert body["principal"] == "legacy-batch"
    assert body["fingerprint"] == pki.cn_only.fingerprint_sha256


def test_the_headers_caddy_sends(pki, pki_files, caddy):
    """The exact values, read before the middleware: documents Caddy's behaviour."""
    with client(pki_files, pki.payments) as http:
        sent = dict(http.get(caddy + "/_proxy-headers").json())
    assert sent[CERT.lower()] == b64(pki.payments.der)  # the leaf only, no chain
    with client(pki_files) as http:
        anonymous = dict(http.get(caddy + "/_proxy-headers", headers={CERT: "forged"}).json())
    # No certificate: Caddy 2.6 leaves the unknown placeholder as text; newer Caddy sends an
    # empty value (caddyserver/caddy#7530).  Either way the client's own header is replaced.
    assert anonymous[CERT.lower()] in (PLACEHOLDER, "")


def test_no_certificate_through_caddy(pki_files, caddy):
    with client(pki_files) as http:
        assert http.get(caddy + "/public").json() == {"ok": True, "user": None}
        missing = http.get(caddy + "/whoami")
    assert missing.status_code == 401
    assert missing.json()["reason"] == "missing"


@pytest.mark.parametrize("name", ["untrusted", "expired", "server_only"])
def test_caddy_refuses_bad_certificates_in_the_handshake(pki, pki_files, caddy, name):
    # verify_if_given aborts the handshake for a certificate Go's verifier refuses; Caddy has
    # no mode that forwards a failed certificate.
    assert_refused_in_handshake(pki_files, getattr(pki, name), caddy + "/public")


@pytest.mark.parametrize(
    ("name", "path", "status", "code"),
    [
        ("reports", "/payments", 403, "forbidden"),
        # Go accepts a client certificate without EKU, and a CA certificate with clientAuth;
        # the app's validator does not.
        ("no_eku", "/public", 401, "wrong_usage"),
        ("ca_as_client", "/public", 401, "wrong_usage"),
    ],
)
def test_app_refusals_through_caddy(pki, pki_files, caddy, name, path, status, code):
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(caddy + path)
    assert response.status_code == status
    assert response.json()["reason"] == code


@pytest.mark.parametrize("header", [CERT, CERT.lower(), CERT.upper()])
def test_client_cannot_smuggle_a_certificate_header_through_caddy(pki, pki_files, caddy, header):
    forged = {header: b64(pki.payments.der)}
    with client(pki_files) as http:  # no certificate of its own
        anonymous = http.get(caddy + "/whoami", headers=forged)
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "missing"
    with client(pki_files, pki.cn_only) as http:  # its own certificate wins over the forged one
        body = http.get(caddy + "/whoami", headers=forged).json()
    assert body["principal"] == "legacy-batch"


def test_forged_header_straight_to_uvicorn_is_rejected(pki, upstream):
    response = forged_request(upstream + "/whoami", {CERT: b64(pki.payments.der)})
    assert response.status_code == 400
    assert response.json()["reason"] == "untrusted_proxy"


def test_websocket_through_caddy(pki, pki_files, caddy):
    url = caddy.replace("https://", "wss://") + "/ws"
    body = websocket_first_json(url, pki_files.client_context(pki.payments))
    assert body["principal"] == PAYMENTS
    assert body["source"] == "caddy"


def test_websocket_denied_through_caddy(pki, pki_files, caddy):
    url = caddy.replace("https://", "wss://") + "/ws/payments"
    assert websocket_rejection_status(url, pki_files.client_context(pki.reports)) == 403
