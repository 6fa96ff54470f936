"""Real nginx (Debian package) terminating mTLS in front of real uvicorn.

nginx forwards ``$ssl_client_escaped_cert`` with the configuration the docs and the example
app ship (``example_app/nginx/asgi-mtls-proxy.conf`` is included verbatim).  The end client
connects from 127.0.0.2 so its address differs from nginx's (127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

import asgi_mtls.uvicorn as mtls_uvicorn
from asgi_mtls import MTLSMiddleware
from asgi_mtls.testing import nginx_escaped_header
from tests.apps import PAYMENTS, REPORTS, starlette_app

from .clients import websocket_first_json, websocket_rejection_status
from .conftest import PKIFiles, require_binary
from .proxies import END_CLIENT, client, free_port, serve_upstream, start_nginx
from .servers import start_uvicorn

pytestmark = pytest.mark.e2e

SNIPPET = Path(__file__).resolve().parents[2] / "example_app" / "nginx" / "asgi-mtls-proxy.conf"

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki.server_cert};
        ssl_certificate_key {pki.server_key};
        ssl_client_certificate {pki.client_ca_bundle};
        ssl_verify_client optional;
        ssl_verify_depth 3;
        location / {{
            proxy_pass {upstream};
            include {snippet};
        }}
    }}
    server {{
        # The same app behind a Unix socket.
        listen 127.0.0.1:{unix_port} ssl;
        ssl_certificate {pki.server_cert};
        ssl_certificate_key {pki.server_key};
        ssl_client_certificate {pki.client_ca_bundle};
        ssl_verify_client optional;
        ssl_verify_depth 3;
        location / {{
            proxy_pass http://unix:{socket}:;
            include {snippet};
        }}
    }}
    server {{
        # optional_no_ca: nginx passes failed certificates on with a FAILED verdict.
        listen 127.0.0.1:{lenient_port} ssl;
        ssl_certificate {pki.server_cert};
        ssl_certificate_key {pki.server_key};
        ssl_client_certificate {pki.client_ca_bundle};
        ssl_verify_client optional_no_ca;
        ssl_verify_depth 3;
        location / {{
            proxy_pass {upstream};
            include {snippet};
        }}
    }}
}}
"""


def app(pki, trusted_proxies=("127.0.0.1",)):
    return MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        trusted_proxies=list(trusted_proxies),
    )


@pytest.fixture(scope="module")
def upstream(pki) -> Iterator[str]:
    """The app on plain HTTP, uvicorn trusting X-Forwarded-For from anyone ('*')."""
    with serve_upstream(app(pki)) as url:
        yield url


@pytest.fixture(scope="module")
def upstream_default(pki) -> Iterator[str]:
    """The app on plain HTTP with uvicorn's default proxy-header settings."""
    config = mtls_uvicorn.config(
        app(pki), port=0, certfile=None, keyfile=None, client_ca=None, log_level="warning"
    )
    with start_uvicorn(config) as url:
        yield url


@pytest.fixture(scope="module")
def unix_upstream(pki, tmp_path_factory) -> Iterator[Path]:
    """The app on a Unix socket, trusting Unix-socket peers ("unix:") as the proxy."""
    path = tmp_path_factory.mktemp("uds") / "app.sock"
    config = mtls_uvicorn.config(
        app(pki, trusted_proxies=["unix:"]),
        certfile=None,
        keyfile=None,
        client_ca=None,
        uds=str(path),
        log_level="warning",
    )
    with start_uvicorn(config):
        yield path


@pytest.fixture(scope="module")
def stock_upstream(pki) -> Iterator[str]:
    """uvicorn's own protocol classes (no recorded transport peer), proxy headers from '*'."""
    config = uvicorn.Config(app(pki), port=0, forwarded_allow_ips="*", log_level="warning")
    with start_uvicorn(config) as url:
        yield url


@pytest.fixture(scope="module")
def nginx(
    pki_files: PKIFiles, upstream, unix_upstream, tmp_path_factory
) -> Iterator[dict[str, str]]:
    binary = require_binary("nginx", "apt-get install nginx")
    work = tmp_path_factory.mktemp("nginx")
    port, lenient_port, unix_port = free_port(), free_port(), free_port()
    conf = NGINX_CONF.format(
        work=work,
        port=port,
        lenient_port=lenient_port,
        unix_port=unix_port,
        socket=unix_upstream,
        pki=pki_files,
        upstream=upstream,
        snippet=SNIPPET,
    )
    with start_nginx(binary, conf, work, port):
        yield {
            "strict": f"https://localhost:{port}",
            "lenient": f"https://localhost:{lenient_port}",
            "unix": f"https://localhost:{unix_port}",
        }


def test_identity_arrives_through_nginx(pki, pki_files, nginx):
    with client(pki_files, pki.payments) as http:
        response = http.get(nginx["strict"] + "/whoami")
    assert response.status_code == 200
    body = response.json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    assert body["source"] == "nginx"
    # uvicorn took the end client's address from X-Forwarded-For; nginx's is 127.0.0.1.
    assert body["client_host"] == END_CLIENT


def test_cn_only_client_through_nginx(pki, pki_files, nginx):
    with client(pki_files, pki.cn_only) as http:
        body = http.get(nginx["strict"] + "/whoami").json()
    assert body["principal"] == "legacy-batch"
    assert body["fingerprint"] == pki.cn_only.fingerprint_sha256


