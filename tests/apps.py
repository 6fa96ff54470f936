"""Small apps the tests serve, in process and on real servers."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from asgi_mtls import ClientIdentity, get_client_identity, require_client

PAYMENTS = "spiffe://bank.example/payments"
REPORTS = "spiffe://bank.example/reports"


def describe(identity: ClientIdentity | None) -> dict[str, Any]:
    if identity is None:
        return {"principal": None}
    certificate = identity.certificate is not None  # None: a server-verified name (issue #12)
    return {
        "principal": identity.principal,
        "fingerprint": identity.fingerprint_sha256 if certificate else None,
        "source": identity.source,
        "subject": identity.subject,
        "issuer": identity.issuer if certificate else None,
        "verified_by": identity.verified_by,
    }


async def public(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "user": request.user.display_name or None})


@require_client()
async def whoami(request: Request) -> JSONResponse:
    client_host = request.client.host if request.client else None
    return JSONResponse({**describe(get_client_identity(request)), "client_host": client_host})


@require_client(PAYMENTS)
def payments(request: Request) -> JSONResponse:  # a sync endpoint
    return JSONResponse({"paid_by": request.user.identity})


@require_client(trust_domain="bank.example", predicate=lambda i: i.principal.endswith("/reports"))
async def reports(request: Request) -> JSONResponse:
    return JSONResponse({"report_for": request.user.identity})


@requires("authenticated")
async def starlette_requires(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.display_name})


@require_client()
async def ws_echo(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(describe(get_client_identity(websocket)))
    await websocket.close()


@require_client(PAYMENTS)
async def ws_payments(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"paid_by": get_client_identity(websocket).principal})  # type: ignore[union-attr]
    await websocket.close()


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/public", public),
            Route("/health", public),
            Route("/whoami", whoami),
            Route("/payments", payments, methods=["GET", "POST"]),
            Route("/reports", reports),
            Route("/starlette-requires", starlette_requires),
            WebSocketRoute("/ws", ws_echo),
            WebSocketRoute("/ws/payments", ws_payments),
        ]
    )


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/public")
    def fa_public() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/whoami")
    def fa_whoami(client: ClientIdentity = Depends(require_client())) -> dict[str, Any]:
        return describe(client)

    @app.get("/payments")
    def fa_payments(client: ClientIdentity = Depends(require_client(PAYMENTS))) -> dict[str, str]:
        return {"paid_by": client.principal}

    @app.websocket("/ws/payments")
    async def fa_ws(
        websocket: WebSocket, client: ClientIdentity = Depends(require_client(PAYMENTS))
    ) -> None:
        await websocket.accept()
        await websocket.send_json({"paid_by": client.principal})
        await websocket.close()

    return app
