"""The OpenAPI 3.1 ``mutualTLS`` security scheme: /openapi.json and /docs, in process."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.security import OAuth2PasswordBearer

from asgi_mtls import PUBLIC, ClientIdentity, MTLSMiddleware, require_client
from asgi_mtls.authorization import role
from asgi_mtls.fastapi import EXTENSION, install_openapi
from asgi_mtls.testing import simulate_connection
from example_app.app import create_app
from tests.apps import PAYMENTS
from tests.asgi import get

MTLS = [{"mutualTLS": []}]
ROLE_X = role("x")


def plain_route(app: FastAPI, path: str, **options: Any) -> None:
    """A GET route at ``path`` answering "ok"; ``options`` are FastAPI's route options."""
    app.add_api_route(path, lambda: "ok", methods=["GET"], **options)


@pytest.fixture
def example(pki, tmp_path):
    return create_app(pki.root.write(tmp_path, "ca"))


@pytest.mark.anyio
async def test_example_app_openapi_document(example):
    response = await get(simulate_connection(example, None), "/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    scheme = document["components"]["securitySchemes"]["mutualTLS"]
    assert scheme["type"] == "mutualTLS"
    assert "X.509" in scheme["description"]
    paths = document["paths"]
    whoami = paths["/whoami"]["get"]
    assert whoami["security"] == MTLS
    assert whoami[EXTENSION] == "any valid client certificate"
    assert whoami["description"].endswith("Client certificate: any valid client certificate.")
    pay = paths["/payments"]["post"]
    assert pay["security"] == MTLS
    assert pay[EXTENSION] == f"principal is SPIFFE ID {PAYMENTS}"
    assert paths["/ledger"]["get"][EXTENSION] == "role in bank-service"
    health = paths["/health"]["get"]
    assert "security" not in health
    assert health[EXTENSION] == "public"


@pytest.mark.anyio
async def test_docs_still_render(example):
    response = await get(simulate_connection(example, None), "/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text.lower()
    assert (await get(simulate_connection(example, None), "/redoc")).status_code == 200


def test_policies_router_dependencies_and_other_schemes(pki):
    app = FastAPI()
    oauth2 = OAuth2PasswordBearer(tokenUrl="token")
    internal = APIRouter(prefix="/internal", dependencies=[Depends(require_client(PAYMENTS))])

    @internal.get("/status")
    def status() -> str:
        return "ok"

    app.include_router(internal)

    plain_route(app, "/admin/users")

    @app.get("/both")
    def both(token: str = Depends(oauth2), client: ClientIdentity = Depends(ROLE_X)) -> str:
        return token

    plain_route(app, "/ping", dependencies=[Depends(PUBLIC)])
    plain_route(app, "/open")

    app.add_middleware(
        MTLSMiddleware, trust=pki.root.certificate, policies={"/admin/*": role("admin")}
    )
    assert install_openapi(app) is app
    install_openapi(app)  # idempotent
    paths = app.openapi()["paths"]
    assert paths["/internal/status"]["get"]["security"] == MTLS
    assert paths["/admin/users"]["get"]["security"] == MTLS
    assert paths["/admin/users"]["get"][EXTENSION] == "role in admin"
    # mTLS is required in addition to the OAuth2 token: one requirement object with both
    assert paths["/both"]["get"]["security"] == [{"OAuth2PasswordBearer": [], "mutualTLS": []}]
    assert paths["/ping"]["get"][EXTENSION] == "public"
    assert "security" not in paths["/open"]["get"]
    assert paths["/open"]["get"][EXTENSION] == "anyone (no requirement declared)"
    assert app.openapi() is app.openapi()
    description = paths["/internal/status"]["get"]["description"]
    assert description.count("Client certificate:") == 1

    @app.get("/late")
    @PUBLIC
    def late() -> str:
        return "late"

    # FastAPI regenerates the document when routes change; the scheme follows
    regenerated = app.openapi()
    assert regenerated["paths"]["/late"]["get"][EXTENSION] == "public"
    assert "mutualTLS" in regenerated["components"]["securitySchemes"]


def test_require_certificate_marks_every_operation(pki):
    app = FastAPI()

    plain_route(app, "/a")
    plain_route(app, "/health")

    app.add_middleware(
        MTLSMiddleware,
        trust=pki.root.certificate,
        require_certificate=True,
        exempt_paths=["/health"],
    )
    paths = install_openapi(app).openapi()["paths"]
    assert paths["/a"]["get"]["security"] == MTLS
    assert "security" not in paths["/health"]["get"]


def test_custom_scheme_name_and_description():
    app = FastAPI()

    @app.get("/a")
    def a(client: ClientIdentity = Depends(require_client())) -> str:
        return client.principal

    document = install_openapi(app, scheme_name="clientCert", description="mTLS").openapi()
    assert document["components"]["securitySchemes"] == {
        "clientCert": {"type": "mutualTLS", "description": "mTLS"}
    }
    assert document["paths"]["/a"]["get"]["security"] == [{"clientCert": []}]
