"""RFC 9440 ``Client-Cert`` and ``Client-Cert-Chain``: certificates as structured-field byte
sequences.

RFC 9440 section 2.2: ``Client-Cert`` is an RFC 8941 Item whose value is a Byte Sequence,
``:<base64 of the DER certificate>:``, a singleton field (more than one line is
``duplicate_header``).  Section 2.3: ``Client-Cert-Chain`` is a List of Byte Sequences, the
chain in TLS order without the leaf; it may be split over several field lines, which are
combined in order (RFC 8941 section 4.2: joined with ``", "``), and it must not appear
without ``Client-Cert``.

Strict where RFC 8941 leaves room:

- Base64 must be the standard alphabet with ``=`` padding and zero pad bits (canonical).
  RFC 8941 section 3.3.5 asks parsers not to fail on missing padding or non-zero pad bits
  "unless they cannot be configured to do so"; every producer we know (Cloudflare, Google
  Cloud, Caddy) pads, and one canonical spelling per certificate keeps the parser small.
- Parameters (``:...:;a=1``) are refused.  RFC 8941 allows them on any Item, but RFC 9440
  defines none and does not say unknown ones are to be ignored (RFC 8941 section 2 leaves
  that to each field's definition), and no producer sends any: a value with parameters is
  not one a known proxy wrote.
- Only SP is allowed around an Item (RFC 8941 section 4.2); SP and HTAB around list commas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from asgi_mtls.errors import malformed
from asgi_mtls.sources.encoding import base64_der
from asgi_mtls.sources.headers.format import OWS, DecodeOptions, HeaderFormat, Verdict

__all__ = ["FORMATS", "boolean_verdict", "decode_client_cert", "decode_client_cert_chain"]

_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _byte_sequence(text: str, pos: int, what: str) -> tuple[bytes, int]:
    """Parse the Byte Sequence starting at ``pos``; return its DER and the position after it."""
    if text[pos : pos + 1] != ":":
        raise malformed(f"{what}: not a structured-field byte sequence (':<base64>:')")
    end = text.find(":", pos + 1)
    if end < 0:
        raise malformed(f"{what}: unterminated byte sequence")
    body = text[pos + 1 : end]
    if not all(char in _BASE64 for char in body):
        raise malformed(f"{what}: a byte sequence holds characters outside base64")
    der = base64_der(body, what=what)
    after = end + 1
    if text[after : after + 1] == ";":
        raise malformed(f"{what}: parameters are not accepted on a certificate")
    return der, after


def decode_client_cert(value: str) -> bytes:
    """``Client-Cert``: one Byte Sequence, no parameters.  Returns the leaf DER."""
    text = value.strip(" ")
    if not text:
        raise malformed("Client-Cert: empty")
    der, after = _byte_sequence(text, 0, "Client-Cert")
    if after != len(text):
        raise malformed("Client-Cert: unexpected data after the byte sequence")
    return der


def decode_client_cert_chain(values: Sequence[str]) -> list[bytes]:
    """``Client-Cert-Chain``: every field line, combined in order, as one List of Byte
    Sequences.  Returns the DER certificates in order (empty when every line is empty)."""
    lines = [line.strip(OWS) for line in values]
    text = ", ".join(line for line in lines if line)
    ders: list[bytes] = []
    pos = 0
    while pos < len(text):
        der, pos = _byte_sequence(text, pos, "Client-Cert-Chain")
        ders.append(der)
        while pos < len(text) and text[pos] in OWS:
            pos += 1
        if pos == len(text):
            break
        if text[pos] != ",":
            raise malformed("Client-Cert-Chain: expected ',' between byte sequences")
        pos += 1
        while pos < len(text) and text[pos] in OWS:
            pos += 1
        if pos == len(text):
            raise malformed("Client-Cert-Chain: trailing ','")
    return ders


def boolean_verdict(value: str) -> Verdict:
    """``true``/``false`` (Google Cloud ``{client_cert_chain_verified}``, Cloudflare
    ``cf.tls_client_auth.cert_verified``), in a header the user names; anything else
    failed."""
    lowered = value.lower()
    if lowered == "true":
        return Verdict.OK
    if lowered == "false":
        return Verdict.ONLY_WITHOUT_CERTIFICATE
    return Verdict.FAILED


def _decode(
    cert: str, chain: Sequence[str], options: DecodeOptions
) -> tuple[bytes, tuple[bytes, ...]]:
    return decode_client_cert(cert), tuple(decode_client_cert_chain(chain))


#: Google Cloud's ``{client_cert_leaf}`` is empty without a certificate: ``absent``.
FORMATS: Final = (
    HeaderFormat(
        "rfc9440",
        "client-cert",
        _decode,
        chain_header="client-cert-chain",
        chain_repeatable=True,
        verdict=boolean_verdict,
        absent=frozenset({""}),
    ),
)
