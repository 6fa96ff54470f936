"""Strict decoders for the encodings certificates travel in (PEM, DER, base64).

Each returns DER bytes or raises ``CertificateRejected(MALFORMED)``; none of them accepts
"something that looks close enough".  Decoding to a parsed certificate happens once, in the
validator.
"""

from __future__ import annotations

import base64
import binascii
import re

from asgi_mtls.errors import CertificateRejected, RejectionReason

__all__ = ["check_size", "pem_certificate_to_der", "pem_certificates_to_der"]

_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")
_WHITESPACE = re.compile(r"\s+")


def _malformed(detail: str) -> CertificateRejected:
    return CertificateRejected(RejectionReason.MALFORMED, detail)


def check_size(value: str, limit: int, what: str) -> None:
    """Reject ``value`` before any parsing work if it is longer than ``limit`` characters."""
    if len(value) > limit:
        raise CertificateRejected(
            RejectionReason.TOO_LARGE, f"{what} is {len(value)} characters, limit {limit}"
        )


def _b64_to_der(body: str) -> bytes:
    compact = _WHITESPACE.sub("", body)
    if not compact:
        raise _malformed("empty certificate body")
    try:
        der = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _malformed(f"invalid base64 in certificate: {exc}") from None
    if not der.startswith(b"\x30"):
        raise _malformed("certificate body is not a DER SEQUENCE")
    return der


def pem_certificates_to_der(text: str) -> list[bytes]:
    """All ``CERTIFICATE`` blocks in ``text``, in order.

    Only whitespace may stand between and around the blocks: anything else (a second kind of
    block, a truncated block, stray bytes) is malformed.
    """
    blocks: list[bytes] = []
    position = 0
    for match in _PEM_BLOCK.finditer(text):
        if text[position : match.start()].strip():
            raise _malformed("unexpected data before a PEM certificate block")
        blocks.append(_b64_to_der(match.group(1)))
        position = match.end()
    if not blocks:
        raise _malformed("no complete PEM certificate block")
    if text[position:].strip():
        raise _malformed("unexpected or truncated data after the PEM certificate blocks")
    return blocks


def pem_certificate_to_der(text: str) -> bytes:
    """Exactly one PEM ``CERTIFICATE`` block, as DER."""
    blocks = pem_certificates_to_der(text)
    if len(blocks) != 1:
        raise _malformed(f"expected one certificate, found {len(blocks)}")
    return blocks[0]
