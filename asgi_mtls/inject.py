"""Stage 4 of the pipeline: put the identity where the app reads it.

Starlette's conventions (``starlette.middleware.authentication``): ``scope["user"]`` is a
``BaseUser`` and ``scope["auth"]`` an ``AuthCredentials`` whose scopes are ``"authenticated"``
plus the client's roles, so ``request.user``, ``request.auth`` and ``@requires`` work
unchanged.  The full :class:`~asgi_mtls.identity.ClientIdentity` is
``scope["asgi_mtls.identity"]``, read with :func:`get_client_identity`.

The scope is never mutated in place: :func:`inject` returns a new dict (servers may reuse
theirs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.requests import HTTPConnection

from asgi_mtls.identity import ClientIdentity

__all__ = [
    "ADDITIONS_KEY",
    "EXPLAIN_SCOPE_KEY",
    "IDENTITY_SCOPE_KEY",
    "ClientUser",
    "anonymous_additions",
    "get_client_identity",
    "inject",
    "scope_additions",
]

#: Where the middleware puts the request's ClientIdentity (``None`` when anonymous).
IDENTITY_SCOPE_KEY: Final = "asgi_mtls.identity"
#: On anonymous requests: ``explain(scope, rejection)``, which a route's refusal calls before
#: logging, so its log line says what the middleware saw (an ignored certificate header).
EXPLAIN_SCOPE_KEY: Final = "asgi_mtls.explain"


class ClientUser(BaseUser):
    """The Starlette user (``request.user``) for a request proven by a client certificate.

    ``identity`` is the principal name, as Starlette's ``BaseUser`` defines it; the full
    :class:`ClientIdentity` is ``client_identity``.
    """

    __slots__ = ("client_identity",)

    def __init__(self, client_identity: ClientIdentity) -> None:
        self.client_identity = client_identity

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.client_identity.principal

    @property
    def identity(self) -> str:
        return self.client_identity.principal

    def __repr__(self) -> str:
        return f"ClientUser({self.client_identity.principal!r})"


def _additions(identity: ClientIdentity) -> dict[str, Any]:
    roles = sorted(identity.roles)
    return {
        IDENTITY_SCOPE_KEY: identity,
        "user": ClientUser(identity),
        "auth": AuthCredentials(["authenticated", *roles]),
    }


_ANONYMOUS: Final[dict[str, Any]] = {
    IDENTITY_SCOPE_KEY: None,
    "user": UnauthenticatedUser(),
    "auth": AuthCredentials(),
}
#: Where an identity keeps its scope additions (:meth:`ClientIdentity.memo`): the middleware's
#: hit path reads ``identity.computed.get(ADDITIONS_KEY)`` itself, one probe instead of a call.
ADDITIONS_KEY: Final = "asgi_mtls.inject"


def anonymous_additions(**extra: Any) -> dict[str, Any]:
    """The scope additions of an anonymous request, with a middleware's own ``extra`` keys
    (built once per middleware)."""
    return {**_ANONYMOUS, **extra}


def inject(
    scope: Mapping[str, Any],
    identity: ClientIdentity | None,
    anonymous: Mapping[str, Any] = _ANONYMOUS,
) -> dict[str, Any]:
    """A copy of ``scope`` carrying ``identity`` (``None``: anonymous) in Starlette's keys.

    The additions (the identity, its user and credentials objects) are built once per
    identity and shared by its requests (issue #10), as the identity itself is: treat them as
    read-only, as Starlette does.
    """
    if identity is None:
        return {**scope, **anonymous}
    return {**scope, **scope_additions(identity)}


def scope_additions(identity: ClientIdentity) -> Mapping[str, Any]:
    """What :func:`inject` adds to a scope for ``identity``: built on first use, then kept on
    the identity (:data:`ADDITIONS_KEY`)."""
    return identity.memo(ADDITIONS_KEY, _additions, identity)


def get_client_identity(connection: HTTPConnection | Mapping[str, object]) -> ClientIdentity | None:
    """The identity of the client on ``connection`` (a Request, WebSocket or ASGI scope).

    ``None`` for an anonymous request.  Raises ``RuntimeError`` when ``MTLSMiddleware`` did not
    process the scope: a missing middleware must never look like an anonymous caller.
    """
    scope = connection.scope if isinstance(connection, HTTPConnection) else connection
    try:
        identity = scope[IDENTITY_SCOPE_KEY]
    except KeyError:
        raise RuntimeError(
            "no client identity in scope: is MTLSMiddleware installed around this app?"
        ) from None
    if identity is None or isinstance(identity, ClientIdentity):
        return identity
    raise RuntimeError(f"scope[{IDENTITY_SCOPE_KEY!r}] holds {type(identity).__name__}")
