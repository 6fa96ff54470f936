"""Per-request cost of MTLSMiddleware, measured in process, side by side in one run.

    python benchmarks/bench_middleware.py [--requests N] [--write docs/benchmarks.md]

Each case drives the same trivial ASGI app N times through a minimal server loop (no sockets,
so only the middleware's own work differs between cases) and reports the median of 5 rounds.
Ratios are against the bare app measured in the same run: absolute times drift on a shared
machine, ratios much less.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cryptography
import starlette

from asgi_mtls import MTLSMiddleware
from asgi_mtls.testing import CertificateAuthority, asgi_tls_scope_extension, nginx_escaped_header

Scope = dict[str, Any]


async def trivial_app(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def base_scope(headers: list[tuple[bytes, bytes]], extensions: dict[str, Any]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8443),
        "extensions": extensions,
    }


async def run_case(app: Callable[..., Any], make_scope: Callable[[], Scope], n: int) -> float:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(n):
        await app(make_scope(), receive, send)
    elapsed = time.perf_counter() - started
    if len(statuses) != n:
        raise RuntimeError("a request did not respond")
    return elapsed / n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--cold-requests", type=int, default=500)
    parser.add_argument("--write", type=Path, help="write the results section into this file")
    args = parser.parse_args()

    root = CertificateAuthority("bench root")
    intermediate = root.intermediate("bench clients CA")
    client = intermediate.issue_client(spiffe_id="spiffe://bank.example/payments")
    tls = asgi_tls_scope_extension(client)
    peer = {"asgi_mtls.peer": {"family": "inet", "host": "127.0.0.1", "port": 1}}
    header = [
        (b"x-ssl-client-cert", nginx_escaped_header(client).encode()),
        (b"x-ssl-client-verify", b"SUCCESS"),
    ]

    def middleware(**kw: Any) -> MTLSMiddleware:
        return MTLSMiddleware(
            trivial_app,
            trust=root.certificate,
            intermediates=[intermediate.certificate],
            trusted_proxies=["127.0.0.1"],
            **kw,
        )

    cases: list[tuple[str, Callable[..., Any], Callable[[], Scope], int]] = [
        (
            "bare app, no middleware",
            trivial_app,
            lambda: base_scope([], {"tls": tls}),
            args.requests,
        ),
        (
            "middleware, anonymous request",
            middleware(),
            lambda: base_scope([], dict(peer)),
            args.requests,
        ),
        (
            "middleware, TLS extension, cached",
            middleware(),
            lambda: base_scope([], {"tls": tls, **peer}),
            args.requests,
        ),
        (
            "middleware, nginx header, cached",
            middleware(),
            lambda: base_scope(header, dict(peer)),
            args.requests,
        ),
        (
            "middleware, TLS extension, no cache",
            middleware(cache_size=0),
            lambda: base_scope([], {"tls": tls, **peer}),
            args.cold_requests,
        ),
    ]
    rounds = 5
    results: dict[str, list[float]] = {name: [] for name, *_ in cases}
    for _ in range(rounds):  # interleave rounds so drift hits every case alike
        for name, app, make_scope, n in cases:
            results[name].append(asyncio.run(run_case(app, make_scope, n)))
    medians = {name: statistics.median(times) for name, times in results.items()}
    bare = medians["bare app, no middleware"]
    cached_tls = medians["middleware, TLS extension, cached"]
    lines = [
        "| case | µs / request (median of 5) | vs bare app | vs cached TLS |",
        "|---|---:|---:|---:|",
    ]
    for name, _, _, n in cases:
        lines.append(
            f"| {name} ({n} requests) | {medians[name] * 1e6:.2f}"
            f" | {medians[name] / bare:.2f}x | {medians[name] / cached_tls:.2f}x |"
        )
    env = (
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"starlette {starlette.__version__}, {platform.machine()}, {time.strftime('%Y-%m-%d')}"
    )
    table = "\n".join(lines)
    print(env)
    print(table)
    if args.write:
        text = args.write.read_text()
        start, end = "<!-- results:start -->", "<!-- results:end -->"
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        args.write.write_text(f"{before}{start}\n{env}\n\n{table}\n{end}{after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
