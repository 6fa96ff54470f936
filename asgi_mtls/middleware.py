"""MTLSMiddleware: who is calling, proven by a client certificate.

A pure ASGI middleware.  For each HTTP request and WebSocket it

1. asks each configured source for a certificate (the ASGI ``tls`` extension, or a header
   set by a trusted proxy, checked against the real TCP peer),
2. validates it (``CertificateValidator``), caching the outcome by the raw value so a repeat
   client costs a dictionary lookup,
3. maps it to a :class:`~asgi_mtls.identity.ClientIdentity`,
4. passes a copy of the scope down with ``scope["user"]`` / ``scope["auth"]`` (Starlette's
   conventions, so ``request.user`` and ``@requires`` work; the client's roles are auth
   scopes) and ``scope["asgi_mtls.identity"]``,
5. optionally authorizes before the app runs: a path policy table (``policies=``), and
   ``deny_by_default`` (a route that declares no requirement is refused, 403 ``forbidden``).

A certificate that is presented but not acceptable ends the request with a typed rejection
(see :mod:`asgi_mtls.errors`), on every route but the exempt ones: it is never downgraded to
an anonymous request.  Lifespan and other scope types pass through untouched.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_mtls.audit import RouteGate
from asgi_mtls.authorization import Requirement, rejection_handler
from asgi_mtls.authorization.policies import PathPolicies, PathTable, Policy, route_path
from asgi_mtls.authorization.roles import RoleMap, load_roles
from asgi_mtls.cache import OutcomeCache
from asgi_mtls.errors import CertificateRejected, RejectionReason, log_rejection, send_rejection
from asgi_mtls.identity import (
    ClientIdentity,
    PrincipalMapper,
    PrincipalStrategy,
    StrategyName,
    resolve_principal_strategy,
)
from asgi_mtls.inject import inject
from asgi_mtls.resolver import CertificateResolver
from asgi_mtls.sources import (
    CertificateSource,
    NginxHeaderSource,
    TLSExtensionSource,
    TrustedProxies,
    transport_peer,
)
from asgi_mtls.validation import CertificateInput, CertificateValidator

__all__ = ["MTLSMiddleware"]

logger = logging.getLogger("asgi_mtls")

_MAX_WRAPPED_DEPTH = 16


def _register_rejection_handler(app: ASGIApp) -> None:
    """Added with ``app.add_middleware``, this middleware wraps Starlette's exception
    middleware, directly or through other middleware: teach it to answer a route
    requirement's ``CertificateRejected`` (FastAPI dependencies) with the same JSON as every
    other rejection, unless the app has a handler of its own.  Wrapped from outside, the
    exception still propagates to ``__call__``'s own handler, or, under
    ServerErrorMiddleware, to the app's ``HTTPException`` handler (a 4xx, never a 500)."""
    inner: object = app
    for _ in range(_MAX_WRAPPED_DEPTH):  # other middleware may sit in between
        if isinstance(inner, ExceptionMiddleware):
            handlers = getattr(inner, "_exception_handlers", {})
            if CertificateRejected not in handlers:
                # Starlette types handlers per connection kind; this one serves both.
                inner.add_exception_handler(CertificateRejected, cast(Any, rejection_handler))
            return
        inner = getattr(inner, "app", None)
        if inner is None:
            return


