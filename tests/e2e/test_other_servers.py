"""Hypercorn and granian, for real: both verify client certificates in the handshake and
then do not tell the app (no ASGI ``tls`` extension), and neither lets an app reach its TLS
connection without patching its internals, so asgi-mtls cannot fill the extension for them as
``asgi_mtls.uvicorn`` does for uvicorn (docs/deploy/hypercorn.md, docs/deploy/granian.md).
These tests pin that down with the real servers, so that the day one starts filling it the
docs are revisited.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .conftest import PKIFiles, venv_binary
from .test_uvicorn_protocols import echo_app

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(port: int, alive, deadline: float) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if not alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not listen on {port}") from None
            time.sleep(0.05)


@contextmanager
def hypercorn(pki_files: PKIFiles) -> Iterator[str]:
    import asyncio

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = _port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(pki_files.server_cert), str(pki_files.server_key)
    config.ca_certs = str(pki_files.client_ca_bundle)
    config.verify_mode = __import__("ssl").CERT_OPTIONAL
    config.errorlog = None
    stop = threading.Event()

    async def shutdown() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.05)

    thread = threading.Thread(
        target=lambda: asyncio.run(serve(echo_app, config, shutdown_trigger=shutdown)),
        daemon=True,
    )
    thread.start()
    try:
        _wait(port, thread.is_alive, time.monotonic() + 10)
        yield f"https://localhost:{port}"
    finally:
        stop.set()
        thread.join(timeout=10)


@contextmanager
def granian(pki_files: PKIFiles) -> Iterator[str]:
    port = _port()
    command = [
        venv_binary("granian", "granian"),
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ssl-certificate",
        str(pki_files.server_cert),
        "--ssl-keyfile",
        str(pki_files.server_key),
        "--ssl-ca",
        str(pki_files.client_ca_bundle),
        "--log-level",
        "warning",
        "tests.e2e.test_uvicorn_protocols:echo_app",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        try:
            _wait(port, lambda: process.poll() is None, time.monotonic() + 20)
            yield f"https://localhost:{port}"
        finally:
            process.terminate()
            process.communicate(timeout=10)


@pytest.mark.parametrize("server", [hypercorn, granian], ids=["hypercorn", "granian"])
def test_the_server_verifies_the_certificate_but_does_not_tell_the_app(pki, pki_files, server):
    context = pki_files.client_context(pki.payments)
    with server(pki_files) as url, httpx.Client(verify=context, timeout=10) as http:
        seen = http.get(url + "/connection").json()
        with pytest.raises(httpx.TransportError):  # the handshake does verify
            httpx.get(url + "/", verify=pki_files.client_context(pki.untrusted), timeout=10)
    assert seen["tls"] is None
    assert "tls" not in seen["extension_keys"]
    assert seen["peer"] is None  # no transport peer either: trust_scope_client for headers
