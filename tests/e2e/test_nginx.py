"""What is specific to nginx; the tests every proxy passes are in ``test_proxies.py``.

nginx runs the configuration ``asgi-mtls proxy-config nginx`` prints, here in front of the app
on a Unix socket; the demo's own ``example_app/nginx`` includes the very lines the package
renders; a forged header sent straight to uvicorn is refused whatever uvicorn's proxy-header
settings; bad header values from the proxy's address get their reason code over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

import asgi_mtls.uvicorn as mtls_uvicorn
from asgi_mtls import MTLSMiddleware
from asgi_mtls.proxy_configs import template
from asgi_mtls.testing import nginx_escaped_header
from tests.apps import PAYMENTS, REPORTS, starlette_app

from .conftest import PKIFiles
from .proxies import client, forged_request, free_port, serve_upstream, spec, start_proxy
from .servers import start_uvicorn

pytestmark = pytest.mark.e2e

NGINX = spec("nginx")
DEMO = Path(__file__).resolve().parents[2] / "example_app" / "nginx"


def app(pki, trusted_proxies=("127.0.0.1",)):
    return MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        trusted_proxies=list(trusted_proxies),
    )


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


def test_identity_through_nginx_over_a_unix_socket(
    pki, pki_files: PKIFiles, unix_upstream, tmp_path
):
    settings = NGINX.settings(pki_files, tmp_path, free_port(), f"unix:{unix_upstream}")
    with start_proxy(NGINX, settings, tmp_path) as url, client(pki_files, pki.payments) as http:
        body = http.get(url + "/whoami").json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    # A local process talking to the socket directly is also a "unix" peer: that is what
    # trusting "unix:" means (documented); a TCP peer is still refused.
    forged = {"X-SSL-Client-Cert": nginx_escaped_header(pki.reports)}
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(unix_upstream))) as http:
        assert http.get("http://localhost/whoami", headers=forged).json()["principal"] == REPORTS


def test_the_demo_includes_the_lines_the_package_renders():
    assert (DEMO / "asgi-mtls-proxy.conf").read_text() == template("nginx-location.conf")
    assert "include asgi-mtls-proxy.conf;" in (DEMO / "nginx.conf").read_text()


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
def stock_upstream(pki) -> Iterator[str]:
    """uvicorn's own protocol classes (no recorded transport peer), proxy headers from '*'."""
    config = uvicorn.Config(app(pki), port=0, forwarded_allow_ips="*", log_level="warning")
    with start_uvicorn(config) as url:
        yield url


@pytest.mark.parametrize("fixture", ["upstream", "upstream_default", "stock_upstream"])
def test_forged_header_straight_to_uvicorn_is_rejected(pki, request, fixture):
    url = request.getfixturevalue(fixture)
    forged = {
        "X-SSL-Client-Cert": nginx_escaped_header(pki.payments),
        "X-SSL-Client-Verify": "SUCCESS",
    }
    response = forged_request(url + "/whoami", forged)
    assert response.status_code == 400
    assert response.json()["reason"] == "untrusted_proxy"


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
