"""Issue #8 attacks through real uvicorn terminating TLS: forged names and root_path bypasses.

uvicorn (``asgi_mtls.uvicorn`` protocol classes) verifies the client certificate in a real
handshake; everything the attacker controls is what a trusted CA was willing to sign and the
request path.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_mtls import PUBLIC, MTLSMiddleware, require_client
from tests.apps import PAYMENTS

from .conftest import PKIFiles
from .test_uvicorn_mtls import middleware_options, serve_tls

pytestmark = pytest.mark.e2e


def whoami():  # a new endpoint each time: decorators mark the function they get
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name or None, "path": request.url.path})

    return endpoint


def routes() -> list[Route]:
    return [
        Route("/admin", whoami()),  # protected by the middleware's path policy only
        Route("/health", PUBLIC(whoami())),
        Route("/undeclared", whoami()),
        Route("/pay", require_client(PAYMENTS)(whoami())),
    ]


def protected(pki, app: Starlette, **options: object) -> MTLSMiddleware:
    return MTLSMiddleware(
        app,
        **middleware_options(pki),
        policies={"/admin": require_client(PAYMENTS), "/health": PUBLIC},
        **options,  # type: ignore[arg-type]
    )


def call(pki_files: PKIFiles, url: str, cert=None) -> httpx.Response:
    with httpx.Client(verify=pki_files.client_context(cert), timeout=10) as http:
        return http.get(url)


@pytest.fixture(scope="module", params=["", "/api"], ids=["no-root-path", "root-path"])
def root_path(request) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def policed(pki, pki_files, root_path) -> Iterator[str]:
    app = protected(pki, Starlette(routes=routes()), deny_by_default=True)
    with serve_tls(pki, pki_files, app, root_path=root_path) as url:
        yield url


@pytest.fixture(scope="module")
def mounted(pki, pki_files, root_path) -> Iterator[str]:
    inner = protected(pki, Starlette(routes=routes()), deny_by_default=True)
    app = Starlette(routes=[Mount("/sub", app=inner)])
    with serve_tls(pki, pki_files, app, root_path=root_path) as url:
        yield url


@pytest.mark.parametrize("prefix", ["", "/sub"], ids=["app", "mount"])
def test_policies_and_deny_by_default_see_the_routed_path(
    pki, pki_files, policed, mounted, root_path, prefix
):
    base = (mounted if prefix else policed) + prefix
    assert_the_routed_path_decides(pki, pki_files, base, root_path + prefix)


def assert_the_routed_path_decides(pki, pki_files: PKIFiles, base: str, full_prefix: str) -> None:
    """The policy on /admin, deny_by_default and the declared routes, at ``base``; the app
    reports its full path as ``full_prefix + "/admin"``."""
    anonymous = call(pki_files, base + "/admin")
    assert anonymous.status_code == 401, anonymous.text  # the policy applies
    assert anonymous.json()["reason"] == "missing"
    assert call(pki_files, base + "/admin", pki.reports).status_code == 403
    allowed = call(pki_files, base + "/admin", pki.payments)
    assert allowed.status_code == 200
    assert allowed.json() == {"user": PAYMENTS, "path": full_prefix + "/admin"}
    # deny_by_default lets declared routes through and refuses the undeclared one
    assert call(pki_files, base + "/health").status_code == 200
    assert call(pki_files, base + "/pay", pki.payments).status_code == 200
    undeclared = call(pki_files, base + "/undeclared", pki.payments)
    assert undeclared.status_code == 403 and undeclared.json()["reason"] == "forbidden"
    # the root path written into the request path is just another (unknown) path
    root_path = full_prefix.removesuffix("/sub")
    assert call(pki_files, base + root_path + "/admin").status_code in (401, 404)


# -- the uvicorn command line: --workers 2 --root-path /api, the asgi_mtls.uvicorn classes ------


def cli_app() -> MTLSMiddleware:
    """The policed app for ``uvicorn --factory``: the trust files come from the environment."""
    app = Starlette(routes=[*routes(), Route("/pid", PUBLIC(process_id))])
    return MTLSMiddleware(
        app,
        trust=os.environ["ASGI_MTLS_E2E_ROOT"],
        intermediates=os.environ["ASGI_MTLS_E2E_INTERMEDIATE"],
        policies={"/admin": require_client(PAYMENTS), "/health": PUBLIC},
        deny_by_default=True,
    )


async def process_id(request: Request) -> JSONResponse:
    return JSONResponse({"pid": os.getpid()})


def _workers(pid: int) -> set[int]:
    """The worker processes uvicorn's supervisor ``pid`` spawned (multiprocessing's
    ``spawn_main``; its resource tracker is another child, not a worker)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in command:
            children.add(int(stat.parent.name))
    return children


