"""``asgi-mtls check --trust ROOTS.pem [--intermediates CAS.pem] [--principal STRATEGY] CERT``

Validate a client certificate exactly as the middleware would and print the identity it maps to
(JSON, exit 0) or the rejection reason (JSON, exit 1).  For operators asking "why is this
client refused?" without sending traffic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from asgi_mtls.errors import CertificateRejected, ConfigurationError
from asgi_mtls.identity import ClientIdentity, build_identity, resolve_principal_strategy
from asgi_mtls.sources.encoding import pem_certificates_to_der
from asgi_mtls.validation import CertificateValidator

__all__ = ["add_parser", "identity_json", "run"]


def add_parser(commands: Any) -> None:
    check = commands.add_parser("check", help="validate a client certificate as the app would")
    check.add_argument("certificate", help="PEM file: the leaf, optionally followed by its chain")
    check.add_argument("--trust", help="PEM file of trust roots (required)")
    check.add_argument("--intermediates", help="PEM file of intermediate CAs")
    check.add_argument("--principal", default="default", help="principal strategy")
    check.set_defaults(run=run)


def identity_json(identity: ClientIdentity) -> dict[str, Any]:
    return {
        "principal": identity.principal,
        "principal_kind": identity.principal_kind.value,
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


def run(args: argparse.Namespace) -> int:
    if not args.trust:
        raise ConfigurationError(
            "check needs --trust ROOTS.pem to validate against; to decode a certificate "
            f"without one, run 'asgi-mtls inspect {args.certificate}'"
        )
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
