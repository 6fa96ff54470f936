"""The whole product on real uvicorn terminating TLS: handshake, middleware, routes.

uvicorn verifies client certificates in the handshake (``--ssl-cert-reqs 1``) and
``asgi_mtls.uvicorn`` fills the ASGI ``tls`` extension; the middleware validates again
against its own roots and the routes authorize.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

import asgi_mtls.uvicorn as mtls_uvicorn
from asgi_mtls import MTLSMiddleware
from asgi_mtls.testing import nginx_escaped_header
from tests.apps import PAYMENTS, REPORTS, fastapi_app, starlette_app

from .clients import websocket_first_json, websocket_rejection_status
from .conftest import PKIFiles
from .servers import start_uvicorn

pytestmark = pytest.mark.e2e


def middleware_options(pki) -> dict[str, object]:
    return {"trust": pki.root.certificate, "intermediates": [pki.intermediate.certificate]}


@contextmanager
def serve_tls(
    pki, pki_files: PKIFiles | None, app=None, *, scheme="https", **options
) -> Iterator[str]:
    """Serve ``app`` (default: the Starlette test app behind the middleware) on real uvicorn
    TLS through asgi_mtls.uvicorn (the session PKI's files unless ``certfile``, ``keyfile`` or
    ``client_ca`` say otherwise); yield its base URL on ``localhost``."""
    if app is None:
        app = MTLSMiddleware(starlette_app(), **middleware_options(pki))
    for option, file in (
        ("client_ca", "client_ca_bundle"),
        ("certfile", "server_cert"),
        ("keyfile", "server_key"),
    ):
        if option not in options:
            options[option] = getattr(pki_files, file)
    config = mtls_uvicorn.config(app, port=0, log_level="warning", **options)
    with start_uvicorn(config) as url:
        yield url.replace("https://127.0.0.1", f"{scheme}://localhost")


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(request, pki, pki_files: PKIFiles) -> Iterator[str]:
    with serve_tls(pki, pki_files, http=request.param) as url:
        yield url


@pytest.fixture(scope="module")
def broad_handshake_server(pki, pki_files: PKIFiles, tmp_path_factory) -> Iterator[str]:
    """The handshake accepts the attacker's root too (a misconfigured TLS layer); the
    middleware's own trust roots must still refuse its clients."""
    bundle = tmp_path_factory.mktemp("broad") / "handshake-cas.pem"
    bundle.write_text(pki_files.client_ca_bundle.read_text() + pki.other_root.pem)
    with serve_tls(pki, pki_files, client_ca=bundle) as url:
        yield url


def client(pki_files: PKIFiles, cert=None) -> httpx.Client:
    return httpx.Client(verify=pki_files.client_context(cert), timeout=10)


def test_valid_client_gets_its_identity(pki, pki_files, server):
    with client(pki_files, pki.payments) as http:
        response = http.get(server + "/whoami")
        assert http.get(server + "/payments").json() == {"paid_by": PAYMENTS}
    assert response.status_code == 200
    body = response.json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    assert body["source"] == "tls"
    assert body["issuer"] == "CN=Bank Test Clients CA"


def test_keep_alive_connection_keeps_its_identity(pki, pki_files, server):
    with client(pki_files, pki.cn_only) as http:
        principals = {http.get(server + "/whoami").json()["principal"] for _ in range(3)}
    assert principals == {"legacy-batch"}


def test_no_certificate(pki_files, server):
    with client(pki_files) as http:
        assert http.get(server + "/public").status_code == 200
        response = http.get(server + "/whoami")
    assert response.status_code == 401
    assert response.json()["reason"] == "missing"


def test_restricted_route_for_someone_else(pki, pki_files, server):
    with client(pki_files, pki.reports) as http:
        response = http.get(server + "/payments")
        assert http.get(server + "/reports").json() == {"report_for": REPORTS}
    assert response.status_code == 403
    assert response.json()["reason"] == "forbidden"


@pytest.mark.parametrize("name", ["untrusted", "expired", "server_only"])
def test_bad_certificates_fail_the_handshake(pki, pki_files, server, name):
    with client(pki_files, getattr(pki, name)) as http, pytest.raises(httpx.HTTPError):
        # TLS 1.3 reports the client's rejection on the first read, so a request is needed.
        http.get(server + "/whoami")


