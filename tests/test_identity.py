from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from asgi_mtls import CertificateRejected, RejectionReason
from asgi_mtls.identity import SpiffeId, build_identity, parse_spiffe_id, resolve_principal_strategy
from asgi_mtls.testing import CertificateAuthority


def identity_of(cert, principal="default"):
    return build_identity(
        (cert.certificate, *cert.chain),
        source="tls",
        principal=resolve_principal_strategy(principal),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("spiffe://bank.example/payments", SpiffeId("bank.example", "/payments")),
        ("spiffe://bank.example", SpiffeId("bank.example", "")),
        ("spiffe://a-b_c.9/ns/prod/sa/web-1.v2", SpiffeId("a-b_c.9", "/ns/prod/sa/web-1.v2")),
    ],
)
def test_valid_spiffe_ids(value, expected):
    assert parse_spiffe_id(value) == expected
    assert str(parse_spiffe_id(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        "spiffe://Bank.example/x",  # uppercase trust domain
        "SPIFFE://bank.example/x",  # uppercase scheme
        "spiffe://user@bank.example/x",  # userinfo
        "spiffe://bank.example:8443/x",  # port
        "spiffe://bank.example/x?q=1",  # query
        "spiffe://bank.example/x#frag",  # fragment
        "spiffe://bank.example/x%2Fy",  # percent-encoding
        "spiffe://bank.example//x",  # empty segment
        "spiffe://bank.example/x/",  # trailing slash
        "spiffe://bank.example/./x",  # dot segment
        "spiffe://bank.example/../x",
        "spiffe:///x",  # empty trust domain
        "spiffe://",
        "https://bank.example/x",
        "spiffe://bank.example/" + "a" * 2100,
        "spiffe://bank.example/\u0430dmin",  # Cyrillic a
        "spiffe://bank.example/ad\u200bmin",  # zero-width space
        "spiffe://bank.example/x\x00",
    ],
)
def test_invalid_spiffe_ids(value):
    with pytest.raises(ValueError):
        parse_spiffe_id(value)


def test_identity_fields(pki):
    identity = identity_of(pki.payments)
    assert identity.principal == "spiffe://bank.example/payments"
    assert identity.spiffe_id == SpiffeId("bank.example", "/payments")
    assert identity.trust_domain == "bank.example"
    assert identity.uris == ("spiffe://bank.example/payments",)
    assert identity.issuer == "CN=Bank Test Clients CA"
    assert identity.fingerprint_sha256 == pki.payments.fingerprint_sha256
    assert identity.serial_number == pki.payments.certificate.serial_number
    assert identity.serial_hex == format(pki.payments.certificate.serial_number, "x")
    assert identity.not_after == pki.payments.certificate.not_valid_after_utc
    assert identity.source == "tls"
    assert identity.chain[0] == pki.payments.certificate


def test_cn_only_identity(pki):
    identity = identity_of(pki.cn_only)
    assert identity.principal == "legacy-batch"
    assert identity.subject == "CN=legacy-batch,O=Bank"
    assert identity.common_names == ("legacy-batch",)
    assert identity.attribute("O") == ("Bank",)
    assert identity.dns_names == identity.uris == identity.emails == ()
    assert identity.spiffe_id is None


def test_default_principal_order():
    ca = CertificateAuthority()
    assert (
        identity_of(ca.issue_client("cn", uris=["urn:x:1"], dns_names=["d.example"])).principal
        == "urn:x:1"
    )
    assert (
        identity_of(
            ca.issue_client("cn", dns_names=["d.example"], emails=["a@b.example"])
        ).principal
        == "d.example"
    )
    assert identity_of(ca.issue_client("cn", emails=["a@b.example"])).principal == "a@b.example"
    both = ca.issue_client("cn", dns_names=["d.example"], ips=["192.0.2.1"])
    assert identity_of(both).ip_addresses == ("192.0.2.1",)


def test_malformed_spiffe_uri_is_never_a_principal():
    ca = CertificateAuthority()
    bad = ca.issue_client("fallback-cn", uris=["spiffe://Bank.example/x"], dns_names=["d.example"])
    identity_check = build_identity(
        (bad.certificate,), source="tls", principal=resolve_principal_strategy("dns")
    )
    assert identity_check.spiffe_id is None and identity_check.principal == "d.example"
    with pytest.raises(CertificateRejected) as info:
        identity_of(bad)
    assert info.value.reason is RejectionReason.NO_PRINCIPAL
    # Two URI SANs: not an SVID, so no SPIFFE ID even though one is well formed.
    two = ca.issue_client("x", uris=["spiffe://bank.example/a", "spiffe://bank.example/b"])
    with pytest.raises(CertificateRejected):
        identity_of(two)
    with pytest.raises(CertificateRejected):
        identity_of(two, "spiffe")


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("spiffe", "spiffe://bank.example/svc"),
        ("uri", "urn:example:svc"),
        ("dns", "svc.example"),
        ("email", "svc@example.org"),
        ("cn", "svc"),
        ("subject", "CN=svc,O=Bank"),
    ],
)
def test_named_strategies(strategy, expected):
    ca = CertificateAuthority()
    cert = ca.issue_client(
        "svc",
        organization="Bank",
        spiffe_id="spiffe://bank.example/svc",
        dns_names=["svc.example"],
        emails=["svc@example.org"],
    )
    # a second URI would make it a non-SVID, so check 'uri' on its own certificate
    if strategy == "uri":
        cert = ca.issue_client("svc", uris=["urn:example:svc"])
    assert identity_of(cert, strategy).principal == expected


