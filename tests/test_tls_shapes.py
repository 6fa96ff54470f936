"""The shapes of the ASGI ``tls`` extension servers fill (issue #12): a list or a tuple (anycorn)
of PEM strings or DER bytes, a DER ``client_cert`` without a chain (uvicorn's open pull
requests), and a ``client_cert_name`` alone (pyvoy), which never becomes an identity unless the
app opts in with ``ServerVerifiedNameSource`` (issue #12: tests/test_server_verified_name.py)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from asgi_mtls import MTLSMiddleware
from tests.apps import PAYMENTS, starlette_app
from tests.asgi import get, reason


def app_with(pki, tls: dict[str, Any]):
    middleware = MTLSMiddleware(
        starlette_app(), trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )

    async def server(scope, receive, send):  # a server filling the extension its own way
        if scope["type"] == "http":
            scope = {**scope, "extensions": {"tls": tls}}
        await middleware(scope, receive, send)

    return server


def _shapes(pki) -> dict[str, dict[str, Any]]:
    leaf, intermediate = pki.payments, pki.intermediate.certificate
    return {
        "list of PEM": {
            "client_cert_chain": [leaf.pem, intermediate.public_bytes(Encoding.PEM).decode()]
        },
        "tuple of PEM": {
            "client_cert_chain": (leaf.pem, intermediate.public_bytes(Encoding.PEM).decode())
        },
        "tuple of DER": {"client_cert_chain": (leaf.der, intermediate.public_bytes(Encoding.DER))},
        "PEM as bytes": {
            "client_cert_chain": [leaf.pem.encode(), intermediate.public_bytes(Encoding.PEM)]
        },
        "DER client_cert": {"client_cert_chain": [], "client_cert": leaf.der},
        "DER client_cert, no chain key": {"client_cert": leaf.der},
    }


SHAPES = [
    "list of PEM",
    "tuple of PEM",
    "tuple of DER",
    "PEM as bytes",
    "DER client_cert",
    "DER client_cert, no chain key",
]


@pytest.mark.anyio
@pytest.mark.parametrize("shape", SHAPES)
async def test_every_shape_gives_the_same_identity(pki, shape):
    response = await get(app_with(pki, _shapes(pki)[shape]), "/whoami")
    assert response.status_code == 200, response.text
    assert response.json()["principal"] == PAYMENTS
    assert response.json()["fingerprint"] == pki.payments.fingerprint_sha256


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tls", "status", "code"),
    [
        # A name and no certificate: nothing to validate; refused, neither anonymous nor a
        # principal (pyvoy reports only this).
        ({"client_cert_chain": [], "client_cert_name": f"CN={PAYMENTS}"}, 401, "untrusted"),
        ({"client_cert_name": "CN=payments"}, 401, "untrusted"),
        # A DER client_cert next to the server's own error: the error wins.
        ({"client_cert": b"\x30\x00", "client_cert_error": "expired"}, 401, "untrusted"),
        ({"client_cert_chain": [b"\x30\x03abc"]}, 400, "malformed"),
        ({"client_cert_chain": [b""]}, 400, "malformed"),
        ({"client_cert_chain": [1234]}, 400, "malformed"),
        ({"client_cert_chain": b"\x30\x03abc"}, 400, "malformed"),
        ({"client_cert": b"\x30\x03abc"}, 400, "malformed"),
    ],
    ids=[
        "name-only",
        "name-only-no-chain-key",
        "der-with-error",
        "garbage-der-entry",
        "empty-bytes-entry",
        "int-entry",
        "bytes-as-chain",
        "garbage-client-cert",
    ],
)
async def test_shapes_that_carry_no_valid_certificate_are_refused(pki, tls, status, code):
    response = await get(app_with(pki, tls), "/public")
    assert (response.status_code, reason(response)) == (status, code)


@pytest.mark.anyio
async def test_nothing_presented_is_anonymous(pki):
    for tls in ({"client_cert_chain": ()}, {"client_cert_chain": [], "client_cert": None}, {}):
        response = await get(app_with(pki, tls), "/public")
        assert response.json() == {"ok": True, "user": None}
