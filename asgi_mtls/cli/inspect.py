"""``asgi-mtls inspect FILE|- [--format NAME] [--trust ROOTS.pem] [--json]``

Decode a certificate (PEM with its chain, or DER) or the value of any proxy's certificate
header (nginx, Envoy XFCC, RFC 9440 ``Client-Cert``, HAProxy, Traefik, Caddy, Apache, AWS,
Azure: the registry of :mod:`asgi_mtls.sources.headers`, the same decoders the middleware
runs) and print what it holds.  With ``--trust`` it also validates the certificate exactly as
the middleware would and prints the verdict and the identity (``check`` does only the latter,
on a PEM file).  A header value may be given alone or as the header line
(``X-Forwarded-Client-Cert: Hash=...``), which narrows the formats tried to those using that
header.  Exit status: 0 decoded (and accepted, with ``--trust``), 1 refused, 2 not decodable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from asgi_mtls.cli.check import identity_json
from asgi_mtls.errors import CertificateRejected, ConfigurationError
from asgi_mtls.identity import build_identity, resolve_principal_strategy
from asgi_mtls.sources import HEADER_FORMATS, header_format
from asgi_mtls.sources.headers import DecodeOptions
from asgi_mtls.validation import CertificateValidator
from asgi_mtls.validation.policy import describe_key
from asgi_mtls.validation.trust_checks import is_ca

__all__ = ["Decoded", "add_parser", "decode_input", "run"]

_EKU_NAMES = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}

#: XFCC element counts tried when the format is not pinned (one per trusted Envoy hop).
_MAX_XFCC_ELEMENTS = 4


def add_parser(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect", help="decode a certificate or a proxy's certificate header value"
    )
    inspect.add_argument("input", help="a file (PEM, DER or a header value), or - for stdin")
    inspect.add_argument(
        "--format",
        choices=HEADER_FORMATS,
        metavar="NAME",
        help=f"decode as this header format only ({', '.join(HEADER_FORMATS)})",
    )
    inspect.add_argument("--trust", help="PEM file of trust roots: also print the verdict")
    inspect.add_argument("--intermediates", help="PEM file of intermediate CAs (with --trust)")
    inspect.add_argument("--principal", default="default", help="principal strategy")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(run=run)


@dataclass(frozen=True)
class Decoded:
    """What the input held: where it was read as (``pem``, ``der`` or a header format),
    the leaf and any chain certificates after it."""

    encoding: str
    certificates: tuple[x509.Certificate, ...]


def _certificates(ders: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_der_x509_certificate(der) for der in ders)


def _header_candidates(text: str, forced: str | None) -> tuple[str, list[str]]:
    """The value (a ``Name: value`` line split) and the formats to try, in registry order."""
    names = [forced] if forced else list(HEADER_FORMATS)
    name, colon, rest = text.partition(":")
    if colon and name and all(c.isalnum() or c in "-_" for c in name):
        header = name.strip().lower()
        using = [f for f in names if header_format(f).header == header]
        if using:
            return rest.strip(), using
    return text, names


def decode_input(data: bytes, forced: str | None = None) -> Decoded:
    """Decode ``data``; ``ValueError`` (one line) when nothing can read it."""
    head = data[:80].split(b":", 1)[0]
    header_line = bool(head) and all(chr(c).isalnum() or chr(c) in "-_" for c in head)
    if forced is None and not header_line:
        if b"-----BEGIN CERTIFICATE-----" in data:
            try:
                return Decoded("pem", tuple(x509.load_pem_x509_certificates(data)))
            except ValueError:
                pass  # maybe a header value holding PEM (Apache, nginx-pem): tried below
        if data[:1] == b"\x30":
            try:
                return Decoded("der", (x509.load_der_x509_certificate(data),))
            except ValueError:
                pass
    try:
        text = data.decode("latin-1").strip()
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        text = ""
    value, formats = _header_candidates(text, forced)
    for name in formats:
        spec = header_format(name)
        counts = range(1, _MAX_XFCC_ELEMENTS + 1) if name == "envoy" else (1,)
        for elements in counts:
            try:
                leaf, chain = spec.decode(value, [], DecodeOptions(elements=elements))
                certificates = _certificates([leaf, *chain])
            except (CertificateRejected, ValueError):
                continue
            label = name if elements == 1 else f"{name} ({elements} elements, the first read)"
            return Decoded(label, certificates)
    tried = forced or "PEM, DER and every header format"
    raise ValueError(f"not a certificate or a certificate header value ({tried} tried)")


def _extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def certificate_json(certificate: x509.Certificate) -> dict[str, Any]:
    """One certificate's fields, as ``inspect`` prints them."""
    san = _extension(certificate, x509.SubjectAlternativeName)
    names: list[str] = []
    if san is not None:
        names += [f"DNS:{v}" for v in san.get_values_for_type(x509.DNSName)]
        names += [f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        names += [f"email:{v}" for v in san.get_values_for_type(x509.RFC822Name)]
        names += [f"IP:{v}" for v in san.get_values_for_type(x509.IPAddress)]
    eku = _extension(certificate, x509.ExtendedKeyUsage)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial": format(certificate.serial_number, "x"),
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "key": describe_key(certificate.public_key()),
        "ca": is_ca(certificate),
        "extended_key_usage": [_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku]
        if eku is not None
        else None,
        "subject_alt_names": names,
        "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex(),
        "spki_sha256": digest.finalize().hex(),
    }


