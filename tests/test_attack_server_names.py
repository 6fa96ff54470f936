"""Attacks on a server-verified name (issue #12), with the opt-in on.

The attacker holds a certificate from the CA the server trusts and picks its subject, or (a
server bug, a wrapper) gets any value into ``client_cert_name``.  Every input gets a typed
refusal or exactly the identity its subject gives, and whatever the subject holds, no
requirement that is not about the subject is ever met: no SPIFFE ID, URI, DNS name, email,
fingerprint, public-key pin, issuer or trust domain, whichever text the DN carries and however
it is escaped.  Certificate-bound tokens, listeners, expiry warnings and the identity hook meet
such an identity without a 500.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from typing import Any, get_args

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from fastapi import Depends, FastAPI, Header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_mtls import MTLSMiddleware, RejectionReason
from asgi_mtls.authorization import (
    check_token_binding,
    dns_name,
    fingerprint,
    issuer,
    predicate,
    principal,
    principal_glob,
    require_client,
    spiffe_glob,
    spiffe_prefix,
    spki_pin,
    trust_domain,
)
from asgi_mtls.authorization.roles import RoleMap
from asgi_mtls.errors import CertificateRejected, Denied
from asgi_mtls.events import CertificateExpiring, CertificateValidated, LogListener
from asgi_mtls.fastapi import certificate_bound
from asgi_mtls.identity import ClientIdentity, StrategyName
from asgi_mtls.identity.identity import NoCertificateError
from asgi_mtls.identity.names import NameKind, parse_principal
from asgi_mtls.sources import ServerVerifiedNameSource
from asgi_mtls.sources.headers.envoy_subject import envoy_subject
from asgi_mtls.testing import CertificateAuthority
from tests.asgi import get, reason
from tests.test_events import Recorder
from tests.test_server_verified_name import app_with, name_identity, opted_in

STRATEGIES: tuple[StrategyName, ...] = get_args(StrategyName)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Names crafted to look like what routes require, with what the opt-in makes of each under
#: the default strategy: a principal (kind and value) or a reason code ("anonymous": none).
HOSTILE: dict[str, tuple[NameKind, str] | str] = {
    "CN=spiffe://bank.example/payments": (NameKind.CN, "spiffe://bank.example/payments"),
    "CN=spiffe://bank.example/ns/prod/sa/payments": (
        NameKind.CN,
        "spiffe://bank.example/ns/prod/sa/payments",
    ),
    "CN=https://bank.example/payments": (NameKind.CN, "https://bank.example/payments"),
    "CN=admin.example.com": (NameKind.CN, "admin.example.com"),
    "CN=ops@bank.example": (NameKind.CN, "ops@bank.example"),
    "CN=" + "ab" * 32: (NameKind.CN, "ab" * 32),
    "CN=a\\,URI=spiffe://bank.example/payments": (
        NameKind.CN,
        "a,URI=spiffe://bank.example/payments",
    ),
    "CN=a\\+DNS=admin.example.com": (NameKind.CN, "a+DNS=admin.example.com"),
    "CN=a\\=b": (NameKind.CN, "a=b"),
    'CN=\\"admin\\"': (NameKind.CN, '"admin"'),
    "CN=a\\\\": (NameKind.CN, "a\\"),
    "CN=\\ admin\\ ": (NameKind.CN, " admin "),
    "CN=CN=admin\\,O=Bank": (NameKind.CN, "CN=admin,O=Bank"),
    "UID=42+CN=alice": (NameKind.CN, "alice"),
    "O=Bank,UID=42+CN=alice": (NameKind.CN, "alice"),
    "2.5.4.3=admin": (NameKind.CN, "admin"),
    "CN=\u0430dmin": (NameKind.CN, "\u0430dmin"),  # a Cyrillic a: not admin
    "CN=J\\C3\\BCrgen": (NameKind.CN, "J\u00fcrgen"),
    "CN=alice+CN=admin": "no_principal",  # two CNs: no CN principal
    "CN=admin,CN=alice": "no_principal",
    "emailAddress=ops@bank.example": "no_principal",  # an attribute, not an email SAN
    "OU=spiffe://bank.example/payments": "no_principal",
    "URI=spiffe://bank.example/payments": "malformed",  # no such attribute
    "DNS=admin.example.com": "malformed",
    "CN=payments,URI=spiffe://bank.example/payments": "malformed",
    "CN=admin+CN=admin": "malformed",  # a duplicate in one RDN
    'CN="admin"': "malformed",  # RFC 2253's quoted form: not RFC 4514
    "CN=" + "A" * 65: "malformed",  # cryptography refuses a CN over 64
    "CN=" + ":".join(["AB"] * 32): "malformed",
    "C=USA": "malformed",
    "cn=admin": "malformed",
    "FOO=bar": "malformed",
    "CN=a;O=b": "malformed",
    "CN=a,": "malformed",
    ",": "malformed",
    "=": "malformed",
    "CN": "malformed",
    "CN=": "malformed",
    " ": "malformed",
    " CN=admin": "malformed",
    "CN=admin ": "malformed",
    "CN=\\FF": "malformed",  # not UTF-8
    "CN=\\ZZ": "malformed",
    "CN=admin\x00": "malformed",
    "CN=ad\\00min": "malformed",  # an escaped NUL
    "CN=admin\n": "malformed",
    "\t": "malformed",
    "CN=ad\u200bmin": "invalid_name",  # a zero-width space
    "CN=ad\\E2\\80\\8Bmin": "invalid_name",  # the same, escaped as Envoy writes it
    "CN=\u202eadmin": "invalid_name",  # a bidi override
    "CN=#61646D696E": "invalid_name",  # #hex: never read as text
    "CN=x,2.5.4.97=#0C0141": "invalid_name",
    "CN=a=#b": "invalid_name",  # the conservative =# check
    "CN=" + "a" * 4094: "too_large",
    "CN=a" + ",O=b" * 1100: "too_large",
    "": "anonymous",
}
NON_STRINGS: list[object] = [
    b"CN=admin",
    bytearray(b"CN=admin"),
    b"",
    42,
    0,
    1.5,
    True,
    ["CN=admin"],
    [],
    {"CN": "admin"},
    ("CN=admin",),
    frozenset({"CN=admin"}),
]


def outcome(text: object, strategy: str = "default") -> ClientIdentity | str:
    try:
        return name_identity(text, strategy)
    except CertificateRejected as exc:
        return exc.reason.value


def never_met(identity: ClientIdentity) -> list[Any]:
    """Requirements that are not about the subject, built from every text the identity's DN
    carries and as catch-alls: a name-only identity must meet none of them."""
    texts = {identity.principal, identity.subject, *(v for _, v in identity.subject_attributes)}
    digest = hashlib.sha256(identity.subject.encode()).hexdigest()
    requirements: list[Any] = [
        *(principal_glob("**", kind=kind) for kind in ("spiffe", "uri", "dns", "email")),
        *(principal_glob("*", kind=kind) for kind in ("spiffe", "uri", "dns", "email")),
        dns_name("**"),
        spiffe_glob("spiffe://bank.example/**", "spiffe://bank.example"),
        spiffe_prefix("spiffe://bank.example"),
        trust_domain("bank.example"),
        require_client(trust_domain="bank.example"),
        fingerprint(digest),
        spki_pin(digest),
        issuer("CN=Bank Test Root"),
        issuer(identity.subject) if identity.subject else issuer("CN=x"),
        predicate(lambda i: i.spiffe_id is not None or bool(i.dns_names + i.uris + i.emails)),
    ]
    for text in texts:
        try:
            typed = parse_principal(text)
        except ValueError:
            continue
        if typed.kind is not NameKind.SUBJECT:
            requirements += [principal(text), require_client(text)]
    return requirements


@pytest.mark.parametrize("text", sorted(HOSTILE), ids=repr)
def test_hostile_names_get_a_typed_refusal_or_exactly_their_identity(text):
    expected = HOSTILE[text]
    if expected == "anonymous":
        assert (
            ServerVerifiedNameSource().find({"extensions": {"tls": {"client_cert_name": ""}}})
            is None
        )
        return
    got = outcome(text)
    if isinstance(expected, str):
        assert got == expected
        return
    assert isinstance(got, ClientIdentity), got
    assert (got.principal_kind, got.principal) == expected
    assert got.verified_by == "server" and got.certificate is None


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    "text", sorted(t for t, e in HOSTILE.items() if not isinstance(e, str)), ids=repr
)
def test_no_requirement_but_the_subjects_is_ever_met(text, strategy):
    identity = outcome(text, strategy)
    if isinstance(identity, str):
        assert identity == "no_principal"
        return
    assert identity.principal_kind in (NameKind.CN, NameKind.SUBJECT)
    for requirement in never_met(identity):
        assert not requirement.allows(identity), requirement
    roles = RoleMap(
        {
            "pinned": [fingerprint(hashlib.sha256(b"x").hexdigest())],
            "issued": [issuer("CN=Bank Test Root")],
            "spiffe": [spiffe_prefix("spiffe://bank.example")],
            "dns": [dns_name("**")],
        }
    )
    assert roles.roles_for(identity) == frozenset()


@pytest.mark.anyio
@pytest.mark.parametrize("text", sorted(HOSTILE), ids=repr)
async def test_through_the_middleware(pki, text):
    app = app_with(pki, {"tls_version": 772, "client_cert_name": text})
    expected = HOSTILE[text]
    response = await get(app, "/whoami")
    if expected == "anonymous":
        assert (response.status_code, reason(response)) == (401, "missing")
    elif isinstance(expected, str):
        code = RejectionReason(expected)
        assert (response.status_code, reason(response)) == (code.status_code, expected)
        assert (await get(app, "/public")).status_code == code.status_code  # never anonymous
    else:
        assert response.status_code == 200
        assert response.json()["principal"] == expected[1]
        assert (await get(app, "/payments")).status_code == 403


@pytest.mark.anyio
@pytest.mark.parametrize("value", NON_STRINGS, ids=repr)
async def test_a_name_that_is_not_a_string_is_malformed(pki, value):
    response = await get(app_with(pki, {"client_cert_name": value}), "/public")
    assert (response.status_code, reason(response)) == (400, "malformed")


def test_subject_requirements_may_match():
    identity = name_identity("OU=SRE,O=Bank,CN=legacy-batch", "kubernetes")
    from asgi_mtls.authorization import cn, group, subject_attribute

    assert cn("legacy-batch").allows(identity)
    assert subject_attribute("OU", "SRE").allows(identity)
    assert group("Bank").allows(identity)
    assert principal_glob("legacy-*", kind="cn").allows(identity)
    assert require_client().allows(identity)  # any client: the app opted in
    subject = name_identity("OU=SRE,O=Bank,CN=legacy-batch", "subject")
    assert principal("OU=SRE,O=Bank,CN=legacy-batch").allows(subject)
    assert not cn("admin").allows(name_identity("CN=\u0430dmin"))


# -- properties --------------------------------------------------------------------------------

_KEY = CertificateAuthority("Properties Root")
_ATTRIBUTES = [
    NameOID.COMMON_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.USER_ID,
    NameOID.TITLE,
]
_GOOD = st.one_of(
    st.sampled_from(list(',+="\\<>;#/:. @-') + list("abcspife") + ["\u00e9", "\u20ac", "\u0430"]),
    st.characters(categories=("L", "N", "P", "S", "Zs")),
)
_BAD = st.sampled_from(["\x00", "\n", "\x7f", "\u200b", "\u202e", "\ufeff"])
_CLEAN = st.text(alphabet=_GOOD, min_size=1, max_size=24)
#: Mostly printable text (so that most subjects are accepted and compared); one value in eight
#: carries a NUL, a control or an invisible character.
_TAINTED = st.builds(
    lambda a, bad, b: a + bad + b,
    st.text(alphabet=_GOOD, max_size=8),
    _BAD,
    st.text(alphabet=_GOOD, max_size=8),
)
_VALUES = st.sampled_from([False] * 7 + [True]).flatmap(lambda bad: _TAINTED if bad else _CLEAN)
_RDNS = st.lists(
    st.lists(
        st.tuples(st.sampled_from(_ATTRIBUTES), _VALUES),
        min_size=1,
        max_size=2,
        unique_by=lambda a: a[0],
    ),
    min_size=1,
    max_size=4,
)


def _certificate(rdns: list[list[tuple[x509.ObjectIdentifier, str]]]):
    name = x509.Name(
        [x509.RelativeDistinguishedName([x509.NameAttribute(o, v) for o, v in rdn]) for rdn in rdns]
    )
    return _KEY.issue(subject=name).certificate


#: Every strategy but ``fingerprint``, which only a certificate can satisfy (``no_principal``
#: for a name: ``test_only_the_strategies_that_read_the_subject_give_a_principal``).
SUBJECT_STRATEGIES = [strategy for strategy in STRATEGIES if strategy != "fingerprint"]


@SETTINGS
@given(_RDNS, st.sampled_from(SUBJECT_STRATEGIES))
def test_any_subject_gives_the_certificates_identity_or_a_refusal(rdns, strategy):
    """For any subject (the attacker's choice; no SANs), Envoy's printing of it, read by the
    opt-in, gives what the certificate gives, or the same typed refusal; the one difference is
    a ``=#`` in the printed name, refused (fail closed)."""
    from asgi_mtls.identity import build_identity, resolve_principal_strategy

    certificate = _certificate(rdns)
    printed = envoy_subject(certificate)
    got = outcome(printed, strategy)
    try:
        expected: Any = build_identity(
            (certificate,), source="tls", principal=resolve_principal_strategy(strategy)
        )
    except CertificateRejected as exc:
        expected = exc.reason.value
    if isinstance(got, str) or isinstance(expected, str):
        # The one difference: a "=#" in the printed name is refused (fail closed).
        if got != expected:
            assert got == "invalid_name" and "=#" in printed, (printed, got, expected)
        return
    assert (got.subject, got.subject_attributes) == (expected.subject, expected.subject_attributes)
    assert (got.principal_kind, got.principal) == (expected.principal_kind, expected.principal)
    for requirement in never_met(got):
        assert not requirement.allows(got)


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=50), st.integers(), st.none()))
def test_any_value_is_a_typed_refusal_an_identity_or_anonymous(value):
    source = ServerVerifiedNameSource()
    raw = source.find({"extensions": {"tls": {"client_cert_name": value}}})
    if raw is None:
        assert value in (None, "")
        return
    try:
        identity = name_identity(value)
    except CertificateRejected as exc:
        assert exc.reason.value in {"malformed", "invalid_name", "no_principal", "too_large"}
        return
    assert identity.verified_by == "server" and identity.principal_kind is NameKind.CN
    assert not (identity.dns_names or identity.uris or identity.emails or identity.spiffe_id)


