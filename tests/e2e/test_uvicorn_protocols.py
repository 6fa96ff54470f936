"""asgi_mtls.uvicorn against real uvicorn servers: real TLS handshakes, real sockets.

The app here is a raw ASGI echo (no middleware): it reports what the protocol classes put in
``scope["extensions"]`` so the tests can compare it with the certificates the client used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets.asyncio.client
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.h11_impl import H11Protocol as UvicornH11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as UvicornHttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import (
    WebSocketsSansIOProtocol as UvicornWebSocketsSansIOProtocol,
)
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol as UvicornWSProtocol

import asgi_mtls.uvicorn as mtls_uvicorn
import asgi_mtls.uvicorn.connection as uvicorn_connection
from asgi_mtls.testing import IssuedCertificate

from .servers import start_uvicorn

pytestmark = [
    # uvicorn's legacy "websockets" implementation warns on import, and so does websockets.legacy.
    pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets"),
]

HTTP_IMPLS = ["h11", "httptools"]
WS_IMPLS = ["websockets", "websockets-sansio", "wsproto"]
TLS_VERSIONS = [
    pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3"),
]

# IANA numbers of the suites OpenSSL negotiates with the test's EC P-256 certificates, written
# out independently of the module under test (RFC 8446 §B.4, RFC 5289, RFC 7905).
IANA_CIPHER_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
}

# Paths the echo app has been called with, across all servers in this process.
CALLS: list[str] = []


def _describe(scope: dict[str, Any]) -> dict[str, Any]:
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls")
    summary = None
    if tls is not None:
        chain = list(tls["client_cert_chain"])
        summary = {
            **{k: v for k, v in tls.items() if k != "client_cert_chain"},
            "chain_length": len(chain),
            "chain_sha256": [
                hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() for pem in chain
            ],
        }
    client = scope.get("client")
    return {
        "tls": summary,
        "peer": extensions.get("asgi_mtls.peer"),
        "client": list(client) if client else None,
        "extension_keys": sorted(extensions),
        "scheme": scope.get("scheme"),
    }


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI app: JSON of the connection's extensions, over HTTP or WebSocket."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    CALLS.append(scope["path"])
    body = json.dumps(_describe(scope)).encode()
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body.decode()})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["path"] == "/mutate":
        # A hostile or careless app: none of this may leak into the next request's scope.
        extensions = scope["extensions"]
        extensions["tls"]["client_cert_chain"].append("not a certificate")
        extensions["tls"]["client_cert_chain"][0] = "not a certificate either"
        extensions["tls"]["client_cert_name"] = "CN=mutated"
        extensions["tls"]["tls_version"] = 0
        extensions["asgi_mtls.peer"]["host"] = "6.6.6.6"
        extensions["injected"] = True
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Files:
    ca: Path
    server_cert: Path
    server_key: Path
    client: tuple[Path, Path]  # pki.payments: leaf + intermediate, issued under the root
    cn_client: tuple[Path, Path]  # pki.cn_only: CN=legacy-batch,O=Bank, issued by the root
    untrusted: tuple[Path, Path]  # pki.untrusted: issued by another root


@pytest.fixture(scope="module")
def files(pki: Any, tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = tmp_path_factory.mktemp("uvicorn-pki")
    server_cert, server_key = pki.server.write(directory, "server")
    return Files(
        ca=pki.root.write(directory, "clients-ca"),
        server_cert=server_cert,
        server_key=server_key,
        client=pki.payments.write(directory, "payments"),
        cn_client=pki.cn_only.write(directory, "cn-only"),
        untrusted=pki.untrusted.write(directory, "untrusted"),
    )


def _common_kwargs() -> dict[str, Any]:
    return {
        "port": 0,
        "log_config": None,
        "lifespan": "off",
        "ws_ping_interval": None,
        "forwarded_allow_ips": "*",
        "timeout_graceful_shutdown": 2,
    }


ServerFactory = Callable[..., str]


@pytest.fixture(scope="module")
def server(files: Files) -> Iterator[ServerFactory]:
    """``server(http=..., ws=..., tls=True, require=False)`` -> base URL; one per setting."""
    started: dict[tuple[str, str, bool, bool], str] = {}
    with ExitStack() as stack:

        def get(
            http: str = "h11",
            ws: str = "websockets-sansio",
            tls: bool = True,
            require: bool = False,
        ) -> str:
            key = (http, ws, tls, require)
            if key not in started:
                config = mtls_uvicorn.config(
                    echo_app,
                    certfile=files.server_cert if tls else None,
                    keyfile=files.server_key if tls else None,
                    client_ca=files.ca if tls else None,
                    require_client_cert=require,
                    http=http,  # type: ignore[arg-type]
                    ws=ws,  # type: ignore[arg-type]
                    **_common_kwargs(),
                )
                started[key] = stack.enter_context(start_uvicorn(config))
            return started[key]

        yield get


@pytest.fixture(params=HTTP_IMPLS)
def http(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per uvicorn HTTP implementation (uvicorn's own tests
    are parametrized over theirs the same way)."""
    return str(request.param)


