"""Issue #11: every misconfiguration stops ``uvicorn module:app`` at startup with one line.

Each case is run through its real entry point: a subprocess running the documented command,
``python -m uvicorn module:app`` with uvicorn's default ``--lifespan auto``, for an app that
adds the middleware the documented way (FastAPI and Starlette ``add_middleware``, Starlette's
``middleware=[...]``).  Asserted: uvicorn exits with its startup-failure status (3), its log
holds the one line naming the file or option and the fix, and no traceback.  Where no lifespan
runs (``--lifespan off``) a request gets 503 ``misconfigured``, never a 500.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

WORKTREE = Path(__file__).resolve().parents[2]

#: How each framework adds the middleware; ``{options}`` is the keyword arguments' source.
FRAMEWORKS = {
    "fastapi": """
        from fastapi import FastAPI
        from asgi_mtls import MTLSMiddleware, PUBLIC, require_client
        from asgi_mtls.authorization import role
        app = FastAPI()

        @app.get("/health")
        @PUBLIC
        def health():
            return {{"status": "ok"}}

        app.add_middleware(MTLSMiddleware, {options})
    """,
    "starlette": """
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
        from asgi_mtls import MTLSMiddleware, PUBLIC, require_client
        from asgi_mtls.authorization import role

        async def health(request):
            return JSONResponse({{"status": "ok"}})

        app = Starlette(routes=[Route("/health", health)])
        app.add_middleware(MTLSMiddleware, {options})
    """,
    "starlette-list": """
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from asgi_mtls import MTLSMiddleware, PUBLIC, require_client
        from asgi_mtls.authorization import role
        app = Starlette(middleware=[Middleware(MTLSMiddleware, {options})])
    """,
}

#: (case, middleware options, the line uvicorn must log).  Files are relative to the app's
#: directory, which holds ca.pem, server.pem, server.key and the bad files below.
CASES = [
    (
        "missing-trust-file",
        'trust="clients-ca.pem"',
        "asgi-mtls: trust file 'clients-ca.pem' does not exist (relative to {dir}): check the "
        "path given as trust=; give the CA certificate that issues your client certificates "
        "('asgi-mtls pki init DIR' writes one as DIR/ca.pem)",
    ),
    (
        "trust-is-a-directory",
        'trust="pki"',
        "asgi-mtls: trust file 'pki' is a directory: give the PEM file inside it, e.g. "
        "'pki/ca.pem'",
    ),
    (
        "trust-without-certificate",
        'trust="empty.pem"',
        "asgi-mtls: trust file 'empty.pem' is empty: give the CA certificate",
    ),
    (
        "trust-is-garbage",
        'trust="notes.txt"',
        "asgi-mtls: trust file 'notes.txt' holds no certificate (neither PEM 'BEGIN "
        "CERTIFICATE' nor DER)",
    ),
    (
        "trust-is-a-key",
        'trust="server.key"',
        "asgi-mtls: trust file 'server.key' holds a private key, not a certificate: trust= "
        "takes certificates only",
    ),
    (
        "trust-is-the-server-leaf",
        'trust="server.pem"',
        "asgi-mtls: trust holds no CA certificate: 'CN=localhost' is a server certificate "
        "(serverAuth), not a CA (basicConstraints CA:FALSE), so no client could ever be "
        "accepted",
    ),
    (
        "intermediates-file-missing",
        'trust="ca.pem", intermediates="issuing.pem"',
        "asgi-mtls: intermediates file 'issuing.pem' does not exist",
    ),
    (
        "role-file-with-a-typo",
        'trust="ca.pem", roles="roles.toml"',
        "asgi-mtls: roles.toml: roles.admin[0]: unknown key 'prinicpal'",
    ),
    (
        "role-file-missing",
        'trust="ca.pem", roles="missing-roles.toml"',
        "asgi-mtls: missing-roles.toml: cannot read the role file",
    ),
    (
        "policy-pattern",
        'trust="ca.pem", policies={"admin/*": require_client()}',
        "asgi-mtls: MTLSMiddleware: path pattern 'admin/*' must start with '/'",
    ),
    (
        "policy-on-an-exempt-path",
        'trust="ca.pem", exempt_paths=["/health"], policies={"/health": role("ops")}',
        "asgi-mtls: policies['/health'] requires a client certificate, but exempt_paths "
        "'/health' reads none there, so it can never be met",
    ),
    (
        "unknown-principal-strategy",
        'trust="ca.pem", principal="spife"',
        "asgi-mtls: MTLSMiddleware: unknown principal strategy 'spife'",
    ),
    (
        "trusted-proxy-wildcard",
        'trust="ca.pem", trusted_proxies=["*"]',
        "asgi-mtls: MTLSMiddleware: trusted proxy entry '*': no wildcard",
    ),
]


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory, pki) -> Path:
    directory = tmp_path_factory.mktemp("failfast")
    pki.root.write(directory, "ca")
    pki.server.write(directory, "server")
    (directory / "pki").mkdir()
    (directory / "empty.pem").write_text("")
    (directory / "notes.txt").write_text("the CA is on the wiki\n")
    (directory / "roles.toml").write_text('[roles.admin]\nprinicpal = "spiffe://x.example/a"\n')
    return directory


def _write_app(directory: Path, name: str, framework: str, options: str) -> str:
    source = textwrap.dedent(FRAMEWORKS[framework]).format(options=options)
    (directory / f"{name}.py").write_text(source)
    return name


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    env.pop("PYTHONWARNINGS", None)
    return env


def _uvicorn(directory: Path, module: str, *args: str, timeout: float = 20):
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", f"{module}:app", "--port", "0", *args],
        cwd=directory,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _expected(line: str, directory: Path) -> str:
    return line.format(dir=directory)


@pytest.mark.parametrize(("case", "options", "line"), CASES, ids=[c[0] for c in CASES])
def test_fastapi_misconfiguration_stops_uvicorn_at_startup(app_dir, case, options, line):
    module = _write_app(app_dir, f"app_{case.replace('-', '_')}", "fastapi", options)
    result = _uvicorn(app_dir, module)
    assert result.returncode == 3, result.stderr
    errors = [x for x in result.stderr.splitlines() if x.startswith("ERROR:")]
    assert errors[0].startswith("ERROR:    " + _expected(line, app_dir)), result.stderr
    assert errors[1:] == ["ERROR:    Application startup failed. Exiting."]
    assert "Traceback" not in result.stderr
    assert "Uvicorn running" not in result.stderr


@pytest.mark.parametrize("framework", ["starlette", "starlette-list"])
@pytest.mark.parametrize(
    ("case", "options", "line"),
    [CASES[0], CASES[5], CASES[7], CASES[10]],
    ids=[CASES[i][0] for i in (0, 5, 7, 10)],
)
def test_starlette_misconfiguration_stops_uvicorn_at_startup(
    app_dir, framework, case, options, line
):
    module = _write_app(
        app_dir, f"app_{framework.replace('-', '_')}_{case.replace('-', '_')}", framework, options
    )
    result = _uvicorn(app_dir, module)
    assert result.returncode == 3, result.stderr
    assert f"ERROR:    {_expected(line, app_dir)}" in result.stderr
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_without_a_lifespan_every_request_is_a_503_never_a_500(app_dir, framework):
    module = _write_app(app_dir, f"nolife_{framework.replace('-', '_')}", framework, CASES[0][1])
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"{module}:app",
            "--port",
            str(port),
            "--lifespan",
            "off",
        ],
        cwd=app_dir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        statuses = []
        while time.monotonic() < deadline and not statuses:
            try:
                statuses = [
                    httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
                    for path in ("/health", "/health", "/nothing")
                ]
            except httpx.TransportError:
                time.sleep(0.1)
        assert [r.status_code for r in statuses] == [503, 503, 503]
        assert all(r.json()["reason"] == "misconfigured" for r in statuses)
        assert "clients-ca.pem" not in statuses[0].text  # the detail stays in the log
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert not re.search(r"\" 500 ", stderr)  # no access-log line with a 500
    assert not re.search(r"\" 5\d\d$", stderr, re.M)  # no access-log line with a 5xx status
    assert stderr.count("ERROR:    asgi_mtls.config: asgi-mtls is misconfigured") == 1
    assert (
        stderr.count("WARNING:  asgi_mtls.auth: client certificate rejected: reason=misconfigured")
        == 3
    )


def test_built_directly_it_raises_the_configuration_error(pki, tmp_path):
    from fastapi import FastAPI

    from asgi_mtls import MTLSMiddleware
    from asgi_mtls.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"trust file '.*nope\.pem' does not exist"):
        MTLSMiddleware(FastAPI(), trust=tmp_path / "nope.pem")
    with pytest.raises(ConfigurationError, match="unknown principal strategy"):
        MTLSMiddleware(FastAPI(), trust=pki.root.certificate, principal="spife")


def test_testclient_raises_it_at_startup(tmp_path):
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from asgi_mtls import MTLSMiddleware
    from asgi_mtls.errors import ConfigurationError

    app = FastAPI()
    app.add_middleware(MTLSMiddleware, trust=tmp_path / "nope.pem")
    with pytest.raises(ConfigurationError, match="does not exist"), TestClient(app):
        pass


@pytest.mark.parametrize(("case", "options", "line"), [CASES[0], CASES[7], CASES[10]])
def test_a_middleware_built_at_import_stops_uvicorn_with_one_line(app_dir, case, options, line):
    """``app = MTLSMiddleware(app, ...)`` at module level: the error happens while uvicorn
    imports the module, and ends the same way as through the lifespan: status 3, the line as
    uvicorn logs startup failures, no traceback."""
    source = textwrap.dedent(
        """
        from starlette.applications import Starlette
        from asgi_mtls import MTLSMiddleware, PUBLIC, require_client
        from asgi_mtls.authorization import role
        app = MTLSMiddleware(Starlette(), {options})
        """
    ).format(options=options)
    module = f"direct_{case.replace('-', '_')}"
    (app_dir / f"{module}.py").write_text(source)
    result = _uvicorn(app_dir, module)
    assert result.returncode == 3, result.stderr
    errors = [x for x in result.stderr.splitlines() if x.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"ERROR:    {_expected(line, app_dir)}"), result.stderr
    assert "Traceback" not in result.stderr


def test_a_middleware_built_at_import_elsewhere_still_raises(app_dir):
    """Outside uvicorn's importer (a test, a script) the error is raised as it is."""
    module = "direct_plain_import"
    (app_dir / f"{module}.py").write_text(
        "from starlette.applications import Starlette\n"
        "from asgi_mtls import MTLSMiddleware\n"
        'app = MTLSMiddleware(Starlette(), trust="clients-ca.pem")\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=app_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1
    assert "asgi_mtls.errors.ConfigurationError: trust file 'clients-ca.pem'" in result.stderr
