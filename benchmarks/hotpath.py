"""Where a cached request's time goes: cProfile over the hit path, per request.

The Starlette app behind ``MTLSMiddleware`` serves a repeat client (``tls`` extension, then
nginx's header) under ``cProfile``; the table keeps the middleware's own code: every function
in ``asgi_mtls/``, and the C functions (dict lookups, ``isinstance``, string methods) in as far
as ``asgi_mtls`` functions call them, with their own time (``tottime``) and their time with
callees (``cumtime``) in microseconds per request.  cProfile adds a fixed cost to every call,
so absolute figures are inflated, most for code that makes many small calls; read them as
where to look, and the in-process ratios as what it costs.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Scope

from benchmarks import apps
from benchmarks.driver import run_requests
from benchmarks.inprocess import Scopes
from benchmarks.pki import BenchPKI

__all__ = ["HotSpot", "Profile", "run_hotpath"]

PACKAGE = "/asgi_mtls/"
Function = tuple[str, int, str]


@dataclass(frozen=True)
class HotSpot:
    """One function's share of a request."""

    name: str
    calls: float  # per request
    own_us: float  # tottime per request
    total_us: float  # cumtime per request


@dataclass(frozen=True)
class Profile:
    """The middleware's own time per request under the profiler, and its top functions."""

    case: str
    requests: int
    request_us: float  # the whole request, profiled (wall clock, as cProfile's own figures)
    middleware_us: float  # sum of own time of asgi_mtls code and the C calls it makes
    spots: list[HotSpot]


def _label(function: Function) -> str:
    filename, line, name = function
    if filename == "~":
        return name  # a C function: "<method 'get' of 'dict' objects>"
    module = filename.split(PACKAGE, 1)[-1].removesuffix(".py").replace("/", ".")
    return f"asgi_mtls.{module}:{line} {name}"


def _ours(function: Function) -> bool:
    return PACKAGE in function[0]


def _spots(stats: pstats.Stats, requests: int) -> list[HotSpot]:
    spots = []
    table: dict[Function, Any] = stats.stats  # type: ignore[attr-defined]
    for function, (_, calls, own, total, callers) in table.items():
        if not _ours(function):
            if function[0] != "~":
                continue
            # A C function: only the part of it that asgi_mtls code called.
            mine = [v for caller, v in callers.items() if _ours(caller)]
            if not mine:
                continue
            calls = sum(v[1] for v in mine)
            own = sum(v[2] for v in mine)
            total = sum(v[3] for v in mine)
        spots.append(
            HotSpot(
                _label(function), calls / requests, own / requests * 1e6, total / requests * 1e6
            )
        )
    return sorted(spots, key=lambda spot: spot.own_us, reverse=True)


async def profile(case: str, app: ASGIApp, new_scope: Callable[[], Scope], n: int) -> Profile:
    """Profile ``n`` requests made by ``new_scope`` (after two unprofiled warm-up batches)."""
    for _ in range(2):
        await run_requests(app, [new_scope() for _ in range(n)])
    scopes = [new_scope() for _ in range(n)]
    profiler = cProfile.Profile()  # times with time.perf_counter: so does `elapsed`
    started = time.perf_counter()
    profiler.enable()
    await run_requests(app, scopes)
    profiler.disable()
    elapsed = time.perf_counter() - started
    spots = _spots(pstats.Stats(profiler), n)
    return Profile(
        case,
        n,
        elapsed / n * 1e6,
        sum(spot.own_us for spot in spots),
        spots,
    )


async def run_hotpath(pki: BenchPKI, *, requests: int) -> list[Profile]:
    """Profiles of the cached hit path, certificate from the tls extension and from nginx."""
    scopes = Scopes(pki)
    roots = pki.root.certificate, [pki.intermediate.certificate]
    direct = apps.starlette_app([apps.mtls_middleware(*roots, proxy=False)])
    proxied = apps.starlette_app([apps.mtls_middleware(*roots, proxy=True)])
    return [
        await profile("tls extension, cached", direct, scopes.tls, requests),
        await profile("nginx header, cached", proxied, scopes.nginx, requests),
    ]
