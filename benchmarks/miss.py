"""The miss rows of issue #10: a certificate the middleware has never seen.

The variant is the middleware's whole miss path, called through its resolver
(:class:`asgi_mtls.resolver.CertificateResolver`, what ``MTLSMiddleware`` calls per request):
find the ``tls`` extension, miss the cache, decode the PEM strings, validate with
:class:`~asgi_mtls.CertificateValidator`, build the :class:`~asgi_mtls.ClientIdentity`,
cache the outcome.  The middleware is configured as in every other row (the root as anchor,
the intermediate as a known intermediate) and the client presents its leaf and intermediate.

The floor is what any correct implementation must do with the same input, using cryptography
alone: load both PEMs and verify the leaf against a store holding the root, with a client
verifier built for the current time (a verifier built once would check every later
certificate at a stale moment)::

    leaf = x509.load_pem_x509_certificate(leaf_pem)
    intermediate = x509.load_pem_x509_certificate(intermediate_pem)
    PolicyBuilder().store(store).build_client_verifier().verify(leaf, [intermediate])

Both sides get their own never-seen certificates each round, issued before the timed loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from starlette.types import Scope

from asgi_mtls import ClientIdentity, MTLSMiddleware
from asgi_mtls.testing import asgi_tls_scope_extension
from benchmarks import apps
from benchmarks.driver import Batch, PartResult, clock, http_scope, interleave
from benchmarks.inprocess import PEER
from benchmarks.pki import BenchPKI

__all__ = ["FloorVariant", "MissVariant", "run_misses"]


@dataclass
class _MissBatch:
    middleware: MTLSMiddleware
    scopes: list[Scope]
    expected: list[str]
    identities: list[ClientIdentity | None] = field(default_factory=list)
    misses_before: int = 0

    async def run(self) -> float:
        resolve = self.middleware.resolver.resolve
        append = self.identities.append
        self.misses_before = self.middleware.resolver.misses
        started = clock()
        for scope in self.scopes:
            append(resolve(scope))
        return clock() - started

    def check(self) -> None:
        got = [identity.principal if identity else None for identity in self.identities]
        if got != self.expected:
            raise RuntimeError(f"miss path resolved {got[:3]}..., expected {self.expected[:3]}")
        misses = self.middleware.resolver.misses - self.misses_before
        if misses != len(self.scopes):
            raise RuntimeError(f"{misses} cache misses for {len(self.scopes)} new certificates")


@dataclass
class MissVariant:
    """The middleware's resolver meeting never-seen certificates."""

    name: str
    pki: BenchPKI

    def __post_init__(self) -> None:
        options = apps.mtls_options(
            self.pki.root.certificate, [self.pki.intermediate.certificate], proxy=False
        )
        self.middleware = MTLSMiddleware(_no_app, **options)

    def prepare(self, n: int) -> Batch:
        clients = self.pki.fresh_clients(n)
        scopes = [
            http_scope(
                "/accounts/42",
                extensions={"tls": asgi_tls_scope_extension(c), "asgi_mtls.peer": dict(PEER)},
            )
            for c in clients
        ]
        expected = [_principal_of(c.certificate) for c in clients]
        return _MissBatch(self.middleware, scopes, expected)


@dataclass
class _FloorBatch:
    store: Store
    inputs: list[tuple[str, str]]
    chains: list[int] = field(default_factory=list)

    async def run(self) -> float:
        load = x509.load_pem_x509_certificate
        store = self.store
        append = self.chains.append
        started = clock()
        for leaf_pem, intermediate_pem in self.inputs:
            leaf = load(leaf_pem.encode("ascii"))
            intermediate = load(intermediate_pem.encode("ascii"))
            verifier = PolicyBuilder().store(store).build_client_verifier()
            append(len(verifier.verify(leaf, [intermediate]).chain))
        return clock() - started

    def check(self) -> None:
        if self.chains != [3] * len(self.inputs):
            raise RuntimeError(f"floor verified chains of lengths {set(self.chains)}")


@dataclass
class FloorVariant:
    """cryptography's own PEM load and client verification of never-seen certificates."""

    name: str
    pki: BenchPKI

    def __post_init__(self) -> None:
        self.store = Store([self.pki.root.certificate])

    def prepare(self, n: int) -> Batch:
        inputs = [(c.pem, self.pki.intermediate_pem) for c in self.pki.fresh_clients(n)]
        return _FloorBatch(self.store, inputs)


def _principal_of(certificate: x509.Certificate) -> str:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(san.get_values_for_type(x509.UniformResourceIdentifier)[0])


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("the miss rows call the resolver, never the app")


async def run_misses(*, rounds: int, per_round: int, progress: Callable[[str], None]) -> PartResult:
    """The EC P-256 and RSA-2048 miss ratios (cost of the miss path over the floor)."""
    ec_pki, rsa_pki = BenchPKI.ec(), BenchPKI.rsa()
    times = await interleave(
        [
            MissVariant("miss/ec", ec_pki),
            FloorVariant("floor/ec", ec_pki),
            MissVariant("miss/rsa", rsa_pki),
            FloorVariant("floor/rsa", rsa_pki),
        ],
        rounds=rounds,
        per_round=per_round,
        progress=progress,
    )
    return PartResult.of(
        times,
        miss_ec=("cost", "miss/ec", "floor/ec"),
        miss_rsa=("cost", "miss/rsa", "floor/rsa"),
    )