def test_no_certificate_through_nginx(pki_files, nginx):
    with client(pki_files) as http:
        assert http.get(nginx["strict"] + "/public").json() == {"ok": True, "user": None}
        missing = http.get(nginx["strict"] + "/whoami")
    assert missing.status_code == 401
    assert missing.json()["reason"] == "missing"


def test_untrusted_certificate_never_becomes_an_identity(pki, pki_files, nginx):
    with client(pki_files, pki.untrusted) as http:
        refused_by_nginx = http.get(nginx["strict"] + "/whoami")
        refused_by_app = http.get(nginx["lenient"] + "/whoami")
    assert refused_by_nginx.status_code == 400  # nginx's own "SSL certificate error" page
    assert PAYMENTS not in refused_by_nginx.text
    assert refused_by_app.status_code == 401
    assert refused_by_app.json()["reason"] == "proxy_verify_failed"


def test_identity_through_nginx_over_a_unix_socket(pki, pki_files, nginx, unix_upstream):
    with client(pki_files, pki.payments) as http:
        body = http.get(nginx["unix"] + "/whoami").json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    # A local process talking to the socket directly is also a "unix" peer: that is what
    # trusting "unix:" means (documented); a TCP peer is still refused.
    forged = {"X-SSL-Client-Cert": nginx_escaped_header(pki.reports)}
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(unix_upstream))) as http:
        assert http.get("http://localhost/whoami", headers=forged).json()["principal"] == REPORTS


def test_expired_certificate_is_refused_by_nginx_itself(pki, pki_files, nginx):
    # Even optional_no_ca lets only "unknown issuer" failures through; expiry stops at nginx.
    with client(pki_files, pki.expired) as http:
        for url in (nginx["strict"], nginx["lenient"]):
            response = http.get(url + "/public")
            assert response.status_code == 400
            assert "certificate" in response.text.lower()


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
def test_app_refusals_through_nginx(pki, pki_files, nginx, name, path, status, code):
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(nginx["strict"] + path)
    assert response.status_code == status
    assert response.json()["reason"] == code


def test_server_certificate_as_client_is_refused_by_nginx(pki, pki_files, nginx):
    with client(pki_files, pki.server_only) as http:
        response = http.get(nginx["strict"] + "/whoami")
    assert response.status_code == 400
    assert "api.example" not in response.text


@pytest.mark.parametrize("header", ["X-SSL-Client-Cert", "x-ssl-client-cert", "X-SSL-CLIENT-CERT"])
def test_client_cannot_smuggle_a_certificate_header_through_nginx(pki, pki_files, nginx, header):
    forged = {header: nginx_escaped_header(pki.payments), "X-SSL-Client-Verify": "SUCCESS"}
    with client(pki_files) as http:  # no certificate of its own
        anonymous = http.get(nginx["strict"] + "/whoami", headers=forged)
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "missing"
    with client(pki_files, pki.cn_only) as http:  # its own certificate wins over the forged one
        body = http.get(nginx["strict"] + "/whoami", headers=forged).json()
    assert body["principal"] == "legacy-batch"


@pytest.mark.parametrize("fixture", ["upstream", "upstream_default", "stock_upstream"])
def test_forged_header_straight_to_uvicorn_is_rejected(pki, request, fixture):
    url = request.getfixturevalue(fixture)
    forged = {
        "X-SSL-Client-Cert": nginx_escaped_header(pki.payments),
        "X-SSL-Client-Verify": "SUCCESS",
        "X-Forwarded-For": "127.0.0.1",  # claims to come from the trusted proxy
    }
    transport = httpx.HTTPTransport(local_address=END_CLIENT)
    with httpx.Client(transport=transport, timeout=10) as http:
        response = http.get(url + "/whoami", headers=forged)
    assert response.status_code == 400
    assert response.json()["reason"] == "untrusted_proxy"


def test_websocket_through_nginx(pki, pki_files, nginx):
    url = nginx["strict"].replace("https://", "wss://") + "/ws"
    context = pki_files.client_context(pki.payments)
    body = websocket_first_json(url, context)
    assert body["principal"] == PAYMENTS
    assert body["source"] == "nginx"


def test_websocket_denied_through_nginx(pki, pki_files, nginx):
    url = nginx["strict"].replace("https://", "wss://") + "/ws/payments"
    context = pki_files.client_context(pki.reports)
    assert websocket_rejection_status(url, context) == 403


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ([("X-SSL-Client-Cert", "garbage")], "malformed"),
        (
            [("X-SSL-Client-Cert", "%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE%2D%2D%2D%2D%2D%0AMIIB")],
            "malformed",
        ),
        ([("X-SSL-Client-Cert", "a"), ("X-SSL-Client-Cert", "b")], "duplicate_header"),
        ([("X-SSL-Client-Verify", "FAILED:certificate revoked")], "proxy_verify_failed"),
    ],
)
def test_bad_headers_from_the_trusted_proxy_address_over_real_http(upstream, headers, code):
    # Sent from 127.0.0.1, the trusted proxy's address, straight to uvicorn: real h11/httptools
    # parsing, and still a 400/401 with the reason code, never a 500 or an identity.
    with httpx.Client(timeout=10) as http:
        response = http.get(upstream + "/whoami", headers=headers)
    assert response.status_code in (400, 401)
    assert response.json()["reason"] == code
