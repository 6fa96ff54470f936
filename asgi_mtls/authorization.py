"""Route-level authorization: which identities may call a route.

``require_client(...)`` builds one :class:`ClientRequirement` that serves three ways:

- a Starlette endpoint decorator (sync or async HTTP endpoints, WebSocket endpoints)::

      @require_client("spiffe://bank.example/payments")
      async def pay(request): ...

- a FastAPI dependency returning the identity::

      def pay(client: ClientIdentity = Depends(require_client(trust_domain="bank.example"))): ...

- a plain check: ``requirement.check(request)`` returns the identity or raises
  :class:`~asgi_mtls.errors.CertificateRejected`.

No certificate (or an anonymous request) is ``missing`` (401); a valid certificate that the
requirement does not allow is ``forbidden`` (403).  A requirement with no arguments allows any
client with a valid certificate.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from asgi_mtls.errors import CertificateRejected, RejectionReason, log_rejection, send_rejection
from asgi_mtls.identity import ClientIdentity, get_client_identity
from asgi_mtls.sources.proxies import transport_peer

__all__ = ["ClientRequirement", "rejection_handler", "require_client"]

logger = logging.getLogger("asgi_mtls")

F = TypeVar("F", bound=Callable[..., Any])
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")


class ClientRequirement:
    """Allows a client whose identity satisfies every given condition.

    ``principals``: the principal must equal one of them (exact, case-sensitive comparison of
    the parsed name).  ``trust_domain``: the client's SPIFFE ID must belong to it.
    ``predicate``: any further test of the :class:`ClientIdentity`.
    """

    def __init__(
        self,
        *principals: str,
        trust_domain: str | None = None,
        predicate: Callable[[ClientIdentity], bool] | None = None,
    ) -> None:
        for principal in principals:
            if not isinstance(principal, str) or not principal or "\x00" in principal:
                raise ValueError(f"invalid principal {principal!r}")
        if trust_domain is not None and not _TRUST_DOMAIN.fullmatch(trust_domain):
            raise ValueError(f"invalid SPIFFE trust domain {trust_domain!r}")
        self.principals = frozenset(principals)
        self.trust_domain = trust_domain
        self.predicate = predicate
        # FastAPI: inspect.signature() and its coroutine check follow __wrapped__, so the
        # dependency is awaited (no thread hop) and receives the HTTP connection.
        self.__wrapped__ = self._dependency

    def __repr__(self) -> str:
        return f"ClientRequirement({self.describe()})"

    def describe(self) -> str:
        """A one-line human description, for docs and audits."""
        parts = []
        if self.principals:
            parts.append("principal in " + ", ".join(sorted(self.principals)))
        if self.trust_domain:
            parts.append(f"SPIFFE trust domain {self.trust_domain}")
        if self.predicate is not None:
            parts.append(f"predicate {getattr(self.predicate, '__name__', repr(self.predicate))}")
        return " and ".join(parts) or "any valid client certificate"

    def allows(self, identity: ClientIdentity) -> bool:
        if self.principals and identity.principal not in self.principals:
            return False
        if self.trust_domain is not None and identity.trust_domain != self.trust_domain:
            return False
        if self.predicate is None:
            return True
        try:
            return bool(self.predicate(identity))
        except Exception:  # a failing predicate denies (fail closed), it does not crash
            logger.exception("authorization predicate %r raised; denying", self.predicate)
            return False

    def check(self, connection: HTTPConnection | Mapping[str, Any]) -> ClientIdentity:
        """The identity on ``connection`` if allowed; else raise ``CertificateRejected``."""
        identity = get_client_identity(connection)
        if identity is None:
            raise CertificateRejected(RejectionReason.MISSING, "anonymous request")
        if not self.allows(identity):
            raise CertificateRejected(
                RejectionReason.FORBIDDEN,
                f"principal {identity.principal!r} does not satisfy {self.describe()}",
            )
        return identity

    async def _dependency(self, connection: HTTPConnection) -> ClientIdentity:
        return self.check(connection)

    @overload
    def __call__(self, connection: HTTPConnection) -> Any: ...

    @overload
    def __call__(self, connection: F) -> F: ...

    def __call__(self, connection: Any) -> Any:
        if isinstance(connection, HTTPConnection):
            return self._dependency(connection)  # FastAPI awaits this coroutine
        if callable(connection):
            return self._decorate(connection)
        raise TypeError("require_client(...) decorates an endpoint or serves as a dependency")

    def _decorate(self, endpoint: F) -> F:
        parameters = list(inspect.signature(endpoint).parameters)
        if "websocket" in parameters:
            return self._decorate_websocket(endpoint, parameters.index("websocket"))
        if "request" not in parameters:
            raise TypeError(f'{endpoint!r} has no "request" or "websocket" parameter')
        index = parameters.index("request")
        is_async = inspect.iscoroutinefunction(endpoint)

        @functools.wraps(endpoint)
        async def http_wrapper(*args: Any, **kwargs: Any) -> Any:
            request = kwargs.get("request", args[index] if index < len(args) else None)
            if not isinstance(request, Request):
                raise TypeError("the 'request' argument is not a starlette Request")
            try:
                self.check(request)
            except CertificateRejected as exc:
                _log_denied(request, exc)
                return _error_response(exc)
            if is_async:
                return await endpoint(*args, **kwargs)
            return await run_in_threadpool(endpoint, *args, **kwargs)

        return http_wrapper  # type: ignore[return-value]

    def _decorate_websocket(self, endpoint: F, index: int) -> F:
        @functools.wraps(endpoint)
        async def websocket_wrapper(*args: Any, **kwargs: Any) -> None:
            websocket = kwargs.get("websocket", args[index] if index < len(args) else None)
            if not isinstance(websocket, WebSocket):
                raise TypeError("the 'websocket' argument is not a starlette WebSocket")
            try:
                self.check(websocket)
            except CertificateRejected as exc:
                _log_denied(websocket, exc)
                await send_rejection(websocket.scope, websocket.send, exc)
                return
            await endpoint(*args, **kwargs)

        return websocket_wrapper  # type: ignore[return-value]


def require_client(
    *principals: str,
    trust_domain: str | None = None,
    predicate: Callable[[ClientIdentity], bool] | None = None,
) -> ClientRequirement:
    """Require a client certificate whose identity satisfies the given conditions.

    See :class:`ClientRequirement`; with no arguments any valid client is allowed.
    """
    return ClientRequirement(*principals, trust_domain=trust_domain, predicate=predicate)


def _error_response(exc: CertificateRejected) -> Response:
    return Response(
        exc.json_body(),
        status_code=exc.status_code,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _log_denied(connection: HTTPConnection, exc: CertificateRejected) -> None:
    log_rejection(connection.scope, exc, transport_peer(connection.scope, trust_scope_client=False))


async def rejection_handler(connection: HTTPConnection, exc: Exception) -> Response | None:
    """A Starlette/FastAPI exception handler for :class:`CertificateRejected`.

    ``MTLSMiddleware`` registers it by itself when added with ``app.add_middleware(...)``;
    register it yourself (``app.add_exception_handler(CertificateRejected,
    rejection_handler)``) if you wrap the app from outside instead.  HTTP gets the JSON error;
    a WebSocket is denied before accept (HTTP response or close 1008).
    """
    if not isinstance(exc, CertificateRejected):  # pragma: no cover - registered for it only
        raise exc
    _log_denied(connection, exc)
    if isinstance(connection, WebSocket):
        await send_rejection(connection.scope, connection.send, exc)
        return None
    return _error_response(exc)
