"""Measure variants side by side: ASGI apps called in process, rounds interleaved, ratios.

No server, no sockets, no HTTP client: each request is one ``await app(scope, receive,
send)`` with a scope shaped as uvicorn builds it, prepared before the timed loop (a fresh dict
per request, as a server makes one per request), so the timed region holds the app and
nothing else.  ``send`` records the status of every response and a batch that answered
anything else than expected is an error, not a number.

Time is the process's CPU time (``time.process_time``), not the wall clock: the machine is
shared, and a wall clock charges a variant for the moments another process held the core.
The work measured is single-threaded and never waits (async endpoints, no I/O), so its CPU
time is its cost.

A *round* runs every variant once, ``requests`` times, in an order rotated from one round to
the next (no variant always runs first, after the collector or a cold cache); a figure is the
median over rounds of a per-round ratio, with the 10th and 90th percentiles as its spread.
Absolute times drift on a shared machine; variants measured within the same round drift
together, so their ratio holds still.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "AsgiVariant",
    "Batch",
    "PartResult",
    "Ratio",
    "Response",
    "Variant",
    "call_once",
    "http_scope",
    "interleave",
    "run_fresh",
    "run_requests",
]

#: The clock of every in-process measurement: CPU seconds of this process.
clock = time.process_time

RECEIVE_EMPTY: Message = {"type": "http.request", "body": b"", "more_body": False}


def http_scope(
    path: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    extensions: Mapping[str, Any] | None = None,
    scheme: str = "https",
    method: str = "GET",
    client: tuple[str, int] = ("127.0.0.1", 50123),
) -> Scope:
    """An HTTP scope as uvicorn (httptools) builds it for ``method path``."""
    path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8443),
        "client": client,
        "scheme": scheme,
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": query.encode("ascii"),
        "headers": [
            (b"host", b"api.bank.example"),
            (b"user-agent", b"bench/1.0"),
            (b"accept", b"*/*"),
            *headers,
        ],
        "state": {},
        "extensions": dict(extensions or {}),
    }


@dataclass
class Response:
    """What an app sent for one request."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


async def call_once(app: ASGIApp, scope: Scope, body: bytes = b"") -> Response:
    """Call ``app`` once and collect its whole response (for checks, never timed)."""
    response = Response()

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")

    await app(scope, receive, send)
    return response


def _recording(statuses: list[int]) -> tuple[Receive, Send]:
    """``receive`` (an empty request body) and ``send`` (appends each response's status to
    ``statuses``) for timed requests: as little work as a server's own."""
    append = statuses.append

    async def receive() -> Message:
        return RECEIVE_EMPTY

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            append(message["status"])

    return receive, send


async def run_requests(
    app: ASGIApp, scopes: Sequence[Scope], statuses: list[int] | None = None
) -> float:
    """Serve every scope in turn; the seconds it took.  Statuses go to ``statuses``."""
    receive, send = _recording(statuses if statuses is not None else [])
    started = clock()
    for scope in scopes:
        await app(scope, receive, send)
    return clock() - started


class Batch(Protocol):
    """Work prepared for one variant in one round."""

    async def run(self) -> float:
        """Do the work; the CPU seconds it took (:data:`clock`; the only timed part)."""
        ...

    def check(self) -> None:
        """Raise if the work did not do what the variant claims (after timing)."""
        ...


class Variant(Protocol):
    """One side of a comparison: prepares ``n`` operations per round."""

    name: str

    def prepare(self, n: int) -> Batch: ...


#: Requests per timed chunk of :func:`run_fresh`: their scopes (a few KiB each) are built
#: right before the chunk runs and still sit in the CPU caches, as a scope a server has just
#: parsed does.
CHUNK = 16


async def run_fresh(
    app: ASGIApp, new_scope: Callable[[], Scope], n: int, statuses: list[int]
) -> float:
    """Serve ``n`` scopes made by ``new_scope``; the CPU seconds the app took.

    The scopes are made :data:`CHUNK` at a time, untimed, just before they are served: a
    server builds each scope right before it calls the app, so the app meets it in the CPU
    caches.  Thousands of scopes made ahead (megabytes) would not be, and whichever layer
    first reads a header would pay for cache misses that a real server's parser had already
    paid.  Each chunk is timed on its own (two clock reads per chunk, the same for every
    variant)."""
    receive, send = _recording(statuses)
    elapsed = 0.0
    for start in range(0, n, CHUNK):
        scopes = [new_scope() for _ in range(min(CHUNK, n - start))]
        started = clock()
        for scope in scopes:
            await app(scope, receive, send)
        elapsed += clock() - started
    return elapsed