# -- what reads certificates meets one without a 500 ---------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "issuer",
        "der_sha256",
        "fingerprint_sha256",
        "x5t_s256",
        "spki_sha256",
        "serial_number",
        "serial_hex",
        "not_before",
        "not_after",
    ],
)
def test_what_only_a_certificate_knows_is_a_clear_error(field):
    with pytest.raises(NoCertificateError, match="server-verified name"):
        getattr(name_identity("CN=payments"), field)


@pytest.mark.parametrize("thumbprint", ["", "AAAA", "x" * 43, None])
def test_a_bound_token_is_refused_for_a_server_verified_name(pki, thumbprint):
    identity = name_identity(envoy_subject(pki.cn_only.certificate))
    cert_thumbprint = CertificateAuthority("x").issue_client("legacy-batch")  # same subject
    for value in (thumbprint, _x5t(cert_thumbprint.der), _x5t(pki.cn_only.der)):
        if value is None:
            continue
        with pytest.raises(Denied) as refused:
            check_token_binding(identity, {"cnf": {"x5t#S256": value}})
        assert refused.value.reason is RejectionReason.TOKEN_BINDING_MISMATCH
        assert refused.value.status_code == 401
    with pytest.raises(Denied) as unbound:
        check_token_binding(identity, {"sub": "client"})
    assert unbound.value.reason is RejectionReason.TOKEN_NOT_BOUND
    check_token_binding(identity, {"sub": "client"}, required=False)  # no binding asked


