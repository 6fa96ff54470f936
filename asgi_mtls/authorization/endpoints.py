"""Requirements and ``PUBLIC`` as Starlette endpoint decorators and FastAPI dependencies.

One object serves both ways (:class:`Declarable`): called with an HTTP connection it is a
FastAPI dependency (``Depends(require_client(...))``); called with an endpoint it decorates
it (``@require_client(...)``).  A decorated endpoint carries the marks of what it declares
(:func:`declared_requirements`), which the audit and the ``deny_by_default`` gate read.  The
handlers turn a refusal into the same JSON answer and log line as the middleware's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar, cast, overload

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from asgi_mtls.errors import CertificateRejected, send_rejection
from asgi_mtls.events.dispatch import bus_for
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.inject import EXPLAIN_SCOPE_KEY, get_client_identity
from asgi_mtls.sources.proxies import transport_peer


class _Check(Protocol):
    """What :func:`guard` needs of a requirement."""

    def check(self, connection: HTTPConnection) -> ClientIdentity | None: ...


__all__ = [
    "PUBLIC",
    "REQUIREMENTS_ATTRIBUTE",
    "Declarable",
    "Public",
    "declared_requirements",
    "guard",
    "rejection_handler",
    "rejection_response",
]

F = TypeVar("F", bound=Callable[..., Any])
#: The attribute on a decorated endpoint that lists what it declares (audit, deny_by_default).
REQUIREMENTS_ATTRIBUTE: Final = "__asgi_mtls_requirements__"
#: The connection types Starlette and FastAPI hand a dependency, checked by type first.
_CONNECTIONS: Final = frozenset({Request, WebSocket, HTTPConnection})


async def _fastapi_dependency(connection: HTTPConnection) -> Any:
    """The shape FastAPI reads a :class:`Declarable` dependency from (its ``__wrapped__``):
    a coroutine function of the HTTP connection.  Never called: FastAPI calls the
    declarable itself, whose ``__call__`` returns ``_dependency(connection)``."""
    raise NotImplementedError("FastAPI calls the requirement, not its __wrapped__")


class Declarable:
    """A requirement or ``PUBLIC``: a FastAPI dependency and a Starlette decorator at once."""

    async def _dependency(self, connection: HTTPConnection) -> Any:
        raise NotImplementedError

    def _decorate(self, endpoint: F) -> F:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    #: FastAPI: ``inspect.signature()`` and its coroutine check follow ``__wrapped__``, so the
    #: requirement is awaited (no thread hop) and receives the HTTP connection.  FastAPI
    #: unwraps its dependencies on every request: a plain function, found on the class, is
    #: the cheapest thing to unwrap to (a bound method costs 0.4 µs more per request, an
    #: attribute lookup that fails inside it: issue #10).
    __wrapped__ = staticmethod(_fastapi_dependency)

    @overload
    def __call__(self, connection: HTTPConnection) -> Any: ...

    @overload
    def __call__(self, connection: F) -> F: ...

    def __call__(self, connection: Any) -> Any:
        # type() first: HTTPConnection is a Mapping, and an ABC check costs (issue #10).
        if type(connection) in _CONNECTIONS or isinstance(connection, HTTPConnection):
            return self._dependency(connection)  # FastAPI awaits this coroutine
        if callable(connection):
            return self._decorate(connection)
        raise TypeError(f"{self!r} decorates an endpoint or serves as a dependency")


def declared_requirements(endpoint: object) -> tuple[Declarable, ...]:
    """What the decorators on ``endpoint`` declared (requirements, or ``PUBLIC``)."""
    marks = getattr(endpoint, REQUIREMENTS_ATTRIBUTE, ())
    return tuple(mark for mark in marks if isinstance(mark, Declarable))


def _mark(wrapper: Callable[..., Any], declaration: Declarable) -> Callable[..., Any]:
    # functools.wraps copied the inner endpoint's marks; stacked decorators all apply.
    setattr(wrapper, REQUIREMENTS_ATTRIBUTE, (*declared_requirements(wrapper), declaration))
    return wrapper


def guard(requirement: _Check, endpoint: F) -> F:
    """``endpoint`` (sync or async HTTP, or WebSocket) refusing clients ``requirement``
    does not allow, before it runs (a dry-run requirement's ``check`` never refuses).  A
    refusal is answered as :func:`rejection_handler` answers it: the JSON error for HTTP, the
    same response or a close 1008 for a WebSocket."""
    if PUBLIC in declared_requirements(endpoint):
        raise TypeError(f"{endpoint!r} is marked PUBLIC; it cannot also have a requirement")
    parameters = list(inspect.signature(endpoint).parameters)
    name = "websocket" if "websocket" in parameters else "request"
    if name not in parameters:
        raise TypeError(f'{endpoint!r} has no "request" or "websocket" parameter')
    index = parameters.index(name)
    kind = WebSocket if name == "websocket" else Request
    # Starlette awaits WebSocket endpoints and runs sync HTTP endpoints in its thread pool.
    is_async = name == "websocket" or inspect.iscoroutinefunction(endpoint)

    @functools.wraps(endpoint)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        connection = kwargs.get(name, args[index] if index < len(args) else None)
        if not isinstance(connection, kind):
            raise TypeError(f"the {name!r} argument is not a starlette {kind.__name__}")
        try:
            requirement.check(connection)
        except CertificateRejected as exc:
            return await rejection_handler(connection, exc)
        if is_async:
            return await endpoint(*args, **kwargs)
        return await run_in_threadpool(endpoint, *args, **kwargs)

    return _mark(wrapper, cast(Declarable, requirement))  # type: ignore[return-value]


class Public(Declarable):
    """The ``PUBLIC`` marker: this route is deliberately open, with or without a certificate.

    - decorator: ``@PUBLIC`` marks the endpoint and returns it unchanged;
    - FastAPI dependency: ``Depends(PUBLIC)`` returns the identity or ``None``;
    - path table value: ``policies={"/health": PUBLIC}``.

    It allows everything; its point is to be *declared*, so that a ``deny_by_default`` app
    serves the route and the audit lists it as public rather than forgotten.
    """

    _instance: Public | None = None

    def __new__(cls) -> Public:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "PUBLIC"

    def describe(self) -> str:
        return "public"

    async def _dependency(self, connection: HTTPConnection) -> ClientIdentity | None:
        return get_client_identity(connection)

    def _decorate(self, endpoint: F) -> F:
        marks = declared_requirements(endpoint)
        if any(mark is not self for mark in marks):
            raise TypeError(f"{endpoint!r} has a requirement; it cannot also be PUBLIC")
        setattr(endpoint, REQUIREMENTS_ATTRIBUTE, (*marks, self))
        return endpoint


#: The public marker (see :class:`Public`).
PUBLIC: Final = Public()


def rejection_response(exc: CertificateRejected) -> Response:
    """The JSON response of a refused HTTP request (``no-store``, and the RFC 6750
    challenge of the token binding codes)."""
    return Response(
        exc.json_body(),
        status_code=exc.status_code,
        media_type="application/json",
        headers=exc.headers,
    )


def _log_denied(connection: HTTPConnection, exc: CertificateRejected) -> None:
    """Report a refusal answered inside the app to the listeners of the middleware in front
    of it (the log line, metrics; :func:`~asgi_mtls.events.bus_for`), with what the
    middleware can add to its detail (``EXPLAIN_SCOPE_KEY``)."""
    scope = connection.scope
    explain = scope.get(EXPLAIN_SCOPE_KEY)
    if callable(explain):
        explain(scope, exc)
    bus_for(scope).refused(scope, exc, transport_peer(scope, trust_scope_client=False))


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
    return rejection_response(exc)
