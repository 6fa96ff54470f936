"""Shared fixtures: one real PKI per test session (EC P-256 keys, SHA-256 signatures)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from asgi_mtls.testing import CertificateAuthority, IssuedCertificate


@dataclass(frozen=True)
class PKI:
    root: CertificateAuthority
    intermediate: CertificateAuthority
    other_root: CertificateAuthority
    server: IssuedCertificate
    payments: IssuedCertificate  # spiffe://bank.example/payments, issued by the intermediate
    reports: IssuedCertificate  # spiffe://bank.example/reports
    cn_only: IssuedCertificate  # CN=legacy-batch, no subjectAltName
    dns_client: IssuedCertificate  # DNS SAN only
    server_only: IssuedCertificate  # serverAuth EKU only
    no_eku: IssuedCertificate
    expired: IssuedCertificate
    not_yet_valid: IssuedCertificate
    ca_as_client: IssuedCertificate  # basicConstraints cA=TRUE
    untrusted: IssuedCertificate  # from other_root


@pytest.fixture(scope="session")
def pki() -> PKI:
    now = dt.datetime.now(dt.UTC)
    root = CertificateAuthority("Bank Test Root")
    intermediate = root.intermediate("Bank Test Clients CA")
    other = CertificateAuthority("Attacker Root")
    return PKI(
        root=root,
        intermediate=intermediate,
        other_root=other,
        server=root.issue_server("localhost"),
        payments=intermediate.issue_client(spiffe_id="spiffe://bank.example/payments"),
        reports=intermediate.issue_client(spiffe_id="spiffe://bank.example/reports"),
        cn_only=root.issue_client("legacy-batch", organization="Bank"),
        dns_client=root.issue_client(dns_names=["billing.internal.example"]),
        server_only=root.issue(
            common_name="api.example",
            dns_names=["api.example"],
            extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
        ),
        no_eku=root.issue(common_name="no-eku", extended_key_usages=None),
        expired=root.issue_client(
            "expired-client",
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        ),
        not_yet_valid=root.issue_client(
            "future-client",
            not_before=now + dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=30),
        ),
        ca_as_client=root.issue_client("sneaky-ca", is_ca=True),
        untrusted=other.issue_client(spiffe_id="spiffe://bank.example/payments"),
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def padded_client(pki: PKI) -> IssuedCertificate:
    """A client certificate whose DER length is not a multiple of 3, so that its base64 form
    always ends in '=' padding (tests that strip or bend the padding need one)."""
    for _ in range(50):
        cert = pki.intermediate.issue_client(spiffe_id="spiffe://bank.example/padded")
        if len(cert.der) % 3:
            return cert
    raise AssertionError("no certificate with base64 padding in 50 tries")
