"""The demo service: a public health check, an identity echo, two restricted routes and a
WebSocket, protected by MTLSMiddleware."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, WebSocket

from asgi_mtls import ClientIdentity, MTLSMiddleware, require_client

from .pki import PAYMENTS, REPORTS


def identity_json(client: ClientIdentity) -> dict[str, Any]:
    return {
        "principal": client.principal,
        "spiffe_id": str(client.spiffe_id) if client.spiffe_id else None,
        "subject": client.subject,
        "issuer": client.issuer,
        "serial": client.serial_hex,
        "fingerprint_sha256": client.fingerprint_sha256,
        "not_after": client.not_after.isoformat(),
        "source": client.source,
    }


def create_app(trust: Path, *, trusted_proxies: Iterable[str] = ()) -> FastAPI:
    app = FastAPI(title="asgi-mtls demo")

    @app.get("/health")
    def health() -> dict[str, str]:
        """Public: no certificate needed."""
        return {"status": "ok"}

    @app.get("/whoami")
    def whoami(client: ClientIdentity = Depends(require_client())) -> dict[str, Any]:
        """Any client with a valid certificate: who does the server think you are?"""
        return identity_json(client)

    @app.post("/payments")
    def pay(client: ClientIdentity = Depends(require_client(PAYMENTS))) -> dict[str, str]:
        """Only the payments service."""
        return {"status": "accepted", "caller": client.principal}

    @app.get("/reports")
    def reports(client: ClientIdentity = Depends(require_client(REPORTS))) -> dict[str, str]:
        """Only the reports service."""
        return {"report": "daily totals", "caller": client.principal}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, client: ClientIdentity = Depends(require_client())) -> None:
        """Any valid client: greets the caller by principal, then echoes messages."""
        await websocket.accept()
        await websocket.send_json({"hello": client.principal})
        async for message in websocket.iter_text():
            await websocket.send_json({"from": client.principal, "echo": message})

    app.add_middleware(MTLSMiddleware, trust=trust, trusted_proxies=list(trusted_proxies))
    return app
