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

__all__ = ["IDENTITY_SCOPE_KEY", "ClientUser", "get_client_identity", "inject"]

#: Where the middleware puts the request's ClientIdentity (``None`` when anonymous).
IDENTITY_SCOPE_KEY: Final = "asgi_mtls.identity"


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


_ANONYMOUS: Final[tuple[BaseUser, AuthCredentials]] = (UnauthenticatedUser(), AuthCredentials())


def _starlette_objects(identity: ClientIdentity) -> tuple[BaseUser, AuthCredentials]:
    return ClientUser(identity), AuthCredentials(["authenticated", *sorted(identity.roles)])


def inject(scope: Mapping[str, Any], identity: ClientIdentity | None) -> dict[str, Any]:
    """A copy of ``scope`` carrying ``identity`` (``None``: anonymous) in Starlette's keys.

    The user and credentials objects are built once per identity and shared by its requests
    (issue #10), as the identity itself is: treat them as read-only, as Starlette does.
    """
    if identity is None:
        user, auth = _ANONYMOUS
    else:
        user, auth = identity.memo("starlette", _starlette_objects, identity)
    return {**scope, IDENTITY_SCOPE_KEY: identity, "user": user, "auth": auth}


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
