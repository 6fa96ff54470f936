"""RSS of one process serving many distinct certificates through the middleware.

Each case runs in a fresh process (``python -m benchmarks.memory CASE COUNT``), drives the
Starlette app of :mod:`benchmarks.apps` behind ``MTLSMiddleware`` in its default configuration
(cache of 4096 outcomes and 32 MiB) in process, and samples its resident set size
(``VmRSS``, after a collection) as it goes:

- ``valid``: COUNT distinct valid client certificates via the ``tls`` extension, each once;
- ``self_signed``: COUNT distinct self-signed clientAuth certificates via the ``tls``
  extension (refused ``untrusted`` after path building);
- ``large_headers``: COUNT distinct 30,000-character ``X-SSL-Client-Cert`` values from the
  trusted proxy (refused ``malformed``; just under the source's 32 KiB limit, so every one
  is decoded and its refusal cached).

Certificates and header values are made in small chunks as the run goes (never all held at
once), so the growth is the middleware's, plus at most one chunk of inputs (under a MiB).  The
growth is the last sample over the first (taken after one warm request); the run *plateaus*
when its second half added at most :data:`PLATEAU_MIB`.  Rejections are logged as in
production, to a handler that drops them (stderr would hold a hundred thousand lines).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from starlette.types import Scope

from asgi_mtls.testing import asgi_tls_scope_extension
from benchmarks import apps
from benchmarks.driver import call_once, http_scope, run_requests
from benchmarks.inprocess import PEER, Scopes
from benchmarks.pki import BenchPKI, self_signed_clients

__all__ = ["CASES", "MemoryResult", "measure", "run_memory"]

ROOT = Path(__file__).resolve().parents[1]
CASES = ("valid", "self_signed", "large_headers")
#: Growth over the second half of a run below which it counts as plateaued.
PLATEAU_MIB = 2.0
HEADER_CHARS = 30_000
#: Inputs made at a time: a thousand certificates are under a MiB, a thousand 30 kB header
#: values would be 30 MiB of the input generator's own.
CHUNKS = {"valid": 1000, "self_signed": 1000, "large_headers": 16}


def rss_mib() -> float:
    """This process's resident set size, after a full collection."""
    gc.collect()
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _tls_scope(pem: str, chain: str | None = None) -> Scope:
    tls = asgi_tls_scope_extension(None)
    tls["client_cert_chain"] = [pem] if chain is None else [pem, chain]
    return http_scope("/accounts/42", extensions={"tls": tls, "asgi_mtls.peer": dict(PEER)})


def _header_scope(number: int) -> Scope:
    value = f"{number:012d}".encode() + b"A" * (HEADER_CHARS - 12)
    headers = [(b"x-ssl-client-cert", value), (b"x-ssl-client-verify", b"SUCCESS")]
    return http_scope(
        "/accounts/42", headers=headers, extensions={"asgi_mtls.peer": dict(PEER)}, scheme="http"
    )


def _inputs(case: str, pki: BenchPKI) -> tuple[Callable[[int, int], list[Scope]], int]:
    """How to make ``count`` scopes numbered from ``start`` for ``case``, and their status."""
    if case == "valid":
        return lambda start, count: [_tls_scope(c.pem) for c in pki.fresh_clients(count)], 200
    if case == "self_signed":
        key = ec.generate_private_key(ec.SECP256R1())
        return lambda start, count: [
            _tls_scope(pem) for pem in self_signed_clients(key, start, count)
        ], 401
    if case == "large_headers":
        return lambda start, count: [_header_scope(n) for n in range(start, start + count)], 400
    raise ValueError(f"unknown case {case!r}; choose from {CASES}")


async def _serve(case: str, count: int, samples: int) -> dict[str, Any]:
    pki = BenchPKI.ec()
    # Behind a trusted proxy, so that its header flood reaches the cache.
    spec = apps.mtls_middleware(pki.root.certificate, [pki.intermediate.certificate], proxy=True)
    app = apps.starlette_app([spec])
    make, status = _inputs(case, pki)
    warm = await call_once(app, Scopes(pki).tls())
    if warm.status != 200:
        raise RuntimeError(f"warm-up request answered {warm.status}")
    every = max(1, count // samples)
    points = [(0, rss_mib())]
    done = 0
    while done < count:
        scopes = make(done, min(CHUNKS[case], count - done, every - done % every))
        statuses: list[int] = []
        await run_requests(app, scopes, statuses)
        if set(statuses) != {status}:
            raise RuntimeError(f"{case}: expected status {status}, got {sorted(set(statuses))}")
        done += len(scopes)
        del scopes
        if done % every == 0 or done == count:
            points.append((done, rss_mib()))
    return {"case": case, "count": count, "samples": points}


@dataclass(frozen=True)
class MemoryResult:
    """One case's RSS samples: ``(requests served, MiB)``, the first after warm-up."""

    case: str
    count: int
    samples: list[tuple[int, float]]

    @property
    def growth(self) -> float:
        return self.samples[-1][1] - self.samples[0][1]

    @property
    def peak_growth(self) -> float:
        return max(mib for _, mib in self.samples) - self.samples[0][1]

    @property
    def second_half_growth(self) -> float:
        half = next(mib for served, mib in self.samples if served >= self.count / 2)
        return self.samples[-1][1] - half

    @property
    def plateaus(self) -> bool:
        return self.second_half_growth <= PLATEAU_MIB


def measure(case: str, count: int, samples: int = 20) -> MemoryResult:
    """Run ``case`` in a fresh process and read its samples."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", case, str(count), "--samples", str(samples)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory case {case} failed:\n{completed.stderr[-4000:]}")
    data = json.loads(completed.stdout.strip().splitlines()[-1])
    return MemoryResult(data["case"], data["count"], [tuple(p) for p in data["samples"]])


def run_memory(
    *, valid: int, junk: int, progress: Callable[[str], None]
) -> dict[str, MemoryResult]:
    results = {}
    for case in CASES:
        progress(f"{case}")
        results[case] = measure(case, valid if case == "valid" else junk)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="One memory case (see benchmarks.memory).")
    parser.add_argument("case", choices=CASES)
    parser.add_argument("count", type=int)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    logger = logging.getLogger("asgi_mtls")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    print(json.dumps(asyncio.run(_serve(args.case, args.count, args.samples))))


if __name__ == "__main__":
    main()
