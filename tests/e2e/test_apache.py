"""Real Apache httpd (Debian's apache2: mod_ssl, mod_proxy_http, mod_headers) terminating
mTLS in front of real uvicorn.

Apache forwards ``%{SSL_CLIENT_CERT}s`` and ``%{SSL_CLIENT_VERIFY}s`` with the snippet the
docs ship (``example_app/proxies/apache/asgi-mtls.conf``, ``Include``d verbatim).  Apache runs
with ``-X`` (one process, foreground) from a generated configuration that loads only the
modules it needs; as root it drops to ``nobody``.  The end client connects from 127.0.0.2 so
its address differs from Apache's (127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asgi_mtls import HeaderSource
from tests.apps import PAYMENTS

from .clients import websocket_first_json, websocket_rejection_status
from .conftest import PKIFiles, require_binary
from .proxies import (
    END_CLIENT,
    PROXY_SNIPPETS,
    apache_privileges,
    assert_refused_in_handshake,
    client,
    forged_request,
    free_port,
    proxy_app,
    serve_upstream,
    start_apache,
)

pytestmark = pytest.mark.e2e

SNIPPET = PROXY_SNIPPETS / "apache" / "asgi-mtls.conf"
MODULES = "/usr/lib/apache2/modules"  # Debian's layout
CERT, VERIFY = "X-SSL-Client-Cert", "X-SSL-Client-Verify"

VHOST = """
Listen 127.0.0.1:{port} https
<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile {pki.server_cert}
    SSLCertificateKeyFile {pki.server_key}
    SSLCACertificateFile {pki.client_ca_bundle}
    SSLVerifyClient {verify_client}
    SSLVerifyDepth 3
    Include {snippet}
    # upgrade=websocket: mod_proxy_http tunnels WebSockets itself (2.4.47+).
    ProxyPass / {upstream}/ upgrade=websocket
</VirtualHost>
"""

HTTPD_CONF = """
ServerRoot {work}
DefaultRuntimeDir {work}
PidFile {work}/httpd.pid
ErrorLog {work}/error.log
LogLevel warn
ServerName localhost
{privileges}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule ssl_module {modules}/mod_ssl.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule proxy_module {modules}/mod_proxy.so
LoadModule proxy_http_module {modules}/mod_proxy_http.so
SSLSessionCache none
{strict}
# optional_no_ca: mod_ssl passes failed certificates on with a FAILED:<reason> verdict.
{lenient}
"""


def source():
    return HeaderSource("apache", header=CERT.lower(), verify_header=VERIFY.lower())


def apache_header(pem: str) -> str:
    """What Apache sends: the PEM with each newline turned into a space (without the
    trailing one, which httpx refuses to send)."""
    return pem.replace("\n", " ").rstrip()


@pytest.fixture(scope="module")
def upstream(pki) -> Iterator[str]:
    with serve_upstream(proxy_app(pki, source())) as url:
        yield url


@pytest.fixture(scope="module")
def apache(pki_files: PKIFiles, upstream, tmp_path_factory) -> Iterator[dict[str, str]]:
    binary = require_binary("apache2", "apt-get install apache2")
    work = tmp_path_factory.mktemp("apache")
    port, lenient_port = free_port(), free_port()
    vhost = {"pki": pki_files, "snippet": SNIPPET, "upstream": upstream}
    conf = HTTPD_CONF.format(
        work=work,
        modules=MODULES,
        privileges=apache_privileges(),
        strict=VHOST.format(port=port, verify_client="optional", **vhost),
        lenient=VHOST.format(port=lenient_port, verify_client="optional_no_ca", **vhost),
    )
    with start_apache(binary, conf, work, port):
        yield {
            "strict": f"https://localhost:{port}",
            "lenient": f"https://localhost:{lenient_port}",
        }


def test_identity_arrives_through_apache(pki, pki_files, apache):
    with client(pki_files, pki.payments) as http:
        response = http.get(apache["strict"] + "/whoami")
    assert response.status_code == 200
    body = response.json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    assert body["source"] == "apache"
    assert body["client_host"] == END_CLIENT  # mod_proxy sets X-Forwarded-For itself


def test_cn_only_client_through_apache(pki, pki_files, apache):
    with client(pki_files, pki.cn_only) as http:
        body = http.get(apache["strict"] + "/whoami").json()
    assert body["principal"] == "legacy-batch"
    assert body["fingerprint"] == pki.cn_only.fingerprint_sha256


def test_the_headers_apache_sends(pki, pki_files, apache):
    """The exact values, read before the middleware: documents Apache's behaviour."""
    with client(pki_files, pki.payments) as http:
        sent = dict(http.get(apache["strict"] + "/_proxy-headers").json())
    # One line: the PEM's newlines (the last one included) are spaces.  A trailing space
    # survives or not depending on the HTTP parser (httptools keeps it, h11 strips it).
    assert sent[CERT.lower()].rstrip() == apache_header(pki.payments.pem)
    assert sent[VERIFY.lower()] == "SUCCESS"
    with client(pki_files) as http:
        anonymous = dict(http.get(apache["strict"] + "/_proxy-headers").json())
    # Without a certificate both headers are still sent.
    assert anonymous[CERT.lower()] == "(null)"
    assert anonymous[VERIFY.lower()] == "NONE"


