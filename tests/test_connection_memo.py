"""The per-connection memo (issue #10): what a connection's certificate proved is remembered
on the connection, and never outlives the trust, the revocation state or the certificate."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from asgi_mtls import CertificateRejected, CertificateValidator, MTLSMiddleware, RejectionReason
from asgi_mtls.sources.tls import CONNECTION_EXTENSION
from asgi_mtls.testing import CertificateAuthority, asgi_tls_scope_extension
from asgi_mtls.validation.revocation import RevocationChecker
from tests.apps import starlette_app


def connection_scopes(cert, memo: dict[Any, Any]):
    """Scopes as one keep-alive connection gives them: a copy of the tls dict each time, the
    same memo dict."""
    tls = asgi_tls_scope_extension(cert)

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "path": "/",
            "headers": [],
            "extensions": {
                "tls": {**tls, "client_cert_chain": list(tls["client_cert_chain"])},
                CONNECTION_EXTENSION: memo,
            },
        }

    return scope


class Counting:
    """Counts how often the tls source is asked (every ask is work the memo saves)."""

    def __init__(self, middleware: MTLSMiddleware) -> None:
        self.finds = 0
        source = middleware.resolver.sources[0]
        real = source.find

        def find(scope: Any) -> Any:
            self.finds += 1
            return real(scope)

        source.find = find  # type: ignore[method-assign]


def test_a_keep_alive_connection_is_resolved_once(pki):
    middleware = MTLSMiddleware(
        starlette_app(), trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    counting = Counting(middleware)
    scope = connection_scopes(pki.payments, {})
    identities = [middleware.resolver.resolve(scope()) for _ in range(5)]
    assert identities[0] is not None and all(i is identities[0] for i in identities)
    assert counting.finds == 1 and middleware.resolver.misses == 1
    # Another connection of the same client: its own memo, the shared cache.
    other = connection_scopes(pki.payments, {})
    assert middleware.resolver.resolve(other()) is identities[0]
    assert counting.finds == 2 and middleware.resolver.misses == 1


def test_a_refusal_is_remembered_and_raised_each_time(pki):
    middleware = MTLSMiddleware(starlette_app(), trust=pki.root.certificate)
    scope = connection_scopes(pki.untrusted, {})
    for _ in range(3):
        with pytest.raises(CertificateRejected) as info:
            middleware.resolver.resolve(scope())
        assert info.value.reason is RejectionReason.UNTRUSTED
    assert middleware.resolver.misses == 1


def test_a_revocation_reaches_an_open_connection(tmp_path):
    root = CertificateAuthority("Memo CRL root")
    alice = root.issue_client("alice")
    crl = tmp_path / "root.crl"
    crl.write_bytes(root.crl().public_bytes(Encoding.PEM))
    checker = RevocationChecker(crl="hard-fail", crl_files=[crl], crl_scope="leaf")
    middleware = MTLSMiddleware(
        starlette_app(), trust=CertificateValidator(root.certificate, revocation=checker)
    )
    scope = connection_scopes(alice, {})
    assert middleware.resolver.resolve(scope()) is not None
    root.revoke(alice)
    crl.write_bytes(root.crl().public_bytes(Encoding.PEM))
    assert checker.reload_files(force=True)
    with pytest.raises(CertificateRejected) as info:
        middleware.resolver.resolve(scope())  # the same connection, the next request
    assert info.value.reason is RejectionReason.REVOKED


def test_the_memo_never_outlives_the_certificate(pki):
    now = [pki.payments.certificate.not_valid_after_utc.timestamp() - 5]
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        clock=lambda: now[0],
    )
    counting = Counting(middleware)
    scope = connection_scopes(pki.payments, {})
    middleware.resolver.resolve(scope())
    middleware.resolver.resolve(scope())
    assert counting.finds == 1
    now[0] += 10  # past notAfter on the cache's clock: the memo and the cache are stale,
    # so the certificate is validated again (the validator itself reads the real time).
    middleware.resolver.resolve(scope())
    assert counting.finds == 2 and middleware.resolver.misses == 2


def test_two_middlewares_on_one_connection_keep_their_own_answers(pki):
    memo: dict[Any, Any] = {}
    trusting = MTLSMiddleware(
        starlette_app(), trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    other = MTLSMiddleware(starlette_app(), trust=pki.other_root.certificate)
    scope = connection_scopes(pki.payments, memo)
    assert trusting.resolver.resolve(scope()) is not None
    with pytest.raises(CertificateRejected) as info:
        other.resolver.resolve(scope())
    assert info.value.reason is RejectionReason.UNTRUSTED
    assert trusting.resolver.resolve(scope()) is not None
