"""Matchers on real certificates: SPIFFE, DNS, email, CN-only, Kubernetes-style, malformed
SPIFFE IDs and confusable names."""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from asgi_mtls import PUBLIC, CertificateRejected, RejectionReason, Requirement, require_client
from asgi_mtls.authorization import (
    AllOf,
    AnyOf,
    Not,
    dns_name,
    fingerprint,
    group,
    issuer,
    predicate,
    principal,
    principal_glob,
    role,
    spiffe_glob,
    spiffe_prefix,
    spki_pin,
    subject_attribute,
    trust_domain,
)
from asgi_mtls.authorization.matchers import Glob
from asgi_mtls.authorization.matchers import cn as common_name
from asgi_mtls.identity import build_identity, resolve_principal_strategy
from asgi_mtls.inject import IDENTITY_SCOPE_KEY
from asgi_mtls.testing import CertificateAuthority

CYRILLIC_A = "\u0430"
ZERO_WIDTH = "\u200b"


def identity_of(cert, strategy="default", roles=()):
    identity = build_identity(
        (cert.certificate, *cert.chain),
        source="tls",
        principal=resolve_principal_strategy(strategy),
    )
    return replace(identity, roles=frozenset(roles))


@pytest.fixture(scope="module")
def ca():
    return CertificateAuthority("Corp Issuing CA")


@pytest.fixture(scope="module")
def certs(ca):
    sre_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Corp"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "SRE"),
            x509.NameAttribute(NameOID.COMMON_NAME, "oncall"),
        ]
    )
    kube_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
        ]
    )
    return {
        "web": ca.issue_client(spiffe_id="spiffe://prod.example/ns/shop/sa/web"),
        "deep": ca.issue_client(spiffe_id="spiffe://prod.example/ns/shop/sa/web/v2"),
        "api": ca.issue_client(spiffe_id="spiffe://prod.example/ns/shop/sa/api"),
        "payments": ca.issue_client(spiffe_id="spiffe://prod.example/ns/payments/sa/web"),
        "paymentsx": ca.issue_client(spiffe_id="spiffe://prod.example/ns/paymentsx/sa/web"),
        "staging": ca.issue_client(spiffe_id="spiffe://staging.example/ns/shop/sa/web"),
        "bad_spiffe": ca.issue_client(
            "fallback", uris=["spiffe://Prod.example/ns/shop/sa/web"], dns_names=["x.example"]
        ),
        "dns": ca.issue_client(dns_names=["billing.internal.example"]),
        "dns_deep": ca.issue_client(dns_names=["a.billing.internal.example"]),
        "email": ca.issue_client(emails=["ops@corp.example"]),
        "cn": ca.issue_client("legacy-batch", organization="Corp"),
        "sre": ca.issue(subject=sre_name),
        "kube": ca.issue(subject=kube_name),
        "admin": ca.issue_client("admin"),
        "cyrillic": ca.issue_client(CYRILLIC_A + "dmin"),
        "zero_width": ca.issue_client("ad" + ZERO_WIDTH + "min"),
    }


# -- globs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("ns/*/sa/web", "ns/shop/sa/web", True),
        ("ns/*/sa/web", "ns/shop/x/sa/web", False),  # * never crosses /
        ("ns/*/sa/web", "ns//sa/web", False),  # a whole-segment * is never empty
        ("ns/**", "ns/a/b/c", True),
        ("ns/**", "ns", False),  # ** is one or more segments
        ("ns/**/web", "ns/a/b/web", True),
        ("ns/web-*", "ns/web-", True),
        ("ns/web-*", "ns/web-1/x", False),
        ("a.b", "aXb", False),  # . is literal
        ("a?", "ab", False),  # ? is literal
        ("a?", "a?", True),
        ("[ab]", "a", False),  # brackets are literal
        ("admin", CYRILLIC_A + "dmin", False),
        ("adm*", CYRILLIC_A + "dmin", False),
        ("ADMIN", "admin", False),  # no case folding
        ("\ufb01le", "file", False),  # no NFKC: the fi ligature is not "fi"
    ],
)
def test_glob(pattern, value, expected):
    assert Glob(pattern).matches(value) is expected


