"""The ``asgi-mtls`` command.

``asgi-mtls check --trust ROOTS.pem [--intermediates CAS.pem] [--principal STRATEGY] CERT.pem``
    Validate a client certificate exactly as the middleware would and print the identity it
    maps to (JSON, exit 0) or the rejection reason (JSON, exit 1).  For operators asking "why
    is this client refused?" without sending traffic.

``asgi-mtls routes MODULE:APP [--factory] [--json] [--strict] [--app-dir DIR]``
    Import a Starlette or FastAPI app and print every route with its method(s) and who may
    call it ("public", the requirement, or a flag when it declares nothing), plus the
    middleware's path policies and roles: the whole app's authorization in one look.  With
    ``--strict`` the exit status is 1 when a route declares nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asgi_mtls.audit import AppAudit, audit_app
from asgi_mtls.errors import CertificateRejected
from asgi_mtls.identity import ClientIdentity, build_identity, resolve_principal_strategy
from asgi_mtls.sources.encoding import pem_certificates_to_der
from asgi_mtls.validation import CertificateValidator

__all__ = ["main"]


def identity_json(identity: ClientIdentity) -> dict[str, Any]:
    return {
        "principal": identity.principal,
        "subject": identity.subject,
        "issuer": identity.issuer,
        "spiffe_id": str(identity.spiffe_id) if identity.spiffe_id else None,
        "dns_names": list(identity.dns_names),
        "uris": list(identity.uris),
        "emails": list(identity.emails),
        "ip_addresses": list(identity.ip_addresses),
        "serial": identity.serial_hex,
        "fingerprint_sha256": identity.fingerprint_sha256,
        "spki_sha256": identity.spki_sha256,
        "groups": list(identity.groups),
        "not_before": identity.not_before.isoformat(),
        "not_after": identity.not_after.isoformat(),
        "chain": [c.subject.rfc4514_string() for c in identity.chain],
    }


def _check(args: argparse.Namespace) -> int:
    validator = CertificateValidator(args.trust, intermediates=args.intermediates)
    try:
        leaf, *chain = pem_certificates_to_der(Path(args.certificate).read_text(errors="replace"))
        verified = validator.validate(leaf, chain)
        identity = build_identity(
            verified.chain, source="cli", principal=resolve_principal_strategy(args.principal)
        )
    except CertificateRejected as exc:
        result = {"accepted": False, "reason": exc.reason.value, "detail": exc.log_detail}
        print(json.dumps(result, indent=2))
        return 1
    print(json.dumps({"accepted": True, **identity_json(identity)}, indent=2))
    return 0


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


_FLAGS = {"open": "!", "refused": "!", "protected": " ", "public": " "}


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
            f"deny_by_default: {'on' if data['deny_by_default'] else 'off'}",
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
    return "\n".join(lines)


def _routes(args: argparse.Namespace) -> int:
    app = load_app(args.app, factory=args.factory, app_dir=args.app_dir)
    audit = audit_app(app)
    if args.json:
        print(json.dumps({"app": args.app, **audit.to_json()}, indent=2))
    else:
        print(format_table(audit))
    return 1 if args.strict and any(route.flagged for route in audit.routes) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asgi-mtls", description="asgi-mtls tools")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a client certificate as the app would")
    check.add_argument("certificate", help="PEM file: the leaf, optionally followed by its chain")
    check.add_argument("--trust", required=True, help="PEM file of trust roots")
    check.add_argument("--intermediates", help="PEM file of intermediate CAs")
    check.add_argument("--principal", default="default", help="principal strategy")
    routes = commands.add_parser("routes", help="list every route and who may call it")
    routes.add_argument("app", help="MODULE:APP, e.g. myservice.main:app")
    routes.add_argument("--factory", action="store_true", help="APP is a function to call")
    routes.add_argument("--json", action="store_true", help="print JSON instead of a table")
    routes.add_argument(
        "--strict", action="store_true", help="exit 1 if a route declares no requirement"
    )
    routes.add_argument("--app-dir", default=".", help="added to sys.path (default: .)")
    args = parser.parse_args(argv)
    try:
        return _routes(args) if args.command == "routes" else _check(args)
    except (OSError, ValueError) as exc:
        print(f"asgi-mtls: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
