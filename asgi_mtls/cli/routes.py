"""``asgi-mtls routes MODULE:APP [--factory] [--json] [--strict] [--app-dir DIR]``

Import a Starlette or FastAPI app and print every route with its method(s) and who may call it
("public", the requirement, or a flag when it declares nothing), plus the middleware's path
policies and roles: the whole app's authorization in one look.  With ``--strict`` the exit
status is 1 when a route declares nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from asgi_mtls.audit import AppAudit, audit_app

__all__ = ["add_app_arguments", "add_parser", "format_table", "load_app", "run"]


def add_parser(commands: Any) -> None:
    routes = commands.add_parser("routes", help="list every route and who may call it")
    add_app_arguments(routes)
    routes.add_argument("--json", action="store_true", help="print JSON instead of a table")
    routes.add_argument(
        "--strict", action="store_true", help="exit 1 if a route declares no requirement"
    )
    routes.set_defaults(run=run)


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    """``APP``, ``--factory`` and ``--app-dir``: what :func:`load_app` needs (``routes``,
    ``serve``)."""
    parser.add_argument("app", help="MODULE:APP, e.g. myservice.main:app")
    parser.add_argument("--factory", action="store_true", help="APP is a function to call")
    parser.add_argument("--app-dir", default=".", help="added to sys.path (default: .)")


def load_app(reference: str, *, factory: bool = False, app_dir: str | None = ".") -> object:
    """Import ``module:attribute`` (``attribute`` may be dotted); call it if ``factory``."""
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"expected MODULE:APP, got {reference!r}")
    if app_dir is not None and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}") from None
    return target() if factory else target


_FLAGS = {"open": "!", "refused": "!", "protected": " ", "public": " ", "dry_run": "~"}


def format_table(audit: AppAudit) -> str:
    """The audit as a text table, one route per line, flagged lines marked with ``!``."""
    data = audit.to_json()
    rows = [("", "METHODS", "PATH", "ALLOWED")]
    for route in audit.routes:
        methods = ",".join(route.methods) or ("WS" if route.kind == "websocket" else "*")
        allowed = route.allowed
        if route.status == "open":
            allowed = "OPEN: " + allowed
        elif route.status == "refused":
            allowed = "REFUSED: " + allowed
        elif route.status == "dry_run":
            allowed = "DRY RUN: " + allowed
        elif any(declaration.dry_run for declaration in route.declarations):
            dry = [d.requirement.describe() for d in route.declarations if d.dry_run]
            allowed += " [" + "; ".join(dry) + "]"
        rows.append((_FLAGS[route.status], methods, route.path, allowed))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{flag:<{widths[0]}} {methods:<{widths[1]}}  {path:<{widths[2]}}  {allowed}".rstrip()
        for flag, methods, path, allowed in rows
    ]
    settings = audit.settings
    if settings is None:
        lines.append("\nno MTLSMiddleware found in the app: nothing checks certificates")
    else:
        summary = [
            "deny_by_default: "
            + (
                "on"
                if data["deny_by_default"]
                else "dry run"
                if data["deny_by_default_dry_run"]
                else "off"
            ),
            f"require_certificate: {'on' if data['require_certificate'] else 'off'}",
        ]
        if data["exempt_paths"]:
            summary.append("exempt: " + ", ".join(data["exempt_paths"]))
        lines.append("\n" + "; ".join(summary))
        for policy in data["policies"]:
            lines.append(f"policy {policy['pattern']}: {policy['allowed']}")
        for name, rule in data["roles"].items():
            lines.append(f"role {name}: {rule}")
    flagged = sum(route.flagged for route in audit.routes)
    if flagged:
        lines.append(f"{flagged} route(s) declare no requirement (marked !)")
    rolling_out = sum(route.status == "dry_run" for route in audit.routes)
    if rolling_out:
        lines.append(f"{rolling_out} route(s) only in dry run, open to anyone meanwhile (marked ~)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    app = load_app(args.app, factory=args.factory, app_dir=args.app_dir)
    audit = audit_app(app)
    if args.json:
        print(json.dumps({"app": args.app, **audit.to_json()}, indent=2))
    else:
        print(format_table(audit))
    return 1 if args.strict and any(route.flagged for route in audit.routes) else 0
