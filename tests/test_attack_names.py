"""Attacks on names (issue #8, items 1 and 8), through the public API.

The attacker holds a certificate from the trusted CA (a careless or compromised RA issues what
it is asked for) and picks the names in it.  Whatever field carries the text of a name an app
requires, only the field of that name's kind may satisfy the requirement; a name that is not
well formed for its kind refuses the whole certificate.
"""

from __future__ import annotations

import itertools
from typing import get_args

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from asgi_mtls import CertificateRejected, MTLSMiddleware, RejectionReason, require_client
from asgi_mtls.authorization.matchers import cn, principal, principal_glob, spiffe_glob
from asgi_mtls.authorization.roles import RoleMap
from asgi_mtls.identity import build_identity, resolve_principal_strategy
from asgi_mtls.identity.principals import StrategyName
from asgi_mtls.testing import CertificateAuthority, simulate_connection
from tests.asgi import get, reason

STRATEGIES: tuple[StrategyName, ...] = get_args(StrategyName)

#: What an app may require, by kind, and the certificate field that legitimately carries it.
TARGETS = {
    "spiffe": ("spiffe://bank.example/ns/prod/sa/payments", "uri"),
    "uri": ("https://bank.example/payments", "uri"),
    "dns": ("admin.example.com", "dns"),
    "email": ("ops@bank.example", "email"),
}
#: Every field an attacker can put text into.
CARRIERS = ("cn", "o", "ou", "uid", "email_attribute", "dns", "uri", "email")


def forged(ca: CertificateAuthority, carrier: str, text: str):
    """A certificate from ``ca`` whose only occurrence of ``text`` is in ``carrier``."""
    subject = {
        "cn": NameOID.COMMON_NAME,
        "o": NameOID.ORGANIZATION_NAME,
        "ou": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "uid": NameOID.USER_ID,
        "email_attribute": NameOID.EMAIL_ADDRESS,
    }
    if carrier in subject:
        attributes = [x509.NameAttribute(subject[carrier], text)]
        if carrier != "cn":
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, "attacker"))
        return ca.issue(subject=x509.Name(attributes))
    san = {
        "dns": x509.DNSName._init_without_validation,
        "uri": x509.UniformResourceIdentifier._init_without_validation,
        "email": x509.RFC822Name._init_without_validation,
    }[carrier]
    return ca.issue(common_name="attacker", sans=[san(text)])


def allowed(requirement, cert, strategy: str) -> bool:
    try:
        identity = build_identity(
            (cert.certificate,), source="tls", principal=resolve_principal_strategy(strategy)
        )
    except CertificateRejected as exc:
        assert exc.reason in (RejectionReason.INVALID_NAME, RejectionReason.NO_PRINCIPAL)
        return False
    return requirement.allows(identity)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("Attack Names Root")


@pytest.mark.parametrize(("kind", "carrier"), list(itertools.product(TARGETS, CARRIERS)))
def test_only_the_field_of_the_required_kind_satisfies_it(ca, kind, carrier):
    text, legitimate = TARGETS[kind]
    cert = forged(ca, carrier, text)
    requirements = [
        require_client(text),
        principal(text),
        require_client(principal(text)),
        RoleMap({"r": text}).rules["r"],
        RoleMap.from_dict({"roles": {"r": {"principal": text}}}).rules["r"],
    ]
    if kind == "spiffe":
        requirements.append(spiffe_glob(text))
    else:
        requirements.append(principal_glob(text))
    outcomes = {
        (strategy, repr(requirement)): allowed(requirement, cert, strategy)
        for strategy in STRATEGIES
        for requirement in requirements
    }
    if carrier == legitimate:
        # the real thing is allowed (under the strategies that pick that kind of name)
        assert outcomes[("default", repr(requirements[0]))]
    else:
        assert not any(outcomes.values()), [key for key, ok in outcomes.items() if ok]