INVALID_GLOBS = ["", "a/**x", "a/***", "ad" + ZERO_WIDTH + "min", "a\x00"]
INVALID_SPIFFE_GLOBS = [
    "https://prod.example/x",
    "spiffe://*.example/ns/x",  # wildcards are for the path only
    "spiffe://Prod.example/x",
    "spiffe://prod.example/ns//x",
    "spiffe://prod.example/ns/../x",
    "spiffe://prod.example/ns/x%2F",
    "spiffe://prod.example/ns/x?",
    "spiffe://prod.example/ns/**x",
]


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        *(pytest.param(Glob, pattern, id=f"glob-{pattern!r}") for pattern in INVALID_GLOBS),
        *(
            pytest.param(spiffe_glob, pattern, id=f"spiffe_glob-{pattern!r}")
            for pattern in INVALID_SPIFFE_GLOBS
        ),
    ],
)
def test_invalid_globs(build, pattern):
    with pytest.raises(ValueError):
        build(pattern)


# -- each matcher on each kind of certificate -----------------------------------------------


def test_spiffe_glob(certs):
    web = spiffe_glob("spiffe://prod.example/ns/*/sa/web")
    assert web.allows(identity_of(certs["web"]))
    assert web.allows(identity_of(certs["payments"]))
    assert not web.allows(identity_of(certs["api"]))
    assert not web.allows(identity_of(certs["deep"]))
    assert not web.allows(identity_of(certs["staging"]))  # trust domain is literal
    assert not web.allows(identity_of(certs["cn"]))  # no SPIFFE ID
    # a malformed SPIFFE URI is never a SPIFFE ID, whatever the principal strategy
    assert not web.allows(identity_of(certs["bad_spiffe"], "dns"))
    below = spiffe_glob("spiffe://prod.example/ns/shop/**")
    assert below.allows(identity_of(certs["deep"])) and below.allows(identity_of(certs["api"]))
    assert not below.allows(identity_of(certs["payments"]))
    assert spiffe_glob("spiffe://prod.example/ns/shop/sa/api").allows(identity_of(certs["api"]))
    assert web.describe() == "SPIFFE ID matches spiffe://prod.example/ns/*/sa/web"


def test_spiffe_prefix_is_segment_wise(certs):
    payments = spiffe_prefix("spiffe://prod.example/ns/payments")
    assert payments.allows(identity_of(certs["payments"]))
    assert not payments.allows(identity_of(certs["paymentsx"]))
    assert spiffe_prefix("spiffe://prod.example").allows(identity_of(certs["web"]))
    assert not spiffe_prefix("spiffe://prod.example").allows(identity_of(certs["staging"]))
    with pytest.raises(ValueError):
        spiffe_prefix("spiffe://prod.example/ns/")


def test_principal_exact_and_glob(certs):
    assert principal("spiffe://prod.example/ns/shop/sa/web").allows(identity_of(certs["web"]))
    assert principal("a.example", "billing.internal.example").allows(identity_of(certs["dns"]))
    assert not principal("a.example").allows(identity_of(certs["dns"]))
    # a plain string is never compared with a CN: cn() is
    assert not principal("legacy-batch").allows(identity_of(certs["cn"]))
    assert common_name("legacy-batch").allows(identity_of(certs["cn"]))
    assert not common_name("Legacy-Batch").allows(identity_of(certs["cn"]))
    glob = principal_glob("spiffe://prod.example/ns/*/sa/web")
    assert glob.allows(identity_of(certs["web"]))
    assert not glob.allows(identity_of(certs["deep"]))
    assert not principal_glob("legacy-*").allows(identity_of(certs["cn"]))  # a DNS glob
    assert principal_glob("legacy-*", kind="cn").allows(identity_of(certs["cn"]))
    assert principal_glob("billing.*.example").allows(identity_of(certs["dns"]))
    assert not principal_glob("billing.*", kind="cn").allows(identity_of(certs["dns"]))


def test_dns_email_and_cn_certificates(certs):
    assert dns_name("*.internal.example").allows(identity_of(certs["dns"]))
    assert not dns_name("*.internal.example").allows(identity_of(certs["dns_deep"]))
    assert dns_name("**.internal.example").allows(identity_of(certs["dns_deep"]))
    assert not dns_name("*.internal.example").allows(identity_of(certs["cn"]))
    assert principal("ops@corp.example").allows(identity_of(certs["email"]))
    assert common_name("legacy-batch").allows(identity_of(certs["cn"]))
    assert common_name("legacy-batch").allows(identity_of(certs["cn"], "cn"))
    assert not principal("legacy-batch").allows(identity_of(certs["cn"], "cn"))


def test_trust_domain(certs):
    assert trust_domain("prod.example").allows(identity_of(certs["web"]))
    assert trust_domain("staging.example", "prod.example").allows(identity_of(certs["staging"]))
    assert not trust_domain("prod.example").allows(identity_of(certs["cn"]))
    assert not trust_domain("prod.example").allows(identity_of(certs["bad_spiffe"], "dns"))
    with pytest.raises(ValueError):
        trust_domain("Prod.example")