@dataclass
class _AsgiBatch:
    app: ASGIApp
    new_scope: Callable[[], Scope]
    requests: int
    expected: int
    name: str
    statuses: list[int] = field(default_factory=list)

    async def run(self) -> float:
        return await run_fresh(self.app, self.new_scope, self.requests, self.statuses)

    def check(self) -> None:
        wrong = [s for s in self.statuses if s != self.expected]
        if wrong or len(self.statuses) != self.requests:
            raise RuntimeError(
                f"{self.name}: expected {self.requests} responses with status "
                f"{self.expected}, got {len(self.statuses)} ({sorted(set(self.statuses))})"
            )


@dataclass
class AsgiVariant:
    """``app`` serving requests made by ``new_scope``, each expected to answer ``status``."""

    name: str
    app: ASGIApp
    new_scope: Callable[[], Scope]
    status: int = 200

    def prepare(self, n: int) -> Batch:
        return _AsgiBatch(self.app, self.new_scope, n, self.status, self.name)


async def interleave(
    variants: Sequence[Variant],
    *,
    rounds: int,
    per_round: int,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per operation of each variant, one value per round, rounds interleaved.

    ``warmup`` untimed rounds come first (lazy middleware stacks, caches, allocator).  The
    collector runs before every batch, outside the timed region, so no variant pays for the
    garbage of the one before it.
    """
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique: {names}")
    times: dict[str, list[float]] = {name: [] for name in names}
    for number in range(-warmup, rounds):
        shift = number % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            batch = variant.prepare(per_round)
            gc.collect()
            elapsed = await batch.run()
            batch.check()
            if number >= 0:
                times[variant.name].append(elapsed / per_round)
        if progress is not None and number >= 0 and (number + 1) % 10 == 0:
            progress(f"round {number + 1}/{rounds}")
    return times


def _divide(numerator: float, denominator: float) -> float:
    # A side that used no measurable time (a CPU clock that did not tick) has no ratio.
    return numerator / denominator if numerator > 0 and denominator > 0 else math.nan


@dataclass(frozen=True)
class Ratio:
    """The median of per-round ratios and their 10th-90th percentile spread."""

    median: float
    p10: float
    p90: float
    rounds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Ratio:
        """Summarise per-round ratios; NaN throughout if any round could not be measured
        (a clock that did not tick: too few operations per round)."""
        if not values:
            raise ValueError("no rounds to summarise")
        if any(math.isnan(value) for value in values):
            return cls(math.nan, math.nan, math.nan, len(values))
        if len(values) == 1:
            return cls(values[0], values[0], values[0], 1)
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        return cls(statistics.median(values), deciles[0], deciles[-1], len(values))

    @classmethod
    def throughput(cls, baseline: Sequence[float], variant: Sequence[float]) -> Ratio:
        """Requests/s of ``variant`` over requests/s of ``baseline``, round by round (1.0:
        free; 0.5: half the throughput)."""
        return cls.of([_divide(b, v) for b, v in zip(baseline, variant, strict=True)])

    @classmethod
    def cost(cls, variant: Sequence[float], floor: Sequence[float]) -> Ratio:
        """Time of ``variant`` over time of ``floor``, round by round (1.0: as cheap)."""
        return cls.of([_divide(v, f) for v, f in zip(variant, floor, strict=True)])


@dataclass(frozen=True)
class PartResult:
    """What one part of the benchmark found: ratios by row key, and for context the median
    microseconds per operation of every variant."""

    ratios: dict[str, Ratio]
    micros: dict[str, float]

    @classmethod
    def of(cls, times: Mapping[str, Sequence[float]], **rows: tuple[str, str, str]) -> PartResult:
        """``rows``: ``key=("throughput", baseline, variant)`` or ``("cost", variant, floor)``,
        naming variants of ``times`` (seconds per operation, one value per round)."""
        ratios = {}
        for key, (kind, first, second) in rows.items():
            ratio = Ratio.throughput if kind == "throughput" else Ratio.cost
            ratios[key] = ratio(times[first], times[second])
        micros = {name: statistics.median(values) * 1e6 for name, values in times.items()}
        return cls(ratios, micros)
