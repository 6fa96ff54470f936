"""The apps under measurement: a Starlette and a FastAPI service as users write them.

A few routes with path parameters, ``JSONResponse`` (Starlette) or returned dicts (FastAPI),
one health check marked public and one payments route guarded by a requirement.  Every variant
of a comparison is the *same* app (same routes in the same order) built with different
middleware or a different guard on the payments route, so that a ratio isolates exactly the
one thing that differs:

- ``bare``: no middleware at all;
- ``passthrough``: a no-op pure ASGI middleware (:class:`PassThrough`), the least any
  middleware costs;
- ``floor``: a middleware that adds one identity's scope keys, computed once, to a copy of
  the scope (:class:`FixedAdditions`), the least any identity middleware costs;
- ``starlette_auth``: Starlette's own ``AuthenticationMiddleware`` with a backend that does no
  work (:class:`TrivialBackend`), the comparison issue #10 asks to beat;
- ``mtls``: ``MTLSMiddleware`` added with ``Middleware(...)`` / ``add_middleware``, the way
  the README says, configured as the deployment guide of the way the certificate arrives
  says (:func:`mtls_options`).

The payments route's guard is ``require_client(PAYMENTS)`` or a stand-in of the same shape
that only reads the request (:func:`trivial_guard`, :func:`trivial_dependency`), so that the
difference between them is the requirement's own cost.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from asgi_mtls import PUBLIC, ClientIdentity, MTLSMiddleware, get_client_identity, require_client
from asgi_mtls.validation import CertificateInput
from benchmarks.pki import PAYMENTS

__all__ = [
    "FixedAdditions",
    "PassThrough",
    "TrivialBackend",
    "fastapi_app",
    "mtls_middleware",
    "mtls_options",
    "starlette_app",
    "trivial_dependency",
    "trivial_guard",
]

Endpoint = Callable[[Request], Awaitable[Response]]
Guard = Callable[[Endpoint], Endpoint]


class PassThrough:
    """A pure ASGI middleware that does nothing: the floor of any middleware's cost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class FixedAdditions:
    """The least any identity middleware can do: add one identity's scope keys, computed
    once, to a copy of each request's scope (the ASGI spec asks for the copy), without
    looking at the request at all.  The floor of the hit-path rows."""

    def __init__(self, app: ASGIApp, additions: Mapping[str, Any]) -> None:
        self.app = app
        self.additions = dict(additions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" and scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        await self.app({**scope, **self.additions}, receive, send)


class TrivialBackend(AuthenticationBackend):
    """An authentication backend that authenticates everyone without looking."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        return AuthCredentials(["authenticated"]), SimpleUser("bench")


def trivial_guard(endpoint: Endpoint) -> Endpoint:
    """An endpoint decorator of ``require_client``'s shape (signature read once, the request
    found among the arguments, the identity read, a 401 without one) that checks nothing
    else."""
    index = list(inspect.signature(endpoint).parameters).index("request")

    @functools.wraps(endpoint)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        request = kwargs.get("request", args[index] if index < len(args) else None)
        if not isinstance(request, Request):
            raise TypeError("the 'request' argument is not a starlette Request")
        if get_client_identity(request) is None:
            return JSONResponse({"reason": "missing"}, status_code=401)
        return await endpoint(*args, **kwargs)

    return wrapper


async def trivial_dependency(connection: HTTPConnection) -> ClientIdentity:
    """A FastAPI dependency of ``require_client``'s shape: the identity, or a 401."""
    identity = get_client_identity(connection)
    if identity is None:
        raise HTTPException(401, "missing")
    return identity


def mtls_options(
    trust: CertificateInput, intermediates: CertificateInput, *, proxy: bool
) -> dict[str, Any]:
    """``MTLSMiddleware``'s options as the deployment guides configure it: the root as trust
    anchor and the intermediate for clients that send only their leaf (nginx forwards the
    leaf alone); behind a proxy (``proxy``: docs/deploy/nginx.md) 127.0.0.1 is the trusted
    proxy, with uvicorn terminating TLS (docs/deploy/uvicorn.md) no proxy is trusted.  Every
    other option at its default."""
    options: dict[str, Any] = {"trust": trust, "intermediates": intermediates}
    if proxy:
        options["trusted_proxies"] = ["127.0.0.1"]
    return options


def mtls_middleware(
    trust: CertificateInput, intermediates: CertificateInput, *, proxy: bool, **options: Any
) -> Middleware:
    """``MTLSMiddleware`` with :func:`mtls_options` (and ``options``: listeners, for the
    rows of issue #13), as ``Middleware(...)`` adds it."""
    return Middleware(MTLSMiddleware, **mtls_options(trust, intermediates, proxy=proxy), **options)


# --- Starlette --------------------------------------------------------------------------------


@PUBLIC
async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def list_transfers(request: Request) -> Response:
    limit = int(request.query_params.get("limit", "20"))
    return JSONResponse({"transfers": [], "limit": limit})


async def create_transfer(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({"id": "t-1", **body}, status_code=201)


async def account(request: Request) -> Response:
    account_id: int = request.path_params["account_id"]
    return JSONResponse({"account": account_id, "currency": "EUR", "balance": "1250.00"})


async def payment(request: Request) -> Response:
    return JSONResponse({"payment": request.path_params["payment_id"], "status": "settled"})


def starlette_app(
    middleware: Sequence[Middleware] = (), *, guard: Guard | None = None
) -> Starlette:
    """The Starlette service; ``guard`` decorates the payments route (default:
    ``require_client(PAYMENTS)``)."""
    guard = guard if guard is not None else require_client(PAYMENTS)
    return Starlette(
        routes=[
            Route("/health", health),
            Route("/transfers", list_transfers, methods=["GET"]),
            Route("/transfers", create_transfer, methods=["POST"]),
            Route("/accounts/{account_id:int}", account),
            Route("/payments/{payment_id}", guard(payment)),
        ],
        middleware=list(middleware),
    )


# --- FastAPI ----------------------------------------------------------------------------------


class Transfer(BaseModel):
    source: str
    target: str
    amount: str


def fastapi_app(
    middleware: Sequence[Middleware] = (), *, dependency: Callable[..., Any] | None = None
) -> FastAPI:
    """The FastAPI service; ``dependency`` guards the payments route (default:
    ``require_client(PAYMENTS)``)."""
    guard = dependency if dependency is not None else require_client(PAYMENTS)
    app = FastAPI(middleware=list(middleware))

    @app.get("/health")
    async def fastapi_health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/transfers", status_code=201)
    async def fastapi_create_transfer(transfer: Transfer) -> dict[str, str]:
        return {"id": "t-1", **transfer.model_dump()}

    @app.get("/accounts/{account_id}")
    async def fastapi_account(account_id: int) -> dict[str, Any]:
        return {"account": account_id, "currency": "EUR", "balance": "1250.00"}

    @app.get("/payments/{payment_id}")
    async def fastapi_payment(
        payment_id: str, client: ClientIdentity = Depends(guard)
    ) -> dict[str, str]:
        return {"payment": payment_id, "status": "settled", "by": client.principal}

    return app
