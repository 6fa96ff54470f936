"""``asgi-mtls routes``: the route audit, as JSON and as a table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute

from asgi_mtls import PUBLIC, MTLSMiddleware, RoleMap, require_client
from asgi_mtls.audit import audit_app
from asgi_mtls.authorization import principal, role
from asgi_mtls.cli import main
from tests import test_policies as sample
from tests.apps import PAYMENTS, starlette_app

ROOT = Path(__file__).resolve().parents[1]


def routes_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["routes", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def by_path(data: dict) -> dict[str, dict]:
    return {f"{route['path']} {','.join(route['methods'])}": route for route in data["routes"]}


def test_example_app_json(capsys):
    code, data = routes_json(capsys, "example_app.app:create_app", "--factory")
    assert code == 0
    assert data["app"] == "example_app.app:create_app"
    assert data["middleware"] is True
    assert data["deny_by_default"] is True
    assert data["roles"] == {"bank-service": "SPIFFE ID matches spiffe://bank.example/*"}
    assert {"pattern": "/docs/*", "allowed": "public", "dry_run": False} in data["policies"]
    compact = [
        (r["kind"], r["methods"], r["path"], r["status"], r["allowed"]) for r in data["routes"]
    ]
    assert compact == [
        ("http", ["GET", "HEAD"], "/openapi.json", "public", "public"),
        ("http", ["GET", "HEAD"], "/docs", "public", "public"),
        ("http", ["GET", "HEAD"], "/docs/oauth2-redirect", "public", "public"),
        ("http", ["GET", "HEAD"], "/redoc", "public", "public"),
        ("http", ["GET"], "/health", "public", "public"),
        ("http", ["GET"], "/whoami", "protected", "any valid client certificate"),
        ("http", ["POST"], "/payments", "protected", f"principal is SPIFFE ID {PAYMENTS}"),
        (
            "http",
            ["GET"],
            "/reports",
            "protected",
            "principal is SPIFFE ID spiffe://bank.example/reports",
        ),
        ("http", ["GET"], "/ledger", "protected", "role in bank-service"),
        ("websocket", [], "/ws", "protected", "any valid client certificate"),
    ]
    routes = by_path(data)
    assert routes["/health GET"]["requirements"] == [
        {"source": "decorator", "allowed": "public", "dry_run": False}
    ]
    assert routes["/docs GET,HEAD"]["requirements"] == [
        {"source": "policy /docs", "allowed": "public", "dry_run": False}
    ]
    assert routes["/whoami GET"]["endpoint"].endswith("create_app.<locals>.whoami")
    assert not any(route["flagged"] for route in data["routes"])


def test_example_app_table(capsys):
    assert main(["routes", "example_app.app:create_app", "--factory"]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].split() == ["METHODS", "PATH", "ALLOWED"]
    assert any(
        line.split()[:2] == ["POST", "/payments"]
        and line.endswith(f"principal is SPIFFE ID {PAYMENTS}")
        for line in lines
    )
    assert any(line.split()[:3] == ["WS", "/ws", "any"] for line in lines)
    assert "deny_by_default: on" in table
    assert "role bank-service: SPIFFE ID matches spiffe://bank.example/*" in table
    assert "!" not in table


def test_starlette_app_audit(pki):
    app = Starlette(
        routes=[
            *starlette_app().routes,
            Mount("/sub", routes=sample.starlette_app().routes),
        ],
        middleware=[
            Middleware(
                MTLSMiddleware,
                trust=pki.root.certificate,
                policies={"/health": PUBLIC, "/sub/admin/*": role("admin")},
                roles=RoleMap({"admin": principal("root")}),
            )
        ],
    )
    data = audit_app(app).to_json()
    assert data["deny_by_default"] is False
    routes = by_path(data)
    assert routes["/payments GET,HEAD,POST"]["allowed"] == f"principal is SPIFFE ID {PAYMENTS}"
    assert routes["/reports GET,HEAD"]["allowed"] == (
        "SPIFFE trust domain bank.example and predicate <lambda>"
    )
    assert routes["/ws/payments "]["kind"] == "websocket"
    assert routes["/ws/payments "]["allowed"] == f"principal is SPIFFE ID {PAYMENTS}"
    assert routes["/health GET,HEAD"]["status"] == "public"
    # no declaration, no deny_by_default: open, and flagged
    public_route = routes["/public GET,HEAD"]
    assert public_route["status"] == "open" and public_route["flagged"] is True
    assert routes["/starlette-requires GET,HEAD"]["status"] == "open"  # @requires says nothing
    # mounts, class endpoints (one row per method), mounted raw apps, policies under a mount
    assert routes["/sub/declared GET,HEAD"]["status"] == "protected"
    assert routes["/sub/items GET"]["allowed"] == f"principal is SPIFFE ID {PAYMENTS}"
    assert routes["/sub/items POST"]["status"] == "open"
    assert routes["/sub/admin/panel GET,HEAD"]["allowed"] == "role in admin"
    assert routes["/sub/admin GET,HEAD"]["status"] == "open"
    assert routes["/sub/raw/* "]["kind"] == "mount"
    assert routes["/sub/ws/declared "]["status"] == "protected"
    assert data["roles"] == {"admin": "principal is DNS name root"}


def test_deny_by_default_flags_undeclared_routes(pki, capsys, tmp_path, monkeypatch):
    module = tmp_path / "audited_app.py"
    trust = pki.root.write(tmp_path, "ca")  # the audit reads the middleware as built
    module.write_text(
        "from starlette.applications import Starlette\n"
        "from starlette.middleware import Middleware\n"
        "from asgi_mtls import MTLSMiddleware\n"
        "from tests.apps import starlette_app\n"
        "app = Starlette(routes=starlette_app().routes, middleware=[Middleware(\n"
        f"    MTLSMiddleware, trust={str(trust)!r}, deny_by_default=True,\n"
        "    require_certificate=True, exempt_paths=['/health'])])\n"
    )
    monkeypatch.syspath_prepend(str(ROOT))
    code, data = routes_json(capsys, "audited_app:app", "--app-dir", str(tmp_path), "--strict")
    assert code == 1  # --strict: a route declares nothing
    routes = by_path(data)
    refused = routes["/public GET,HEAD"]
    assert refused["status"] == "refused" and refused["flagged"] is True
    assert refused["allowed"] == "nobody (no requirement declared; deny_by_default)"
    assert routes["/whoami GET,HEAD"]["requirements"] == [
        {"source": "decorator", "allowed": "any valid client certificate", "dry_run": False},
        {
            "source": "require_certificate",
            "allowed": "any valid client certificate",
            "dry_run": False,
        },
    ]
    assert data["exempt_paths"] == ["/health"]
    assert main(["routes", "audited_app:app", "--app-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert any(line.startswith("!") and "/public " in line for line in table.splitlines())
    assert "REFUSED: nobody" in table
    assert "route(s) declare no requirement" in table


def test_app_without_middleware(capsys, tmp_path):
    (tmp_path / "bare_app.py").write_text(
        "from fastapi import FastAPI\napp = FastAPI()\n@app.get('/x')\ndef x():\n    return 1\n"
    )
    assert main(["routes", "bare_app:app", "--app-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "OPEN: anyone" in table
    assert "no MTLSMiddleware found" in table


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("example_app.app", "expected MODULE:APP"),
        ("no_such_module_xyz:app", "cannot import"),
        ("example_app.app:nothing", "has no attribute"),
        ("example_app.app:ROLES", "no Starlette/FastAPI router"),
    ],
)
def test_routes_usage_errors(capsys, reference, message):
    assert main(["routes", reference]) == 2
    assert message in capsys.readouterr().err


def test_installed_console_script_lists_routes():
    script = Path(sys.executable).parent / "asgi-mtls"
    result = subprocess.run(
        [str(script), "routes", "example_app.app:create_app", "--factory", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["routes"]) == 10


def test_decorated_endpoints_are_marked():
    from asgi_mtls.audit import route_declarations

    requirement = require_client(PAYMENTS)
    route = Route("/x", requirement(sample.undeclared))
    (declaration,) = route_declarations(route, "GET")
    assert declaration.requirement is requirement
    ws = WebSocketRoute("/ws", sample.ws_declared)
    assert [d.source for d in route_declarations(ws)] == ["decorator"]


def test_requirements_deep_in_the_dependency_tree_count(pki):
    from fastapi import Depends, FastAPI

    from asgi_mtls import ClientIdentity

    needs_payments = require_client(PAYMENTS)

    def current_caller(client: ClientIdentity = Depends(needs_payments)) -> str:
        return client.principal

    def audit_context(caller: str = Depends(current_caller)) -> dict[str, str]:
        return {"caller": caller}

    app = FastAPI()

    @app.get("/deep")
    def deep(context: dict[str, str] = Depends(audit_context)) -> dict[str, str]:
        return context

    (row,) = [r for r in audit_app(app).routes if r.path == "/deep"]
    assert row.status == "protected"
    assert row.declarations[0].source == "dependency"
    assert row.declarations[0].requirement is needs_payments
