"""Issue #13: report mode for a policy table, deny_by_default and single requirements.

What enforcement would refuse is reported (a WouldDeny event, a log line, a metric) and the
request goes on; the audit shows what is in report mode.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_mtls import PUBLIC, ClientIdentity, MTLSMiddleware, require_client
from asgi_mtls.audit import audit_app
from asgi_mtls.authorization import DryRun, dry_run, role
from asgi_mtls.cli.routes import format_table
from asgi_mtls.events import LogListener, WouldDeny
from asgi_mtls.testing import simulate_connection
from tests.apps import PAYMENTS, REPORTS, starlette_app
from tests.asgi import get, reason
from tests.test_events import Recorder

pytestmark = pytest.mark.anyio


def build(pki, cert, app, **options: Any):
    options.setdefault("trust", pki.root.certificate)
    options.setdefault("intermediates", [pki.intermediate.certificate])
    middleware = MTLSMiddleware(app, **options)
    return middleware, simulate_connection(middleware, cert)


@pytest.mark.parametrize(
    ("cert", "code"), [("reports", "forbidden"), (None, "missing"), ("payments", None)]
)
async def test_a_dry_run_policy_reports_and_serves(pki, caplog, cert, code):
    recorder = Recorder(hits=False)
    _, app = build(
        pki,
        getattr(pki, cert) if cert else None,
        starlette_app(),
        policies=dry_run({"/public": require_client(PAYMENTS), "/health": PUBLIC}),
        listeners=[recorder, LogListener()],
    )
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        response = await get(app, "/public")
        assert (await get(app, "/health")).status_code == 200
    assert response.status_code == 200  # served: report mode refuses nothing
    events = recorder.of(WouldDeny)
    lines = [r for r in caplog.records if r.getMessage().startswith("dry run: would refuse")]
    if code is None:
        assert events == [] and lines == []
        return
    (event,) = events
    assert event.reason.value == code and event.where == "policy /public"
    assert event.requirement == f"principal is SPIFFE ID {PAYMENTS}"
    assert (event.identity is None) == (cert is None)
    (line,) = lines
    assert line.name == "asgi_mtls.auth" and line.levelno == logging.WARNING
    assert f"reason={code}" in line.getMessage() and "where=policy /public" in line.getMessage()


async def test_enforced_and_dry_run_policies_side_by_side(pki):
    recorder = Recorder(hits=False)
    policies = {"/payments": require_client(PAYMENTS), **dry_run({"/reports": role("auditor")})}
    _, app = build(pki, pki.reports, starlette_app(), policies=policies, listeners=[recorder])
    assert reason(await get(app, "/payments")) == "forbidden"  # enforced
    assert (await get(app, "/reports")).status_code == 200  # reported
    (event,) = recorder.of(WouldDeny)
    assert event.where == "policy /reports"


async def test_deny_by_default_dry_run_reports_undeclared_routes(pki):
    recorder = Recorder(hits=False)
    _, app = build(
        pki, pki.payments, starlette_app(), deny_by_default="dry_run", listeners=[recorder]
    )
    assert (await get(app, "/public")).status_code == 200  # undeclared: served, reported
    assert (await get(app, "/payments")).status_code == 200  # declared: nothing to report
    (event,) = recorder.of(WouldDeny)
    assert event.where == "deny_by_default" and event.reason.value == "forbidden"
    assert "GET /public" in event.detail
    with pytest.raises(ValueError, match="deny_by_default"):
        build(pki, None, starlette_app(), deny_by_default="report")


def _fastapi_app(dependency: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/payments")
    async def payments(client: ClientIdentity | None = Depends(dependency)) -> dict[str, Any]:
        return {"client": client.principal if client else None}

    return app


@pytest.mark.parametrize(("cert", "code"), [("reports", "forbidden"), (None, "missing")])
async def test_a_dry_run_dependency_reports_to_the_middleware_in_front(pki, cert, code):
    recorder = Recorder(hits=False)
    fastapi = _fastapi_app(dry_run(require_client(PAYMENTS)))
    fastapi.add_middleware(
        MTLSMiddleware,
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        listeners=[recorder],
    )
    identity = getattr(pki, cert) if cert else None
    response = await get(simulate_connection(fastapi, identity), "/payments")
    assert response.status_code == 200
    assert response.json() == {"client": REPORTS if cert else None}
    (event,) = recorder.of(WouldDeny)
    assert event.where == "route" and event.reason.value == code


async def test_a_dry_run_decorator_reports_and_serves(pki):
    @dry_run(require_client(PAYMENTS))
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    recorder = Recorder(hits=False)
    app = Starlette(
        routes=[Route("/x", endpoint)],
        middleware=[
            Middleware(
                MTLSMiddleware,
                trust=pki.root.certificate,
                intermediates=[pki.intermediate.certificate],
                listeners=[recorder],
                deny_by_default=True,  # the dry run declares the route: served
            )
        ],
    )
    assert (await get(simulate_connection(app, pki.reports), "/x")).json() == {"ok": True}
    (event,) = recorder.of(WouldDeny)
    assert event.where == "route" and event.identity.principal == REPORTS


async def test_without_a_middleware_a_dry_run_still_logs(pki, caplog):
    """Code no middleware serves (a direct .check()) reports to the log listener."""
    requirement = dry_run(require_client(PAYMENTS))
    scope = {"type": "http", "path": "/x", "asgi_mtls.identity": None}
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        assert requirement.check(scope) is None
    assert any("would refuse: reason=missing" in r.getMessage() for r in caplog.records)


def test_dry_run_accepts_requirements_and_tables_only():
    requirement = require_client(PAYMENTS)
    wrapped = dry_run(requirement)
    assert isinstance(wrapped, DryRun) and dry_run(wrapped) is wrapped
    assert wrapped.describe() == f"dry run: principal is SPIFFE ID {PAYMENTS}"
    table = dry_run({"/a": requirement, "/b": PUBLIC})
    assert isinstance(table["/a"], DryRun) and table["/b"] is PUBLIC
    for bad in ("spiffe://x", 3, None):
        with pytest.raises(TypeError):
            dry_run(bad)  # type: ignore[call-overload]


def test_the_audit_shows_what_is_in_report_mode(pki):
    app = FastAPI()

    @app.get("/rolled", dependencies=[Depends(dry_run(require_client(PAYMENTS)))])
    async def rolled() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/both", dependencies=[Depends(dry_run(role("auditor")))])
    async def both(client: ClientIdentity = Depends(require_client())) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/undeclared")
    async def undeclared() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(
        MTLSMiddleware,
        trust=pki.root.certificate,
        policies=dry_run({"/admin/*": role("admin")}),
        deny_by_default="dry_run",
    )
    audit = audit_app(app)
    data = audit.to_json()
    rows = {row["path"]: row for row in data["routes"]}
    assert rows["/rolled"]["status"] == "dry_run" and rows["/rolled"]["flagged"] is False
    assert rows["/rolled"]["allowed"] == (
        f"anyone (dry run: would require principal is SPIFFE ID {PAYMENTS})"
    )
    assert rows["/rolled"]["requirements"] == [
        {
            "source": "dependency",
            "allowed": f"dry run: principal is SPIFFE ID {PAYMENTS}",
            "dry_run": True,
        }
    ]
    assert rows["/both"]["status"] == "protected"
    assert [r["dry_run"] for r in rows["/both"]["requirements"]] == [True, False]
    assert rows["/undeclared"]["status"] == "open" and rows["/undeclared"]["flagged"] is True
    assert "deny_by_default dry run" in rows["/undeclared"]["allowed"]
    assert data["deny_by_default"] is False and data["deny_by_default_dry_run"] is True
    assert data["policies"] == [
        {"pattern": "/admin/*", "allowed": "dry run: role in admin", "dry_run": True}
    ]
    table = format_table(audit)
    assert "~ GET" in table and "DRY RUN: anyone" in table
    assert "[dry run: role in auditor]" in table
    assert "deny_by_default: dry run" in table
    assert "1 route(s) only in dry run" in table