def _x5t(der: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


@pytest.mark.anyio
async def test_the_fastapi_dependency_answers_invalid_token(pki):
    app = FastAPI()

    def claims(x_claims: str = Header()) -> dict[str, Any]:
        return {"sub": "client", "cnf": {"x5t#S256": x_claims}}

    @app.get("/accounts")
    async def accounts(verified: dict[str, Any] = Depends(certificate_bound(claims))) -> Any:
        return verified

    app.add_middleware(MTLSMiddleware, trust=pki.root.certificate, sources=opted_in())

    async def server(scope, receive, send):
        tls = {"client_cert_name": envoy_subject(pki.cn_only.certificate)}
        await app({**scope, "extensions": {"tls": tls}}, receive, send)

    for value in ("", _x5t(pki.cn_only.der)):
        response = await get(server, "/accounts", headers={"x-claims": value or "-"})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"


@pytest.mark.anyio
async def test_listeners_expiry_and_predicates_cope(pki, caplog):
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    from asgi_mtls.opentelemetry import OpenTelemetryListener
    from asgi_mtls.prometheus import PrometheusListener

    recorder, registry, exporter = Recorder(), CollectorRegistry(), InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    listeners = [LogListener(), PrometheusListener(registry), OpenTelemetryListener(), recorder]
    app = app_with(
        pki,
        {"tls_version": 772, "client_cert_name": envoy_subject(pki.cn_only.certificate)},
        listeners=listeners,
        expiry_warning=dt.timedelta(days=100_000),
        policies={"/reports": predicate(lambda i: i.not_after > dt.datetime.now(dt.UTC))},
    )
    traced = OpenTelemetryMiddleware(app, tracer_provider=provider)
    with caplog.at_level(logging.DEBUG, logger="asgi_mtls"):
        for _ in range(2):
            assert (await get(traced, "/whoami")).status_code == 200
        denied = await get(traced, "/reports")  # a predicate reading notAfter: denies
    assert (denied.status_code, reason(denied)) == (403, "forbidden")
    assert "server-verified name accepted" in caplog.text
    assert recorder.of(CertificateExpiring) == []
    (validated,) = recorder.of(CertificateValidated)
    assert validated.identity.verified_by == "server"
    sample = registry.get_sample_value
    labels = {"outcome": "authenticated", "reason": "", "source": "client_cert_name"}
    assert sample("asgi_mtls_requests_total", labels) == 3
    assert sample("asgi_mtls_client_certificate_expiry_seconds_count") == 0
    spans = [s for s in exporter.get_finished_spans() if s.parent is None]
    attributes = dict(spans[0].attributes or {})
    assert attributes["asgi_mtls.verified_by"] == "server"
    assert attributes["tls.client.subject"] == "CN=legacy-batch,O=Bank"
    assert "tls.client.hash.sha256" not in attributes


@pytest.mark.anyio
async def test_the_identity_hook_sees_it_and_cannot_make_it_more(pki):
    seen: list[ClientIdentity] = []
    other = name_identity("CN=admin")

    async def hook(identity: ClientIdentity) -> ClientIdentity | None:
        seen.append(identity)
        return answers[identity.subject](identity)

    answers = {
        "CN=legacy-batch,O=Bank": lambda i: i.with_extra(tenant="t1"),
        "CN=spiffe": lambda i: dataclasses.replace(
            i, principal_kind=NameKind.SPIFFE, principal="spiffe://bank.example/payments"
        ),
        "CN=swap": lambda i: other,
    }
    for name, code in (("CN=legacy-batch,O=Bank", 200), ("CN=spiffe", 503), ("CN=swap", 503)):
        app = app_with(pki, {"client_cert_name": name}, on_identity=hook)
        response = await get(app, "/whoami")
        assert response.status_code == code, (name, response.text)
        if code == 503:
            assert reason(response) == "identity_hook_error"
    assert {identity.verified_by for identity in seen} == {"server"}
