"""Real HAProxy (Debian package) terminating mTLS in front of real uvicorn.

HAProxy forwards ``%[ssl_c_der,base64]``, ``%[ssl_c_chain_der,base64]`` and
``%[ssl_c_verify]`` with the lines the docs ship (``example_app/proxies/haproxy/asgi-mtls.cfg``,
pasted verbatim into each frontend: HAProxy has no include directive).  The end client
connects from 127.0.0.2 so its address differs from HAProxy's (127.0.0.1).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

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
    start_haproxy,
)

pytestmark = pytest.mark.e2e

SNIPPET = PROXY_SNIPPETS / "haproxy" / "asgi-mtls.cfg"
CERT, CHAIN, VERIFY = "X-SSL-Client-DER", "X-SSL-Client-Chain-DER", "X-SSL-Client-Verify-Code"

HAPROXY_CFG = """
global
    maxconn 256
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 30s
frontend strict
    bind 127.0.0.1:{strict_port} {tls}
{snippet}
    default_backend app
frontend lenient
    # ca-ignore-err/crt-ignore-err: HAProxy passes failed certificates on, with their code.
    bind 127.0.0.1:{lenient_port} {tls} ca-ignore-err all crt-ignore-err all
{snippet}
    default_backend app
frontend chain_only
    # In front of an app that knows the root but not the intermediate.
    bind 127.0.0.1:{chain_only_port} {tls}
{snippet}
    default_backend app_without_intermediates
frontend naive
    # The snippet WITHOUT its del-header lines: the spoofing hole the docs warn about.
    bind 127.0.0.1:{naive_port} {tls}
{naive_snippet}
    default_backend app
backend app
    server app {upstream}
backend app_without_intermediates
    server app {upstream_without_intermediates}
"""


def source():
    return HeaderSource(
        "haproxy",
        header=CERT.lower(),
        chain_header=CHAIN.lower(),
        verify_header=VERIFY.lower(),
    )


def b64(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


@pytest.fixture(scope="module")
def upstream(pki) -> Iterator[str]:
    with serve_upstream(proxy_app(pki, source())) as url:
        yield url


@pytest.fixture(scope="module")
def upstream_without_intermediates(pki) -> Iterator[str]:
    with serve_upstream(proxy_app(pki, source(), intermediates=False)) as url:
        yield url


@pytest.fixture(scope="module")
def haproxy(
    pki_files: PKIFiles, upstream, upstream_without_intermediates, tmp_path_factory
) -> Iterator[dict[str, str]]:
    binary = require_binary("haproxy", "apt-get install haproxy")
    work = tmp_path_factory.mktemp("haproxy")
    crt = work / "server-with-key.pem"  # HAProxy wants the certificate and key in one file
    crt.write_text(pki_files.server_cert.read_text() + pki_files.server_key.read_text())
    crt.chmod(0o600)
    lines = SNIPPET.read_text().splitlines()
    ports = {name: free_port() for name in ("strict", "lenient", "chain_only", "naive")}
    conf = HAPROXY_CFG.format(
        **{f"{name}_port": port for name, port in ports.items()},
        tls=f"ssl crt {crt} ca-file {pki_files.client_ca_bundle} verify optional",
        snippet="\n".join("    " + line for line in lines),
        naive_snippet="\n".join("    " + line for line in lines if "del-header" not in line),
        upstream=upstream.removeprefix("http://"),
        upstream_without_intermediates=upstream_without_intermediates.removeprefix("http://"),
    )
    with start_haproxy(binary, conf, work, ports["strict"]):
        yield {name: f"https://localhost:{port}" for name, port in ports.items()}


def test_identity_arrives_through_haproxy(pki, pki_files, haproxy):
    with client(pki_files, pki.payments) as http:
        response = http.get(haproxy["strict"] + "/whoami")
    assert response.status_code == 200
    body = response.json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    assert body["source"] == "haproxy"
    assert body["client_host"] == END_CLIENT  # from X-Forwarded-For (option forwardfor)


def test_cn_only_client_through_haproxy(pki, pki_files, haproxy):
    with client(pki_files, pki.cn_only) as http:
        body = http.get(haproxy["strict"] + "/whoami").json()
    assert body["principal"] == "legacy-batch"
    assert body["fingerprint"] == pki.cn_only.fingerprint_sha256


def test_the_headers_haproxy_sends(pki, pki_files, haproxy):
    """The exact values, read before the middleware: documents HAProxy's behaviour."""
    with client(pki_files, pki.payments) as http:
        sent = dict(http.get(haproxy["strict"] + "/_proxy-headers").json())
    assert sent[CERT.lower()] == b64(pki.payments.der)
    # ssl_c_chain_der: what the client sent after its leaf (here the intermediate), not the
    # chain HAProxy verified (no root), as one base64 blob of concatenated DER.
    assert sent[CHAIN.lower()] == b64(pki.intermediate.certificate.public_bytes(Encoding.DER))
    assert sent[VERIFY.lower()] == "0"
    with client(pki_files) as http:
        anonymous = dict(http.get(haproxy["strict"] + "/_proxy-headers").json())
    assert not {CERT.lower(), CHAIN.lower(), VERIFY.lower()} & anonymous.keys()


