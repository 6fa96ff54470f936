from __future__ import annotations

import pytest

from asgi_mtls import CertificateRejected, RejectionReason, require_client
from asgi_mtls.identity import build_identity, resolve_principal_strategy
from asgi_mtls.inject import IDENTITY_SCOPE_KEY


def identity(cert):
    chain = (cert.certificate, *cert.chain)
    return build_identity(chain, source="tls", principal=resolve_principal_strategy("default"))


def test_conditions_combine_with_and(pki):
    payments, reports = identity(pki.payments), identity(pki.reports)
    assert require_client().allows(payments)
    assert require_client("spiffe://bank.example/payments").allows(payments)
    assert not require_client("spiffe://bank.example/payments").allows(reports)
    assert require_client(trust_domain="bank.example").allows(reports)
    assert not require_client(trust_domain="other.example").allows(reports)
    assert not require_client(trust_domain="bank.example").allows(identity(pki.cn_only))
    both = require_client("spiffe://bank.example/reports", predicate=lambda i: i.source == "nginx")
    assert not both.allows(reports)


def test_principal_comparison_is_exact(pki):
    dns = identity(pki.dns_client)  # DNS SAN billing.internal.example
    assert require_client("billing.internal.example").allows(dns)
    assert not require_client("Billing.internal.example").allows(dns)
    assert not require_client("billing.internal.example.com").allows(dns)
    for unusable in ("billing.internal.example ", "billing\u2010internal.example"):
        with pytest.raises(ValueError, match="principal"):  # not a name of any kind
            require_client(unusable)


def test_check_on_a_scope(pki):
    requirement = require_client("spiffe://bank.example/payments")
    assert requirement.check({IDENTITY_SCOPE_KEY: identity(pki.payments)}).principal.endswith(
        "/payments"
    )
    with pytest.raises(CertificateRejected) as info:
        requirement.check({IDENTITY_SCOPE_KEY: identity(pki.reports)})
    assert info.value.reason is RejectionReason.FORBIDDEN
    assert info.value.status_code == 403
    with pytest.raises(CertificateRejected) as info:
        requirement.check({IDENTITY_SCOPE_KEY: None})
    assert info.value.reason is RejectionReason.MISSING
    with pytest.raises(RuntimeError, match="MTLSMiddleware"):
        requirement.check({})
    with pytest.raises(RuntimeError, match="holds str"):
        requirement.check({IDENTITY_SCOPE_KEY: "spiffe://bank.example/payments"})


def test_describe():
    assert require_client().describe() == "any valid client certificate"
    described = require_client("b", "a", trust_domain="bank.example").describe()
    assert described == "principal is DNS name a or DNS name b and SPIFFE trust domain bank.example"


@pytest.mark.parametrize(
    "bad", [{"principals": ("",)}, {"principals": ("a\x00",)}, {"trust_domain": "Bank.Example"}]
)
def test_invalid_requirements(bad):
    with pytest.raises(ValueError, match="invalid"):
        require_client(*bad.get("principals", ()), trust_domain=bad.get("trust_domain"))


def test_decorator_needs_request_or_websocket():
    def endpoint(req):
        return None

    with pytest.raises(TypeError, match='"request" or "websocket"'):
        require_client()(endpoint)
    with pytest.raises(TypeError):
        require_client()(42)


def test_rejection_is_an_http_exception_without_the_log_detail():
    from starlette.exceptions import HTTPException

    exc = CertificateRejected(RejectionReason.UNTRUSTED, "issuer CN=Evil")
    assert isinstance(exc, HTTPException)
    assert exc.status_code == 401
    assert exc.detail == RejectionReason.UNTRUSTED.message
    assert "Evil" not in exc.json_body().decode()
    assert str(exc) == "untrusted: issuer CN=Evil"
    assert exc.headers == {"cache-control": "no-store"}


def test_the_errors_page_lists_every_reason_code():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \(`([A-Z_]+)`\) \| (\d+) \|", page, re.M)
    assert sorted(rows) == sorted(
        (reason.value, reason.name, str(reason.status_code)) for reason in RejectionReason
    )
    assert f"All {len(RejectionReason)} members" in page


def test_every_reason_has_a_status_and_a_message():
    # 503: the server's own state (a configuration, the app's identity look-up), not the
    # client's certificate; the client may try again later.
    unavailable = {
        RejectionReason.MISCONFIGURED,
        RejectionReason.IDENTITY_HOOK_ERROR,
        RejectionReason.IDENTITY_HOOK_TIMEOUT,
    }
    for reason in RejectionReason:
        expected = (503,) if reason in unavailable else (400, 401, 403)
        assert reason.status_code in expected
        assert reason.message
        assert CertificateRejected(reason).json_body()
