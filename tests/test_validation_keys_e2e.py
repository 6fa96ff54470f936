"""Weak-key clients against real uvicorn terminating TLS (``asgi_mtls.uvicorn``) with the
middleware behind it.

The client side is set to OpenSSL security level 0 so that it presents whatever key it has,
over TLS 1.2 and 1.3; what happens next is the server's business.  OpenSSL's handshake
refuses some keys first (its security level refuses RSA-1024 and P-192), a TLS 1.3 client
cannot sign with a DSA or odd-curve key at all (it then sends no certificate: ``missing``);
the rest (RSA-2047, RSA-2050, e=3, DSA-2048, P-224, secp256k1, brainpool...) passes the
handshake and reaches the middleware, which refuses it as ``weak_key``.  Never an identity;
a P-256 control client through the same server gets one."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asgi_mtls import MTLSMiddleware
from asgi_mtls.testing import CertificateAuthority, IssuedCertificate
from tests.apps import starlette_app
from tests.e2e.conftest import PKIFiles
from tests.e2e.test_uvicorn_mtls import serve_tls
from tests.test_validation_keys import WEAK_KEYS, key_of

pytestmark = pytest.mark.e2e


class KeyPKI:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root = CertificateAuthority("E2E Key Policy Root")
        self.root_pem = self.root.write(directory, "root")
        server_cert, server_key = self.root.issue_server("localhost").write(directory, "server")
        #: What the handshake verifies against: the root alone (clients send their chain).
        self.files = PKIFiles(
            directory, server_cert, server_key, self.root_pem, self.root_pem, self.root_pem
        )

        #: One issuing CA per key kind, configured in the middleware (before Python 3.13
        #: uvicorn cannot pass the presented chain on).
        self.issuing = {
            kind: self.root.intermediate(f"{kind} Issuing CA", key=key_of(kind))
            for kind in [*sorted(WEAK_KEYS), "ec-p256"]
        }

    def client(self, kind: str, position: str) -> IssuedCertificate:
        if position == "leaf":
            return self.root.issue_client(f"{kind}-leaf", key=key_of(kind))
        return self.issuing[kind].issue_client(f"client-of-{kind}")

    def context(self, client: IssuedCertificate, tls: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.root_pem))
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # present the weak key, whatever it is
        version = ssl.TLSVersion.TLSv1_2 if tls == "1.2" else ssl.TLSVersion.TLSv1_3
        context.minimum_version = context.maximum_version = version
        cert, key = client.write(self.directory / "clients", client.fingerprint_sha256[:16])
        context.load_cert_chain(cert, key)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> KeyPKI:
    return KeyPKI(tmp_path_factory.mktemp("weak-keys"))


@pytest.fixture(scope="module")
def server(pki: KeyPKI) -> Iterator[str]:
    app = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[ca.certificate for ca in pki.issuing.values()],
    )
    with serve_tls(None, pki.files, app) as url:
        yield url


def attempt(server: str, context: ssl.SSLContext) -> str:
    """``"handshake refused"``, or the status and the reason code (or principal) answered."""
    try:
        with httpx.Client(verify=context, timeout=10) as http:
            response = http.get(server + "/whoami")
    except httpx.TransportError:
        return "handshake refused"
    body = response.json()
    return f"{response.status_code} {body.get('reason') or body.get('principal')}"


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
@pytest.mark.parametrize("position", ["leaf", "intermediate"])
@pytest.mark.parametrize("kind", [*sorted(WEAK_KEYS), "ec-p256"])
def test_weak_key_clients_over_real_tls(pki, server, kind, position, tls, caplog):
    client = pki.client(kind, position)
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        result = attempt(server, pki.context(client, tls))
    if kind == "ec-p256":  # the control: the same harness does let a good client in
        assert result == f"200 {client.certificate.subject.rfc4514_string()[3:]}"
        return
    assert result in ("handshake refused", "401 weak_key", "401 missing")
    if result == "401 missing":
        # TLS 1.3 has no signature scheme for a DSA or small/odd-curve key: the client could
        # not use its certificate and went on without one.
        assert (position, tls) == ("leaf", "1.3")
    if result == "401 weak_key":
        assert "reason=weak_key" in caplog.text
        assert WEAK_KEYS[kind][1] in caplog.text
