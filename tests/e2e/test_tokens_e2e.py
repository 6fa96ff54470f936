"""RFC 8705 over real servers: JWTs signed by an "authorization server" (PyJWT, ES256), bound
to a client certificate with ``cnf.x5t#S256``, verified by the app's own PyJWT code and
checked by ``certificate_bound`` behind uvicorn TLS and behind nginx (the certificate in
nginx's header)."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI, Header, HTTPException

from asgi_mtls import HeaderSource, MTLSMiddleware, TLSExtensionSource
from asgi_mtls.fastapi import certificate_bound
from asgi_mtls.testing import IssuedCertificate

from .conftest import PKIFiles
from .proxies import client as proxy_client
from .proxies import free_port, serve_upstream, spec, start_proxy
from .test_uvicorn_mtls import client, middleware_options, serve_tls

pytestmark = pytest.mark.e2e

AUDIENCE = "https://api.bank.example"
ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())


def token(cert: IssuedCertificate | None, **claims: Any) -> str:
    """An access token as the authorization server issues it; bound to ``cert`` if given."""
    body: dict[str, Any] = {
        "iss": "https://as.bank.example",
        "aud": AUDIENCE,
        "sub": "client-42",
        "exp": int(time.time()) + 300,
        **claims,
    }
    if cert is not None:
        digest = hashlib.sha256(cert.der).digest()
        body["cnf"] = {"x5t#S256": base64.urlsafe_b64encode(digest).rstrip(b"=").decode()}
    return jwt.encode(body, ISSUER_KEY, algorithm="ES256")


def verified_claims(authorization: str = Header()) -> dict[str, Any]:
    """The app's own token verification (signature, audience, expiry), with PyJWT."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise HTTPException(401, "bearer token required")
    try:
        return jwt.decode(value, ISSUER_KEY.public_key(), algorithms=["ES256"], audience=AUDIENCE)
    except jwt.InvalidTokenError as exc:
        raise HTTPException(401, f"invalid token: {exc}") from None


def api(**options: Any) -> Any:
    app = FastAPI()

    @app.get("/accounts")
    async def accounts(
        claims: dict[str, Any] = Depends(certificate_bound(verified_claims)),
    ) -> dict[str, Any]:
        return {"sub": claims["sub"]}

    app.add_middleware(MTLSMiddleware, **options)
    return app


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


def check_binding(get: Any, pki: Any) -> None:
    """The same checks whichever way the certificate arrives (``get(path, headers)``: a
    client presenting pki.payments)."""
    ok = get("/accounts", bearer(token(pki.payments)))
    assert ok.status_code == 200 and ok.json() == {"sub": "client-42"}
    stolen = get("/accounts", bearer(token(pki.reports)))  # another client's token
    assert stolen.status_code == 401
    assert stolen.json()["error"] == "invalid_token"
    assert stolen.json()["reason"] == "token_binding_mismatch"
    assert stolen.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    unbound = get("/accounts", bearer(token(None)))
    assert unbound.status_code == 401 and unbound.json()["reason"] == "token_not_bound"
    forged = get("/accounts", bearer(token(pki.payments, aud="https://elsewhere")))
    assert forged.status_code == 401 and "invalid token" in forged.json()["detail"]


def test_bound_tokens_through_uvicorn_tls(pki, pki_files: PKIFiles):
    app = api(**middleware_options(pki))
    with serve_tls(pki, pki_files, app) as url:
        with client(pki_files, pki.payments) as http:
            check_binding(lambda path, headers: http.get(url + path, headers=headers), pki)
        with client(pki_files, None) as http:  # no certificate: a bound token is useless
            anonymous = http.get(url + "/accounts", headers=bearer(token(pki.payments)))
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "token_binding_mismatch"


@pytest.fixture(scope="module")
def behind_nginx(pki, pki_files: PKIFiles, tmp_path_factory) -> Iterator[str]:
    nginx = spec("nginx")
    app = api(
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        trusted_proxies=["127.0.0.1"],
        sources=[TLSExtensionSource(), HeaderSource("nginx")],
    )
    work = tmp_path_factory.mktemp("nginx-tokens")
    with serve_upstream(app) as upstream:
        settings = nginx.settings(pki_files, work, free_port(), upstream)
        with start_proxy(nginx, settings, work) as url:
            yield url


def test_bound_tokens_through_nginx(pki, pki_files: PKIFiles, behind_nginx: str):
    with proxy_client(pki_files, pki.payments) as http:
        check_binding(lambda path, headers: http.get(behind_nginx + path, headers=headers), pki)