def test_no_certificate_through_apache(pki_files, apache):
    with client(pki_files) as http:
        assert http.get(apache["strict"] + "/public").json() == {"ok": True, "user": None}
        missing = http.get(apache["strict"] + "/whoami")
    assert missing.status_code == 401
    assert missing.json()["reason"] == "missing"


@pytest.mark.parametrize("name", ["untrusted", "expired", "server_only"])
def test_apache_refuses_bad_certificates_in_the_handshake(pki, pki_files, apache, name):
    # `SSLVerifyClient optional` still aborts the handshake for a certificate that fails.
    assert_refused_in_handshake(pki_files, getattr(pki, name), apache["strict"] + "/public")


def test_optional_no_ca_forwards_the_verdict_and_the_app_refuses(pki, pki_files, apache):
    with client(pki_files, pki.untrusted) as http:
        sent = dict(http.get(apache["lenient"] + "/_proxy-headers").json())
        response = http.get(apache["lenient"] + "/whoami")
    assert sent[VERIFY.lower()].startswith("FAILED:")
    assert response.status_code == 401
    assert response.json()["reason"] == "proxy_verify_failed"
    # Only issuer failures pass optional_no_ca: an expired certificate stops at Apache.
    assert_refused_in_handshake(pki_files, pki.expired, apache["lenient"] + "/public")


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
def test_app_refusals_through_apache(pki, pki_files, apache, name, path, status, code):
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(apache["strict"] + path)
    assert response.status_code == status
    assert response.json()["reason"] == code


@pytest.mark.parametrize("header", [CERT, CERT.lower(), CERT.upper()])
def test_client_cannot_smuggle_a_certificate_header_through_apache(pki, pki_files, apache, header):
    forged = {header: apache_header(pki.payments.pem), VERIFY: "SUCCESS"}
    with client(pki_files) as http:  # no certificate of its own
        anonymous = http.get(apache["strict"] + "/whoami", headers=forged)
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "missing"
    with client(pki_files, pki.cn_only) as http:  # its own certificate wins over the forged one
        body = http.get(apache["strict"] + "/whoami", headers=forged).json()
    assert body["principal"] == "legacy-batch"


def test_forged_header_straight_to_uvicorn_is_rejected(pki, upstream):
    forged = {CERT: apache_header(pki.payments.pem), VERIFY: "SUCCESS"}
    response = forged_request(upstream + "/whoami", forged)
    assert response.status_code == 400
    assert response.json()["reason"] == "untrusted_proxy"


def test_websocket_through_apache(pki, pki_files, apache):
    url = apache["strict"].replace("https://", "wss://") + "/ws"
    body = websocket_first_json(url, pki_files.client_context(pki.payments))
    assert body["principal"] == PAYMENTS
    assert body["source"] == "apache"


def test_websocket_denied_through_apache(pki, pki_files, apache):
    url = apache["strict"].replace("https://", "wss://") + "/ws/payments"
    assert websocket_rejection_status(url, pki_files.client_context(pki.reports)) == 403
