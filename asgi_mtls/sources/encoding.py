"""Strict decoders for the encodings certificates travel in (PEM, DER, base64).

Each returns DER bytes or raises ``CertificateRejected(MALFORMED)``; none of them accepts
"something that looks close enough".  Decoding to a parsed certificate happens once, in the
validator.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final
from urllib.parse import unquote

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.errors import malformed as _malformed

__all__ = [
    "base64_der",
    "check_size",
    "der_certificate",
    "pem_certificate_to_der",
    "pem_certificates_to_der",
    "pem_lines_to_der",
    "server_pem_to_der",
    "split_der_certificates",
    "strict_base64",
    "url_encoded_pem_to_der",
]

_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")


def check_size(value: str, limit: int, what: str) -> None:
    """Reject ``value`` before any parsing work if it is longer than ``limit`` characters."""
    if len(value) > limit:
        raise CertificateRejected(
            RejectionReason.TOO_LARGE, f"{what} is {len(value)} characters, limit {limit}"
        )


def _b64_to_der(body: str) -> bytes:
    r"""The DER certificate a PEM body spells: whitespace anywhere, strict base64 otherwise.

    ``str.split()`` removes the same whitespace as the regex ``\s`` (both are
    ``str.isspace``), and ``a2b_base64(strict_mode=True)`` accepts exactly the alphabet-only
    strings ``b64decode(validate=True)`` accepts, at a third of the cost (issue #10)."""
    compact = "".join(body.split())
    if not compact:
        raise _malformed("empty certificate body")
    try:
        der = binascii.a2b_base64(compact, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise _malformed(f"invalid base64 in certificate: {exc}") from None
    return der_certificate(der)


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


_BEGIN: Final = "-----BEGIN CERTIFICATE-----"
_END: Final = "-----END CERTIFICATE-----"


def server_pem_to_der(text: str) -> bytes:
    """One PEM certificate as a TLS server writes it (the ASGI ``tls`` extension), as DER.

    Accepts exactly what :func:`pem_certificate_to_der` accepts (one ``CERTIFICATE`` block,
    only whitespace around it and between its base64 lines, strict base64, one complete DER
    SEQUENCE; ``tests/test_server_pem.py`` checks the two against each other), without a
    regular expression: this runs for every new client on the ASGI server's own output
    (issue #10).
    """
    body = text.strip()
    if not (body.startswith(_BEGIN) and body.endswith(_END)) or len(body) < len(_BEGIN + _END):
        raise _malformed("not exactly one complete PEM certificate block")
    inner = body[len(_BEGIN) : -len(_END)]
    if "-" in inner:  # a second block, or another armour line, inside
        raise _malformed("not exactly one complete PEM certificate block")
    return _b64_to_der(inner)


# --- DER -------------------------------------------------------------------------------------


def _der_item_end(data: bytes, start: int) -> int:
    """The end offset of the DER SEQUENCE starting at ``start``.

    Strict DER: tag ``0x30``, a definite length in its shortest form (long form only from 128,
    no leading zero byte, at most four length bytes) and the whole content inside ``data``.
    """
    if start >= len(data) or data[start] != 0x30:
        raise _malformed("certificate data is not a DER SEQUENCE")
    if start + 1 >= len(data):
        raise _malformed("truncated DER length")
    first = data[start + 1]
    header = 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise _malformed("indefinite or oversized DER length")
        raw = data[start + 2 : start + 2 + count]
        if len(raw) != count:
            raise _malformed("truncated DER length")
        length = int.from_bytes(raw, "big")
        if raw[0] == 0 or length < 0x80:
            raise _malformed("DER length not in its shortest form")
        header += count
    end = start + header + length
    if end > len(data):
        raise _malformed("truncated DER certificate")
    return end


def der_certificate(der: bytes) -> bytes:
    """``der`` itself, if it is exactly one complete DER SEQUENCE (nothing before or after)."""
    if _der_item_end(der, 0) != len(der):
        raise _malformed("unexpected bytes after the DER certificate")
    return der


def split_der_certificates(blob: bytes) -> list[bytes]:
    """Certificates concatenated as DER (HAProxy's ``ssl_c_chain_der``), split by their DER
    lengths.  Every item must be a complete SEQUENCE; trailing bytes are malformed."""
    items: list[bytes] = []
    start = 0
    while start < len(blob):
        end = _der_item_end(blob, start)
        items.append(blob[start:end])
        start = end
    return items


# --- base64 and URL-encoded PEM ----------------------------------------------------------------


def strict_base64(value: str, *, what: str = "certificate") -> bytes:
    """Standard base64 (``+/``, ``=`` padding, nothing else, not even whitespace), in its
    canonical spelling only (non-zero pad bits are malformed)."""
    if not value:
        raise _malformed(f"{what}: empty")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{what}: invalid base64") from None
    if base64.b64encode(data) != value.encode("ascii"):
        raise _malformed(f"{what}: base64 not in canonical form")
    return data


def base64_der(value: str, *, what: str = "certificate") -> bytes:
    """One DER certificate in strict base64 (:func:`strict_base64`)."""
    return der_certificate(strict_base64(value, what=what))


def url_encoded_pem_to_der(value: str, *, what: str = "certificate") -> list[bytes]:
    """URL-encoded PEM (one or more certificates), decoded once with ``unquote``.

    Never ``unquote_plus``: a ``+`` is base64.  A value that still contains ``%`` after one
    round was encoded twice; a space inside a base64 body is a ``+`` that something decoded
    as form data: both malformed.
    """
    try:
        text = unquote(value, encoding="ascii", errors="strict")
    except UnicodeDecodeError:
        raise _malformed(f"{what}: not ASCII after URL-decoding") from None
    if "%" in text:
        raise _malformed(f"{what}: double URL-encoded")
    if " " in text.replace("BEGIN CERTIFICATE", "").replace("END CERTIFICATE", ""):
        raise _malformed(f"{what}: space inside the certificate body")
    return pem_certificates_to_der(text)


_ARMOURED = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


def pem_lines_to_der(text: str, *, what: str = "certificate") -> bytes:
    """One PEM certificate whose line breaks became other whitespace (Apache turns them into
    spaces, nginx's ``$ssl_client_cert`` into a newline plus tab that HTTP servers fold into
    one space).  The base64 lines must keep their RFC 7468 shape, 64 characters each but the
    last: a ``+`` turned into a space splits a line and is caught."""
    match = _ARMOURED.fullmatch(text.strip(" \t\r\n"))
    if match is None:
        raise _malformed(f"{what}: not exactly one PEM certificate block")
    lines = match.group(1).split()
    if not lines:
        raise _malformed(f"{what}: empty certificate body")
    if any(len(line) != 64 for line in lines[:-1]) or len(lines[-1]) > 64:
        raise _malformed(f"{what}: PEM lines of unexpected length (a '+' turned into a space?)")
    return base64_der("".join(lines), what=what)