def test_issuer_compares_parsed_names(ca, certs):
    web = identity_of(certs["web"])
    assert issuer("CN=Corp Issuing CA").allows(web)
    assert issuer(ca.certificate.subject).allows(web)
    assert not issuer("CN=corp issuing ca").allows(web)  # no case folding
    assert not issuer("CN=Corp Issuing CA,O=Corp").allows(web)
    assert not issuer("CN=C" + CYRILLIC_A + "rp Issuing CA").allows(web)  # not even close
    other = CertificateAuthority("Other CA").issue_client("x")
    assert not issuer("CN=Corp Issuing CA").allows(identity_of(other))
    with pytest.raises(ValueError, match="invalid issuer"):
        issuer("not a DN")
    with pytest.raises(ValueError):
        issuer("")


def test_issuer_rdn_order_matters(ca):
    intermediate = ca.intermediate("Team CA")
    cert = intermediate.issue_client("svc")
    identity = identity_of(cert)
    assert issuer("CN=Team CA").allows(identity)
    assert not issuer("CN=Corp Issuing CA").allows(identity)  # the direct issuer only


def test_fingerprint_and_spki_pin(certs):
    cert = certs["cn"]
    identity = identity_of(cert)
    digest = cert.fingerprint_sha256
    assert fingerprint(digest).allows(identity)
    assert fingerprint(digest.upper()).allows(identity)
    colons = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    assert fingerprint(colons).allows(identity)
    assert not fingerprint(certs["admin"].fingerprint_sha256).allows(identity)
    spki = cert.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = hashlib.sha256(spki).digest()
    assert identity.spki_sha256 == raw.hex()
    b64 = base64.b64encode(raw).decode()
    for pin in (b64, raw.hex(), f"sha256//{b64}", f'pin-sha256="{b64}"'):
        assert spki_pin(pin).allows(identity), pin
    assert not spki_pin(b64).allows(identity_of(certs["admin"]))
    assert spki_pin(b64).describe() == f"public key pin in {b64}"
    for bad in ("abc", "zz" * 32, base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            spki_pin(bad)
    with pytest.raises(ValueError):
        fingerprint("12")


def test_subject_attribute(certs):
    sre = identity_of(certs["sre"])
    assert subject_attribute("OU", "SRE").allows(sre)
    assert subject_attribute("O", "Corp").allows(sre)
    assert subject_attribute("2.5.4.11", "SRE").allows(sre)  # OU by its OID
    assert not subject_attribute("OU", "sre").allows(sre)
    assert not subject_attribute("OU", "SR\u0415").allows(sre)  # a Cyrillic capital IE
    assert not subject_attribute("OU", "SRE").allows(identity_of(certs["cn"]))
    with pytest.raises(ValueError, match="unknown subject attribute"):
        subject_attribute("organizationalUnit", "SRE")
    with pytest.raises(ValueError):
        subject_attribute("OU")


def test_kubernetes_groups(certs):
    kube = identity_of(certs["kube"], "kubernetes")
    assert kube.principal == "alice"
    assert kube.groups == ("system:masters", "dev")
    assert group("system:masters").allows(kube)
    assert not group("system:nodes").allows(kube)
    # groups are a Kubernetes notion: other strategies leave them empty
    assert identity_of(certs["kube"]).groups == ()
    assert not group("system:masters").allows(identity_of(certs["kube"], "cn"))


def test_role(certs):
    identity = identity_of(certs["cn"], roles={"batch"})
    assert role("batch").allows(identity)
    assert role("x", "batch").allows(identity)
    assert not role("admin").allows(identity)
    for bad in ("", "has space", "authenticated", "-x", "a" + ZERO_WIDTH):
        with pytest.raises(ValueError):
            role(bad)


# -- confusables ----------------------------------------------------------------------------


def test_confusable_names_never_match(certs):
    admin, cyrillic = (identity_of(certs[name], "cn") for name in ("admin", "cyrillic"))
    for requirement in (
        common_name("admin"),
        principal_glob("admin", kind="cn"),
        principal_glob("adm*", kind="cn"),
        require_client(common_name("admin")),
    ):
        assert requirement.allows(admin), requirement
        assert not requirement.allows(cyrillic), requirement
    assert principal_glob("*dmin", kind="cn").allows(cyrillic)  # '*' stands for the Cyrillic a
    # the pattern's literal part is compared code point by code point
    assert principal_glob(CYRILLIC_A + "dm*", kind="cn").allows(cyrillic)
    assert not principal_glob(CYRILLIC_A + "dm*", kind="cn").allows(admin)
    # an invisible character in a subject name refuses the certificate itself
    with pytest.raises(CertificateRejected) as info:
        identity_of(certs["zero_width"], "cn")
    assert info.value.reason is RejectionReason.INVALID_NAME


@pytest.mark.parametrize(
    "build",
    [
        lambda: principal("ad" + ZERO_WIDTH + "min"),
        lambda: principal("admin\u202e"),  # right-to-left override
        lambda: principal("admin\x00"),
        lambda: principal(""),
        lambda: principal(),
        lambda: require_client("ad" + ZERO_WIDTH + "min"),
        lambda: subject_attribute("OU", "S" + ZERO_WIDTH + "RE"),
        lambda: issuer("CN=Corp" + ZERO_WIDTH),
        lambda: group("system:masters\ufeff"),
    ],
)
def test_invisible_characters_in_configuration_are_refused(build):
    with pytest.raises(ValueError):
        build()


# -- combinations ---------------------------------------------------------------------------


def test_operators_and_functions(certs):
    web, api, cn = (identity_of(certs[n]) for n in ("web", "api", "cn"))
    either = common_name("legacy-batch") | spiffe_glob("spiffe://prod.example/ns/*/sa/web")
    assert either.allows(web) and either.allows(cn) and not either.allows(api)
    both = trust_domain("prod.example") & ~spiffe_glob("spiffe://prod.example/ns/*/sa/api")
    assert both.allows(web) and not both.allows(api) and not both.allows(cn)
    assert AnyOf(common_name("legacy-batch"), principal("x")).allows(cn)
    assert not AllOf(common_name("legacy-batch"), trust_domain("prod.example")).allows(cn)
    assert Not(common_name("legacy-batch")).allows(web)
    assert require_client().allows(cn) and AllOf().allows(cn) and not AnyOf().allows(cn)
    assert isinstance(either, Requirement)
    assert (
        either.describe() == "CN in legacy-batch or SPIFFE ID matches "
        "spiffe://prod.example/ns/*/sa/web"
    )
    nested = (principal("a") | principal("b")) & ~role("x")
    assert nested.describe() == (
        "(principal is DNS name a or principal is DNS name b) and not role in x"
    )
    assert next(nested.walk()) is nested and len(list(nested.walk())) == 6
    with pytest.raises(TypeError):
        principal("a") & "b"  # type: ignore[operator]


def test_predicate_that_raises_denies_even_when_negated(certs, caplog):
    def broken(identity) -> bool:
        raise KeyError("boom")

    cn = identity_of(certs["cn"])
    with caplog.at_level(logging.ERROR, logger="asgi_mtls"):
        assert not predicate(broken).allows(cn)
        assert not (~predicate(broken)).allows(cn)
        assert not (principal("x") | ~predicate(broken)).allows(cn)
    assert "authorization predicate" in caplog.text
    # short-circuit: a branch that already decided is not evaluated
    assert (common_name("legacy-batch") | predicate(broken)).allows(cn)
    assert predicate(lambda i: i.attribute("O") == ("Corp",)).allows(cn)
    with pytest.raises(TypeError):
        predicate("not callable")  # type: ignore[arg-type]


# -- require_client with matcher objects ----------------------------------------------------


def test_require_client_accepts_matchers_positionally(certs):
    web, api, cn = (identity_of(certs[n]) for n in ("web", "api", "cn"))
    requirement = require_client(spiffe_glob("spiffe://prod.example/ns/*/sa/web"))
    assert requirement.allows(web) and not requirement.allows(api)
    # positional arguments are alternatives; keywords combine with AND
    mixed = require_client(
        common_name("legacy-batch"), spiffe_glob("spiffe://prod.example/ns/*/sa/web")
    )
    assert mixed.allows(web) and mixed.allows(cn) and not mixed.allows(api)
    scoped = require_client(
        common_name("legacy-batch"),
        spiffe_glob("spiffe://prod.example/**"),
        trust_domain="prod.example",
    )
    assert scoped.allows(api) and not scoped.allows(cn)
    assert scoped.describe() == (
        "(CN in legacy-batch or SPIFFE ID matches spiffe://prod.example/**)"
        " and SPIFFE trust domain prod.example"
    )
    admin = require_client(role("payments-admin") | principal("spiffe://prod.example/ns/x"))
    assert admin.allows(identity_of(certs["cn"], roles={"payments-admin"}))
    assert not admin.allows(cn)
    assert repr(requirement) == (
        "ClientRequirement(SPIFFE ID matches spiffe://prod.example/ns/*/sa/web)"
    )
    with pytest.raises(ValueError, match="invalid principal"):
        require_client(PUBLIC)  # type: ignore[arg-type]


def test_matchers_check_a_scope(certs):
    requirement = spiffe_glob("spiffe://prod.example/ns/*/sa/web")
    assert requirement.check({IDENTITY_SCOPE_KEY: identity_of(certs["web"])}).principal
    with pytest.raises(CertificateRejected) as info:
        requirement.check({IDENTITY_SCOPE_KEY: identity_of(certs["api"])})
    assert info.value.reason is RejectionReason.FORBIDDEN
    with pytest.raises(CertificateRejected) as info:
        requirement.check({IDENTITY_SCOPE_KEY: None})
    assert info.value.reason is RejectionReason.MISSING


segment_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=8,
).filter(lambda s: "/" not in s and "*" not in s)


