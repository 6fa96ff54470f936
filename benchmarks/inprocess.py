"""The hit-path rows of issue #10: a repeat client, in process.

Requests carry the client's certificate as the two deployments deliver it:

- ``tls``: uvicorn with the ``asgi_mtls.uvicorn`` protocol classes terminates TLS; every scope
  carries its own copy of the connection's ``tls`` extension dict (the same PEM strings,
  reused on a keep-alive connection) and ``asgi_mtls.peer``, exactly as
  :mod:`asgi_mtls.uvicorn` builds them;
- ``nginx``: nginx terminates mutual TLS and forwards ``$ssl_client_escaped_cert`` in
  ``X-SSL-Client-Cert`` (a new bytes value per request, as the server parses it) from the
  trusted peer 127.0.0.1;
- ``anonymous``: a TLS connection without a client certificate, on the public health route.

Both sides of every ratio serve the same scopes; only the app differs.  Before timing, each
app answers one request of each kind and the answers are checked (the protected route admits
the repeat client, so the identity really was resolved); after timing, the middleware must
have validated each certificate once, so the rounds measured the cache hit they claim to.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Scope

from asgi_mtls import MTLSMiddleware
from asgi_mtls.authorization.routes import chain
from asgi_mtls.events import LogListener
from asgi_mtls.inject import anonymous_additions, scope_additions
from asgi_mtls.prometheus import PrometheusListener
from asgi_mtls.sources.tls import CONNECTION_EXTENSION
from asgi_mtls.testing import asgi_tls_scope_extension, nginx_escaped_header
from benchmarks import apps
from benchmarks.driver import AsgiVariant, PartResult, call_once, http_scope, interleave
from benchmarks.pki import PAYMENTS, BenchPKI

__all__ = ["Scopes", "run_inprocess"]

ACCOUNT = "/accounts/42"
PAYMENT = "/payments/7"
HEALTH = "/health"
PEER = {"family": "inet", "host": "127.0.0.1", "port": 40000}


class Scopes:
    """Factories of fresh scopes for the repeat client, one per way of presenting it."""

    def __init__(self, pki: BenchPKI) -> None:
        # asgi_mtls.uvicorn builds the tls dict once per connection and hands each scope a
        # copy of it and of its list (the same PEM string objects).  Python 3.13 lets it
        # read the chain the client sent; before that it has the leaf only.
        self._tls = asgi_tls_scope_extension(pki.client, include_chain=sys.version_info >= (3, 13))
        self._no_certificate = asgi_tls_scope_extension(None)
        self._header = nginx_escaped_header(pki.client).encode("latin-1")
        self._memos: dict[int, dict[Any, Any]] = {}
        self._upstream: dict[Any, Any] = {}

    def tls(self, path: str = ACCOUNT) -> Scope:
        return self._tls_scope(path, self._tls)

    def anonymous(self, path: str = HEALTH) -> Scope:
        return self._tls_scope(path, self._no_certificate)

    def nginx(self, path: str = ACCOUNT) -> Scope:
        headers = [
            (b"x-ssl-client-cert", bytes(bytearray(self._header))),  # new per request
            (b"x-ssl-client-verify", b"SUCCESS"),
            (b"x-forwarded-for", b"203.0.113.9"),
            (b"x-forwarded-proto", b"https"),
        ]
        return http_scope(
            path,
            headers=headers,
            # asgi_mtls.uvicorn's plain connection from nginx (kept alive upstream): the
            # peer, and the connection's memo, shared by the requests nginx sends over it.
            extensions={"asgi_mtls.peer": dict(PEER), CONNECTION_EXTENSION: self._upstream},
            scheme="http",
            client=("203.0.113.9", 0),
        )

    def _tls_scope(self, path: str, shared: dict[str, Any]) -> Scope:
        # ... and the same connection memo (asgi_mtls.uvicorn's per-connection dict): the
        # repeat client is a keep-alive connection.
        tls = {**shared, "client_cert_chain": list(shared["client_cert_chain"])}
        extensions = {"tls": tls, "asgi_mtls.peer": dict(PEER)}
        extensions[CONNECTION_EXTENSION] = self._memos.setdefault(id(shared), {})
        return http_scope(path, extensions=extensions)


def _middleware_of(app: Any) -> MTLSMiddleware:
    for node in chain(getattr(app, "middleware_stack", None) or app):
        if isinstance(node, MTLSMiddleware):
            return node
    raise RuntimeError(f"no MTLSMiddleware in {app!r}")


async def _expect(app: ASGIApp, scope: Scope, expected: int, **body: Any) -> None:
    response = await call_once(app, scope)
    if response.status != expected:
        raise RuntimeError(f"{scope['path']}: status {response.status}: {response.body!r}")
    decoded = json.loads(response.body)
    for key, value in body.items():
        if decoded.get(key) != value:
            raise RuntimeError(f"{scope['path']}: {key}={decoded.get(key)!r}, not {value!r}")


async def run_inprocess(
    pki: BenchPKI,
    *,
    rounds: int,
    requests: int,
    fastapi_requests: int,
    progress: Callable[[str], None],
) -> PartResult:
    """Every in-process hit-path ratio of issue #10, keyed as in :mod:`benchmarks.report`."""
    scopes = Scopes(pki)
    roots = pki.root.certificate, [pki.intermediate.certificate]
    # Each deployment as its guide configures it: uvicorn terminating TLS trusts no proxy;
    # behind nginx, 127.0.0.1 is the trusted proxy (benchmarks.apps.mtls_options).
    mtls: list[Middleware] = [apps.mtls_middleware(*roots, proxy=False)]
    proxied = apps.starlette_app([apps.mtls_middleware(*roots, proxy=True)])
    # Issue #13: the default (the log listener, which takes no per-request events), no
    # listener at all, and the Prometheus listener beside the log listener.
    silent = apps.starlette_app([apps.mtls_middleware(*roots, proxy=False, listeners=[])])
    prometheus = apps.starlette_app(
        [
            apps.mtls_middleware(
                *roots,
                proxy=False,
                listeners=[LogListener(), PrometheusListener(CollectorRegistry())],
            )
        ]
    )
    bare = apps.starlette_app()
    passthrough = apps.starlette_app([Middleware(apps.PassThrough)])
    starlette_auth = apps.starlette_app(
        [Middleware(AuthenticationMiddleware, backend=apps.TrivialBackend())]
    )
    guarded = apps.starlette_app(mtls)
    trivially_guarded = apps.starlette_app(mtls, guard=apps.trivial_guard)
    fastapi_guarded = apps.fastapi_app(mtls)
    fastapi_trivial = apps.fastapi_app(mtls, dependency=apps.trivial_dependency)

    # The floor: the client's (and an anonymous request's) scope additions, fixed.
    await _expect(guarded, scopes.tls(), 200, account=42)  # builds the middleware stack
    identity = _middleware_of(guarded).resolver.resolve(scopes.tls())
    assert identity is not None
    floor = apps.starlette_app(
        [Middleware(apps.FixedAdditions, additions=scope_additions(identity))]
    )
    floor_anonymous = apps.starlette_app(
        [Middleware(apps.FixedAdditions, additions=anonymous_additions())]
    )

    # What each app must answer, checked once before any timing.
    for app in (guarded, trivially_guarded, fastapi_guarded, fastapi_trivial, proxied):
        await _expect(app, scopes.tls(PAYMENT), 200, payment="7")
        await _expect(app, scopes.anonymous(PAYMENT), 401)
    await _expect(proxied, scopes.nginx(PAYMENT), 200, payment="7")
    for app in (bare, passthrough, starlette_auth, guarded, silent, prometheus, proxied, floor):
        await _expect(app, scopes.tls(), 200, account=42)
        await _expect(app, scopes.nginx(), 200, account=42)
        await _expect(app, scopes.anonymous(), 200, status="ok")
    await _expect(fastapi_guarded, scopes.tls(PAYMENT), 200, by=PAYMENTS)

    progress("starlette rows")
    starlette_times = await interleave(
        [
            AsgiVariant("bare/tls", bare, scopes.tls),
            AsgiVariant("passthrough/tls", passthrough, scopes.tls),
            AsgiVariant("floor/tls", floor, scopes.tls),
            AsgiVariant("starlette_auth/tls", starlette_auth, scopes.tls),
            AsgiVariant("mtls/tls", guarded, scopes.tls),
            AsgiVariant("proxied/tls", proxied, scopes.tls),
            AsgiVariant("bare/nginx", bare, scopes.nginx),
            AsgiVariant("mtls/nginx", proxied, scopes.nginx),
            AsgiVariant("bare/anonymous", bare, scopes.anonymous),
            AsgiVariant("mtls/anonymous", guarded, scopes.anonymous),
            AsgiVariant("floor/anonymous", floor_anonymous, scopes.anonymous),
            AsgiVariant("require/tls", guarded, lambda: scopes.tls(PAYMENT)),
            AsgiVariant("trivial/tls", trivially_guarded, lambda: scopes.tls(PAYMENT)),
            AsgiVariant("silent/tls", silent, scopes.tls),
            AsgiVariant("prometheus/tls", prometheus, scopes.tls),
        ],
        rounds=rounds,
        per_round=requests,
        progress=progress,
    )
    progress("fastapi rows")
    fastapi_times = await interleave(
        [
            AsgiVariant("fastapi_require/tls", fastapi_guarded, lambda: scopes.tls(PAYMENT)),
            AsgiVariant("fastapi_trivial/tls", fastapi_trivial, lambda: scopes.tls(PAYMENT)),
        ],
        rounds=rounds,
        per_round=fastapi_requests,
        progress=progress,
    )
    # One validation per (app, way of presenting the certificate): every timed request hit.
    for app in (
        guarded,
        trivially_guarded,
        fastapi_guarded,
        fastapi_trivial,
        silent,
        prometheus,
        proxied,
    ):
        misses = _middleware_of(app).resolver.misses
        if misses > 2:
            raise RuntimeError(f"the cached rows validated {misses} times, not at most twice")
    return PartResult.of(
        {**starlette_times, **fastapi_times},
        tls_vs_bare=("throughput", "bare/tls", "mtls/tls"),
        tls_vs_passthrough=("throughput", "passthrough/tls", "mtls/tls"),
        floor_vs_bare=("throughput", "bare/tls", "floor/tls"),
        floor_vs_passthrough=("throughput", "passthrough/tls", "floor/tls"),
        floor_anonymous_vs_bare=("throughput", "bare/anonymous", "floor/anonymous"),
        starlette_auth_vs_bare=("throughput", "bare/tls", "starlette_auth/tls"),
        tls_vs_starlette_auth=("throughput", "starlette_auth/tls", "mtls/tls"),
        nginx_vs_bare=("throughput", "bare/nginx", "mtls/nginx"),
        tls_proxied_vs_bare=("throughput", "bare/tls", "proxied/tls"),
        require_vs_trivial=("throughput", "trivial/tls", "require/tls"),
        fastapi_require_vs_trivial=("throughput", "fastapi_trivial/tls", "fastapi_require/tls"),
        anonymous_vs_bare=("throughput", "bare/anonymous", "mtls/anonymous"),
        log_listener_vs_none=("throughput", "silent/tls", "mtls/tls"),
        prometheus_vs_log_listener=("throughput", "mtls/tls", "prometheus/tls"),
        prometheus_vs_bare=("throughput", "bare/tls", "prometheus/tls"),
    )