def test_fingerprint_strategy_and_callable(pki):
    assert identity_of(pki.cn_only, "fingerprint").principal == pki.cn_only.fingerprint_sha256
    assert (
        identity_of(pki.cn_only, lambda i: "team:" + i.attribute("O")[0]).principal == "team:Bank"
    )
    with pytest.raises(CertificateRejected) as info:
        identity_of(pki.cn_only, lambda i: None)
    assert info.value.reason is RejectionReason.NO_PRINCIPAL
    with pytest.raises(ValueError, match="unknown principal strategy"):
        resolve_principal_strategy("nickname")


def test_multiple_common_names_give_no_cn_principal():
    ca = CertificateAuthority()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
            x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
        ]
    )
    cert = ca.issue(subject=name)
    with pytest.raises(CertificateRejected) as info:
        identity_of(cert, "cn")
    assert info.value.reason is RejectionReason.NO_PRINCIPAL


def test_nul_in_names_is_rejected():
    ca = CertificateAuthority()
    cert = ca.issue(subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin\x00.evil")]))
    with pytest.raises(CertificateRejected) as info:
        identity_of(cert)
    assert info.value.reason is RejectionReason.MALFORMED


def test_confusable_names_stay_distinct():
    ca = CertificateAuthority()
    latin = identity_of(ca.issue_client("admin"))
    cyrillic = identity_of(ca.issue_client("\u0430dmin"))
    assert latin.principal != cyrillic.principal
    # invisible characters in a subject attribute refuse the whole certificate
    for invisible in ("ad\u200bmin", "admin\u202e", "a\u2028b", "\ufeffadmin"):
        with pytest.raises(CertificateRejected) as info:
            identity_of(ca.issue_client(invisible))
        assert info.value.reason is RejectionReason.INVALID_NAME


def test_kubernetes_strategy():
    ca = CertificateAuthority()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "team-a"),
            x509.NameAttribute(NameOID.COMMON_NAME, "system:node:worker-1"),
        ]
    )
    identity = identity_of(ca.issue(subject=name, dns_names=["worker-1.example"]), "kubernetes")
    assert identity.principal == "system:node:worker-1"  # the CN, not the DNS SAN
    assert identity.groups == ("system:masters", "team-a")
    assert identity_of(ca.issue_client("bob"), "kubernetes").groups == ()
    # no CN (or two): no user, the certificate is refused
    with pytest.raises(CertificateRejected) as info:
        identity_of(ca.issue_client(dns_names=["x.example"]), "kubernetes")
    assert info.value.reason is RejectionReason.NO_PRINCIPAL


def test_envoy_strategy_order():
    ca = CertificateAuthority()
    uri = ca.issue_client("cn", uris=["urn:x:1", "urn:x:2"], dns_names=["d.example"])
    assert identity_of(uri, "envoy").principal == "urn:x:1"
    spiffe = ca.issue_client("cn", spiffe_id="spiffe://bank.example/a", dns_names=["d.example"])
    assert identity_of(spiffe, "envoy").principal == "spiffe://bank.example/a"
    assert identity_of(ca.issue_client("cn", dns_names=["d.example"]), "envoy").principal == (
        "d.example"
    )
    cn_only = ca.issue_client("svc", organization="Bank", emails=["svc@bank.example"])
    assert identity_of(cn_only, "envoy").principal == "CN=svc,O=Bank"  # emails are skipped
    bad = ca.issue_client("cn", uris=["spiffe://Bank.example/x"], dns_names=["d.example"])
    with pytest.raises(CertificateRejected) as info:
        identity_of(bad, "envoy")  # a malformed SPIFFE ID never falls through
    assert info.value.reason is RejectionReason.NO_PRINCIPAL


def test_multi_valued_rdn_is_flattened_in_order():
    ca = CertificateAuthority()
    name = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bank")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
                    x509.NameAttribute(NameOID.USER_ID, "42"),
                ]
            ),
        ]
    )
    cert = ca.issue(subject=name)
    identity = identity_of(cert, "cn")
    assert identity.principal == "alice"  # exactly one CN in the whole subject
    # RDNs in certificate order; a multi-valued RDN's attributes one after the other
    assert identity.subject_attributes[0] == ("O", "Bank")
    assert set(identity.subject_attributes[1:]) == {("CN", "alice"), ("UID", "42")}
    assert identity.attribute("UID") == ("42",)
    assert identity.subject in ("CN=alice+UID=42,O=Bank", "UID=42+CN=alice,O=Bank")
    # two CNs inside one multi-valued RDN are still two CNs: no CN principal
    double = x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                ]
            )
        ]
    )
    with pytest.raises(CertificateRejected) as info:
        identity_of(ca.issue(subject=double), "cn")
    assert info.value.reason is RejectionReason.NO_PRINCIPAL


def test_spki_digest_is_set(pki):
    identity = identity_of(pki.payments)
    assert len(identity.spki_sha256) == 64
    assert identity.spki_sha256 != identity.fingerprint_sha256
    assert identity.roles == frozenset() and identity.groups == ()
