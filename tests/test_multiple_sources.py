"""Several certificate sources configured at once: one identity per request."""

from __future__ import annotations

import pytest

from asgi_mtls import HeaderSource, MTLSMiddleware, TLSExtensionSource
from asgi_mtls.sources import HEADER_FORMATS
from asgi_mtls.testing import encode_certificate_headers, simulate_connection
from tests.apps import PAYMENTS, REPORTS, starlette_app
from tests.asgi import get, reason


def app(pki, cert=None, peer="10.0.0.5"):
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        trusted_proxies=["10.0.0.0/8"],
        sources=[TLSExtensionSource(), HeaderSource("envoy"), HeaderSource("haproxy")],
    )
    return simulate_connection(middleware, cert, peer=peer)


@pytest.mark.anyio
async def test_each_source_applies_on_its_own_and_is_recorded(pki):
    internal = await get(app(pki, pki.payments), "/whoami")  # a direct TLS caller
    assert internal.json()["principal"] == PAYMENTS
    assert internal.json()["source"] == "tls"
    envoy = await get(app(pki), "/whoami", encode_certificate_headers("envoy", pki.reports))
    assert envoy.json()["principal"] == REPORTS
    assert envoy.json()["source"] == "envoy"
    haproxy = await get(app(pki), "/whoami", encode_certificate_headers("haproxy", pki.reports))
    assert haproxy.json()["source"] == "haproxy"


@pytest.mark.anyio
async def test_two_sources_in_one_request_are_rejected(pki):
    both = {
        **encode_certificate_headers("envoy", pki.payments),
        **encode_certificate_headers("haproxy", pki.payments),
    }
    response = await get(app(pki), "/whoami", both)
    assert response.status_code == 400
    assert reason(response) == "conflicting_sources"
    tls_and_header = await get(
        app(pki, pki.payments), "/whoami", encode_certificate_headers("envoy", pki.reports)
    )
    assert reason(tls_and_header) == "conflicting_sources"


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", sorted(HEADER_FORMATS))
async def test_every_format_is_refused_from_an_untrusted_peer(pki, fmt):
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        trusted_proxies=["10.0.0.0/8"],
        sources=[HeaderSource(fmt)],
    )
    headers = encode_certificate_headers(fmt, pki.payments)
    trusted = await get(simulate_connection(middleware, peer="10.1.2.3"), "/whoami", headers)
    assert trusted.status_code == 200
    assert trusted.json()["principal"] == PAYMENTS
    spoofed = await get(simulate_connection(middleware, peer="192.0.2.1"), "/whoami", headers)
    assert spoofed.status_code == 400
    assert reason(spoofed) == "untrusted_proxy"


@pytest.mark.anyio
async def test_an_empty_per_source_proxy_list_trusts_nobody(pki):
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        trusted_proxies=["10.0.0.0/8"],
        sources=[HeaderSource("envoy", trusted_proxies=[])],
    )
    headers = encode_certificate_headers("envoy", pki.payments)
    response = await get(simulate_connection(middleware, peer="10.1.2.3"), "/whoami", headers)
    assert reason(response) == "missing"  # never read: no proxy may send it