@pytest.fixture(scope="module")
def workers(pki_files: PKIFiles) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "ASGI_MTLS_E2E_ROOT": str(pki_files.root_ca),
        "ASGI_MTLS_E2E_INTERMEDIATE": str(pki_files.intermediate),
    }
    command = [
        sys.executable, "-m", "uvicorn", f"{__name__}:cli_app", "--factory",
        "--workers", "2", "--root-path", "/api", "--port", str(port),
        "--ssl-certfile", str(pki_files.server_cert), "--ssl-keyfile", str(pki_files.server_key),
        "--ssl-ca-certs", str(pki_files.client_ca_bundle), "--ssl-cert-reqs", "1",
        "--http", "asgi_mtls.uvicorn:HttpToolsProtocol",
        "--ws", "asgi_mtls.uvicorn:WebSocketsSansIOProtocol",
        "--log-level", "warning",
    ]  # fmt: skip
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        url = f"https://localhost:{port}"
        try:
            deadline = time.monotonic() + 30
            while len(_workers(process.pid)) < 2 or not _answers(pki_files, url):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(
                        "uvicorn --workers 2 did not serve:\n" + process.communicate()[0].decode()
                    )
                time.sleep(0.1)
            yield url, process
        finally:
            process.terminate()
            process.communicate(timeout=15)


def _answers(pki_files: PKIFiles, url: str) -> bool:
    try:
        return call(pki_files, url + "/health").status_code == 200
    except httpx.TransportError:
        return False


def test_the_uvicorn_command_line_with_workers_and_a_root_path(pki, pki_files, workers):
    """``uvicorn --workers 2 --root-path /api`` with the documented classes: two worker
    processes, each filling the tls extension, and the routed path deciding in each."""
    url, process = workers
    assert_the_routed_path_decides(pki, pki_files, url, "/api")
    pids = {call(pki_files, url + "/pid").json()["pid"] for _ in range(10)}
    assert pids <= _workers(process.pid)
    assert len(_workers(process.pid)) == 2


@pytest.fixture(scope="module")
def exempting(pki, pki_files) -> Iterator[str]:
    app = MTLSMiddleware(
        Starlette(routes=routes()),
        **middleware_options(pki),
        require_certificate=True,
        exempt_paths=["/health"],
    )
    with serve_tls(pki, pki_files, app, root_path="/api") as url:
        yield url


def test_exempt_paths_see_the_routed_path(pki, pki_files, exempting):
    assert call(pki_files, exempting + "/health").status_code == 200
    refused = call(pki_files, exempting + "/admin")
    assert refused.status_code == 401 and refused.json()["reason"] == "missing"


# -- forged names over a real handshake -------------------------------------------------------


@pytest.fixture(scope="module")
def server(pki, pki_files) -> Iterator[str]:
    app = protected(pki, Starlette(routes=routes()))
    with serve_tls(pki, pki_files, app) as url:
        yield url


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"common_name": PAYMENTS}, (403, "forbidden")),
        (
            {"common_name": "x", "sans": [x509.DNSName._init_without_validation("bank.example")]},
            (403, "forbidden"),
        ),
        (
            {"common_name": "x", "sans": [x509.RFC822Name._init_without_validation(PAYMENTS)]},
            (401, "invalid_name"),
        ),
        (
            {"sans": [x509.DNSName._init_without_validation("\u0430dmin.example")]},
            (401, "invalid_name"),
        ),
        (
            {
                "sans": [
                    x509.UniformResourceIdentifier._init_without_validation(
                        PAYMENTS + ',Hash=00;Cert="x"'
                    )
                ]
            },
            (401, "invalid_name"),
        ),
    ],
    ids=["cn", "dns", "email", "cyrillic-dns", "uri-injection"],
)
def test_forged_names_never_become_the_spiffe_id(pki, pki_files, server, names, expected):
    cert = pki.intermediate.issue(**names)
    response = call(pki_files, server + "/pay", cert)
    assert (response.status_code, response.json()["reason"]) == expected
    assert call(pki_files, server + "/pay", pki.payments).status_code == 200