@pytest.mark.parametrize(
    ("name", "code"),
    [("untrusted", "untrusted"), ("no_eku", "wrong_usage"), ("ca_as_client", "wrong_usage")],
)
def test_what_the_handshake_lets_through_the_middleware_refuses(
    pki, pki_files, broad_handshake_server, name, code
):
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(broad_handshake_server + "/public")
    assert response.status_code == 401
    assert response.json()["reason"] == code


def test_certificate_header_is_not_believed_over_direct_tls(pki, pki_files, server):
    # No trusted proxies are configured: a header claiming a certificate never counts.
    forged = {"X-SSL-Client-Cert": nginx_escaped_header(pki.payments)}
    with client(pki_files) as http:
        response = http.get(server + "/whoami", headers=forged)
    assert response.status_code == 401
    assert response.json()["reason"] == "missing"
    # With a certificate of its own, the client is what its handshake proved, nothing else.
    with client(pki_files, pki.reports) as http:
        assert http.get(server + "/whoami", headers=forged).json()["principal"] == REPORTS


@pytest.fixture(scope="module", params=["websockets-sansio", "wsproto", "websockets"])
def ws_server(request, pki, pki_files) -> Iterator[str]:
    with serve_tls(pki, pki_files, scheme="wss", ws=request.param) as url:
        yield url


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_websocket_connects_with_its_identity(pki, pki_files, ws_server):
    body = websocket_first_json(ws_server + "/ws", pki_files.client_context(pki.payments))
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("name", "status"), [("reports", 403), (None, 401)])
def test_websocket_without_the_right_identity_is_denied(pki, pki_files, ws_server, name, status):
    context = pki_files.client_context(getattr(pki, name) if name else None)
    assert websocket_rejection_status(ws_server + "/ws/payments", context) == status


@pytest.fixture(scope="module")
def fastapi_server(pki, pki_files) -> Iterator[str]:
    app = fastapi_app()
    app.add_middleware(MTLSMiddleware, **middleware_options(pki))
    with serve_tls(pki, pki_files, app) as url:
        yield url


def test_fastapi_app_on_real_tls(pki, pki_files, fastapi_server):
    with client(pki_files, pki.payments) as http:
        assert http.get(fastapi_server + "/payments").json() == {"paid_by": PAYMENTS}
    with client(pki_files, pki.reports) as http:
        denied = http.get(fastapi_server + "/payments")
    assert denied.status_code == 403
    assert denied.json()["reason"] == "forbidden"
    with client(pki_files) as http:
        assert http.get(fastapi_server + "/payments").json()["reason"] == "missing"


def test_required_client_certificate_mode(pki, pki_files):
    with serve_tls(pki, pki_files, require_client_cert=True) as url:
        with client(pki_files, pki.payments) as http:
            assert http.get(url + "/whoami").json()["principal"] == PAYMENTS
        with client(pki_files) as http, pytest.raises(httpx.HTTPError):
            http.get(url + "/public")


def test_a_keep_alive_connection_resolves_its_certificate_once(pki, pki_files):
    """asgi_mtls.uvicorn gives each connection a memo (issue #10): later requests on the
    connection skip the source and the cache; a new connection starts afresh."""
    middleware = MTLSMiddleware(starlette_app(), **middleware_options(pki))
    tls_source = middleware.resolver.sources[0]
    finds: list[object] = []
    real_find = tls_source.find

    def counting_find(scope):
        finds.append(scope["path"])
        return real_find(scope)

    tls_source.find = counting_find
    with serve_tls(pki, pki_files, middleware) as url:
        with client(pki_files, pki.payments) as http:
            bodies = [http.get(url + "/whoami").json() for _ in range(4)]
        with client(pki_files, pki.payments) as http:
            again = http.get(url + "/whoami").json()
    assert {body["principal"] for body in [*bodies, again]} == {PAYMENTS}
    assert finds == ["/whoami", "/whoami"]  # once per connection
    assert middleware.resolver.misses == 1  # and validated once in all
