"""Roles: RoleMap from Python, TOML and JSON, and roles through the middleware."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_mtls import MTLSMiddleware, RoleMap, get_client_identity, require_client
from asgi_mtls.authorization import (
    RoleConfigError,
    predicate,
    principal,
    role,
    spiffe_glob,
    subject_attribute,
)
from asgi_mtls.identity import build_identity, resolve_principal_strategy
from asgi_mtls.testing import CertificateAuthority, simulate_connection
from tests.asgi import get, reason

ROLES_TOML = """
[[roles.payments-admin]]
principal = ["spiffe://bank.example/ops"]

[[roles.payments-admin]]
spiffe_glob = "spiffe://bank.example/ns/payments/sa/*"

[[roles.sre]]
issuer = "CN=Corp Issuing CA"
subject = { OU = "SRE", O = ["Corp", "Corp Ltd"] }

[[roles.sre]]
cn = "legacy-batch"

[roles.mesh]
spiffe_prefix = "spiffe://bank.example/ns"

[roles.cluster-admin]
group = "system:masters"

[roles.internal]
dns = "*.internal.example"
trust_domain = ["bank.example", "corp.example"]
"""


def identity_of(cert, strategy="default"):
    return build_identity(
        (cert.certificate, *cert.chain),
        source="tls",
        principal=resolve_principal_strategy(strategy),
    )


@pytest.fixture(scope="module")
def ca():
    return CertificateAuthority("Corp Issuing CA")


@pytest.fixture(scope="module")
def people(ca):
    def subject(*pairs):
        return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])

    return {
        "ops": ca.issue_client(spiffe_id="spiffe://bank.example/ops"),
        "payments_web": ca.issue_client(spiffe_id="spiffe://bank.example/ns/payments/sa/web"),
        "payments_deep": ca.issue_client(
            spiffe_id="spiffe://bank.example/ns/payments/sa/web/extra"
        ),
        "sre": ca.issue(
            subject=subject(
                (NameOID.ORGANIZATION_NAME, "Corp"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "SRE"),
                (NameOID.COMMON_NAME, "oncall"),
            )
        ),
        "sre_lookalike": ca.issue(
            subject=subject(
                (NameOID.ORGANIZATION_NAME, "Corp"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "SR\u0415"),
                (NameOID.COMMON_NAME, "oncall"),
            )
        ),
        "legacy": ca.issue_client("legacy-batch"),
        "kube": ca.issue(
            subject=subject(
                (NameOID.ORGANIZATION_NAME, "system:masters"), (NameOID.COMMON_NAME, "alice")
            )
        ),
        "dns": ca.issue_client(
            dns_names=["db.internal.example"], uris=["spiffe://bank.example/db"]
        ),
    }


def test_role_file_toml(tmp_path, people):
    path = tmp_path / "roles.toml"
    path.write_text(ROLES_TOML)
    roles = RoleMap.from_file(path)
    assert roles.roles_for(identity_of(people["ops"])) == {"payments-admin"}
    assert roles.roles_for(identity_of(people["payments_web"])) == {"payments-admin", "mesh"}
    assert roles.roles_for(identity_of(people["payments_deep"])) == {"mesh"}
    assert roles.roles_for(identity_of(people["sre"])) == {"sre"}
    assert roles.roles_for(identity_of(people["sre_lookalike"])) == frozenset()
    assert roles.roles_for(identity_of(people["legacy"])) == {"sre"}
    assert roles.roles_for(identity_of(people["kube"], "kubernetes")) == {"cluster-admin"}
    assert roles.roles_for(identity_of(people["kube"], "cn")) == frozenset()
    # dns AND trust_domain: both hold for a certificate with a DNS SAN and a SPIFFE ID
    assert roles.roles_for(identity_of(people["dns"], "dns")) == {"internal"}
    assert roles.roles_for(identity_of(people["ops"])) == {"payments-admin"}
    assert len(roles) == 5 and "sre" in roles
    described = roles.describe()
    assert described["sre"] == (
        "(issuer CN=Corp Issuing CA and subject OU in SRE and subject O in Corp, Corp Ltd)"
        " or CN in legacy-batch"
    )


def test_role_file_json_is_equivalent(tmp_path, people):
    import tomllib

    path = tmp_path / "roles.json"
    path.write_text(json.dumps(tomllib.loads(ROLES_TOML)))
    from_json = RoleMap.from_file(path)
    toml_path = tmp_path / "roles.toml"
    toml_path.write_text(ROLES_TOML)
    from_toml = RoleMap.from_file(toml_path)
    for cert in people.values():
        identity = identity_of(cert, "kubernetes" if cert is people["kube"] else "default")
        assert from_json.roles_for(identity) == from_toml.roles_for(identity)


def test_role_map_from_python(people):
    roles = RoleMap(
        {
            "payments-admin": [
                "spiffe://bank.example/ops",
                spiffe_glob("spiffe://bank.example/ns/payments/sa/*"),
            ],
            "sre": subject_attribute("OU", "SRE") & subject_attribute("O", "Corp"),
            "anyone-named-oncall": predicate(lambda i: i.common_names == ("oncall",)),
        }
    )
    assert roles.roles_for(identity_of(people["ops"])) == {"payments-admin"}
    assert roles.roles_for(identity_of(people["sre"])) == {"sre", "anyone-named-oncall"}
    assert roles.roles_for(identity_of(people["legacy"])) == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[roles.x]\nprinicpal = 'a'", "unknown key 'prinicpal'"),
        ("[roles.x]\n", "empty rule"),
        ("roles = 1", "'roles' must be a table"),
        ("[other]\na = 1", "unknown top-level key"),
        ("[roles.x]\nissuer = 'not a dn'", r"roles\.x\[0\]\.issuer: invalid issuer"),
        ("[roles.x]\nprincipal = []", "non-empty list"),
        ("[roles.x]\nprincipal = [1]", "non-empty list"),
        ("[roles.x]\nsubject = { organisation = 'x' }", "unknown subject attribute"),
        ("[roles.x]\nsubject = 'OU=SRE'", "expected a table"),
        ("[roles.authenticated]\nprincipal = 'a'", "reserved"),
        ("[roles.'bad name']\nprincipal = 'a'", "invalid role name"),
        ("[roles.x]\nprincipal = 'ad\u200bmin'", "invisible"),
        ("[roles.x]\nspiffe_glob = 'spiffe://*.example/x'", "trust domain"),
        ("roles = { x = [] }", "no rules"),
        ("[roles", "not valid TOML"),
    ],
)
def test_bad_role_files_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "roles.toml"
    path.write_text(text)
    with pytest.raises(RoleConfigError, match=message) as info:
        RoleMap.from_file(path)
    assert str(path) in str(info.value)


def test_bad_role_sources(tmp_path):
    with pytest.raises(RoleConfigError, match="cannot read"):
        RoleMap.from_file(tmp_path / "missing.toml")
    with pytest.raises(RoleConfigError, match=r"\.toml or \.json"):
        RoleMap.from_file(tmp_path / "roles.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RoleConfigError, match="not valid JSON"):
        RoleMap.from_file(tmp_path / "bad.json")
    with pytest.raises(RoleConfigError, match="cannot depend on roles"):
        RoleMap({"a": role("b")})
    with pytest.raises(RoleConfigError, match="cannot depend on roles"):
        RoleMap({"a": principal("x") | role("b")})
    with pytest.raises(RoleConfigError):
        RoleMap({"a": 42})  # type: ignore[dict-item]
    with pytest.raises(RoleConfigError):
        RoleMap({"a": []})


# -- through the middleware -----------------------------------------------------------------


@requires("payments-admin")
async def starlette_admin(request: Request) -> JSONResponse:
    return JSONResponse({"roles": sorted(request.auth.scopes)})


@require_client(role("payments-admin", "sre"))
async def mtls_admin(request: Request) -> JSONResponse:
    identity = get_client_identity(request)
    assert identity is not None
    return JSONResponse({"roles": sorted(identity.roles)})


def role_app(ca, roles, **options):
    app = Starlette(
        routes=[Route("/starlette", starlette_admin), Route("/mtls", mtls_admin)],
    )
    return MTLSMiddleware(app, trust=ca.certificate, roles=roles, **options)


@pytest.mark.anyio
async def test_roles_are_scopes_and_identity_roles(tmp_path, ca, people):
    path = tmp_path / "roles.toml"
    path.write_text(ROLES_TOML)
    middleware = role_app(ca, str(path))
    ops = simulate_connection(middleware, people["ops"])
    assert (await get(ops, "/starlette")).json() == {"roles": ["authenticated", "payments-admin"]}
    assert (await get(ops, "/mtls")).json() == {"roles": ["payments-admin"]}
    sre = simulate_connection(middleware, people["sre"])
    assert (await get(sre, "/starlette")).status_code == 403  # Starlette's own 403
    assert (await get(sre, "/mtls")).json() == {"roles": ["sre"]}
    nobody = simulate_connection(middleware, people["sre_lookalike"])
    denied = await get(nobody, "/mtls")
    assert denied.status_code == 403 and reason(denied) == "forbidden"


@pytest.mark.anyio
async def test_roles_are_computed_once_per_certificate(ca, people):
    calls = []

    def counting(identity) -> bool:
        calls.append(identity.principal)
        return True

    app = simulate_connection(role_app(ca, {"sre": predicate(counting)}), people["legacy"])
    for _ in range(3):
        assert (await get(app, "/mtls")).json() == {"roles": ["sre"]}
    assert calls == ["legacy-batch"]


def test_a_bad_role_file_fails_at_startup(tmp_path, ca):
    path = tmp_path / "roles.toml"
    path.write_text("[roles.x]\nprinicpal = 'a'")
    with pytest.raises(RoleConfigError, match="unknown key"):
        role_app(ca, path)
    with pytest.raises(TypeError):
        role_app(ca, 42)
