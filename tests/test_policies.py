"""The middleware's path table (``policies=``) and ``deny_by_default``, in process."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_mtls import PUBLIC, ClientIdentity, MTLSMiddleware, require_client
from asgi_mtls.authorization import principal, role, spiffe_glob
from asgi_mtls.authorization.policies import PathPolicies
from asgi_mtls.testing import simulate_connection
from tests.apps import PAYMENTS, REPORTS
from tests.asgi import drive_websocket, get, reason

CALLS: list[str] = []


def ran(name: str) -> PlainTextResponse:
    CALLS.append(name)
    return PlainTextResponse(name)


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


# -- a Starlette app with every kind of route ------------------------------------------------


@require_client()
async def declared(request: Request) -> PlainTextResponse:
    return ran("declared")


@PUBLIC
async def open_route(request: Request) -> PlainTextResponse:
    return ran("public")


async def undeclared(request: Request) -> PlainTextResponse:
    return ran("undeclared")


@requires("authenticated")
async def starlette_requires(request: Request) -> PlainTextResponse:
    return ran("starlette_requires")


class Items(HTTPEndpoint):
    @require_client(PAYMENTS)
    async def get(self, request: Request) -> PlainTextResponse:
        return ran("items.get")

    async def post(self, request: Request) -> PlainTextResponse:
        return ran("items.post")


@require_client()
async def ws_declared(websocket: WebSocket) -> None:
    CALLS.append("ws_declared")
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


async def ws_undeclared(websocket: WebSocket) -> None:
    CALLS.append("ws_undeclared")
    await websocket.accept()
    await websocket.close()


async def raw_asgi(scope, receive, send) -> None:
    CALLS.append("raw")
    await PlainTextResponse("raw")(scope, receive, send)


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/declared", declared),
            Route("/public", open_route),
            Route("/undeclared", undeclared, methods=["GET", "POST"]),
            Route("/requires", starlette_requires),
            Route("/items", Items),
            Route("/admin/panel", undeclared, name="panel"),
            Route("/admin/public/info", undeclared, name="info"),
            Route("/admin", undeclared, name="admin_root"),
            WebSocketRoute("/ws/declared", ws_declared),
            WebSocketRoute("/ws/undeclared", ws_undeclared),
            Mount(
                "/sub",
                routes=[Route("/declared", declared), Route("/undeclared", undeclared)],
            ),
            Mount("/raw", app=raw_asgi),
        ]
    )


def serve(pki, app, cert, **options):
    options.setdefault("trust", pki.root.certificate)
    options.setdefault("intermediates", [pki.intermediate.certificate])
    return simulate_connection(MTLSMiddleware(app, **options), cert)


# -- path policies --------------------------------------------------------------------------


def test_most_specific_pattern_wins():
    admin, info, health = role("admin"), PUBLIC, principal("x")
    policies = PathPolicies({"/admin/public/*": info, "/admin/*": admin, "/health": health})
    assert policies.lookup("/admin/panel") == ("/admin/*", admin)
    assert policies.lookup("/admin/public/info") == ("/admin/public/*", info)
    assert policies.lookup("/admin/") == ("/admin/*", admin)
    assert policies.lookup("/admin") is None  # the prefix includes the slash
    assert policies.lookup("/health") == ("/health", health)
    assert policies.lookup("/health/x") is None  # exact means exact
    assert policies.lookup("/Admin/panel") is None  # case-sensitive
    # declaration order does not matter
    reordered = PathPolicies({"/admin/*": admin, "/admin/public/*": info})
    assert reordered.lookup("/admin/public/info") == ("/admin/public/*", info)
    # an exact pattern beats every prefix
    both = PathPolicies({"/a/*": admin, "/a/b": health})
    assert both.lookup("/a/b") == ("/a/b", health)
    assert both.lookup("/a/bc") == ("/a/*", admin)


@pytest.mark.parametrize(
    ("policies", "error"),
    [
        ({"admin/*": PUBLIC}, ValueError),
        ({"/a/*/b": PUBLIC}, ValueError),
        ({"": PUBLIC}, ValueError),
        ({"/a\u200b": PUBLIC}, ValueError),
        ({"/a": "spiffe://x"}, TypeError),
        ({"/a": None}, TypeError),
        ([("/a", PUBLIC), ("/a", PUBLIC)], ValueError),
    ],
)
def test_invalid_policies(pki, policies, error):
    with pytest.raises(error):
        MTLSMiddleware(starlette_app(), trust=pki.root.certificate, policies=policies)


@pytest.mark.anyio
async def test_policies_answer_401_and_403_before_the_app(pki, caplog):
    policies = {
        "/admin/*": spiffe_glob("spiffe://bank.example/payments"),
        "/admin/public/*": PUBLIC,
        "/undeclared": require_client(REPORTS),
    }
    anonymous = serve(pki, starlette_app(), None, policies=policies)
    payments = serve(pki, starlette_app(), pki.payments, policies=policies)
    reports = serve(pki, starlette_app(), pki.reports, policies=policies)
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        missing = await get(anonymous, "/admin/panel")
        forbidden = await get(reports, "/admin/panel")
    assert (missing.status_code, reason(missing)) == (401, "missing")
    assert (forbidden.status_code, reason(forbidden)) == (403, "forbidden")
    assert forbidden.headers["cache-control"] == "no-store"
    assert "policy /admin/*" in caplog.text
    assert CALLS == []
    assert (await get(payments, "/admin/panel")).text == "undeclared"
    assert (await get(anonymous, "/admin/public/info")).text == "undeclared"
    assert (await get(anonymous, "/admin")).text == "undeclared"  # not under /admin/*
    assert (await get(reports, "/undeclared")).status_code == 200
    assert (await get(payments, "/undeclared")).status_code == 403


@pytest.mark.anyio
async def test_policy_and_route_requirement_both_apply(pki):
    app = starlette_app()
    # /items GET requires PAYMENTS (decorator); the policy lets only REPORTS in: nobody passes
    policies = {"/items": require_client(REPORTS)}
    assert (await get(serve(pki, app, pki.reports, policies=policies), "/items")).status_code == 403
    assert (
        await get(serve(pki, app, pki.payments, policies=policies), "/items")
    ).status_code == 403
    assert (await get(serve(pki, app, pki.payments), "/items")).status_code == 200


@pytest.mark.anyio
async def test_policy_on_a_websocket(pki):
    app = serve(pki, starlette_app(), pki.reports, policies={"/ws/*": require_client(PAYMENTS)})
    sent = await drive_websocket(app, "/ws/declared", http_response_extension=False)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "forbidden"}]
    assert CALLS == []


# -- deny_by_default: Starlette -------------------------------------------------------------


@pytest.mark.anyio
async def test_undeclared_routes_are_refused_before_the_endpoint_runs(pki, caplog):
    app = serve(pki, starlette_app(), pki.payments, deny_by_default=True)
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        for path in ("/undeclared", "/requires", "/sub/undeclared", "/raw/anything"):
            response = await get(app, path)
            assert (response.status_code, reason(response)) == (403, "forbidden"), path
    assert CALLS == []  # no endpoint ran
    assert "deny_by_default" in caplog.text
    assert (await get(app, "/declared")).text == "declared"
    assert (await get(app, "/public")).text == "public"
    assert (await get(app, "/sub/declared")).text == "declared"
    assert (await get(app, "/items")).text == "items.get"
    assert CALLS == ["declared", "public", "declared", "items.get"]


@pytest.mark.anyio
async def test_deny_by_default_per_method_of_a_class_endpoint(pki):
    app = serve(pki, starlette_app(), pki.payments, deny_by_default=True)
    async with _client(app) as client:
        assert (await client.post("/items")).status_code == 403
        assert (await client.head("/items")).status_code == 200  # HEAD is served by get()
    assert CALLS == ["items.get"]


@pytest.mark.anyio
async def test_deny_by_default_public_without_a_certificate(pki):
    app = serve(pki, starlette_app(), None, deny_by_default=True)
    assert (await get(app, "/public")).text == "public"
    assert (await get(app, "/declared")).status_code == 401  # declared: the route answers
    assert (await get(app, "/undeclared")).status_code == 403


@pytest.mark.anyio
async def test_deny_by_default_unknown_paths_are_404(pki):
    app = serve(pki, starlette_app(), pki.payments, deny_by_default=True)
    assert (await get(app, "/nowhere")).status_code == 404
    assert (await get(app, "/sub/nowhere")).status_code == 404
    # a declared route with another method: the router's 405, no endpoint
    async with _client(app) as client:
        assert (await client.post("/declared")).status_code == 405
    assert CALLS == []


@pytest.mark.anyio
async def test_deny_by_default_refuses_unmatched_paths_when_a_default_app_serves_them(pki):
    app = starlette_app()
    app.router.default = raw_asgi  # a catch-all: unmatched paths are served after all
    served = serve(pki, app, pki.payments, deny_by_default=True)
    assert (await get(served, "/nowhere")).status_code == 403
    assert CALLS == []


@pytest.mark.anyio
async def test_policies_declare_routes_for_deny_by_default(pki):
    policies = {"/raw/*": PUBLIC, "/undeclared": require_client(PAYMENTS)}
    app = serve(pki, starlette_app(), pki.payments, deny_by_default=True, policies=policies)
    assert (await get(app, "/raw/x")).text == "raw"
    assert (await get(app, "/undeclared")).text == "undeclared"
    assert (await get(app, "/admin")).status_code == 403


@pytest.mark.anyio
async def test_deny_by_default_websockets(pki):
    app = serve(pki, starlette_app(), pki.payments, deny_by_default=True)
    sent = await drive_websocket(app, "/ws/undeclared", http_response_extension=True)
    assert sent[0] == {
        "type": "websocket.http.response.start",
        "status": 403,
        "headers": sent[0]["headers"],
    }
    assert json.loads(sent[1]["body"])["reason"] == "forbidden"
    sent = await drive_websocket(app, "/ws/declared", http_response_extension=True)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert CALLS == ["ws_declared"]


def test_deny_by_default_needs_a_router(pki):
    with pytest.raises(ValueError, match="deny_by_default needs a Starlette or FastAPI app"):
        MTLSMiddleware(raw_asgi, trust=pki.root.certificate, deny_by_default=True)


def test_public_and_a_requirement_on_one_endpoint_is_an_error():
    async def endpoint(request: Request) -> None:
        return None

    with pytest.raises(TypeError, match="PUBLIC"):
        require_client()(PUBLIC(endpoint))

    async def other(request: Request) -> None:
        return None

    with pytest.raises(TypeError, match="requirement"):
        PUBLIC(require_client()(other))


# -- deny_by_default: FastAPI ---------------------------------------------------------------


def fastapi_app(pki) -> FastAPI:
    app = FastAPI()
    internal = APIRouter(prefix="/internal", dependencies=[Depends(require_client())])

    @internal.get("/status")
    def status() -> str:
        return ran("internal.status").body.decode()

    app.include_router(internal, prefix="/v1")
    nested = APIRouter()
    nested.include_router(internal)
    app.include_router(nested, prefix="/v2", dependencies=[Depends(role("never"))])

    @app.get("/health")
    @PUBLIC
    def health() -> str:
        return ran("health").body.decode()

    @app.get("/ping", dependencies=[Depends(PUBLIC)])
    def ping() -> str:
        return ran("ping").body.decode()

    @app.post("/undeclared")
    def fa_undeclared() -> str:
        return ran("fa_undeclared").body.decode()

    @app.get("/pay")
    def pay(client: ClientIdentity = Depends(require_client(PAYMENTS))) -> str:
        return ran("pay").body.decode()

    @app.websocket("/ws")
    async def ws(websocket: FastAPIWebSocket) -> None:
        CALLS.append("fa_ws")
        await websocket.accept()
        await websocket.close()

    @app.websocket("/ws/declared")
    async def ws_ok(
        websocket: FastAPIWebSocket, client: ClientIdentity = Depends(require_client())
    ) -> None:
        await websocket.accept()
        await websocket.send_text(client.principal)
        await websocket.close()

    app.add_middleware(
        MTLSMiddleware,
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        deny_by_default=True,
    )
    return app


@pytest.mark.anyio
async def test_deny_by_default_fastapi(pki):
    payments = simulate_connection(fastapi_app(pki), pki.payments)
    assert (await get(payments, "/health")).json() == "health"
    assert (await get(payments, "/ping")).json() == "ping"
    assert (await get(payments, "/pay")).json() == "pay"
    assert (await get(payments, "/v1/internal/status")).json() == "internal.status"
    # include_router dependencies are declarations, and they still apply
    assert (await get(payments, "/v2/internal/status")).status_code == 403
    async with _client(payments) as client:
        refused = await client.post("/undeclared")
    assert (refused.status_code, reason(refused)) == (403, "forbidden")
    assert (await get(payments, "/docs")).status_code == 403  # FastAPI's own routes too
    assert (await get(payments, "/nowhere")).status_code == 404
    assert CALLS == ["health", "ping", "pay", "internal.status"]
    sent = await drive_websocket(payments, "/ws", http_response_extension=False)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "forbidden"}]
    sent = await drive_websocket(payments, "/ws/declared", http_response_extension=False)
    assert sent[0]["type"] == "websocket.accept"
    assert "fa_ws" not in CALLS


def _client(app):
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
