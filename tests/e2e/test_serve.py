"""``asgi-mtls serve`` end to end (issue #11): a development PKI from ``asgi-mtls pki init``,
the command in a subprocess, real TLS handshakes with and without a client certificate.

Also the first-run log: a refusal under uvicorn's own logging config (which covers
``uvicorn.*`` only) is printed with its level and logger name.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

WORKTREE = Path(__file__).resolve().parents[2]

APP = """
from fastapi import Depends, FastAPI

from asgi_mtls import PUBLIC, ClientIdentity, MTLSMiddleware, require_client

app = FastAPI(openapi_url=None)
app.add_middleware(MTLSMiddleware, trust="{trust}")


@app.get("/health")
@PUBLIC
def health() -> dict[str, str]:
    return {{"status": "ok"}}


@app.get("/whoami")
def whoami(client: ClientIdentity = Depends(require_client())) -> dict[str, str]:
    return {{"principal": client.principal}}
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(WORKTREE)}


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "asgi_mtls.cli", *argv]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("serve")
    subprocess.run(
        _cli("pki", "init", "pki", "--client", "payments"),
        cwd=directory,
        env=_env(),
        check=True,
        capture_output=True,
    )
    (directory / "svc.py").write_text(APP.format(trust="pki/ca.pem"))
    (directory / "broken.py").write_text(APP.format(trust="pki/typo.pem"))
    return directory


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(workdir: Path, *extra: str) -> Iterator[tuple[str, list[str]]]:
    port = _port()
    argv = ["serve", "svc:app", "--ca", "pki/ca.pem", "--cert", "pki/server.pem"]
    argv += ["--key", "pki/server.key", "--port", str(port), *extra]
    process = subprocess.Popen(
        _cli(*argv),
        cwd=workdir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.communicate()[1]) from None
                time.sleep(0.05)
        yield f"https://localhost:{port}", log
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
        log.extend(stderr.splitlines())


def _client(workdir: Path, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(workdir / "pki" / "ca.pem"))
    if name is not None:
        context.load_cert_chain(workdir / "pki" / f"{name}.pem", workdir / "pki" / f"{name}.key")
    return context


def test_serve_with_a_development_pki(workdir):
    with serving(workdir) as (url, log):
        answer = httpx.get(f"{url}/whoami", verify=_client(workdir, "payments"))
        assert answer.json() == {"principal": "spiffe://example.org/payments"}
        anonymous = httpx.get(f"{url}/whoami", verify=_client(workdir, None))
        assert anonymous.status_code == 401
        assert anonymous.json()["reason"] == "missing"
        assert httpx.get(f"{url}/health", verify=_client(workdir, None)).status_code == 200
    refusals = [line for line in log if "client certificate rejected" in line]
    assert len(refusals) == 1
    # uvicorn's logging config covers uvicorn.* only: the level and logger still show.
    assert refusals[0].startswith("WARNING:  asgi_mtls.auth: client certificate rejected: ")


def test_serve_require_refuses_anonymous_clients_in_the_handshake(workdir):
    with serving(workdir, "--require") as (url, _):
        assert httpx.get(f"{url}/health", verify=_client(workdir, "payments")).status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", verify=_client(workdir, None))


def _serve_fails(workdir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cli("serve", *argv, "--port", str(_port())),
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["svc:app", "--ca", "pki/server.pem", "--cert", "pki/server.pem", "--key",
             "pki/server.key"],
            "asgi-mtls: --ca file 'pki/server.pem' holds no CA certificate: 'CN=localhost' is a "
            "server certificate (serverAuth)",
        ),
        (
            ["svc:app", "--ca", "pki/nope.pem", "--cert", "pki/server.pem", "--key",
             "pki/server.key"],
            "asgi-mtls: --ca file 'pki/nope.pem' does not exist",
        ),
        (
            ["svc:app", "--ca", "pki/ca.pem", "--cert", "pki/server.pem", "--key",
             "pki/payments.key"],
            "asgi-mtls: --cert 'pki/server.pem' and --key 'pki/payments.key' do not load as a "
            "certificate and its private key",
        ),
        (
            ["svc:app", "--ca", "pki/ca.pem", "--cert", "pki/nope.pem", "--key", "pki/server.key"],
            "asgi-mtls: --cert file 'pki/nope.pem' does not exist",
        ),
        (
            ["nosuch:app", "--ca", "pki/ca.pem", "--cert", "pki/server.pem", "--key",
             "pki/server.key"],
            "asgi-mtls: cannot import 'nosuch'",
        ),
    ],
    ids=["ca-is-a-leaf", "ca-missing", "key-mismatch", "cert-missing", "app-missing"],
)  # fmt: skip
def test_serve_checks_its_files_before_opening_a_port(workdir, argv, message):
    result = _serve_fails(workdir, *argv)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1


def test_serve_stops_a_misconfigured_app_at_startup(workdir):
    result = _serve_fails(
        workdir, "broken:app", "--ca", "pki/ca.pem", "--cert", "pki/server.pem", "--key",
        "pki/server.key",
    )  # fmt: skip
    assert result.returncode == 3
    assert "ERROR:    asgi-mtls: trust file 'pki/typo.pem' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_workers(workdir):
    with serving(workdir, "--workers", "2") as (url, _):
        for _ in range(4):
            answer = httpx.get(f"{url}/whoami", verify=_client(workdir, "payments"))
            assert answer.json() == {"principal": "spiffe://example.org/payments"}
