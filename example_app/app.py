"""The demo service: a public health check, an identity echo, restricted routes and a
WebSocket, protected by MTLSMiddleware.

Authorization at a glance (``asgi-mtls routes example_app.app:create_app --factory``):

- ``deny_by_default``: a route that declares nothing is refused, so every route below says
  who may call it (``require_client``, a role, or ``PUBLIC``);
- a role map: ``bank-service`` is any SPIFFE ID directly under ``spiffe://bank.example/``;
- a path policy keeps FastAPI's own documentation routes public;
- ``install_openapi``: ``/openapi.json`` declares the ``mutualTLS`` scheme per operation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, WebSocket

from asgi_mtls import PUBLIC, ClientIdentity, MTLSMiddleware, RoleMap, require_client
from asgi_mtls.authorization import role, spiffe_glob
from asgi_mtls.fastapi import install_openapi

from .pki import PAYMENTS, REPORTS, ensure_dev_pki

#: The development PKI's CA, created on first use (never use it in production).
DEFAULT_TRUST = Path(__file__).resolve().parent / ".pki" / "ca.pem"

ROLES = RoleMap({"bank-service": spiffe_glob("spiffe://bank.example/*")})
#: A matcher is a requirement: usable directly as a dependency, decorator or policy.
BANK_SERVICE = role("bank-service")

DOCS_ARE_PUBLIC = {
    "/openapi.json": PUBLIC,
    "/docs": PUBLIC,
    "/docs/*": PUBLIC,
    "/redoc": PUBLIC,
}


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
        "roles": sorted(client.roles),
    }


def create_app(trust: Path = DEFAULT_TRUST, *, trusted_proxies: Iterable[str] = ()) -> FastAPI:
    if trust == DEFAULT_TRUST:
        ensure_dev_pki(DEFAULT_TRUST.parent)
    app = FastAPI(title="asgi-mtls demo")

    @app.get("/health")
    @PUBLIC
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

    @app.get("/ledger")
    def ledger(client: ClientIdentity = Depends(BANK_SERVICE)) -> dict[str, str]:
        """Any bank service: the role ``bank-service`` (``spiffe://bank.example/*``)."""
        return {"ledger": "balanced", "caller": client.principal}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, client: ClientIdentity = Depends(require_client())) -> None:
        """Any valid client: greets the caller by principal, then echoes messages."""
        await websocket.accept()
        await websocket.send_json({"hello": client.principal})
        async for message in websocket.iter_text():
            await websocket.send_json({"from": client.principal, "echo": message})

    app.add_middleware(
        MTLSMiddleware,
        trust=trust,
        trusted_proxies=list(trusted_proxies),
        roles=ROLES,
        policies=DOCS_ARE_PUBLIC,
        deny_by_default=True,
    )
    install_openapi(app)
    return app
