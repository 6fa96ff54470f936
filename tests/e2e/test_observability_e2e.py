"""Issue #13 over real uvicorn TLS: Prometheus metrics scraped over HTTP, OpenTelemetry spans
exported by the SDK's in-memory exporter, and the identity hook once per certificate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from asgi_mtls import ClientIdentity, MTLSMiddleware
from asgi_mtls.authorization import dry_run, role
from asgi_mtls.events import LogListener
from asgi_mtls.opentelemetry import OpenTelemetryListener
from asgi_mtls.prometheus import PrometheusListener
from tests.apps import PAYMENTS, REPORTS, starlette_app

from .conftest import PKIFiles
from .proxies import free_port
from .test_uvicorn_mtls import client, middleware_options, serve_tls

pytestmark = pytest.mark.e2e


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the registry's HTTP endpoint serves, by name and labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def broad_handshake(pki, pki_files: PKIFiles, tmp_path_factory) -> dict[str, Any]:
    """uvicorn's handshake also accepts the attacker's root, so that the middleware is the
    one refusing its clients (``untrusted``), as in ``test_uvicorn_mtls.py``."""
    bundle = tmp_path_factory.mktemp("broad") / "handshake-cas.pem"
    bundle.write_text(pki_files.client_ca_bundle.read_text() + pki.other_root.pem)
    return {"client_ca": bundle}


@pytest.fixture
def metrics_server() -> Iterator[tuple[CollectorRegistry, int]]:
    registry = CollectorRegistry()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield registry, port
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_prometheus_metrics_scraped_over_http(
    pki, pki_files: PKIFiles, metrics_server, broad_handshake
):
    registry, port = metrics_server
    app = MTLSMiddleware(
        starlette_app(),
        **middleware_options(pki),
        listeners=[LogListener(), PrometheusListener(registry)],
        policies=dry_run({"/whoami": role("auditor")}),
    )
    with serve_tls(pki, pki_files, app, **broad_handshake) as url:
        with client(pki_files, pki.payments) as http:
            for _ in range(3):
                assert http.get(url + "/payments").status_code == 200
            assert http.get(url + "/whoami").status_code == 200  # dry run: would deny
        with client(pki_files, pki.reports) as http:
            assert http.get(url + "/payments").status_code == 403
        with client(pki_files, pki.untrusted) as http:
            assert http.get(url + "/public").status_code == 401
        with client(pki_files, None) as http:
            assert http.get(url + "/public").status_code == 200
    samples = scrape(port)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    requests = "asgi_mtls_requests_total"
    assert value(requests, outcome="authenticated", reason="", source="tls") == 5
    assert value(requests, outcome="rejected", reason="untrusted", source="tls") == 1
    assert value(requests, outcome="anonymous", reason="", source="") == 1
    denials = "asgi_mtls_authorization_denials_total"
    assert value(denials, reason="forbidden", where="route") == 1
    assert value("asgi_mtls_would_deny_total", reason="forbidden", where="policy /whoami") == 1
    # Three certificates validated (payments, reports, untrusted): misses only.
    assert value("asgi_mtls_validation_duration_seconds_count") == 3
    assert value("asgi_mtls_client_certificate_expiry_seconds_count") == 2
    assert value("asgi_mtls_cache_entries") == 3
    # No label holds a principal or a certificate.
    text = repr(samples)
    assert PAYMENTS not in text and pki.payments.fingerprint_sha256 not in text


def test_opentelemetry_spans_carry_the_certificate(pki, pki_files: PKIFiles, broad_handshake):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    inner = MTLSMiddleware(
        starlette_app(),
        **middleware_options(pki),
        listeners=[LogListener(), OpenTelemetryListener()],
    )
    app = OpenTelemetryMiddleware(inner, tracer_provider=provider)
    with serve_tls(pki, pki_files, app, **broad_handshake) as url:
        with client(pki_files, pki.payments) as http:
            assert http.get(url + "/payments").status_code == 200
            assert http.get(url + "/payments").status_code == 200  # cached: attributes too
        with client(pki_files, pki.reports) as http:
            assert http.get(url + "/payments").status_code == 403
        with client(pki_files, pki.untrusted) as http:
            assert http.get(url + "/public").status_code == 401
    servers = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert len(servers) == 4
    ok, cached, forbidden, untrusted = servers
    certificate = pki.payments.certificate
    expected = {
        "tls.client.subject": certificate.subject.rfc4514_string(),
        "tls.client.issuer": certificate.issuer.rfc4514_string(),
        "tls.client.hash.sha256": pki.payments.fingerprint_sha256.upper(),
        "tls.client.not_before": certificate.not_valid_before_utc.strftime(
            "%Y-%m-%dT%H:%M:%S.000Z"
        ),
        "tls.client.not_after": certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "user.id": PAYMENTS,
        "user.roles": (),
    }
    for span in (ok, cached):
        attributes = dict(span.attributes or {})
        assert {key: attributes.get(key) for key in expected} == expected
        assert not span.events
    assert dict(forbidden.attributes or {})["user.id"] == REPORTS
    (refusal,) = forbidden.events
    assert refusal.name == "asgi_mtls.refusal"
    assert dict(refusal.attributes or {}) == {
        "error.type": "forbidden",
        "http.response.status_code": 403,
    }
    assert "tls.client.subject" not in dict(untrusted.attributes or {})
    (refusal,) = untrusted.events
    assert dict(refusal.attributes or {})["error.type"] == "untrusted"


def test_the_identity_hook_runs_once_per_certificate(pki, pki_files: PKIFiles):
    calls: list[str] = []

    async def on_identity(identity: ClientIdentity) -> ClientIdentity | None:
        calls.append(identity.principal)
        await asyncio.sleep(0.01)  # a database round trip
        if identity.principal == REPORTS:
            return None
        return identity.with_extra(tenant="acme")

    app = MTLSMiddleware(starlette_app(), **middleware_options(pki), on_identity=on_identity)
    with serve_tls(pki, pki_files, app) as url:
        with client(pki_files, pki.payments) as http:
            bodies: list[Any] = [http.get(url + "/payments").json() for _ in range(4)]
        with client(pki_files, pki.reports) as http:
            refused = [http.get(url + "/reports") for _ in range(2)]
    assert bodies == [{"paid_by": PAYMENTS}] * 4
    assert [r.status_code for r in refused] == [403, 403]
    assert {r.json()["reason"] for r in refused} == {"identity_refused"}
    assert calls == [PAYMENTS, REPORTS]


def test_a_hook_failure_is_not_remembered_on_the_connection(pki, pki_files: PKIFiles):
    """A failure of the hook is not remembered for the connection: the next request on the
    same keep-alive connection asks again (the per-connection memo a server may keep is
    covered in process by test_identity_hook.py)."""
    outcomes = iter([ConnectionError("database down"), None])
    calls: list[str] = []

    async def on_identity(identity: ClientIdentity) -> ClientIdentity:
        calls.append(identity.principal)
        error = next(outcomes)
        if error is not None:
            raise error
        return identity

    app = MTLSMiddleware(starlette_app(), **middleware_options(pki), on_identity=on_identity)
    with serve_tls(pki, pki_files, app) as url, client(pki_files, pki.payments) as http:
        first = http.get(url + "/payments")
        second = http.get(url + "/payments")  # the same connection (keep-alive)
        third = http.get(url + "/payments")
    assert first.status_code == 503 and first.json()["reason"] == "identity_hook_error"
    assert second.json() == third.json() == {"paid_by": PAYMENTS}
    assert calls == [PAYMENTS, PAYMENTS]
