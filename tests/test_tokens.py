"""Issue #13: RFC 8705 certificate-bound access tokens, checked on already-verified claims.

The thumbprint is computed here independently of the library (hashlib over the DER); the
class of attack covered: a token of another certificate, a token without binding, a binding
of the wrong shape, a bound token on a request without a certificate.  Real JWTs over real
servers: ``tests/e2e/test_tokens_e2e.py``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Header, HTTPException

from asgi_mtls import ClientIdentity, MTLSMiddleware, RejectionReason
from asgi_mtls.authorization import check_token_binding
from asgi_mtls.authorization.tokens import token_thumbprint
from asgi_mtls.errors import Denied
from asgi_mtls.events import Forbidden
from asgi_mtls.fastapi import certificate_bound
from asgi_mtls.identity import build_identity
from asgi_mtls.testing import simulate_connection
from tests.asgi import get
from tests.test_events import Recorder

pytestmark = pytest.mark.anyio


def thumbprint(cert) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(cert.der).digest()).rstrip(b"=").decode()


def identity_of(cert) -> ClientIdentity:
    from asgi_mtls.identity import resolve_principal_strategy

    return build_identity(
        (cert.certificate, *cert.chain),
        source="tls",
        principal=resolve_principal_strategy("default"),
    )


def test_x5t_s256_is_the_unpadded_base64url_sha256_of_the_der(pki, padded_client):
    for cert in (pki.payments, pki.cn_only, padded_client):
        identity = identity_of(cert)
        assert identity.x5t_s256 == thumbprint(cert)
        assert "=" not in identity.x5t_s256 and len(identity.x5t_s256) == 43
        assert identity.der_sha256.hex() == identity.fingerprint_sha256 == cert.fingerprint_sha256


def test_a_bound_token_of_this_certificate_passes(pki):
    identity = identity_of(pki.payments)
    check_token_binding(identity, {"sub": "a", "cnf": {"x5t#S256": thumbprint(pki.payments)}})
    check_token_binding(identity, {"sub": "a"}, required=False)


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"sub": "a"}, "token_not_bound"),
        ({"cnf": {}}, "token_not_bound"),
        ({"cnf": {"jkt": "dpop-key-thumbprint"}}, "token_not_bound"),
        ({"cnf": {"x5t#S256": "REPORTS"}}, "token_binding_mismatch"),
        ({"cnf": {"x5t#S256": ""}}, "token_binding_mismatch"),
        ({"cnf": {"x5t#S256": "PAYMENTS="}}, "token_binding_mismatch"),  # padded
        ({"cnf": {"x5t#S256": "PAYMENTS".lower()}}, "token_binding_mismatch"),
        ({"cnf": {"x5t#S256": "PAYMENTS_HEX"}}, "token_binding_mismatch"),  # x5t in hex
        ({"cnf": {"x5t#S256": "PAYMENTS_STD"}}, "token_binding_mismatch"),  # base64, not url
        ({"cnf": {"x5t#S256": "é" * 43}}, "token_binding_mismatch"),
        ({"cnf": {"x5t#S256": ["PAYMENTS"]}}, "token_binding_mismatch"),
        ({"cnf": {"x5t#S256": 42}}, "token_binding_mismatch"),
        ({"cnf": "PAYMENTS"}, "token_binding_mismatch"),
        ({"cnf": ["PAYMENTS"]}, "token_binding_mismatch"),
    ],
)
def test_tokens_not_bound_to_this_certificate_are_refused(pki, claims, code):
    payments = thumbprint(pki.payments)
    digest = hashlib.sha256(pki.payments.der).digest()
    swaps = {
        "PAYMENTS": payments,
        "REPORTS": thumbprint(pki.reports),
        "PAYMENTS_HEX": digest.hex(),
        # Standard base64 as many encoders write it (padded; '+' and '/' where they occur).
        "PAYMENTS_STD": base64.b64encode(digest).decode(),
    }

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        if isinstance(value, str):
            for name in sorted(swaps, key=len, reverse=True):
                if value.startswith(name):
                    return swaps[name] + value[len(name) :]
            return value
        return value

    claims = swap(claims)
    with pytest.raises(Denied) as caught:
        check_token_binding(identity_of(pki.payments), claims)
    exc = caught.value
    assert exc.reason.value == code and exc.status_code == 401
    assert exc.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert exc.where == "token binding"
    body = exc.json_body().decode()
    assert '"error":"invalid_token"' in body and f'"reason":"{code}"' in body
    if code == "token_binding_mismatch":  # a binding is checked even when not required
        with pytest.raises(Denied):
            check_token_binding(identity_of(pki.payments), claims, required=False)


def test_a_bound_token_without_a_certificate_is_refused(pki):
    claims = {"cnf": {"x5t#S256": thumbprint(pki.payments)}}
    for required in (True, False):
        with pytest.raises(Denied) as caught:
            check_token_binding(None, claims, required=required)
        assert caught.value.reason is RejectionReason.TOKEN_BINDING_MISMATCH


def test_the_thumbprint_claim_shapes():
    assert token_thumbprint({}) is None
    assert token_thumbprint({"cnf": {"x5t#S256": "abc"}}) == "abc"
    assert token_thumbprint({"cnf": None}) is None
    assert token_thumbprint({"cnf": 3}) == ""


def test_the_challenge_header_has_only_characters_rfc_6750_allows():
    for reason in (RejectionReason.TOKEN_NOT_BOUND, RejectionReason.TOKEN_BINDING_MISMATCH):
        header = Denied(reason, where="token binding", requirement="x").headers["www-authenticate"]
        description = header.split('error_description="', 1)[1].rstrip('"')
        # RFC 6750 section 3: %x20-21 / %x23-5B / %x5D-7E
        assert all(c in (" ", "!") or (0x23 <= ord(c) <= 0x7E and c != "\\") for c in description)


def _app(pki, recorder: Recorder, *, required: bool = True) -> Any:
    app = FastAPI()

    def claims(x_claims: str = Header()) -> dict[str, Any]:  # stands in for the app's JWT code
        if x_claims == "none":
            raise HTTPException(401, "no token")
        return {"sub": "client", "cnf": {"x5t#S256": x_claims}} if x_claims != "-" else {}

    @app.get("/accounts")
    async def accounts(
        verified: dict[str, Any] = Depends(certificate_bound(claims, required=required)),
    ) -> dict[str, Any]:
        return {"sub": verified["sub"]}

    app.add_middleware(
        MTLSMiddleware,
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        listeners=[recorder],
    )
    return app


async def test_the_fastapi_dependency_answers_invalid_token(pki):
    recorder = Recorder(hits=False)
    app = simulate_connection(_app(pki, recorder), pki.payments)
    ok = await get(app, "/accounts", headers={"x-claims": thumbprint(pki.payments)})
    assert ok.status_code == 200 and ok.json() == {"sub": "client"}
    wrong = await get(app, "/accounts", headers={"x-claims": thumbprint(pki.reports)})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_token"
    assert wrong.json()["reason"] == "token_binding_mismatch"
    assert wrong.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="the access token is not bound to '
        'this client certificate"'
    )
    assert wrong.headers["cache-control"] == "no-store"
    unbound = await get(app, "/accounts", headers={"x-claims": "-"})
    assert unbound.json()["reason"] == "token_not_bound"
    (first, second) = recorder.of(Forbidden)
    assert first.where == "token binding" and first.identity is not None
    assert second.reason is RejectionReason.TOKEN_NOT_BOUND