@pytest.fixture
def payments_client(http: str, server: ServerFactory, files: Files) -> Iterator[httpx.Client]:
    """An HTTPS client holding the payments certificate, on the TLS server for ``http``."""
    with httpx.Client(
        base_url=server(http=http), verify=client_context(files, files.client)
    ) as client:
        yield client


def client_context(
    files: Files,
    cert: tuple[Path, Path] | None,
    maximum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(files.ca))
    if maximum_version is not None:
        ctx.maximum_version = maximum_version
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


def ws_url(base: str, path: str) -> str:
    return base.replace("https://", "wss://").replace("http://", "ws://") + path


def ws_receive_json(
    url: str, ctx: ssl.SSLContext | None = None, headers: dict[str, str] | None = None
) -> Any:
    """Open a WebSocket, return the first message as JSON.

    The asyncio client, not ``websockets.sync``: the sync client reads and writes one TLS
    socket from two threads and, about once in 20 connections, never sees the handshake
    response (with stock uvicorn protocols too).
    """

    async def exchange() -> Any:
        async with websockets.asyncio.client.connect(
            url, ssl=ctx, additional_headers=headers, open_timeout=5, close_timeout=2
        ) as connection:
            return json.loads(await asyncio.wait_for(connection.recv(), timeout=5))

    return asyncio.run(exchange())


def fingerprint(cert: IssuedCertificate) -> str:
    return cert.fingerprint_sha256


# --- HTTP ------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_client_certificate_reaches_the_app(payments_client: httpx.Client, pki: Any) -> None:
    response = payments_client.get("/cert")
    cipher_name = response.extensions["network_stream"].get_extra_info("ssl_object").cipher()[0]
    body = response.json()
    tls = body["tls"]
    assert tls["chain_sha256"][0] == fingerprint(pki.payments)
    assert tls["client_cert_name"] == pki.payments.certificate.subject.rfc4514_string()
    assert tls["client_cert_error"] is None
    assert tls["server_cert"] is None
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] == IANA_CIPHER_SUITES[cipher_name]
    assert body["peer"]["family"] == "inet"
    assert body["peer"]["host"] == "127.0.0.1"
    assert body["peer"]["port"] == body["client"][1]
    assert body["scheme"] == "https"


@pytest.mark.e2e
def test_tls_1_2_version_and_cipher_suite(
    http: str, server: ServerFactory, files: Files, pki: Any
) -> None:
    ctx = client_context(files, files.cn_client, maximum_version=ssl.TLSVersion.TLSv1_2)
    with httpx.Client(verify=ctx) as client:
        response = client.get(f"{server(http=http)}/tls12")
        cipher_name = response.extensions["network_stream"].get_extra_info("ssl_object").cipher()[0]
    tls = response.json()["tls"]
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] == IANA_CIPHER_SUITES[cipher_name]
    assert tls["chain_sha256"] == [fingerprint(pki.cn_only)]
    assert tls["client_cert_name"] == "CN=legacy-batch,O=Bank"


@pytest.mark.e2e
def test_no_client_certificate_in_optional_mode(
    http: str, server: ServerFactory, files: Files
) -> None:
    with httpx.Client(verify=client_context(files, None)) as client:
        body = client.get(f"{server(http=http)}/anonymous").json()
    assert body["tls"]["chain_length"] == 0
    assert body["tls"]["client_cert_name"] is None
    assert body["tls"]["client_cert_error"] is None
    assert body["tls"]["tls_version"] == 0x0304
    assert body["peer"]["host"] == "127.0.0.1"


