"""The ``asgi-mtls`` command.

``asgi-mtls check --trust ROOTS.pem [--intermediates CAS.pem] [--principal STRATEGY] CERT.pem``
    Validate a client certificate exactly as the middleware would and print the identity it
    maps to (JSON, exit 0) or the rejection reason (JSON, exit 1).  For operators asking "why
    is this client refused?" without sending traffic.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asgi_mtls.errors import CertificateRejected
from asgi_mtls.identity import ClientIdentity, build_identity, resolve_principal_mapper
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
            verified.chain, source="cli", principal=resolve_principal_mapper(args.principal)
        )
    except CertificateRejected as exc:
        result = {"accepted": False, "reason": exc.reason.value, "detail": exc.log_detail}
        print(json.dumps(result, indent=2))
        return 1
    print(json.dumps({"accepted": True, **identity_json(identity)}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asgi-mtls", description="asgi-mtls tools")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a client certificate as the app would")
    check.add_argument("certificate", help="PEM file: the leaf, optionally followed by its chain")
    check.add_argument("--trust", required=True, help="PEM file of trust roots")
    check.add_argument("--intermediates", help="PEM file of intermediate CAs")
    check.add_argument("--principal", default="default", help="principal strategy")
    args = parser.parse_args(argv)
    try:
        return _check(args)
    except (OSError, ValueError) as exc:
        print(f"asgi-mtls: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