@given(st.lists(segment_text, min_size=1, max_size=4), st.text(max_size=20))
def test_glob_properties(segments, other):
    literal = "/".join(segments)
    # a pattern without wildcards matches exactly itself
    assert Glob(literal).matches(literal)
    assert Glob(literal).matches(other) is (other == literal)
    # a whole-segment * matches exactly one segment, never a value with one more "/"
    starred = "/".join([*segments[:-1], "*"])
    assert Glob(starred).matches(literal)
    assert not Glob(starred).matches(literal + "/x")


# --- a positive decision kept on the identity (issue #10) ------------------------------------


class Counted(Requirement):
    """Allows everyone and counts how often it is asked."""

    def __init__(self, pure: bool) -> None:
        self.pure = pure
        self.asked = 0

    def _matches(self, identity) -> bool:
        self.asked += 1
        return True

    def describe(self) -> str:
        return "counted"


def test_a_pure_requirement_decides_once_per_identity(ca):
    client = ca.issue_client(spiffe_id="spiffe://bank.example/payments")
    identity = identity_of(client)
    counted = Counted(pure=True)
    requirement = require_client("spiffe://bank.example/payments") & counted
    for _ in range(3):
        assert requirement.verify(identity) is identity
    assert counted.asked == 1
    # Another identity (a new certificate, or the hook's with_extra copy) is decided anew.
    other = identity_of(client)
    assert requirement.verify(other) is other and counted.asked == 2