class MTLSMiddleware:
    """Identify the client of every request by its certificate.

    :param trust: trust roots (PEM file path, PEM/DER bytes, certificates) or a ready
        :class:`CertificateValidator`.
    :param intermediates: intermediate CA certificates used for path building (never as
        anchors).  Needed when the client sends only its leaf, as nginx forwards it.
    :param trusted_proxies: addresses/CIDRs (and ``"unix:"``) of proxies allowed to forward a
        certificate in a header.  Empty (the default) means no header is ever believed.  A
        header source with its own ``trusted_proxies`` uses those instead.
    :param sources: certificate sources, in order.  Default: the ASGI ``tls`` extension and
        nginx's header (believed only from ``trusted_proxies``; from anyone else it is
        rejected as ``untrusted_proxy``).
    :param principal: a strategy name (``"default"``, ``"spiffe"``, ``"uri"``, ``"dns"``,
        ``"email"``, ``"cn"``, ``"subject"``, ``"fingerprint"``, ``"kubernetes"``,
        ``"envoy"``) or a callable.
    :param roles: a :class:`~asgi_mtls.authorization.roles.RoleMap`, the path of a TOML/JSON
        role file, or a mapping of role name to rules.  Evaluated once per certificate; the roles
        land on ``ClientIdentity.roles`` and in ``scope["auth"].scopes``.  A bad file is a
        ``RoleConfigError`` when the middleware is built.
    :param policies: a path table ``{pattern: requirement or PUBLIC}`` checked before the app
        runs (see :mod:`asgi_mtls.authorization.policies`: exact or ``*``-prefix patterns on
        ``scope["path"]``, most specific wins).
    :param deny_by_default: refuse (403 ``forbidden``) every request whose route declares no
        requirement and is not covered by a policy, before the endpoint runs.  Declare one
        with ``require_client``/a matcher (decorator or dependency), ``PUBLIC``, or a policy.
        A path no route matches still gets the app's 404.
    :param require_certificate: refuse (401 ``missing``) any request without a certificate,
        except on ``exempt_paths``.
    :param exempt_paths: paths on which no certificate is read at all (health checks).  An
        entry ending in ``*`` is a prefix.
    :param header: the nginx certificate header name (default ``x-ssl-client-cert``).
    :param verify_header: the nginx verdict header (default ``x-ssl-client-verify``; ``None``
        to ignore it).
    :param trust_scope_client: on servers that do not report the transport peer (anything but
        ``asgi_mtls.uvicorn``), take the peer from ``scope["client"]``.  Only safe when the
        server does not rewrite it from forwarding headers (uvicorn ``--no-proxy-headers``).
    :param on_untrusted_header: ``"reject"`` (default) answers a certificate header from an
        untrusted peer with 400 ``untrusted_proxy``; ``"ignore"`` drops it silently.
    :param cache_size: entries in the verification cache.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trust: CertificateInput | CertificateValidator,
        intermediates: CertificateInput | None = None,
        trusted_proxies: Iterable[str] | TrustedProxies = (),
        sources: Sequence[CertificateSource] | None = None,
        principal: StrategyName | str | PrincipalMapper | PrincipalStrategy = "default",
        require_certificate: bool = False,
        exempt_paths: Iterable[str] = (),
        header: str = "x-ssl-client-cert",
        verify_header: str | None = "x-ssl-client-verify",
        trust_scope_client: bool = False,
        on_untrusted_header: str = "reject",
        cache_size: int = 4096,
        cache_bytes: int = 32 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        roles: RoleMap | str | os.PathLike[str] | Mapping[str, Any] | None = None,
        policies: Mapping[str, Policy] | Iterable[tuple[str, Policy]] | None = None,
        deny_by_default: bool = False,
    ) -> None:
        self.app = app
        if isinstance(trust, CertificateValidator):
            if intermediates is not None:
                raise ValueError("pass intermediates to the CertificateValidator itself")
            self.validator = trust
        else:
            self.validator = CertificateValidator(trust, intermediates=intermediates)
        self.trusted_proxies = (
            trusted_proxies
            if isinstance(trusted_proxies, TrustedProxies)
            else TrustedProxies(trusted_proxies)
        )
        if sources is None:
            # The header source is on even without trusted proxies, so that a forged header
            # sent straight to the app is answered (and logged) as untrusted_proxy.
            sources = [TLSExtensionSource(), NginxHeaderSource(header, verify_header=verify_header)]
        if not sources:
            raise ValueError("at least one certificate source is needed")
        names = [source.name for source in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"certificate source names must be unique, got {names}")
        self.require_certificate = require_certificate
        self.exempt_paths = PathTable([(path, True) for path in exempt_paths], "exempt path")
        self.trust_scope_client = trust_scope_client
        if on_untrusted_header not in ("reject", "ignore"):
            raise ValueError("on_untrusted_header must be 'reject' or 'ignore'")
        self.roles = load_roles(roles)
        self.resolver = CertificateResolver(
            sources=sources,
            validator=self.validator,
            principal=resolve_principal_strategy(principal),
            roles=self.roles,
            trusted_proxies=self.trusted_proxies,
            trust_scope_client=trust_scope_client,
            ignore_untrusted_headers=on_untrusted_header == "ignore",
            cache=OutcomeCache(cache_size, cache_bytes, clock=clock),
            clock=clock,
        )
        self.policies = PathPolicies(policies or {})
        self.deny_by_default = deny_by_default
        # Built now, so that an app whose routes cannot be found fails at startup.
        self._gate = RouteGate(app) if deny_by_default else None
        self._started = False
        _register_rejection_handler(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._watch_shutdown(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self._started:  # background refresh (revocation, trust files), once
            self._started = True
            await self.validator.start()
        identity: ClientIdentity | None = None
        try:
            if not self.exempt_paths.lookup(route_path(scope)):
                identity = self.resolver.resolve(scope)
                if identity is None and self.require_certificate:
                    raise CertificateRejected(RejectionReason.MISSING, "no client certificate")
        except CertificateRejected as exc:
            self._log_rejection(scope, exc)
            await send_rejection(scope, send, exc)
            return
        scope = inject(scope, identity)
        try:
            self.authorize(scope)
        except CertificateRejected as exc:
            self._log_rejection(scope, exc)
            await send_rejection(scope, send, exc)
            return
        try:
            await self.app(scope, receive, send)
        except CertificateRejected as exc:
            # Raised by a route requirement (FastAPI dependency) before any response started.
            self._log_rejection(scope, exc)
            await send_rejection(scope, send, exc)

    def authorize(self, scope: Scope) -> None:
        """The middleware's own authorization, before the app runs: the most specific path
        policy, else (``deny_by_default``) the route must declare a requirement.  Raises
        :class:`CertificateRejected` (``missing`` 401 / ``forbidden`` 403)."""
        path = route_path(scope)
        found = self.policies.lookup(path) if self.policies else None
        if found is not None:
            pattern, policy = found
            if isinstance(policy, Requirement):
                try:
                    policy.check(scope)
                except CertificateRejected as exc:
                    exc.log_detail = f"policy {pattern}: {exc.log_detail}"
                    raise
            return
        if self._gate is not None and self._gate.declared(scope) is False:
            raise CertificateRejected(
                RejectionReason.FORBIDDEN,
                "deny_by_default: the route declares no requirement"
                f" ({scope.get('method', 'WEBSOCKET')} {path})",
            )

    def _watch_shutdown(self, receive: Receive) -> Receive:
        """Stop the validator's background work when the server shuts the app down."""

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.validator.aclose()
                self._started = False
            return message

        return watched

    def _log_rejection(self, scope: Scope, exc: CertificateRejected) -> None:
        log_rejection(scope, exc, transport_peer(scope, trust_scope_client=self.trust_scope_client))
