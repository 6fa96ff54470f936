"""Issue #13: the middleware's events, the listeners, and the log listener's lines.

In process (httpx's ASGI transport, the tls extension as ``asgi_mtls.uvicorn`` fills it);
the listeners over real servers are in ``tests/e2e/test_observability_e2e.py``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from asgi_mtls import MTLSMiddleware, RejectionReason
from asgi_mtls.events import (
    Anonymous,
    Authenticated,
    CertificateExpiring,
    CertificateValidated,
    ConfigurationWarning,
    Configured,
    Forbidden,
    LogListener,
    Rejected,
    TrustReloaded,
    TrustReloadFailed,
    UntrustedHeader,
)
from asgi_mtls.testing import CertificateAuthority, nginx_escaped_header, simulate_connection
from asgi_mtls.validation import CertificateValidator
from asgi_mtls.validation.notices import RevocationFetchFailed, RevocationUpdated
from asgi_mtls.validation.revocation import RevocationChecker
from tests.apps import PAYMENTS, REPORTS, starlette_app
from tests.asgi import get, reason

pytestmark = pytest.mark.anyio


class Recorder:
    """A listener keeping every event it is given."""

    def __init__(self, *, hits: bool = True) -> None:
        self.hits = hits
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


def build(pki, cert=None, *, peer="127.0.0.1", app=None, **options: Any):
    options.setdefault("trust", pki.root.certificate)
    options.setdefault("intermediates", [pki.intermediate.certificate])
    middleware = MTLSMiddleware(app or starlette_app(), **options)
    return middleware, simulate_connection(middleware, cert, peer=peer)


async def test_authenticated_per_request_with_the_cache_flag(pki):
    recorder = Recorder()
    _, app = build(pki, pki.payments, listeners=[recorder])
    for _ in range(3):
        assert (await get(app, "/whoami")).status_code == 200
    seen = recorder.of(Authenticated)
    assert [event.cached for event in seen] == [False, True, True]
    assert {event.identity.principal for event in seen} == {PAYMENTS}
    assert {event.source for event in seen} == {"tls"}
    assert seen[0].scope["path"] == "/whoami"
    validated = recorder.of(CertificateValidated)
    assert len(validated) == 1  # the miss only
    assert validated[0].identity.principal == PAYMENTS and validated[0].reason is None
    assert 0 < validated[0].seconds < 5


async def test_anonymous_requests_are_events_too(pki):
    recorder = Recorder()
    _, app = build(pki, None, listeners=[recorder])
    assert (await get(app, "/public")).status_code == 200
    assert len(recorder.of(Anonymous)) == 1
    assert recorder.of(Authenticated) == []


@pytest.mark.parametrize(
    ("certificate", "expected"),
    [("untrusted", "untrusted"), ("expired", "expired"), ("server_only", "wrong_usage")],
)
async def test_rejected_carries_reason_source_and_peer(pki, certificate, expected):
    recorder = Recorder()
    _, app = build(pki, getattr(pki, certificate), listeners=[recorder])
    for _ in range(2):  # the second is served from the cache: the same event
        response = await get(app, "/public")
        assert response.status_code == 401 and reason(response) == expected
    rejected = recorder.of(Rejected)
    assert [event.reason.value for event in rejected] == [expected, expected]
    assert {event.source for event in rejected} == {"tls"}
    assert {event.peer for event in rejected} == {"127.0.0.1"}
    assert recorder.of(Authenticated) == [] and recorder.of(Anonymous) == []
    assert [event.reason.value for event in recorder.of(CertificateValidated)] == [expected]


async def test_untrusted_proxy_is_a_rejection_naming_its_source(pki):
    recorder = Recorder()
    header = nginx_escaped_header(pki.payments)
    _, app = build(
        pki, None, peer="203.0.113.7", listeners=[recorder], trusted_proxies=["10.0.0.1"]
    )
    response = await get(app, "/public", headers={"x-ssl-client-cert": header})
    assert reason(response) == "untrusted_proxy"
    (event,) = recorder.of(Rejected)
    assert event.source == "nginx" and event.peer == "203.0.113.7"


async def test_ignored_untrusted_header_is_an_event(pki):
    recorder = Recorder()
    header = nginx_escaped_header(pki.payments)
    _, app = build(
        pki,
        None,
        peer="203.0.113.7",
        listeners=[recorder],
        on_untrusted_header="ignore",
        trusted_proxies=["10.0.0.1"],
    )
    response = await get(app, "/public", headers={"x-ssl-client-cert": header})
    assert response.status_code == 200  # anonymous
    (event,) = recorder.of(UntrustedHeader)
    assert event.source == "nginx" and event.peer == "203.0.113.7"
    assert len(recorder.of(Anonymous)) == 1


@pytest.mark.parametrize(
    ("options", "path", "cert", "where", "status", "code"),
    [
        ({}, "/payments", "reports", "route", 403, "forbidden"),
        ({}, "/payments", None, "route", 401, "missing"),
        (
            {"policies": {"/reports": "policy"}},
            "/reports",
            "payments",
            "policy /reports",
            403,
            "forbidden",
        ),
        ({"require_certificate": True}, "/public", None, "require_certificate", 401, "missing"),
        ({"deny_by_default": True}, "/public", "payments", "deny_by_default", 403, "forbidden"),
    ],
)
async def test_forbidden_says_where_and_what(pki, options, path, cert, where, status, code):
    from asgi_mtls import require_client

    if options.get("policies"):
        options = {"policies": {"/reports": require_client(REPORTS)}}
    recorder = Recorder()
    _, app = build(pki, getattr(pki, cert) if cert else None, listeners=[recorder], **options)
    response = await get(app, path)
    assert response.status_code == status and reason(response) == code
    (event,) = recorder.of(Forbidden)
    assert event.where == where and event.reason.value == code
    assert event.requirement  # what was required, described
    assert (event.identity is None) == (cert is None)
    assert recorder.of(Rejected) == []


async def test_a_failing_listener_never_changes_the_decision(pki, caplog):
    class Broken:
        def __call__(self, event: Any) -> None:
            raise RuntimeError("listener bug")

    recorder = Recorder()
    _, good = build(pki, pki.payments, listeners=[Broken(), recorder])
    _, bad = build(pki, pki.untrusted, listeners=[Broken(), recorder])
    with caplog.at_level(logging.ERROR, logger="asgi_mtls.listeners"):
        for _ in range(3):
            assert (await get(good, "/payments")).json() == {"paid_by": PAYMENTS}
            assert reason(await get(bad, "/payments")) == "untrusted"
    assert len(recorder.of(Authenticated)) == 3  # the listener after the broken one still runs
    assert len(recorder.of(Rejected)) == 3
    failures = [r for r in caplog.records if r.name == "asgi_mtls.listeners"]
    assert failures and "listener bug" in (failures[0].exc_text or "")
    assert len(failures) == 2  # one report per listener, then at most one a minute


async def test_hit_path_is_untouched_without_listeners_that_take_hits(pki):
    """Zero cost when absent (issue #13): the identify step is the resolver's own method, the
    resolver has no miss path; the log listener (hits=False) changes neither but the miss."""
    plain, _ = build(pki, listeners=[])
    assert plain._identify == plain.resolver.resolve
    assert plain.resolver.miss_path is None and plain.events is None
    default, _ = build(pki)  # the log listener
    assert default._identify == default.resolver.resolve
    assert default.resolver.miss_path is not None
    assert [type(listener) for listener in default.events.listeners] == [LogListener]
    observed, _ = build(pki, listeners=[Recorder()])
    assert observed._identify != observed.resolver.resolve


async def test_no_listeners_means_no_log_line(pki, caplog):
    _, app = build(pki, pki.untrusted, listeners=[])
    with caplog.at_level(logging.DEBUG, logger="asgi_mtls"):
        assert reason(await get(app, "/public")) == "untrusted"
    assert not [r for r in caplog.records if "rejected" in r.getMessage()]


async def test_the_refusal_line_keeps_its_format_and_carries_fields(pki, caplog):
    _, app = build(pki, pki.reports)
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        await get(app, "/payments")
    (record,) = [r for r in caplog.records if r.name == "asgi_mtls.auth"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "client certificate rejected: reason=forbidden status=403 path='/payments' "
        "client='127.0.0.1' peer=127.0.0.1 detail="
        f'"spiffe {REPORTS!r}: principal is not SPIFFE ID {PAYMENTS}"'
    )
    fields = {key: getattr(record, key) for key in ("event", "reason", "status", "where")}
    assert fields == {"event": "forbidden", "reason": "forbidden", "status": 403, "where": "route"}
    assert record.principal == REPORTS
    assert record.path == "/payments" and record.peer == "127.0.0.1"


async def test_accepted_certificates_are_logged_at_debug_once(pki, caplog):
    _, app = build(pki, pki.payments)
    with caplog.at_level(logging.DEBUG, logger="asgi_mtls"):
        for _ in range(3):
            await get(app, "/whoami")
    accepted = [r for r in caplog.records if r.getMessage().startswith("client certificate acc")]
    assert len(accepted) == 1 and accepted[0].levelno == logging.DEBUG
    assert accepted[0].fingerprint == pki.payments.fingerprint_sha256


async def test_configuration_warning_is_an_event(pki, caplog):
    from asgi_mtls import TLSExtensionSource

    recorder = Recorder()
    build(pki, trusted_proxies=["127.0.0.1"], sources=[TLSExtensionSource()], listeners=[recorder])
    (event,) = recorder.of(ConfigurationWarning)
    assert event.option == "trusted_proxies"
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        build(pki, trusted_proxies=["127.0.0.1"], sources=[TLSExtensionSource()])
    (record,) = [r for r in caplog.records if r.name == "asgi_mtls.config"]
    assert "no source reads certificate headers" in record.getMessage()


async def test_configured_reports_the_cache_size(pki):
    recorder = Recorder()
    middleware, app = build(pki, pki.payments, listeners=[recorder])
    (configured,) = recorder.of(Configured)
    assert configured.cache_entries() == 0
    await get(app, "/whoami")
    assert configured.cache_entries() == 1 == len(middleware.resolver.cache)
    assert configured.cache_bytes() == middleware.resolver.cache.bytes > 0


# --- expiry warnings ---------------------------------------------------------------------


def _issued(pki, *, lifetime: dt.timedelta, left: dt.timedelta):
    now = dt.datetime.now(dt.UTC)
    return pki.intermediate.issue_client(
        spiffe_id="spiffe://bank.example/expiring",
        not_before=now + left - lifetime,
        not_after=now + left,
    )


@pytest.mark.parametrize(
    ("lifetime", "left", "warned"),
    [
        (dt.timedelta(days=365), dt.timedelta(days=10), True),  # within 14 days
        (dt.timedelta(days=365), dt.timedelta(days=20), False),
        (dt.timedelta(hours=1), dt.timedelta(minutes=50), False),  # an SVID, fresh
        (dt.timedelta(hours=1), dt.timedelta(minutes=10), True),  # an SVID not renewed
        (dt.timedelta(days=30), dt.timedelta(days=12), False),  # > a third of its life left
    ],
)
async def test_expiry_warning_once_per_certificate(pki, caplog, lifetime, left, warned):
    cert = _issued(pki, lifetime=lifetime, left=left)
    recorder = Recorder(hits=False)
    middleware, app = build(pki, cert, listeners=[recorder, LogListener()])
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        for _ in range(2):
            assert (await get(app, "/whoami")).status_code == 200
            middleware.resolver.cache.clear()  # validated again: still said once
    events = recorder.of(CertificateExpiring)
    lines = [r for r in caplog.records if r.name == "asgi_mtls.expiry"]
    assert len(events) == len(lines) == (1 if warned else 0)
    if warned:
        assert abs(events[0].remaining - left) < dt.timedelta(minutes=1)
        assert "client certificate expires in" in lines[0].getMessage()


async def test_expiry_warning_window_is_configurable_and_can_be_off(pki):
    cert = _issued(pki, lifetime=dt.timedelta(days=365), left=dt.timedelta(days=40))
    wide, off = Recorder(), Recorder()
    _, app = build(pki, cert, listeners=[wide], expiry_warning=dt.timedelta(days=60))
    await get(app, "/whoami")
    _, quiet = build(pki, cert, listeners=[off], expiry_warning=None)
    await get(quiet, "/whoami")
    assert len(wide.of(CertificateExpiring)) == 1 and off.of(CertificateExpiring) == []
    with pytest.raises(ValueError, match="expiry_warning"):
        build(pki, expiry_warning=-5)


# --- the validator's background work ----------------------------------------------------


async def test_trust_reloads_and_failures_reach_the_listeners(pki, tmp_path):
    trust = pki.root.write(tmp_path, "trust")
    recorder = Recorder()
    middleware, app = build(pki, pki.payments, trust=str(trust), listeners=[recorder])
    other = CertificateAuthority("Other Root")
    trust.write_text(pki.root.pem + other.pem)
    assert middleware.validator.reload() is True
    (reloaded,) = recorder.of(TrustReloaded)
    assert reloaded.roots == 2
    trust.write_text("not a certificate")
    assert middleware.validator.reload() is False
    (failed,) = recorder.of(TrustReloadFailed)
    assert "certificate" in failed.error.lower()
    assert (await get(app, "/whoami")).status_code == 200  # the previous set stays


async def test_revocation_updates_and_failures_reach_the_listeners(pki, tmp_path):
    from cryptography.hazmat.primitives.serialization import Encoding

    crl = tmp_path / "clients.crl"
    crl.write_bytes(pki.intermediate.crl(revoked=[]).public_bytes(Encoding.PEM))
    checker = RevocationChecker(crl="hard-fail", crl_files=[crl], crl_scope="leaf")
    validator = CertificateValidator(
        pki.root.certificate, intermediates=[pki.intermediate.certificate], revocation=checker
    )
    recorder = Recorder()
    _, app = build(pki, pki.payments, trust=validator, intermediates=None, listeners=[recorder])
    assert (await get(app, "/whoami")).status_code == 200
    crl.write_bytes(pki.intermediate.crl(revoked=[pki.payments]).public_bytes(Encoding.PEM))
    assert validator.reload_if_changed() is True
    (updated,) = recorder.of(RevocationUpdated)
    assert updated.kind == "crl_files" and str(crl) in updated.source
    assert reason(await get(app, "/whoami")) == "revoked"
    crl.write_text("garbage")
    validator.reload_if_changed()
    (failed,) = recorder.of(RevocationFetchFailed)
    assert failed.source == "CRL files" and failed.retry_in == 0


async def test_reason_codes_of_events_are_the_enum(pki):
    recorder = Recorder()
    _, app = build(pki, pki.not_yet_valid, listeners=[recorder])
    await get(app, "/public")
    (event,) = recorder.of(Rejected)
    assert event.reason is RejectionReason.NOT_YET_VALID