@pytest.mark.parametrize(
    "impure",
    [
        lambda counted: counted,  # a subclass that does not say it is pure
        lambda counted: require_client(counted, predicate=lambda identity: True),
        lambda counted: counted & predicate(lambda identity: True),
        lambda counted: ~~(counted | predicate(lambda identity: False)),
    ],
)
def test_anything_impure_decides_on_every_request(ca, impure):
    identity = identity_of(ca.issue_client(spiffe_id="spiffe://bank.example/payments"))
    counted = Counted(pure=False)
    requirement = impure(counted)
    for _ in range(3):
        requirement.verify(identity)
    assert counted.asked == 3


def test_a_predicate_that_changes_its_mind_is_heard(ca):
    identity = identity_of(ca.issue_client(spiffe_id="spiffe://bank.example/payments"))
    open_ = [True]
    requirement = require_client(predicate=lambda identity: open_[0])
    assert requirement.verify(identity) is identity
    open_[0] = False
    with pytest.raises(CertificateRejected) as info:
        requirement.verify(identity)
    assert info.value.reason is RejectionReason.FORBIDDEN


def test_a_denial_is_never_kept(ca):
    identity = identity_of(ca.issue_client(spiffe_id="spiffe://bank.example/reports"))
    requirement = require_client("spiffe://bank.example/payments")
    for _ in range(2):
        with pytest.raises(CertificateRejected):
            requirement.verify(identity)
    assert requirement not in identity.computed


@pytest.mark.parametrize(
    "requirement",
    [
        require_client("spiffe://bank.example/payments"),
        spiffe_glob("spiffe://bank.example/*"),
        spiffe_prefix("spiffe://bank.example/payments"),
        trust_domain("bank.example"),
        principal_glob("spiffe://bank.example/*"),
        ~dns_name("*.example.org"),
        issuer("CN=Corp Issuing CA"),
    ],
)
def test_the_built_in_matchers_are_pure(ca, requirement):
    identity = identity_of(ca.issue_client(spiffe_id="spiffe://bank.example/payments"))
    assert requirement.verify(identity) is identity
    assert identity.computed.get(requirement) is True