def _verdict(args: argparse.Namespace, decoded: Decoded) -> dict[str, Any]:
    validator = CertificateValidator(args.trust, intermediates=args.intermediates)
    leaf, *chain = decoded.certificates
    try:
        verified = validator.validate(leaf, chain)
        identity = build_identity(
            verified.chain, source="cli", principal=resolve_principal_strategy(args.principal)
        )
    except CertificateRejected as exc:
        return {"accepted": False, "reason": exc.reason.value, "detail": exc.log_detail}
    return {"accepted": True, **identity_json(identity)}


def _text(decoded: Decoded, verdict: dict[str, Any] | None) -> str:
    now = dt.datetime.now(dt.UTC)
    lines = [f"decoded as: {decoded.encoding}"]
    for index, certificate in enumerate(decoded.certificates):
        fields = certificate_json(certificate)
        role = "leaf" if index == 0 else f"chain[{index}]"
        days = (certificate.not_valid_after_utc - now).days
        lines.append(f"{role}: {fields['subject'] or '<empty subject>'}")
        lines.append(f"  issuer:      {fields['issuer']}")
        lines.append(f"  serial:      {fields['serial']}")
        lines.append(
            f"  valid:       {fields['not_before']} to {fields['not_after']}"
            + (f" (expired {-days} days ago)" if days < 0 else f" ({days} days left)")
        )
        lines.append(f"  key:         {fields['key']}")
        ca = {True: "yes", False: "no", None: "no basicConstraints"}[fields["ca"]]
        lines.append(f"  CA:          {ca}")
        eku = fields["extended_key_usage"]
        lines.append(f"  key usage:   {', '.join(eku) if eku is not None else '(no EKU)'}")
        if fields["subject_alt_names"]:
            lines.append(f"  names:       {', '.join(fields['subject_alt_names'])}")
        lines.append(f"  sha256:      {fields['fingerprint_sha256']}")
        lines.append(f"  spki sha256: {fields['spki_sha256']}")
    if verdict is not None:
        if verdict["accepted"]:
            lines.append(
                f"verdict: accepted; principal {verdict['principal']} ({verdict['principal_kind']})"
            )
        else:
            lines.append(f"verdict: refused, {verdict['reason']}: {verdict['detail']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.intermediates and not args.trust:
        raise ConfigurationError("--intermediates needs --trust")
    data = sys.stdin.buffer.read() if args.input == "-" else Path(args.input).read_bytes()
    decoded = decode_input(data, args.format)
    verdict = _verdict(args, decoded) if args.trust else None
    if args.json:
        result: dict[str, Any] = {
            "decoded_as": decoded.encoding,
            "certificates": [certificate_json(c) for c in decoded.certificates],
        }
        if verdict is not None:
            result["verdict"] = verdict
        print(json.dumps(result, indent=2))
    else:
        print(_text(decoded, verdict))
    return 1 if verdict is not None and not verdict["accepted"] else 0
