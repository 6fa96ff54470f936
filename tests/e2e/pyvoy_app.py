"""The app ``tests/e2e/test_pyvoy.py`` serves under real pyvoy (issue #12).

Loaded by pyvoy's embedded Python from its own virtualenv, which holds asgi-mtls and Starlette
but not FastAPI, so it is Starlette only.  The trust roots come from
``ASGI_MTLS_PYVOY_TRUST`` (set by the test).

- ``/_scope``: what pyvoy put in the scope, read before any middleware;
- ``/default/...``: ``MTLSMiddleware`` as an app that did not opt in;
- ``/optin/...``: the same with ``ServerVerifiedNameSource`` beside the tls extension.
"""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_mtls import MTLSMiddleware, get_client_identity, require_client
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.sources import ServerVerifiedNameSource, TLSExtensionSource

TRUST = os.environ.get("ASGI_MTLS_PYVOY_TRUST", "")


def describe(identity: ClientIdentity | None) -> dict[str, Any]:
    if identity is None:
        return {"principal": None}
    return {
        "principal": identity.principal,
        "kind": identity.principal_kind.value,
        "subject": identity.subject,
        "attributes": [list(pair) for pair in identity.subject_attributes],
        "source": identity.source,
        "verified_by": identity.verified_by,
        "has_certificate": identity.certificate is not None,
    }


async def public(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "user": request.user.display_name or None})


@require_client()
async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(describe(get_client_identity(request)))


@require_client("spiffe://bank.example/payments")
async def payments(request: Request) -> JSONResponse:
    return JSONResponse({"paid_by": request.user.identity})


@require_client()
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(describe(get_client_identity(websocket)))
    await websocket.close()


def _routes() -> Starlette:
    return Starlette(
        routes=[
            Route("/public", public),
            Route("/whoami", whoami),
            Route("/payments", payments),
            WebSocketRoute("/ws", ws),
        ]
    )


async def scope_report(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What pyvoy put in the scope (outside the middleware)."""
    extensions = scope.get("extensions") or {}
    body = {
        "type": scope["type"],
        "http_version": scope.get("http_version"),
        "tls": extensions.get("tls"),
        "extension_keys": sorted(extensions),
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
    }
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


app = Starlette(
    routes=[
        Mount("/_scope", app=scope_report),
        Mount("/default", MTLSMiddleware(_routes(), trust=TRUST)),
        Mount(
            "/optin",
            MTLSMiddleware(
                _routes(),
                trust=TRUST,
                sources=[TLSExtensionSource(), ServerVerifiedNameSource()],
            ),
        ),
    ]
)
