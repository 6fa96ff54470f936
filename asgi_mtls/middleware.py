"""MTLSMiddleware: who is calling, proven by a client certificate.

A pure ASGI middleware, wiring only (the shape of Starlette's ``AuthenticationMiddleware``):
for each HTTP request and WebSocket it

1-3. resolves the client (:class:`~asgi_mtls.resolver.CertificateResolver`: the certificate
     from the ASGI ``tls`` extension or a trusted proxy's header, validated, mapped to a
     :class:`~asgi_mtls.identity.ClientIdentity`, the outcome cached),
4.   injects it (:func:`~asgi_mtls.inject.inject`: ``scope["user"]``, ``scope["auth"]``,
     ``scope["asgi_mtls.identity"]``, in a copy of the scope),
5.   authorizes what it can before the app runs
     (:class:`~asgi_mtls.authorization.routes.RouteAuthorizer`: exempt paths,
     ``require_certificate``, path policies, ``deny_by_default``),

then calls the app, where route requirements decide the rest.  A certificate that is presented
but not acceptable ends the request with a typed rejection (:mod:`asgi_mtls.errors`) on every
route but the exempt ones: it is never downgraded to an anonymous request.  Lifespan and other
scope types pass through, the lifespan watched to start and stop background work.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, Literal, ParamSpec, cast

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_mtls.authorization.policies import PolicyValue, route_path
from asgi_mtls.authorization.requirements import rejection_handler
from asgi_mtls.authorization.roles import RoleMap, load_roles
from asgi_mtls.authorization.routes import RouteAuthorizer, chain
from asgi_mtls.cache import OutcomeCache
from asgi_mtls.errors import (
    CertificateRejected,
    ConfigurationError,
    RejectionReason,
    send_rejection,
)
from asgi_mtls.events import ConfigurationWarning, Listener
from asgi_mtls.hooks import IdentityHook, IdentityHookFunction, PendingIdentity
from asgi_mtls.identity import (
    ClientIdentity,
    PrincipalMapper,
    PrincipalStrategy,
    StrategyName,
    resolve_principal_strategy,
)
from asgi_mtls.inject import (
    ADDITIONS_KEY,
    EXPLAIN_SCOPE_KEY,
    anonymous_additions,
    scope_additions,
)
from asgi_mtls.observe import DEFAULT_EXPIRY_WARNING, Observers
from asgi_mtls.resolver import NEGATIVE_TTL, CertificateResolver
from asgi_mtls.sources import (
    CertificateSource,
    HeaderSource,
    ProxyCertificate,
    TLSExtensionSource,
    TrustedProxies,
    transport_peer,
)
from asgi_mtls.sources.verified_name import name_source_warning
from asgi_mtls.startup import (
    MisconfiguredApp,
    as_configuration_error,
    built_by_starlette,
    imported_by_uvicorn,
    stop_uvicorn,
)
from asgi_mtls.validation import CertificateInput, CertificateValidator

__all__ = ["ErrorHandler", "MTLSMiddleware"]

P = ParamSpec("P")

#: ``on_error(connection, rejection)``: the response for a refused HTTP request.
ErrorHandler = Callable[[HTTPConnection, CertificateRejected], Response | Awaitable[Response]]


def _fail_fast(
    init: Callable[Concatenate[MTLSMiddleware, ASGIApp, P], None],
) -> Callable[Concatenate[MTLSMiddleware, ASGIApp, P], None]:
    """Wrap ``MTLSMiddleware.__init__``: a ``ValueError`` is re-raised as a
    :class:`ConfigurationError`; inside Starlette's ``build_middleware_stack``, where raising
    would mean a 500 per request (issue #11), any error is kept instead and the instance
    becomes a :class:`_MisconfiguredMTLSMiddleware`.  The request path is not involved."""

    def build(self: MTLSMiddleware, app: ASGIApp, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            init(self, app, *args, **kwargs)
        except Exception as exc:
            if built_by_starlette():
                error = as_configuration_error(exc, "MTLSMiddleware")
                self.app = app
                self.__class__ = _MisconfiguredMTLSMiddleware
                assert isinstance(self, _MisconfiguredMTLSMiddleware)
                self.configuration_error = error
                self._misconfigured = MisconfiguredApp(error)
                return
            if isinstance(exc, ValueError) and imported_by_uvicorn():  # ConfigurationError too
                stop_uvicorn(as_configuration_error(exc, "MTLSMiddleware"))
            if isinstance(exc, ValueError) and not isinstance(exc, ConfigurationError):
                raise as_configuration_error(exc, "MTLSMiddleware") from exc
            raise

    functools.update_wrapper(build, init)
    return build


class MTLSMiddleware:
    """Identify the client of every request by its certificate.

    :param trust: trust roots (PEM file path, PEM/DER bytes, certificates) or a ready
        :class:`CertificateValidator`.
    :param intermediates: intermediate CA certificates used for path building (never as
        anchors).  Needed when the client sends only its leaf, as nginx forwards it.
    :param trusted_proxies: addresses/CIDRs (and ``"unix:"``) of proxies allowed to forward a
        certificate in a header, or :class:`~asgi_mtls.sources.ProxyCertificate` entries for
        proxies known by the certificate of their mutual-TLS hop to the app.  Empty (the
        default) means no header is ever believed.  A header source with its own
        ``trusted_proxies`` uses those instead.
    :param sources: certificate sources, in order.  Default: the ASGI ``tls`` extension and
        nginx's header (``HeaderSource("nginx")``, believed only from ``trusted_proxies``; from
        anyone else it is refused as ``untrusted_proxy``).  Another proxy, or other header
        names: ``sources=[TLSExtensionSource(), HeaderSource("envoy")]``.  A server that
        reports only the subject name of the client certificate (pyvoy): add
        :class:`~asgi_mtls.sources.ServerVerifiedNameSource`, the explicit opt-in to that
        weaker identity (issue #12; logged as a warning at startup).
    :param principal: a strategy name (``"default"``, ``"spiffe"``, ``"uri"``, ``"dns"``,
        ``"email"``, ``"cn"``, ``"subject"``, ``"fingerprint"``, ``"kubernetes"``,
        ``"envoy"``) or a callable (see :mod:`asgi_mtls.identity.principals`).
    :param roles: a :class:`~asgi_mtls.authorization.roles.RoleMap`, the path of a TOML/JSON
        role file, or a mapping of role name to rules.  Evaluated once per certificate; the
        roles land on ``ClientIdentity.roles`` and in ``scope["auth"].scopes``.  A bad file
        is a ``RoleConfigError`` when the middleware is built.
    :param policies: a path table ``{pattern: requirement or PUBLIC}`` checked before the app
        runs (see :mod:`asgi_mtls.authorization.policies`: exact or ``*``-prefix patterns on
        the routed path, most specific wins).
    :param deny_by_default: refuse (403 ``forbidden``) every request whose route declares no
        requirement and is not covered by a policy, before the endpoint runs.  ``"dry_run"``:
        report those requests (a ``WouldDeny`` event) and serve them.
    :param require_certificate: refuse (401 ``missing``) any request without a certificate,
        except on ``exempt_paths``.
    :param exempt_paths: paths on which no certificate is read at all (health checks).  An
        entry ending in ``*`` is a prefix.
    :param trust_scope_client: on servers that do not report the transport peer (anything but
        ``asgi_mtls.uvicorn``), take the peer from ``scope["client"]``.  Only safe when the
        server does not rewrite it from forwarding headers (uvicorn ``--no-proxy-headers``).
    :param on_untrusted_header: ``"reject"`` (default) answers a certificate header from an
        untrusted peer with 400 ``untrusted_proxy``; ``"ignore"`` drops it silently.
    :param on_error: ``on_error(connection, rejection) -> Response`` answers refused HTTP
        requests, the middleware's own and those of route requirements (it is registered with
        Starlette's exception middleware when this middleware wraps it, as with
        ``app.add_middleware``).  Default: the JSON body of :mod:`asgi_mtls.errors`.
    :param cache_size: verification outcomes kept (distinct certificates).
    :param cache_bytes: bytes those outcomes may hold, keys (raw header values) included.
    :param listeners: who hears what the middleware decides (:mod:`asgi_mtls.events`).
        Default: ``[LogListener()]``, the log lines; ``[]``: no events, no log lines.  Add
        ``PrometheusListener()`` or ``OpenTelemetryListener()`` beside the log listener.
    :param on_identity: ``async def on_identity(identity) -> identity | None``, or an
        :class:`~asgi_mtls.hooks.IdentityHook` with a timeout and ttl: the app's own look-up,
        once per certificate, its answer cached with the identity (:mod:`asgi_mtls.hooks`).
    :param expiry_warning: say once per certificate (log line, event, metric) when a client
        certificate has less than this left (a ``timedelta`` or seconds; ``None``: off);
        short-lived certificates only past two thirds of their lifetime.
    """

    @_fail_fast
    def __init__(
        self,
        app: ASGIApp,
        *,
        trust: CertificateInput | CertificateValidator,
        intermediates: CertificateInput | None = None,
        trusted_proxies: Iterable[str | ProxyCertificate] | TrustedProxies = (),
        sources: Sequence[CertificateSource] | None = None,
        principal: StrategyName | str | PrincipalMapper | PrincipalStrategy = "default",
        roles: RoleMap | str | os.PathLike[str] | Mapping[str, Any] | None = None,
        policies: Mapping[str, PolicyValue] | Iterable[tuple[str, PolicyValue]] | None = None,
        deny_by_default: bool | Literal["dry_run"] = False,
        require_certificate: bool = False,
        exempt_paths: Iterable[str] = (),
        trust_scope_client: bool = False,
        on_untrusted_header: str = "reject",
        on_error: ErrorHandler | None = None,
        cache_size: int = 4096,
        cache_bytes: int = 32 * 1024 * 1024,
        listeners: Iterable[Listener] | None = None,
        on_identity: IdentityHookFunction | IdentityHook | None = None,
        expiry_warning: dt.timedelta | float | None = DEFAULT_EXPIRY_WARNING,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        if isinstance(trust, CertificateValidator):
            if intermediates is not None:
                raise ValueError("pass intermediates to the CertificateValidator itself")
            self.validator = trust
        else:
            self.validator = CertificateValidator(trust, intermediates=intermediates)
        if sources is None:
            # The nginx header counts only from trusted_proxies; with none, it is never read
            # (a refused request's log line says it was ignored).
            sources = [TLSExtensionSource(), HeaderSource("nginx")]
        if not sources:
            raise ConfigurationError("sources=[]: at least one certificate source is needed")
        names = [source.name for source in sources]
        if len(set(names)) != len(names):
            raise ConfigurationError(
                f"sources: certificate source names must be unique, got {names}"
            )
        # Issue #12: a server-verified name is opt-in, needs the tls extension beside it (a
        # certificate the server gives is always validated) and is said once, at startup.
        name_warning = name_source_warning(sources)
        if on_untrusted_header not in ("reject", "ignore"):
            raise ConfigurationError("on_untrusted_header must be 'reject' or 'ignore'")
        cache: OutcomeCache[Any] = OutcomeCache(cache_size, cache_bytes, clock=clock)
        # Listeners, the identity hook, expiry warnings (issue #13; asgi_mtls.observe).
        observers = Observers.build(
            listeners=listeners,
            on_identity=on_identity,
            expiry_warning=expiry_warning,
            cache=cache,
            validator=self.validator,
            negative_ttl=NEGATIVE_TTL,
            clock=clock,
        )
        self.events, self.hooks = observers.events, observers.hooks
        if name_warning is not None:
            observers.bus.emit(ConfigurationWarning("sources", name_warning))
        if trusted_proxies and not any(source.requires_trusted_proxy for source in sources):
            observers.bus.emit(
                ConfigurationWarning(
                    "trusted_proxies",
                    "trusted_proxies is set but no source reads certificate headers, so no "
                    "proxy's header is ever read: add HeaderSource('nginx') (or your proxy's "
                    "format) to sources=",
                )
            )
        role_map = load_roles(roles)
        self._peer = {"trust_scope_client": trust_scope_client}
        self.resolver = CertificateResolver(
            sources=sources,
            validator=self.validator,
            principal=resolve_principal_strategy(principal),
            roles=role_map,
            trusted_proxies=(
                trusted_proxies
                if isinstance(trusted_proxies, TrustedProxies)
                else TrustedProxies(trusted_proxies)
            ),
            trust_scope_client=trust_scope_client,
            ignore_untrusted_headers=on_untrusted_header == "ignore",
            cache=cache,
            clock=clock,
            miss_path=observers.miss_path,
        )
        self.authorizer = RouteAuthorizer(
            app,
            policies=policies or (),
            deny_by_default=deny_by_default,
            require_certificate=require_certificate,
            exempt_paths=exempt_paths,
            roles=role_map,
            report=self.events.emit if self.events is not None else None,
        )
        self.on_error = on_error
        self._started = False
        self._answer_route_rejections(app)
        # The per-request path is shaped by the configuration once, here (issue #10): no
        # exempt paths, no path lookup; nothing to decide before the app, no call.
        self._identify: Callable[[Scope], ClientIdentity | None] = (
            self._identify_unless_exempt if exempt_paths else self.resolver.resolve
        )
        self._authorize = self.authorizer.authorize if self.authorizer.active else None
        self._anonymous = anonymous_additions(**{EXPLAIN_SCOPE_KEY: self._explain})
        # Per-request events only if a listener takes them (asgi_mtls.observe).
        self._identify = observers.attach(
            app=chain(app),
            validator=self.validator,
            cache=cache,
            identify=self._identify,
            resolver=self.resolver,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                receive = self._watch_lifespan(receive)
            await self.app(scope, receive, send)
            return
        if not self._started:  # no lifespan (some servers, tests): start on first use
            await self._start()
        try:
            identity = self._identify(scope)
            if self._authorize is not None:
                self._authorize(scope, identity)
        except CertificateRejected as exc:
            await self._refuse(scope, receive, send, exc, before_app=True)
            return
        # inject(scope, identity), without the call (issue #10): the same additions.
        if identity is None:
            scope = {**scope, **self._anonymous}
        else:
            additions = identity.computed.get(ADDITIONS_KEY) or scope_additions(identity)
            scope = {**scope, **additions}  # type: ignore[dict-item]
        try:
            await self.app(scope, receive, send)
        except CertificateRejected as exc:
            # A route requirement (a FastAPI dependency) refused before a response started.
            await self._refuse(scope, receive, send, exc)

    def _identify_unless_exempt(self, scope: Scope) -> ClientIdentity | None:
        return (
            None if self.authorizer.is_exempt(route_path(scope)) else self.resolver.resolve(scope)
        )

    def _explain(self, scope: Scope, exc: CertificateRejected) -> None:
        """Add to a ``missing`` refusal's log detail the certificate headers that were present
        but not read because no proxy is trusted to send them (the fix: ``trusted_proxies``).
        On the refusal path only: the cached path never looks at them (issue #10)."""
        if exc.reason is RejectionReason.MISSING:
            ignored = self.resolver.ignored_headers(scope)
            if ignored:
                exc.log_detail += (
                    f"; a {', '.join(ignored)} certificate header was ignored: no proxy is "
                    "trusted to send it (trusted_proxies=)"
                )

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exc: CertificateRejected,
        *,
        before_app: bool = False,
    ) -> None:
        if isinstance(exc, PendingIdentity) and self.hooks is not None and before_app:
            # Raised by this middleware's own identify, before its app ran (not by an inner
            # one: a scope an outer MTLSMiddleware already identified is no sign either way).
            # A certificate's first request, with on_identity: await the hook once, then serve
            # the request again from its cached answer (asgi_mtls.hooks).  Anywhere else a
            # pending identity is what it derives from: a refusal (identity_hook_error).
            await self.hooks.resume(
                exc,
                lambda: self(scope, receive, send),
                forget=lambda: self.resolver.forget_connection(scope),
            )
            return
        self._explain(scope, exc)
        if self.events is not None:
            self.events.refused(scope, exc, transport_peer(scope, **self._peer))
        if self.on_error is not None and scope["type"] == "http":
            response = await _respond(self.on_error, HTTPConnection(scope, receive), exc)
            await response(scope, receive, send)
        else:
            await send_rejection(scope, send, exc)

    def _answer_route_rejections(self, app: ASGIApp) -> None:
        """Added with ``app.add_middleware``, this middleware wraps Starlette's exception
        middleware (directly or through other middleware): register the rejection handler
        there, with Starlette's public ``add_exception_handler``, so that a route
        requirement's ``CertificateRejected`` gets the same answer (and log line) as the
        middleware's own.  Use ``on_error`` to change the answer.  Wrapped from outside, the
        exception still propagates to ``__call__``, or under ServerErrorMiddleware to the
        app's ``HTTPException`` handler (a 4xx, never a 500)."""
        for node in chain(app):
            if isinstance(node, ExceptionMiddleware):
                node.add_exception_handler(CertificateRejected, cast(Any, self._route_rejection))
                return

    async def _route_rejection(self, connection: HTTPConnection, exc: Exception) -> Any:
        if self.on_error is not None and connection.scope["type"] == "http":
            assert isinstance(exc, CertificateRejected)  # registered for it only
            self._explain(connection.scope, exc)
            if self.events is not None:
                peer = transport_peer(connection.scope, **self._peer)
                self.events.refused(connection.scope, exc, peer)
            return await _respond(self.on_error, connection, exc)
        return await rejection_handler(connection, exc)  # explains through the scope

    async def _start(self) -> None:
        self._started = True
        await self.validator.start()

    def _watch_lifespan(self, receive: Receive) -> Receive:
        """Start the validator's background work at startup, stop it at shutdown."""

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup" and not self._started:
                await self._start()
            elif message["type"] == "lifespan.shutdown":
                await self.validator.aclose()
                self._started = False
            return message

        return watched


class _MisconfiguredMTLSMiddleware(MTLSMiddleware):
    """An ``MTLSMiddleware`` that Starlette's lazy stack builder built with a configuration
    error: it fails the lifespan startup, else refuses every request with 503
    ``misconfigured`` (:mod:`asgi_mtls.startup`).  Only ``_fail_fast`` makes one."""

    configuration_error: ConfigurationError
    _misconfigured: MisconfiguredApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._misconfigured(scope, receive, send)


async def _respond(
    handler: ErrorHandler, connection: HTTPConnection, exc: CertificateRejected
) -> Response:
    response = handler(connection, exc)
    return await response if isinstance(response, Awaitable) else response