@pytest.mark.e2e
def test_keep_alive_requests_each_get_their_own_extension(
    payments_client: httpx.Client, pki: Any
) -> None:
    first, second, third = (
        payments_client.get(path).json() for path in ("/mutate", "/after-mutate", "/third")
    )
    # One connection: the same client port throughout.
    assert first["peer"]["port"] == second["peer"]["port"] == third["peer"]["port"]
    for body in (first, second, third):
        assert body["tls"]["chain_sha256"] == [fingerprint(pki.payments)]
        assert body["tls"]["client_cert_name"] == pki.payments.certificate.subject.rfc4514_string()
        assert body["tls"]["tls_version"] == 0x0304
        assert body["peer"]["host"] == "127.0.0.1"
        assert "injected" not in body["extension_keys"]


@pytest.mark.e2e
def test_tls_dict_is_built_once_per_connection(
    payments_client: httpx.Client, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[bytes | None] = []
    real_build = uvicorn_connection._build_tls

    def counting_build(ssl_object: Any, der: bytes | None, key: tuple[Any, ...]) -> Any:
        builds.append(der)
        return real_build(ssl_object, der, key)

    monkeypatch.setattr(uvicorn_connection, "_build_tls", counting_build)
    for _ in range(4):
        assert payments_client.get("/memo").json()["tls"]["chain_length"] == 1
    assert len(builds) == 1  # one connection, one PEM conversion
    with httpx.Client(verify=client_context(files, files.cn_client)) as client:
        client.get(f"{payments_client.base_url}/memo-other")
    assert len(builds) == 2
    assert builds[0] != builds[1]


@pytest.mark.e2e
def test_forwarded_for_rewrites_client_but_not_peer(
    payments_client: httpx.Client, pki: Any
) -> None:
    forwarded = {"X-Forwarded-For": "10.9.8.7", "X-Forwarded-Proto": "http"}
    body = payments_client.get("/forwarded", headers=forwarded).json()
    assert body["client"][0] == "10.9.8.7"  # uvicorn trusted the header (allow-ips "*")
    assert body["scheme"] == "http"
    assert body["peer"] == {"family": "inet", "host": "127.0.0.1", "port": body["peer"]["port"]}
    assert body["peer"]["port"] != 0
    assert body["tls"]["chain_sha256"] == [fingerprint(pki.payments)]


@pytest.mark.e2e
def test_plain_http_has_peer_but_no_tls(http: str, server: ServerFactory) -> None:
    base = server(http=http, tls=False)
    assert base.startswith("http://")
    body = httpx.get(f"{base}/plain", headers={"X-Forwarded-For": "10.9.8.7"}).json()
    assert body["tls"] is None
    assert "tls" not in body["extension_keys"]
    assert body["peer"]["family"] == "inet"
    assert body["peer"]["host"] == "127.0.0.1"
    assert body["client"][0] == "10.9.8.7"


@pytest.mark.e2e
def test_a_plain_connection_is_known_plain_after_its_first_request(
    http: str, server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue #10: whether a connection has TLS is a fact of the connection; keep-alive
    # requests on a plain one do not ask the transport for an SSL object again.
    asked: list[bool] = []
    real_tls = uvicorn_connection.ConnectionInfo.tls

    def recording_tls(self: Any) -> Any:
        asked.append(not self._fixed)
        return real_tls(self)

    monkeypatch.setattr(uvicorn_connection.ConnectionInfo, "tls", recording_tls)
    base = server(http=http, tls=False)
    with httpx.Client() as client:
        bodies = [client.get(f"{base}/plain").json() for _ in range(3)]
    assert [body["tls"] for body in bodies] == [None, None, None]
    assert all("tls" not in body["extension_keys"] for body in bodies)
    assert asked == [True, False, False]


@pytest.mark.e2e
@pytest.mark.parametrize("require", [False, True], ids=["optional", "required"])
@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_untrusted_client_certificate_fails_the_handshake(
    require: bool, version: ssl.TLSVersion, server: ServerFactory, files: Files
) -> None:
    base = server(http="h11", require=require)
    path = f"/untrusted-{uuid.uuid4().hex}"
    ctx = client_context(files, files.untrusted, maximum_version=version)
    # TLS 1.2: the server checks the certificate before finishing the handshake, so the
    # connect fails. TLS 1.3: the client's side of the handshake completes first and the server
    # drops the connection once it has checked the certificate, before reading the request.
    expected = httpx.ConnectError if version is ssl.TLSVersion.TLSv1_2 else httpx.TransportError
    with pytest.raises(expected), httpx.Client(verify=ctx) as client:
        client.get(f"{base}{path}")
    assert path not in CALLS


@pytest.mark.e2e
@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_required_mode_refuses_clients_without_certificate(
    version: ssl.TLSVersion, server: ServerFactory, files: Files, pki: Any
) -> None:
    base = server(http="h11", require=True)
    path = f"/no-cert-{uuid.uuid4().hex}"
    ctx = client_context(files, None, maximum_version=version)
    with pytest.raises(httpx.TransportError), httpx.Client(verify=ctx) as client:
        client.get(f"{base}{path}")
    assert path not in CALLS
    # ... while a client with a certificate is served.
    with httpx.Client(verify=client_context(files, files.client, version)) as client:
        body = client.get(f"{base}/with-cert").json()
    assert body["tls"]["chain_sha256"] == [fingerprint(pki.payments)]


# --- WebSocket -------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("ws", WS_IMPLS)
def test_websocket_gets_the_extension(
    http: str, ws: str, server: ServerFactory, files: Files, pki: Any
) -> None:
    url = ws_url(server(http=http, ws=ws), "/ws")
    body = ws_receive_json(
        url, client_context(files, files.client), headers={"X-Forwarded-For": "10.9.8.7"}
    )
    assert body["tls"]["chain_sha256"] == [fingerprint(pki.payments)]
    assert body["tls"]["client_cert_name"] == pki.payments.certificate.subject.rfc4514_string()
    assert body["tls"]["tls_version"] == 0x0304
    assert body["peer"]["family"] == "inet"
    assert body["peer"]["host"] == "127.0.0.1"
    assert body["client"][0] == "10.9.8.7"
    assert body["scheme"] == "wss"
    # uvicorn's own extension survives next to ours.
    assert "websocket.http.response" in body["extension_keys"]


@pytest.mark.e2e
@pytest.mark.parametrize("ws", WS_IMPLS)
def test_websocket_without_client_certificate(ws: str, server: ServerFactory, files: Files) -> None:
    url = ws_url(server(http="httptools", ws=ws), "/ws-anonymous")
    body = ws_receive_json(url, client_context(files, None))
    assert body["tls"]["chain_length"] == 0
    assert body["tls"]["client_cert_name"] is None


@pytest.mark.e2e
def test_plain_websocket_has_peer_but_no_tls(http: str, server: ServerFactory) -> None:
    url = ws_url(server(http=http, tls=False), "/ws-plain")
    body = ws_receive_json(url)
    assert body["tls"] is None
    assert body["peer"]["host"] == "127.0.0.1"


# --- Other listeners ---------------------------------------------------------------------------


@pytest.mark.e2e
def test_unix_socket_peer(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    kwargs = {**_common_kwargs(), "uds": str(path)}
    config = mtls_uvicorn.config(
        echo_app, certfile=None, keyfile=None, client_ca=None, http="h11", **kwargs
    )
    with (
        start_uvicorn(config) as base,
        httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client,
    ):
        body = client.get(f"{base}/uds").json()
    assert body["peer"] == {"family": "unix", "host": None, "port": None}
    assert body["tls"] is None


@pytest.mark.e2e
def test_inherited_tcp_socket_is_not_mistaken_for_a_unix_socket(files: Files, pki: Any) -> None:
    # uvicorn's --fd wraps the descriptor with socket.fromfd(fd, AF_UNIX, ...), so a TCP
    # connection's socket object claims AF_UNIX; the peer must still be the TCP client.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        kwargs = {**_common_kwargs(), "fd": listener.fileno()}
        config = mtls_uvicorn.config(
            echo_app,
            certfile=files.server_cert,
            keyfile=files.server_key,
            client_ca=files.ca,
            http="httptools",
            **kwargs,
        )
        with (
            start_uvicorn(config) as base,
            httpx.Client(verify=client_context(files, files.client)) as client,
        ):
            body = client.get(f"{base}/fd").json()
    assert body["peer"]["family"] == "inet"
    assert body["peer"]["host"] == "127.0.0.1"
    assert body["tls"]["chain_sha256"] == [fingerprint(pki.payments)]


@pytest.mark.e2e
def test_ipv6_peer_has_no_brackets() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no IPv6 loopback (::1) on the CI machine (CI=true: e2e may not skip)")
        pytest.skip("no IPv6 loopback here: enable ::1 to run this test")
    config = mtls_uvicorn.config(
        echo_app,
        certfile=None,
        keyfile=None,
        client_ca=None,
        http="h11",
        **{**_common_kwargs(), "host": "::1"},
    )
    with start_uvicorn(config) as base:
        body = httpx.get(f"{base}/v6").json()
    assert body["peer"]["family"] == "inet"
    assert body["peer"]["host"] == "::1"


@pytest.mark.e2e
def test_documented_command_line(files: Files, pki: Any) -> None:
    """The CLI form from the module docstring, in a real ``uvicorn`` process."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"{__name__}:echo_app",
        "--port",
        str(port),
        "--ssl-certfile",
        str(files.server_cert),
        "--ssl-keyfile",
        str(files.server_key),
        "--ssl-ca-certs",
        str(files.ca),
        "--ssl-cert-reqs",
        "1",
        "--http",
        "asgi_mtls.uvicorn:HttpToolsProtocol",
        "--ws",
        "asgi_mtls.uvicorn:WebSocketsSansIOProtocol",
        "--log-level",
        "warning",
    ]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        try:
            ctx = client_context(files, files.client)
            deadline = time.monotonic() + 15
            while True:
                try:
                    with httpx.Client(verify=ctx) as client:
                        body = client.get(f"https://127.0.0.1:{port}/cli").json()
                    break
                except httpx.ConnectError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        process.kill()
                        output = process.communicate()[0].decode()
                        pytest.fail(f"uvicorn did not serve on port {port}:\n{output}")
                    time.sleep(0.05)
            ws_body = ws_receive_json(f"wss://127.0.0.1:{port}/cli-ws", ctx)
        finally:
            process.terminate()
            process.communicate(timeout=10)
    for result in (body, ws_body):
        assert result["tls"]["chain_sha256"] == [fingerprint(pki.payments)]
        assert result["peer"]["host"] == "127.0.0.1"


# --- The module itself ---------------------------------------------------------------------------


def test_classes_subclass_uvicorns_own() -> None:
    assert issubclass(mtls_uvicorn.H11Protocol, UvicornH11Protocol)
    assert issubclass(mtls_uvicorn.HttpToolsProtocol, UvicornHttpToolsProtocol)
    assert issubclass(mtls_uvicorn.WebSocketsSansIOProtocol, UvicornWebSocketsSansIOProtocol)
    assert issubclass(mtls_uvicorn.WSProtocol, UvicornWSProtocol)
    from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol

    assert issubclass(mtls_uvicorn.WebSocketProtocol, WebSocketProtocol)


def test_auto_aliases_choose_like_uvicorn() -> None:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    assert AutoWebSocketsProtocol is not None
    assert issubclass(mtls_uvicorn.AutoHTTPProtocol, AutoHTTPProtocol)
    assert mtls_uvicorn.AutoWebSocketsProtocol is not None
    assert issubclass(mtls_uvicorn.AutoWebSocketsProtocol, AutoWebSocketsProtocol)
    assert mtls_uvicorn.AutoHTTPProtocol is mtls_uvicorn.HttpToolsProtocol  # httptools installed


def test_classes_are_created_once_and_resolve_from_import_strings() -> None:
    for name in mtls_uvicorn.__all__:
        value = import_from_string(f"asgi_mtls.uvicorn:{name}")
        assert value is getattr(mtls_uvicorn, name)
    assert set(mtls_uvicorn.__all__) <= set(dir(mtls_uvicorn))
    with pytest.raises(AttributeError):
        mtls_uvicorn.NoSuchProtocol  # noqa: B018


def test_missing_optional_packages_only_matter_on_use() -> None:
    # A fresh interpreter where httptools, websockets and wsproto cannot be imported.
    script = """
import sys
for name in ("httptools", "websockets", "wsproto"):
    sys.modules[name] = None
import asgi_mtls.uvicorn as m
assert m.AutoHTTPProtocol is m.H11Protocol, m.AutoHTTPProtocol
assert m.AutoWebSocketsProtocol is None
for name in ("HttpToolsProtocol", "WebSocketsSansIOProtocol", "WSProtocol"):
    try:
        getattr(m, name)
    except ImportError as exc:
        print(exc)
    else:
        raise AssertionError(name)
config = m.config(lambda: None, certfile=None, keyfile=None, client_ca=None, log_config=None)
assert config.http is m.H11Protocol and config.ws == "none"
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    messages = result.stdout.splitlines()
    assert len(messages) == 3
    assert "pip install httptools" in messages[0]
    assert "pip install websockets" in messages[1]
    assert "pip install wsproto" in messages[2]


def _config(**overrides: Any) -> uvicorn.Config:
    arguments: dict[str, Any] = {
        "certfile": "server.pem",
        "keyfile": "server.key",
        "client_ca": "clients-ca.pem",
        "log_config": None,
    }
    arguments.update(overrides)
    return mtls_uvicorn.config(echo_app, **arguments)


def test_config_sets_tls_and_protocol_classes() -> None:
    optional = _config()
    assert optional.ssl_certfile == "server.pem"
    assert optional.ssl_keyfile == "server.key"
    assert optional.ssl_ca_certs == "clients-ca.pem"
    assert optional.ssl_cert_reqs == ssl.CERT_OPTIONAL
    assert optional.http is mtls_uvicorn.AutoHTTPProtocol
    assert optional.ws is mtls_uvicorn.AutoWebSocketsProtocol
    assert (optional.host, optional.port) == ("127.0.0.1", 8443)

    required = _config(require_client_cert=True, http="h11", ws="wsproto", port=9443)
    assert required.ssl_cert_reqs == ssl.CERT_REQUIRED
    assert required.http is mtls_uvicorn.H11Protocol
    assert required.ws is mtls_uvicorn.WSProtocol
    assert required.port == 9443

    assert _config(ws="websockets-sansio").ws is mtls_uvicorn.WebSocketsSansIOProtocol
    assert _config(ws="websockets").ws is mtls_uvicorn.WebSocketProtocol
    assert _config(http="httptools").http is mtls_uvicorn.HttpToolsProtocol
    assert _config(ws="none").ws == "none"  # uvicorn's own spelling of "no WebSockets"

    plain = _config(certfile=None, keyfile=None, client_ca=None, root_path="/api")
    assert not plain.is_ssl
    assert plain.ssl_cert_reqs == ssl.CERT_NONE
    assert plain.root_path == "/api"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"http2": True}, "HTTP/2"),
        ({"keyfile": None}, "certfile was given without keyfile"),
        ({"certfile": None}, "keyfile was given without certfile"),
        ({"certfile": None, "keyfile": None}, "client_ca was given without certfile"),
        ({"client_ca": None}, "without client_ca"),
        (
            {"certfile": None, "keyfile": None, "client_ca": None, "require_client_cert": True},
            "require_client_cert=True needs TLS",
        ),
        ({"http": "zttp"}, "zttp"),
        ({"http": "hyper"}, "http='hyper' is not supported"),
        ({"ws": "socketio"}, "ws='socketio' is not supported"),
        ({"ssl_ca_certs": "other.pem"}, "pass client_ca= instead of ssl_ca_certs="),
        ({"ssl_cert_reqs": ssl.CERT_NONE}, "pass require_client_cert= instead"),
        ({"ssl_certfile": "x.pem"}, "pass certfile= instead"),
        ({"port": 70000}, "port must be an int"),
        ({"port": "443"}, "port must be an int"),
        (
            {
                "certfile": None,
                "keyfile": None,
                "client_ca": None,
                "ssl_context_factory": lambda config, default: default(),
            },
            "ssl_context_factory was given for a plain-HTTP config",
        ),
    ],
)
def test_config_rejects_nonsense(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("+", r"\+")):
        _config(**overrides)


def test_run_refuses_supervised_modes() -> None:
    with pytest.raises(ValueError, match="one process"):
        mtls_uvicorn.run(echo_app, certfile=None, keyfile=None, client_ca=None, workers=2)
    with pytest.raises(ValueError, match="one process"):
        mtls_uvicorn.run(echo_app, certfile=None, keyfile=None, client_ca=None, reload=True)


@pytest.mark.e2e
def test_access_log_keeps_the_forwarded_client(
    http: str, server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Only the extensions key is replaced, so uvicorn logs the scope that ProxyHeaders
    # rewrote, exactly as stock uvicorn does behind a proxy.
    base = server(http=http, tls=False)
    access = logging.getLogger("uvicorn.access")
    # Attach directly: uvicorn's default log config (used by other tests in the session)
    # turns propagation off for this logger.
    access.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            assert httpx.get(f"{base}/logged", headers={"X-Forwarded-For": "10.9.8.7"}).status_code
            deadline = time.monotonic() + 5
            while "/logged" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        access.removeHandler(caplog.handler)
    assert "10.9.8.7" in caplog.text
    assert "127.0.0.1" not in [r.args[0].split(":")[0] for r in caplog.records if r.args]
