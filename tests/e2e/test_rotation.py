"""Live certificate rotation under a running uvicorn (``asgi_mtls.uvicorn``, issue #12).

cert-manager and SPIRE replace the server certificate, its key and the client CA bundle every
few hours.  Here the files are replaced (atomically, as those tools do) under a running
server: new handshakes get the new certificate and the new client CAs, a client of a CA
removed from the bundle is refused, and a connection opened before the rotation keeps
working.  Half-written files keep the previous context.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import asgi_mtls.uvicorn as mtls_uvicorn
from asgi_mtls import MTLSMiddleware
from asgi_mtls.testing import CertificateAuthority, IssuedCertificate
from tests.apps import PAYMENTS, starlette_app

from .test_uvicorn_mtls import serve_tls

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Files:
    directory: Path
    cert: Path
    key: Path
    client_ca: Path

    def replace(self, path: Path, text: str) -> None:
        """Write next to ``path`` and rename over it: readers see the old or the new file."""
        staging = self.directory / (path.name + ".new")
        staging.write_text(text)
        os.replace(staging, path)

    def options(self) -> dict[str, Path]:
        return {"certfile": self.cert, "keyfile": self.key, "client_ca": self.client_ca}

    def rotate_server(self, server: IssuedCertificate, *, key: str | None = None) -> None:
        self.replace(self.key, key if key is not None else server.key_pem)
        self.replace(self.cert, server.pem)


def served_certificate(port: int) -> bytes:
    """The certificate the server presents to a new connection (compared, never trusted)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def wait_until_served(port: int, expected: IssuedCertificate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while served_certificate(port) != expected.der:
        assert time.monotonic() < deadline, "the new certificate was never served"
        time.sleep(0.1)


def client_context(
    root: CertificateAuthority, cert: IssuedCertificate, work: Path
) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=root.pem)
    cert_path, key_path = cert.write(work, f"client-{cert.fingerprint_sha256[:12]}")
    context.load_cert_chain(cert_path, key_path)
    return context


def whoami(connection: http.client.HTTPSConnection) -> dict[str, object]:
    connection.request("GET", "/whoami")
    response = connection.getresponse()
    return dict(json.loads(response.read()))


@dataclass(frozen=True)
class Running:
    port: int
    files: Files
    new_clients: CertificateAuthority


@pytest.fixture
def running(pki, tmp_path) -> Iterator[Running]:
    new_clients = CertificateAuthority("Rotated Clients CA")
    files = Files(tmp_path, tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem")
    files.rotate_server(pki.server)
    files.replace(files.client_ca, pki.root.pem + pki.intermediate.pem)
    app = MTLSMiddleware(
        starlette_app(),
        # The middleware's own trust (which reloads by itself) knows both client CAs; the
        # handshake's bundle is what rotates here.
        trust=[pki.root.certificate, new_clients.certificate],
        intermediates=[pki.intermediate.certificate],
    )
    with serve_tls(pki, None, app, **files.options()) as url:
        yield Running(int(url.rsplit(":", 1)[1]), files, new_clients)


def test_rotated_files_serve_new_handshakes_and_keep_open_connections(pki, running, tmp_path):
    old_client = client_context(pki.root, pki.payments, tmp_path)
    kept = http.client.HTTPSConnection("localhost", running.port, context=old_client, timeout=10)
    assert whoami(kept)["principal"] == PAYMENTS
    assert served_certificate(running.port) == pki.server.der

    rotated = pki.root.issue_server("localhost")
    running.files.rotate_server(rotated)
    running.files.replace(running.files.client_ca, running.new_clients.pem)
    wait_until_served(running.port, rotated)

    # A client of the CA the bundle no longer holds is refused in the handshake...
    fresh = http.client.HTTPSConnection("localhost", running.port, context=old_client)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        whoami(fresh)
    # ...a client of the new CA gets in...
    newcomer = running.new_clients.issue_client("newcomer", spiffe_id="spiffe://bank.example/new")
    new_client = client_context(pki.root, newcomer, tmp_path)
    joined = http.client.HTTPSConnection("localhost", running.port, context=new_client, timeout=10)
    assert whoami(joined)["principal"] == "spiffe://bank.example/new"
    # ...and the connection opened before the rotation is still served, as itself.
    socket_before = kept.sock
    assert whoami(kept)["principal"] == PAYMENTS
    assert kept.sock is socket_before
    for connection in (kept, joined):
        connection.close()


def test_half_written_files_keep_the_previous_context(pki, running, caplog):
    mismatched = pki.root.issue_server("localhost")
    with caplog.at_level(logging.ERROR, logger="asgi_mtls"):
        # The certificate is new, the key still the old one: OpenSSL refuses the pair.
        running.files.replace(running.files.cert, mismatched.pem)
        time.sleep(mtls_uvicorn.RELOAD_INTERVAL + 0.2)
        for _ in range(3):
            assert served_certificate(running.port) == pki.server.der
            time.sleep(mtls_uvicorn.RELOAD_INTERVAL / 2)
    failures = [r for r in caplog.records if "could not be loaded" in r.getMessage()]
    assert len(failures) == 1  # once per change, not once per handshake
    running.files.replace(running.files.key, mismatched.key_pem)  # the rotation completes
    wait_until_served(running.port, mismatched)


def test_reloading_can_be_turned_off(pki, tmp_path):
    files = Files(tmp_path, tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem")
    files.rotate_server(pki.server)
    files.replace(files.client_ca, pki.root.pem)
    app = MTLSMiddleware(starlette_app(), trust=pki.root.certificate)
    with serve_tls(pki, None, app, reload_certificates=False, **files.options()) as url:
        port = int(url.rsplit(":", 1)[1])
        assert served_certificate(port) == pki.server.der
        files.rotate_server(pki.root.issue_server("localhost"))
        time.sleep(mtls_uvicorn.RELOAD_INTERVAL + 0.3)
        assert served_certificate(port) == pki.server.der
        assert served_certificate(port) == pki.server.der