def test_forwarded_chain_lets_the_app_build_the_path(pki, pki_files, haproxy):
    # The app behind this frontend knows only the root; the intermediate arrives in the
    # chain header, as a path-building hint (never as a trust anchor).
    with client(pki_files, pki.payments) as http:
        body = http.get(haproxy["chain_only"] + "/whoami").json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256


def test_no_certificate_through_haproxy(pki_files, haproxy):
    with client(pki_files) as http:
        assert http.get(haproxy["strict"] + "/public").json() == {"ok": True, "user": None}
        missing = http.get(haproxy["strict"] + "/whoami")
    assert missing.status_code == 401
    assert missing.json()["reason"] == "missing"


@pytest.mark.parametrize("name", ["untrusted", "expired", "server_only"])
def test_haproxy_refuses_bad_certificates_in_the_handshake(pki, pki_files, haproxy, name):
    # `verify optional` still aborts the handshake for a certificate that fails verification.
    assert_refused_in_handshake(pki_files, getattr(pki, name), haproxy["strict"] + "/public")


@pytest.mark.parametrize(
    ("name", "code"), [("untrusted", 21), ("expired", 10), ("server_only", 26)]
)
def test_haproxy_ignore_err_forwards_the_verdict_and_the_app_refuses(
    pki, pki_files, haproxy, name, code
):
    with client(pki_files, getattr(pki, name)) as http:
        sent = dict(http.get(haproxy["lenient"] + "/_proxy-headers").json())
        response = http.get(haproxy["lenient"] + "/public")
    assert sent[VERIFY.lower()] == str(code)  # X509_V_ERR_* from OpenSSL
    assert response.status_code == 401
    assert response.json()["reason"] == "proxy_verify_failed"


@pytest.mark.parametrize(
    ("name", "path", "status", "code"),
    [
        ("reports", "/payments", 403, "forbidden"),
        # OpenSSL accepts a client certificate without EKU, and a CA certificate with
        # clientAuth; the app's validator does not.
        ("no_eku", "/public", 401, "wrong_usage"),
        ("ca_as_client", "/public", 401, "wrong_usage"),
    ],
)
def test_app_refusals_through_haproxy(pki, pki_files, haproxy, name, path, status, code):
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(haproxy["strict"] + path)
    assert response.status_code == status
    assert response.json()["reason"] == code


@pytest.mark.parametrize("header", [CERT, CERT.lower(), CERT.upper()])
def test_client_cannot_smuggle_a_certificate_header_through_haproxy(
    pki, pki_files, haproxy, header
):
    forged = {
        header: b64(pki.payments.der),
        CHAIN: b64(pki.intermediate.certificate.public_bytes(Encoding.DER)),
        VERIFY: "0",
    }
    with client(pki_files) as http:  # no certificate of its own
        anonymous = http.get(haproxy["strict"] + "/whoami", headers=forged)
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "missing"
    with client(pki_files, pki.cn_only) as http:  # its own certificate wins over the forged one
        body = http.get(haproxy["strict"] + "/whoami", headers=forged).json()
    assert body["principal"] == "legacy-batch"


def test_without_del_header_haproxy_forwards_the_clients_own_header(pki, pki_files, haproxy):
    # Why the snippet deletes first: with `set-header ... if { ssl_c_used }` alone, a client
    # without a certificate keeps its own header and becomes whoever it claims to be.
    forged = {CERT: b64(pki.payments.der), VERIFY: "0"}
    with client(pki_files) as http:
        body = http.get(haproxy["naive"] + "/whoami", headers=forged).json()
    assert body["principal"] == PAYMENTS


def test_forged_header_straight_to_uvicorn_is_rejected(pki, upstream):
    response = forged_request(upstream + "/whoami", {CERT: b64(pki.payments.der), VERIFY: "0"})
    assert response.status_code == 400
    assert response.json()["reason"] == "untrusted_proxy"


def test_websocket_through_haproxy(pki, pki_files, haproxy):
    url = haproxy["strict"].replace("https://", "wss://") + "/ws"
    body = websocket_first_json(url, pki_files.client_context(pki.payments))
    assert body["principal"] == PAYMENTS
    assert body["source"] == "haproxy"


def test_websocket_denied_through_haproxy(pki, pki_files, haproxy):
    url = haproxy["strict"].replace("https://", "wss://") + "/ws/payments"
    assert websocket_rejection_status(url, pki_files.client_context(pki.reports)) == 403
