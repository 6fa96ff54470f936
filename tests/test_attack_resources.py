"""Resource attacks on the middleware (issue #8, items 4 to 6), in process.

A trusted proxy forwards whatever certificate a client presents (nginx ``optional_no_ca``), so
an attacker chooses the header values: many distinct ones, large ones, ones that make a source
fail.  Memory must stay bounded and every failure must be a typed refusal.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Mapping

import pytest
from cryptography import x509

from asgi_mtls import CertificateRejected, HeaderSource, MTLSMiddleware, TLSExtensionSource
from asgi_mtls.errors import Rejection
from asgi_mtls.sources import PresentedCertificate, RawValues
from asgi_mtls.testing import CertificateAuthority, nginx_escaped_header, simulate_connection
from tests.apps import starlette_app
from tests.asgi import get, reason
from tests.certificates import reissue

MIB = 1024 * 1024


def behind_nginx(pki, **options) -> MTLSMiddleware:
    return MTLSMiddleware(
        starlette_app(), trust=pki.root.certificate, trusted_proxies=["10.0.0.1"], **options
    )


@pytest.mark.anyio
async def test_cached_refusals_keep_no_exception_or_request_alive(pki):
    middleware = behind_nginx(pki)
    app = simulate_connection(middleware, None, peer="10.0.0.1")
    header = nginx_escaped_header(pki.untrusted)
    for _ in range(3):
        response = await get(app, "/whoami", {"x-ssl-client-cert": header})
        assert response.status_code == 401 and reason(response) == "untrusted"
    cache = middleware.resolver.cache
    outcomes = [entry[0] for entry in cache._refused.entries.values()]
    assert outcomes and all(type(outcome) is Rejection for outcome in outcomes)
    assert middleware.resolver.misses == 1
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, CertificateRejected)]


@pytest.mark.anyio
@pytest.mark.parametrize(("count", "padding"), [(1500, 14_000), (2000, 0)])
async def test_distinct_junk_certificates_cost_bounded_memory(pki, count, padding):
    """Many distinct self-signed (or untrusted) certificates through a trusted proxy: each is
    refused, and what stays in memory is bounded by the cache's refusal budget."""
    attacker = CertificateAuthority("Junk Root")
    middleware = behind_nginx(pki)
    app = simulate_connection(middleware, None, peer="10.0.0.1")
    headers = []
    for index in range(count):
        cert = _large(attacker, index, padding) if padding else attacker.issue_client(str(index))
        headers.append(nginx_escaped_header(cert))
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for value in headers:
            response = await get(app, "/whoami", {"x-ssl-client-cert": value})
            assert response.status_code == 401, response.text
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 12 * MIB, f"{grown / MIB:.1f} MiB retained after {count} refusals"
    assert middleware.resolver.cache.bytes <= 32 * MIB // 8


def _large(ca: CertificateAuthority, index: int, padding: int):
    leaf = ca.issue_client(f"big-{index}")
    padded = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), index.to_bytes(4, "big") * (padding // 4)
    )
    return reissue(
        leaf.certificate, ca.key, serial=x509.random_serial_number(), extensions=[(padded, False)]
    )


@pytest.mark.anyio
async def test_large_distinct_header_values_are_bounded_in_bytes(pki):
    """4,096 distinct 60 KiB values from a trusted peer: refused as too large, and the cache
    never holds more than its byte budget (a key is charged its size)."""
    middleware = behind_nginx(pki, cache_bytes=8 * MIB)
    app = simulate_connection(middleware, None, peer="10.0.0.1")
    for index in range(4096):
        value = f"{index:08d}" + "A" * 60_000
        response = await get(app, "/whoami", {"x-ssl-client-cert": value})
        assert reason(response) == "too_large"
    assert middleware.resolver.cache.bytes <= MIB  # the refusal share of 8 MiB


class ExplodingSource:
    """A source with a bug: ``find`` or ``decode`` raises an unexpected exception."""

    requires_trusted_proxy = False

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        self.where = where

    def find(self, scope: Mapping[str, object]) -> RawValues | None:
        if self.where == "find":
            raise KeyError("boom")
        return ("x",)

    def decode(self, raw: RawValues) -> PresentedCertificate | None:
        raise ZeroDivisionError("boom")


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["find", "decode"])
async def test_a_failing_source_is_a_typed_refusal_not_a_500(pki, caplog, where):
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        sources=[TLSExtensionSource(), ExplodingSource("custom", where)],
    )
    app = simulate_connection(middleware, pki.payments)
    response = await get(app, "/public")
    assert response.status_code == 400 and reason(response) == "source_error"
    assert "custom" in caplog.text and "reason=source_error" in caplog.text


@pytest.mark.anyio
async def test_a_failing_header_decoder_is_a_typed_refusal(pki, monkeypatch):
    source = HeaderSource("nginx")

    def broken(raw: RawValues) -> PresentedCertificate | None:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(source, "decode", broken)
    middleware = MTLSMiddleware(
        starlette_app(), trust=pki.root.certificate, trusted_proxies=["10.0.0.1"], sources=[source]
    )
    app = simulate_connection(middleware, None, peer="10.0.0.1")
    response = await get(app, "/public", {"x-ssl-client-cert": nginx_escaped_header(pki.payments)})
    assert response.status_code == 400 and reason(response) == "source_error"
