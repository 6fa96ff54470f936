"""The middleware's cache obeys revocation: a cached client is refused on the next request
after a CRL listing it is loaded."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from asgi_mtls import CertificateValidator, MTLSMiddleware
from asgi_mtls.testing import CertificateAuthority, simulate_connection
from asgi_mtls.validation.revocation import RevocationChecker
from tests.apps import starlette_app
from tests.asgi import get, reason


@pytest.mark.anyio
async def test_cached_client_is_refused_after_the_crl_lists_it(tmp_path):
    root = CertificateAuthority("CRL root")
    alice = root.issue_client("alice")
    crl_file = tmp_path / "root.crl"
    crl_file.write_bytes(root.crl().public_bytes(Encoding.PEM))
    checker = RevocationChecker(crl="hard-fail", crl_files=[crl_file], crl_scope="leaf")
    validator = CertificateValidator(root.certificate, revocation=checker)
    middleware = MTLSMiddleware(starlette_app(), trust=validator)
    app = simulate_connection(middleware, alice)
    try:
        for _ in range(3):
            assert (await get(app, "/whoami")).json()["principal"] == "alice"
        assert middleware.resolver.misses == 1  # then served from the cache
        root.revoke(alice)
        crl_file.write_bytes(root.crl().public_bytes(Encoding.PEM))
        assert checker.reload_files(force=True)
        refused = await get(app, "/whoami")
        assert refused.status_code == 401
        assert reason(refused) == "revoked"
    finally:
        await validator.aclose()
