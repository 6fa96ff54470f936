"""What a never-seen client certificate costs, against cryptography's own floor (issue #10).

    python benchmarks/bench_miss.py [--rounds 40] [--per-round 100] [--profile ec|rsa]

Standalone (the full harness is ``python -m benchmarks``); run it from a checkout so that the
checkout's ``asgi_mtls`` is the one imported.

The *miss* variant is the middleware's whole miss path, called through its resolver (what
``MTLSMiddleware`` calls per request): find the ASGI ``tls`` extension, miss the cache, decode
the PEM strings, validate with :class:`~asgi_mtls.CertificateValidator`, build the
:class:`~asgi_mtls.ClientIdentity`, cache the outcome.  The middleware has the root as trust
anchor and the intermediate as a known intermediate; the client presents its leaf and the
intermediate, as a TLS server reports them.

The *floor* is what any correct implementation must do with the same input, with cryptography
alone: load both PEMs and verify the leaf against a store holding the root, with a client
verifier built for the current time::

    leaf = x509.load_pem_x509_certificate(leaf_pem)
    intermediate = x509.load_pem_x509_certificate(intermediate_pem)
    PolicyBuilder().store(store).build_client_verifier().verify(leaf, [intermediate])

Both variants get their own never-seen certificates each round (issued before the timed
loop, one shared leaf key: the leaf's own key plays no part in validating it).  Rounds are
interleaved (the order rotates each round) and the garbage collector runs before each batch,
outside the timed region.  The figure is the median of the per-round ratios miss / floor,
with the 10th-90th percentile spread: ratios measured side by side drift far less than
absolute times on a shared machine.  Times are this process's CPU time by default
(``--clock cpu``: what the work costs, not what the neighbours on a shared machine took while
it waited); ``--clock wall`` measures elapsed time instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the checkout's asgi_mtls
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store

from asgi_mtls import MTLSMiddleware
from asgi_mtls.testing import CertificateAuthority, IssuedCertificate, asgi_tls_scope_extension

LeafKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
CLOCK = CLOCKS["cpu"]


@dataclass
class Hierarchy:
    """A root, an intermediate that issues clients, and the key every client shares."""

    name: str
    root: CertificateAuthority
    intermediate: CertificateAuthority
    leaf_key: LeafKey
    serials: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def build(cls, name: str, new_key: Callable[[], LeafKey]) -> Hierarchy:
        root = CertificateAuthority(f"Bench {name} Root", key=new_key())
        intermediate = root.intermediate(f"Bench {name} Clients CA", key=new_key())
        return cls(name, root, intermediate, new_key())

    def fresh(self, count: int) -> list[IssuedCertificate]:
        clients = []
        for _ in range(count):
            number = next(self.serials)
            clients.append(
                self.intermediate.issue_client(
                    f"client-{number}",
                    spiffe_id=f"spiffe://bank.example/clients/{number}",
                    key=self.leaf_key,
                )
            )
        self.intermediate.issued.clear()
        return clients


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("the miss path is called through the resolver, never the app")


def _scope(client: IssuedCertificate) -> dict[str, Any]:
    """What the resolver reads of an HTTP scope from a direct TLS connection."""
    tls = asgi_tls_scope_extension(client)
    return {
        "type": "http",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "extensions": {"tls": tls},
    }


class Miss:
    """The middleware's resolver meeting never-seen certificates."""

    def __init__(self, pki: Hierarchy) -> None:
        self.name = f"miss/{pki.name}"
        self.pki = pki
        self.middleware = MTLSMiddleware(
            _no_app,
            trust=pki.root.certificate,
            intermediates=[pki.intermediate.certificate],
            trusted_proxies=["127.0.0.1"],
        )

    def prepare(self, n: int) -> Callable[[], float]:
        clients = self.pki.fresh(n)
        scopes = [_scope(client) for client in clients]
        expected = [str(c.certificate.subject) for c in clients]
        resolver = self.middleware.resolver

        def run() -> float:
            resolve = resolver.resolve
            misses = resolver.misses
            started = CLOCK()
            identities = [resolve(scope) for scope in scopes]
            elapsed = CLOCK() - started
            if resolver.misses - misses != n:
                raise RuntimeError(f"{resolver.misses - misses} misses for {n} new certificates")
            got = [str(i.certificate.subject) if i else None for i in identities]
            if got != expected:
                raise RuntimeError(f"miss path resolved {got[:2]}, expected {expected[:2]}")
            return elapsed

        return run


class Floor:
    """cryptography's own PEM load and client verification of never-seen certificates."""

    def __init__(self, pki: Hierarchy) -> None:
        self.name = f"floor/{pki.name}"
        self.pki = pki
        self.store = Store([pki.root.certificate])

    def prepare(self, n: int) -> Callable[[], float]:
        inputs = [(c.pem, self.pki.intermediate.pem) for c in self.pki.fresh(n)]
        store = self.store

        def run() -> float:
            load = x509.load_pem_x509_certificate
            started = CLOCK()
            lengths = []
            for leaf_pem, intermediate_pem in inputs:
                leaf = load(leaf_pem.encode("ascii"))
                intermediate = load(intermediate_pem.encode("ascii"))
                verifier = PolicyBuilder().store(store).build_client_verifier()
                lengths.append(len(verifier.verify(leaf, [intermediate]).chain))
            elapsed = CLOCK() - started
            if lengths != [3] * n:
                raise RuntimeError(f"floor verified chains of lengths {set(lengths)}")
            return elapsed

        return run


Variant = Miss | Floor


def interleave(variants: list[Variant], rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per certificate of each variant, one value per round (one warm-up first)."""
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for number in range(-1, rounds):
        shift = number % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            run = variant.prepare(per_round)
            gc.collect()
            elapsed = run()
            if number >= 0:
                times[variant.name].append(elapsed / per_round)
    return times


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def report(times: dict[str, list[float]], names: list[str]) -> list[str]:
    lines = [
        "| case | miss µs | floor µs | ratio (median) | spread (p10-p90) |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        miss, floor = times[f"miss/{name}"], times[f"floor/{name}"]
        ratios = [m / f for m, f in zip(miss, floor, strict=True)]
        miss_us, floor_us = statistics.median(miss) * 1e6, statistics.median(floor) * 1e6
        lines.append(
            f"| {name} | {miss_us:.1f} | {floor_us:.1f} | {statistics.median(ratios):.3f}x "
            f"| {_percentile(ratios, 0.1):.3f}-{_percentile(ratios, 0.9):.3f} |"
        )
    return lines


def profile(pki: Hierarchy, count: int) -> None:
    """cProfile of the miss path alone (``count`` never-seen certificates)."""
    variant = Miss(pki)
    variant.prepare(10)()  # warm up
    run = variant.prepare(count)
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu")
    parser.add_argument("--profile", choices=["ec", "rsa"], help="profile the miss path instead")
    args = parser.parse_args()
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    hierarchies = {
        "ec": Hierarchy.build("EC P-256", lambda: ec.generate_private_key(ec.SECP256R1())),
        "rsa": Hierarchy.build("RSA-2048", lambda: rsa.generate_private_key(65537, 2048)),
    }
    if args.profile:
        profile(hierarchies[args.profile], args.per_round * 10)
        return 0
    variants: list[Variant] = []
    for pki in hierarchies.values():
        variants += [Miss(pki), Floor(pki)]
    times = interleave(variants, args.rounds, args.per_round)
    print(
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"{args.rounds} interleaved rounds of {args.per_round} never-seen certificates "
        f"per variant, {args.clock} time"
    )
    print("\n".join(report(times, [pki.name for pki in hierarchies.values()])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
