"""Issue #12: a ``client_cert_name`` without a certificate (pyvoy) becomes an identity only with
the explicit opt-in, ``ServerVerifiedNameSource``, and then only the weaker kind
(``verified_by == "server"``).

In process, with the scopes pyvoy 1.3 gives (``server_name_tls_extension``: the subject as
Envoy prints it, measured against the real server in ``tests/e2e/test_pyvoy.py``).  The attacks
on the names and what such an identity can never satisfy are in
``tests/test_attack_server_names.py``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, get_args

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from asgi_mtls import MTLSMiddleware
from asgi_mtls.errors import CertificateRejected, ConfigurationError, RejectionReason
from asgi_mtls.events import ConfigurationWarning
from asgi_mtls.identity import StrategyName, build_identity, resolve_principal_strategy
from asgi_mtls.identity.names import NameKind, Principal
from asgi_mtls.identity.reader import build_name_identity
from asgi_mtls.sources import HeaderSource, ServerVerifiedNameSource, TLSExtensionSource
from asgi_mtls.sources.headers.envoy_subject import envoy_subject
from asgi_mtls.sources.proxies import PEER_EXTENSION
from asgi_mtls.testing import (
    asgi_tls_scope_extension,
    encode_certificate_headers,
    server_name_tls_extension,
)
from tests.apps import starlette_app
from tests.asgi import drive_websocket, get, reason
from tests.test_events import Recorder

A = x509.NameAttribute


def opted_in(**options: Any) -> list[Any]:
    return [TLSExtensionSource(), ServerVerifiedNameSource(**options)]


def app_with(pki, tls: Any, *, sources=None, headers_from_proxy=False, **options: Any):
    """The middleware behind a server that fills the tls extension with ``tls`` (as pyvoy)."""
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        sources=sources if sources is not None else opted_in(),
        **options,
    )

    async def server(scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            extensions: dict[str, Any] = {"tls": tls}
            if headers_from_proxy:
                extensions[PEER_EXTENSION] = {"family": "inet", "host": "127.0.0.1", "port": 1}
            scope = {**scope, "extensions": extensions}
        await middleware(scope, receive, send)

    server.middleware = middleware  # type: ignore[attr-defined]
    return server


def name_identity(text: object, strategy: str = "default"):
    """What the opt-in makes of ``client_cert_name == text``: an identity, or the refusal."""
    source = ServerVerifiedNameSource()
    raw = source.find({"extensions": {"tls": {"tls_version": 772, "client_cert_name": text}}})
    assert raw is not None
    presented = source.decode(raw)
    return build_name_identity(
        presented.name, source=source.name, principal=resolve_principal_strategy(strategy)
    )


# -- off by default ----------------------------------------------------------------------------

NAMES = ["CN=payments", "O=Bank,CN=legacy-batch", "CN=spiffe://bank.example/payments", "x", "="]


@pytest.mark.anyio
@pytest.mark.parametrize("sources", [None, [TLSExtensionSource()]], ids=["default", "tls-only"])
@pytest.mark.parametrize("name", NAMES)
async def test_without_the_opt_in_a_name_is_refused_as_before(pki, sources, name):
    middleware = MTLSMiddleware(
        starlette_app(), trust=pki.root.certificate, **({"sources": sources} if sources else {})
    )

    async def server(scope, receive, send):
        scope = {**scope, "extensions": {"tls": {"tls_version": 772, "client_cert_name": name}}}
        await middleware(scope, receive, send)

    for path in ("/public", "/whoami"):
        response = await get(server, path)
        assert (response.status_code, reason(response)) == (401, "untrusted")


@pytest.mark.anyio
async def test_without_the_opt_in_no_warning_is_said(pki):
    recorder = Recorder(hits=False)
    MTLSMiddleware(starlette_app(), trust=pki.root.certificate, listeners=[recorder])
    assert recorder.of(ConfigurationWarning) == []


# -- the opt-in ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_opt_in_is_said_once_at_startup(pki):
    recorder = Recorder(hits=False)
    app_with(pki, server_name_tls_extension(pki.cn_only), listeners=[recorder])
    (warning,) = recorder.of(ConfigurationWarning)
    assert warning.option == "sources"
    for words in ("validates nothing", "trust=", "revocation", "client-CA configuration"):
        assert words in warning.message


def test_the_opt_in_needs_the_tls_extension_beside_it(pki):
    with pytest.raises(ConfigurationError, match="TLSExtensionSource"):
        MTLSMiddleware(
            starlette_app(), trust=pki.root.certificate, sources=[ServerVerifiedNameSource()]
        )
    with pytest.raises(ValueError, match="max_name_chars"):
        ServerVerifiedNameSource(max_name_chars=0)


@pytest.mark.anyio
async def test_a_server_verified_name_is_an_identity_of_the_weaker_kind(pki):
    app = app_with(pki, server_name_tls_extension(pki.cn_only))
    response = await get(app, "/whoami")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "principal": "legacy-batch",
        "fingerprint": None,
        "source": "client_cert_name",
        "subject": "CN=legacy-batch,O=Bank",
        "issuer": None,
        "verified_by": "server",
        "client_host": "127.0.0.1",
    }
    assert (await get(app, "/payments")).status_code == 403  # a SPIFFE route: never
    identity = name_identity(envoy_subject(pki.cn_only.certificate))
    assert identity.certificate is None and identity.chain == ()
    assert identity.server_subject == pki.cn_only.certificate.subject
    assert identity.subject_attributes == (("O", "Bank"), ("CN", "legacy-batch"))
    assert (identity.dns_names, identity.uris, identity.emails, identity.ip_addresses) == (
        (),
        (),
        (),
        (),
    )
    assert identity.spiffe_id is None and identity.trust_domain is None
    assert (identity.principal_kind, identity.verified_by) == (NameKind.CN, "server")


#: What each strategy makes of ``CN=legacy-batch,O=Bank`` without a certificate: only the
#: strategies that read the subject give a principal.
STRATEGIES: dict[str, tuple[NameKind, str] | None] = {
    "default": (NameKind.CN, "legacy-batch"),
    "cn": (NameKind.CN, "legacy-batch"),
    "kubernetes": (NameKind.CN, "legacy-batch"),
    "subject": (NameKind.SUBJECT, "CN=legacy-batch,O=Bank"),
    "envoy": (NameKind.SUBJECT, "CN=legacy-batch,O=Bank"),
    "spiffe": None,
    "uri": None,
    "dns": None,
    "email": None,
    "fingerprint": None,
}


def test_every_strategy_is_listed():
    assert set(STRATEGIES) == set(get_args(StrategyName))


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_only_the_strategies_that_read_the_subject_give_a_principal(strategy):
    expected = STRATEGIES[strategy]
    if expected is None:
        with pytest.raises(CertificateRejected) as refused:
            name_identity("CN=legacy-batch,O=Bank", strategy)
        assert refused.value.reason.value == "no_principal"
        return
    identity = name_identity("CN=legacy-batch,O=Bank", strategy)
    assert (identity.principal_kind, identity.principal) == expected
    assert identity.groups == (("Bank",) if strategy == "kubernetes" else ())


@pytest.mark.parametrize(
    ("mapper", "accepted"),
    [
        (lambda i: Principal(NameKind.CN, i.common_names[0]), True),
        (lambda i: Principal(NameKind.SUBJECT, i.subject), True),
        (lambda i: i.common_names[0], False),  # custom: compared by value, so refused
        (lambda i: Principal(NameKind.SPIFFE, "spiffe://bank.example/payments"), False),
        (lambda i: Principal(NameKind.DNS, "payments.bank.example"), False),
        (lambda i: Principal(NameKind.FINGERPRINT, "ab" * 32), False),
        (lambda i: i.fingerprint_sha256, False),  # only a certificate has one
        (lambda i: None, False),
    ],
    ids=["cn", "subject", "custom-str", "spiffe", "dns", "fingerprint", "reads-digest", "none"],
)
def test_an_apps_mapper_gives_only_subject_principals(mapper, accepted):
    strategy = resolve_principal_strategy(mapper)
    if accepted:
        assert build_name_identity(
            x509.Name.from_rfc4514_string("CN=payments"), source="n", principal=strategy
        ).principal
        return
    with pytest.raises(CertificateRejected) as refused:
        build_name_identity(
            x509.Name.from_rfc4514_string("CN=payments"), source="n", principal=strategy
        )
    assert refused.value.reason.value == "no_principal"


# -- a certificate always wins; errors and "no certificate" ------------------------------------


@pytest.mark.anyio
async def test_a_certificate_always_wins_and_is_validated(pki):
    victim = envoy_subject(pki.cn_only.certificate)
    with_chain = {**asgi_tls_scope_extension(pki.reports), "client_cert_name": victim}
    response = await get(app_with(pki, with_chain), "/whoami")
    assert response.json()["principal"] == "spiffe://bank.example/reports"
    assert response.json()["verified_by"] == "certificate"
    assert response.json()["source"] == "tls"
    der_only = {"client_cert": pki.reports.der, "client_cert_name": victim}
    assert (await get(app_with(pki, der_only), "/whoami")).json()["source"] == "tls"
    # An untrusted certificate next to a trusted client's name: the certificate decides.
    untrusted = {**asgi_tls_scope_extension(pki.untrusted), "client_cert_name": victim}
    refused = await get(app_with(pki, untrusted), "/public")
    assert (refused.status_code, reason(refused)) == (401, "untrusted")
    garbage = {"client_cert_chain": ["not a certificate"], "client_cert_name": victim}
    refused = await get(app_with(pki, garbage), "/public")
    assert (refused.status_code, reason(refused)) == (400, "malformed")


@pytest.mark.anyio
@pytest.mark.parametrize("error", ["certificate expired", "", "0"])
async def test_a_servers_error_with_a_name_is_refused(pki, error):
    tls = {"client_cert_name": "CN=legacy-batch,O=Bank", "client_cert_error": error}
    response = await get(app_with(pki, tls), "/public")
    assert (response.status_code, reason(response)) == (401, "untrusted")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "tls",
    [
        {"tls_version": 772, "client_cert_name": ""},  # pyvoy: HTTP/3, optional and absent
        {"tls_version": None, "client_cert_name": None},  # pyvoy's WebSocket without one
        {"tls_version": 772},
        {},
        None,
    ],
    ids=["empty-name", "none-name", "no-name-key", "empty-dict", "no-tls"],
)
async def test_no_certificate_is_anonymous_as_without_the_opt_in(pki, tls):
    app = app_with(pki, tls)
    assert (await get(app, "/public")).json() == {"ok": True, "user": None}
    missing = await get(app, "/whoami")
    assert (missing.status_code, reason(missing)) == (401, "missing")


@pytest.mark.anyio
async def test_a_websocket_gets_the_same_identity(pki):
    tls = {"tls_version": None, "client_cert_name": envoy_subject(pki.cn_only.certificate)}
    sent = await drive_websocket(app_with(pki, tls), "/ws", http_response_extension=False)
    body = json.loads(next(m["text"] for m in sent if m["type"] == "websocket.send"))
    assert (body["principal"], body["verified_by"]) == ("legacy-batch", "server")


# -- one identity per request; the cache ---------------------------------------------------------


@pytest.mark.anyio
async def test_a_name_and_a_proxy_header_conflict(pki):
    tls = server_name_tls_extension(pki.cn_only)
    app = app_with(
        pki,
        tls,
        sources=[*opted_in(), HeaderSource("nginx")],
        trusted_proxies=["127.0.0.1"],
        headers_from_proxy=True,
    )
    for cert in (pki.reports, pki.cn_only):  # another client, or the same one
        headers = encode_certificate_headers("nginx", cert)
        response = await get(app, "/public", headers=headers)
        assert (response.status_code, reason(response)) == (400, "conflicting_sources")


@pytest.mark.anyio
async def test_outcomes_are_cached_under_the_sources_name(pki):
    text = envoy_subject(pki.cn_only.certificate)
    app = app_with(pki, server_name_tls_extension(pki.cn_only))
    resolver = app.middleware.resolver
    for _ in range(3):
        assert (await get(app, "/whoami")).status_code == 200
    assert resolver.misses == 1
    assert ("client_cert_name", (text,)) in resolver.cache.accepted
    # A refusal is cached under the same source name, and holds no oversized value.
    huge = app_with(pki, {"client_cert_name": "CN=" + "a" * 5000})
    for _ in range(2):
        refused = await get(huge, "/public")
        assert (refused.status_code, reason(refused)) == (400, "too_large")
    assert huge.middleware.resolver.misses == 1
    assert len(huge.middleware.resolver.cache) == 1


# -- the same subject, read from the certificate or from the server's name --------------------

SUBJECTS = {
    "plain": [A(NameOID.ORGANIZATION_NAME, "Bank"), A(NameOID.COMMON_NAME, "payments")],
    "separators": [A(NameOID.COMMON_NAME, ' #a,b;c+d"e\\f<g>h=i/j ')],
    "non-ascii": [A(NameOID.COMMON_NAME, "J\u00fcrgen \u20ac\U0001f600")],
    "spiffe-in-cn": [A(NameOID.COMMON_NAME, "spiffe://bank.example/payments")],
    "dn-in-cn": [A(NameOID.COMMON_NAME, "CN=admin,O=Bank")],
    "two-cns": [A(NameOID.COMMON_NAME, "a"), A(NameOID.COMMON_NAME, "b")],
    "openssl-names": [
        A(NameOID.EMAIL_ADDRESS, "a@b.example"),
        A(NameOID.SERIAL_NUMBER, "123"),
        A(NameOID.STREET_ADDRESS, "Main St"),
        A(NameOID.GIVEN_NAME, "Al"),
        A(NameOID.SURNAME, "Bo"),
        A(NameOID.TITLE, "dr"),
        A(NameOID.COMMON_NAME, "x"),
    ],
    "dc": [
        A(NameOID.DOMAIN_COMPONENT, "example"),
        A(NameOID.DOMAIN_COMPONENT, "bank"),
        A(NameOID.COMMON_NAME, "svc"),
    ],
    "control-character": [A(NameOID.COMMON_NAME, "a\nb")],
    "zero-width-space": [A(NameOID.COMMON_NAME, "ad\u200bmin")],
    "nul": [A(NameOID.COMMON_NAME, "ad\x00min")],
}
MULTI_VALUED = x509.Name(
    [
        x509.RelativeDistinguishedName([A(NameOID.COMMON_NAME, "alice"), A(NameOID.USER_ID, "42")]),
        x509.RelativeDistinguishedName([A(NameOID.ORGANIZATION_NAME, "Bank")]),
    ]
)


def _subjects() -> dict[str, x509.Name]:
    return {**{k: x509.Name(v) for k, v in SUBJECTS.items()}, "multi-valued-rdn": MULTI_VALUED}


@pytest.mark.parametrize("strategy", ["default", "cn", "subject", "kubernetes", "envoy"])
@pytest.mark.parametrize("case", sorted(_subjects()))
def test_the_name_gives_what_the_certificate_gives(pki, case, strategy):
    """Whatever the subject, the name Envoy prints for a certificate gives the identity the
    certificate gives (subject, attributes in encoded order, principal), or the same refusal."""
    cert = pki.intermediate.issue_client(subject=_subjects()[case])
    principal = resolve_principal_strategy(strategy)
    try:
        expected: Any = build_identity((cert.certificate,), source="tls", principal=principal)
    except CertificateRejected as exc:
        expected = exc.reason
    try:
        got: Any = name_identity(envoy_subject(cert.certificate), strategy)
    except CertificateRejected as exc:
        got = exc.reason
    if isinstance(expected, RejectionReason):
        assert got == expected
        return
    assert not isinstance(got, RejectionReason), got
    for field in ("subject", "subject_attributes", "principal", "principal_kind", "groups"):
        assert getattr(got, field) == getattr(expected, field), field
    assert got.server_subject == cert.certificate.subject


def test_names_in_hex_form_are_refused_where_the_certificate_is_not(pki):
    """The one documented difference: a value BoringSSL prints as ``#hex`` (an attribute it has
    no name for, such as organizationIdentifier) cannot be read back as text."""
    cert = pki.intermediate.issue_client(
        subject=x509.Name(
            [A(NameOID.ORGANIZATION_IDENTIFIER, "PSDDE-BAFIN-123"), A(NameOID.COMMON_NAME, "x")]
        )
    )
    printed = envoy_subject(cert.certificate)
    assert printed.startswith("CN=x,2.5.4.97=#0C")
    with pytest.raises(CertificateRejected) as refused:
        name_identity(printed)
    assert refused.value.reason.value == "invalid_name"


def test_the_identity_cannot_be_given_more_than_a_subject():
    """The class keeps a server-verified name to its shape, whoever builds or changes it (an
    identity hook's dataclasses.replace included)."""
    identity = name_identity("CN=payments")
    for change in (
        {"dns_names": ("payments.bank.example",)},
        {"uris": ("spiffe://bank.example/payments",)},
        {"emails": ("a@bank.example",)},
        {"ip_addresses": ("192.0.2.1",)},
        {"spiffe_id": resolve_spiffe()},
        {"principal_kind": NameKind.SPIFFE, "principal": "spiffe://bank.example/payments"},
        {"principal_kind": NameKind.CUSTOM, "principal": "spiffe://bank.example/payments"},
        {"principal_kind": NameKind.FINGERPRINT, "principal": "ab" * 32},
        {"server_subject": None},
        {"verified_by": "certificate"},
        {"verified_by": "anything"},
    ):
        with pytest.raises(ValueError, match=r"verified_by|server-verified|certificate"):
            dataclasses.replace(identity, **change)


def resolve_spiffe():
    from asgi_mtls.identity import parse_spiffe_id

    return parse_spiffe_id("spiffe://bank.example/payments")
