"""Issue #8 attacks through real uvicorn terminating TLS: forged names and root_path bypasses.

uvicorn (``asgi_mtls.uvicorn`` protocol classes) verifies the client certificate in a real
handshake; everything the attacker controls is what a trusted CA was willing to sign and the
request path.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_mtls import PUBLIC, MTLSMiddleware, require_client
from tests.apps import PAYMENTS

from .conftest import PKIFiles
from .test_uvicorn_mtls import middleware_options, serve_tls

pytestmark = pytest.mark.e2e


def whoami():  # a new endpoint each time: decorators mark the function they get
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name or None, "path": request.url.path})

    return endpoint


def routes() -> list[Route]:
    return [
        Route("/admin", whoami()),  # protected by the middleware's path policy only
        Route("/health", PUBLIC(whoami())),
        Route("/undeclared", whoami()),
        Route("/pay", require_client(PAYMENTS)(whoami())),
    ]


def protected(pki, app: Starlette, **options: object) -> MTLSMiddleware:
    return MTLSMiddleware(
        app,
        **middleware_options(pki),
        policies={"/admin": require_client(PAYMENTS), "/health": PUBLIC},
        **options,  # type: ignore[arg-type]
    )


def call(pki_files: PKIFiles, url: str, cert=None) -> httpx.Response:
    with httpx.Client(verify=pki_files.client_context(cert), timeout=10) as http:
        return http.get(url)


@pytest.fixture(scope="module", params=["", "/api"], ids=["no-root-path", "root-path"])
def root_path(request) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def policed(pki, pki_files, root_path) -> Iterator[str]:
    app = protected(pki, Starlette(routes=routes()), deny_by_default=True)
    with serve_tls(pki, pki_files, app, root_path=root_path) as url:
        yield url


@pytest.fixture(scope="module")
def mounted(pki, pki_files, root_path) -> Iterator[str]:
    inner = protected(pki, Starlette(routes=routes()), deny_by_default=True)
    app = Starlette(routes=[Mount("/sub", app=inner)])
    with serve_tls(pki, pki_files, app, root_path=root_path) as url:
        yield url


@pytest.mark.parametrize("prefix", ["", "/sub"], ids=["app", "mount"])
def test_policies_and_deny_by_default_see_the_routed_path(
    pki, pki_files, policed, mounted, root_path, prefix
):
    base = (mounted if prefix else policed) + prefix
    anonymous = call(pki_files, base + "/admin")
    assert anonymous.status_code == 401, anonymous.text  # the policy applies
    assert anonymous.json()["reason"] == "missing"
    assert call(pki_files, base + "/admin", pki.reports).status_code == 403
    allowed = call(pki_files, base + "/admin", pki.payments)
    assert allowed.status_code == 200
    assert allowed.json() == {"user": PAYMENTS, "path": root_path + prefix + "/admin"}
    # deny_by_default lets declared routes through and refuses the undeclared one
    assert call(pki_files, base + "/health").status_code == 200
    assert call(pki_files, base + "/pay", pki.payments).status_code == 200
    undeclared = call(pki_files, base + "/undeclared", pki.payments)
    assert undeclared.status_code == 403 and undeclared.json()["reason"] == "forbidden"
    # the root path written into the request path is just another (unknown) path
    assert call(pki_files, base + root_path + "/admin").status_code in (401, 404)


@pytest.fixture(scope="module")
def exempting(pki, pki_files) -> Iterator[str]:
    app = MTLSMiddleware(
        Starlette(routes=routes()),
        **middleware_options(pki),
        require_certificate=True,
        exempt_paths=["/health"],
    )
    with serve_tls(pki, pki_files, app, root_path="/api") as url:
        yield url


def test_exempt_paths_see_the_routed_path(pki, pki_files, exempting):
    assert call(pki_files, exempting + "/health").status_code == 200
    refused = call(pki_files, exempting + "/admin")
    assert refused.status_code == 401 and refused.json()["reason"] == "missing"


# -- forged names over a real handshake -------------------------------------------------------


@pytest.fixture(scope="module")
def server(pki, pki_files) -> Iterator[str]:
    app = protected(pki, Starlette(routes=routes()))
    with serve_tls(pki, pki_files, app) as url:
        yield url


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"common_name": PAYMENTS}, (403, "forbidden")),
        (
            {"common_name": "x", "sans": [x509.DNSName._init_without_validation("bank.example")]},
            (403, "forbidden"),
        ),
        (
            {"common_name": "x", "sans": [x509.RFC822Name._init_without_validation(PAYMENTS)]},
            (401, "invalid_name"),
        ),
        (
            {"sans": [x509.DNSName._init_without_validation("\u0430dmin.example")]},
            (401, "invalid_name"),
        ),
        (
            {
                "sans": [
                    x509.UniformResourceIdentifier._init_without_validation(
                        PAYMENTS + ',Hash=00;Cert="x"'
                    )
                ]
            },
            (401, "invalid_name"),
        ),
    ],
    ids=["cn", "dns", "email", "cyrillic-dns", "uri-injection"],
)
def test_forged_names_never_become_the_spiffe_id(pki, pki_files, server, names, expected):
    cert = pki.intermediate.issue(**names)
    response = call(pki_files, server + "/pay", cert)
    assert (response.status_code, response.json()["reason"]) == expected
    assert call(pki_files, server + "/pay", pki.payments).status_code == 200