@pytest.mark.anyio
@pytest.mark.parametrize("carrier", ["cn", "dns", "email", "ou"])
async def test_spiffe_requirement_through_the_middleware(ca, carrier):
    text = TARGETS["spiffe"][0]
    middleware = MTLSMiddleware(_app(text), trust=ca.certificate)
    response = await get(simulate_connection(middleware, forged(ca, carrier, text)), "/pay")
    assert response.status_code in (401, 403)
    assert reason(response) in ("forbidden", "invalid_name")
    genuine = ca.issue_client(spiffe_id=text)
    ok = await get(simulate_connection(middleware, genuine), "/pay")
    assert ok.status_code == 200 and ok.json() == {"caller": text}


def test_cn_is_matched_only_when_asked_for(ca):
    cert = forged(ca, "cn", "admin.example.com")
    for strategy in STRATEGIES:
        assert not allowed(require_client("admin.example.com"), cert, strategy)
    assert allowed(cn("admin.example.com"), cert, "default")
    assert allowed(principal_glob("admin.*", kind="cn"), cert, "cn")
    # the CN matcher never reads a SAN of that text
    assert not allowed(cn("admin.example.com"), forged(ca, "dns", "admin.example.com"), "default")


@pytest.mark.parametrize(
    "text",
    [
        "legacy batch",  # a space: no kind of name
        "admin\u200b.example",  # invisible character
        "10.0.0.1",  # addresses are not principals
        "SPIFFE://bank.example/x",  # a SPIFFE ID written wrongly is not a URI either
        "spiffe://Bank.example/x",
    ],
)
def test_requirement_strings_without_a_kind_fail_at_startup(text):
    with pytest.raises(ValueError, match=r"principal|SPIFFE|trust domain"):
        require_client(text)


# -- SAN content: IA5String syntax ------------------------------------------------------------

MALFORMED_SANS = [
    ("dns", "\u0430dmin.example"),  # UTF-8 with a Cyrillic a
    ("dns", "adm_in.example"),  # '_' is not in a host name
    ("dns", "*.example.com"),  # a wildcard is not a client
    ("dns", "admin.example."),  # trailing dot
    ("dns", "admin..example"),  # empty label
    ("dns", "-admin.example"),
    ("dns", "admin example"),
    ("dns", "a" * 64 + ".example"),  # label too long
    ("dns", "admin.example,URI=x"),
    ("email", "\u00e9@bank.example"),
    ("email", "ops@@bank.example"),
    ("email", "ops bank@bank.example"),
    ("email", '"ops"@bank.example'),
    ("email", "ops@bank_example"),
    ("email", "ops"),
    ("uri", "https://bank.example/\u00e9"),
    ("uri", "https://bank.example/a b"),
    ("uri", 'x,Hash=ab;Cert="zz"'),
    ("uri", "https://bank.example/\\x"),
    ("uri", "https://bank.example/%zz"),
    ("uri", "bank.example/payments"),  # no scheme
    ("uri", "https://bank.example/<script>"),
]


@pytest.mark.parametrize(("carrier", "value"), MALFORMED_SANS)
@pytest.mark.parametrize("strategy", ["default", "dns", "envoy", "cn"])
def test_a_malformed_san_refuses_the_whole_certificate(ca, carrier, value, strategy):
    cert = forged(ca, carrier, value)
    with pytest.raises(CertificateRejected) as info:
        build_identity(
            (cert.certificate,), source="tls", principal=resolve_principal_strategy(strategy)
        )
    assert info.value.reason is RejectionReason.INVALID_NAME


@pytest.mark.anyio
async def test_malformed_san_through_the_middleware_is_401_invalid_name(ca, caplog):
    middleware = MTLSMiddleware(_app("admin.example"), trust=ca.certificate)
    cert = forged(ca, "dns", "\u0430dmin.example")
    response = await get(simulate_connection(middleware, cert), "/pay")
    assert response.status_code == 401 and reason(response) == "invalid_name"
    assert "reason=invalid_name" in caplog.text


def _app(required: str):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    @require_client(required)
    async def pay(request: Request) -> JSONResponse:
        return JSONResponse({"caller": request.user.identity})

    return Starlette(routes=[Route("/pay", pay)])
