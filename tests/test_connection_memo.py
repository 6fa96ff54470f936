"""The per-connection memo (issue #10): what a connection's certificate proved is remembered
on the connection, and never outlives the trust, the revocation state or the certificate."""

from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from asgi_mtls import CertificateRejected, CertificateValidator, MTLSMiddleware, RejectionReason
from asgi_mtls.sources.tls import CONNECTION_EXTENSION
from asgi_mtls.testing import (
    CertificateAuthority,
    asgi_tls_scope_extension,
    nginx_escaped_header,
)
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


# --- plain connections: the peer's trust is a fact of the connection (issue #10) ------------


def header_scopes(cert_header: bytes, memo: dict[Any, Any] | None, peer: str, client: str = ""):
    """Scopes of one plain connection from ``peer`` carrying nginx's certificate header."""

    def scope() -> dict[str, Any]:
        extensions: dict[str, Any] = {"asgi_mtls.peer": {"family": "inet", "host": peer}}
        if memo is not None:
            extensions[CONNECTION_EXTENSION] = memo
        return {
            "type": "http",
            "path": "/",
            "client": (client or peer, 1234),
            "headers": [
                (b"x-ssl-client-cert", cert_header),
                (b"x-ssl-client-verify", b"SUCCESS"),
            ],
            "extensions": extensions,
        }

    return scope


def proxied(pki, **options: Any) -> MTLSMiddleware:
    return MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        **{"trusted_proxies": ["10.0.0.1"], **options},
    )


class CountingTrust:
    """Counts how often the middleware asks whether a peer is a trusted proxy."""

    def __init__(self, middleware: MTLSMiddleware) -> None:
        self.asked = 0
        proxies = middleware.resolver.trusted_proxies
        real = proxies.trusts_scope

        def trusts_scope(scope: Any, trust_scope_client: bool) -> bool:
            self.asked += 1
            return real(scope, trust_scope_client)

        proxies.trusts_scope = trusts_scope  # type: ignore[method-assign]


def test_a_plain_connection_decides_its_peer_once(pki):
    middleware = proxied(pki)
    counting = CountingTrust(middleware)
    header = nginx_escaped_header(pki.payments).encode("latin-1")
    scope = header_scopes(header, {}, "10.0.0.1")
    identities = [middleware.resolver.resolve(scope()) for _ in range(5)]
    assert identities[0] is not None and all(i is identities[0] for i in identities)
    assert counting.asked == 1
    # Another connection, from a peer that is not trusted: decided for itself, refused.
    stranger = header_scopes(header, {}, "10.0.0.2")
    for _ in range(2):
        with pytest.raises(CertificateRejected) as info:
            middleware.resolver.resolve(stranger())
        assert info.value.reason is RejectionReason.UNTRUSTED_PROXY
    assert counting.asked == 2


def test_scope_client_is_never_remembered_per_connection(pki):
    """With ``trust_scope_client`` the peer is ``scope["client"]``, which a server may rewrite
    per request: it is decided on every request, whatever the connection's memo holds."""
    middleware = proxied(pki, trust_scope_client=True)
    header = nginx_escaped_header(pki.payments).encode("latin-1")
    memo: dict[Any, Any] = {}

    def scope(client: str) -> dict[str, Any]:
        made = header_scopes(header, memo, "", client)()
        del made["extensions"]["asgi_mtls.peer"]
        return made

    assert middleware.resolver.resolve(scope("10.0.0.1")) is not None
    with pytest.raises(CertificateRejected) as info:
        middleware.resolver.resolve(scope("10.0.0.9"))
    assert info.value.reason is RejectionReason.UNTRUSTED_PROXY


def test_a_header_with_a_known_clients_tail_is_not_that_client(pki):
    """The recent-values table is keyed by the tail of the header: another value with the
    same tail, and the same length, is decoded and judged on its own."""
    middleware = proxied(pki)
    header = nginx_escaped_header(pki.payments).encode("latin-1")
    scope = header_scopes(header, {}, "10.0.0.1")
    known = middleware.resolver.resolve(scope())
    assert known is not None and middleware.resolver.resolve(scope()) is known
    for forged in (
        b"A" * (len(header) - 64) + header[-64:],
        header[:-65] + b"B" + header[-64:],  # one byte off, before the tail
        header[-64:],
    ):
        with pytest.raises(CertificateRejected) as info:
            middleware.resolver.resolve(header_scopes(forged, {}, "10.0.0.1")())
        assert info.value.reason in (RejectionReason.MALFORMED, RejectionReason.UNTRUSTED)
    other = nginx_escaped_header(pki.reports).encode("latin-1")
    assert middleware.resolver.resolve(header_scopes(other, {}, "10.0.0.1")()).principal != (
        known.principal
    )
    assert middleware.resolver.resolve(scope()) is known


def test_a_trust_reload_empties_the_recent_values(tmp_path, pki):
    """A client known by its header is refused on its next request once its root is gone."""
    roots = tmp_path / "roots.pem"
    roots.write_text(pki.root.pem)
    validator = CertificateValidator(roots, intermediates=[pki.intermediate.certificate])
    middleware = MTLSMiddleware(starlette_app(), trust=validator, trusted_proxies=["10.0.0.1"])
    header = nginx_escaped_header(pki.payments).encode("latin-1")
    scope = header_scopes(header, {}, "10.0.0.1")
    assert middleware.resolver.resolve(scope()) is not None
    assert middleware.resolver.resolve(scope()) is not None
    before = roots.stat().st_mtime_ns
    roots.write_text(pki.other_root.pem)
    os.utime(roots, ns=(before + 1_000_000, before + 1_000_000))
    assert validator.reload() is True
    with pytest.raises(CertificateRejected) as info:
        middleware.resolver.resolve(scope())
    assert info.value.reason is RejectionReason.UNTRUSTED
