"""Envoy's ``x-forwarded-client-cert`` (XFCC) header: a strict parser, and the checks that tie
every element to its certificate.

Envoy's documentation (``configuration/http/http_conn_man/headers``, "x-forwarded-client-cert")
defines the value as elements separated by ``,`` (one per proxy hop, oldest first), each a
``;``-separated list of ``key=value`` pairs with the keys ``By`` (the proxy's own URI SAN, one
pair each), ``Hash`` (hex SHA-256 of the client certificate's DER), ``Cert`` (the client
certificate, URL-encoded PEM), ``Chain`` (URL-encoded PEM, leaf first), ``Subject`` (always
quoted), ``URI`` and ``DNS`` (one pair per SAN).  It says that a value containing ``,`` ``;``
or ``=`` is quoted.  **Envoy does not do that**: Envoy 1.40 (checked with the real binary,
``tests/e2e/test_envoy.py``) writes ``By``, ``URI`` and ``DNS`` unquoted whatever they
contain (its source has long carried ``TODO(myidpt): Handle the special characters in By
and URI fields``).  A client certificate from the trusted CA whose URI or DNS SAN is::

    x,Hash=<SHA-256 of the victim's certificate>;Cert="<the victim's URL-encoded PEM>"

makes the header parse as one more element, which carries the victim's (public) certificate
and the right hash.  A reader of "the last element" authenticates the attacker as the victim.

Two checks close that at the root, and each is enough on its own for a single hop:

1. **The number of elements is fixed by configuration** (``elements``: how many trusted
   Envoys append one).  SAN content can only add separators, so a forged element always makes
   the count wrong.  Elements a client wrote itself (``APPEND_FORWARD`` at the edge) do too.
2. **Every element that carries a certificate must say exactly what Envoy would write for
   that certificate**: ``Hash`` is its SHA-256 (lower-case hex), ``Subject`` is its subject
   printed as BoringSSL does (:func:`asgi_mtls.sources.headers.envoy_subject.envoy_subject`), the
   ``URI`` pairs are its URI SANs in order (one empty ``URI=`` if it has none), the ``DNS``
   pairs its DNS SANs in order.  ``Subject``/``URI``/``DNS`` may be absent (Envoy configured
   without them), never partial.  A SAN that contains ``,`` or ``;`` or any character the
   grammar refuses in an unquoted value can never be read back intact, so such a certificate
   is refused however the pieces fall; an injected element's names disagree with its own
   certificate as well.

The parser is a character scanner, never a ``split(";")``: a ``Cert=`` inside a quoted
``Subject`` is part of that value.  What Envoy cannot have written is refused (``malformed``):

- any key but ``By``, ``Hash``, ``Cert``, ``Chain``, ``Subject``, ``URI``, ``DNS`` (the
  ``SAN`` key of Envoy before 1.7 included); a repeated ``Hash``, ``Cert``, ``Chain`` or
  ``Subject`` (``duplicate_header``);
- ``Cert``, ``Chain`` and ``Subject`` unquoted, or ``By``, ``Hash``, ``URI`` and ``DNS``
  quoted (Envoy writes the former always quoted, the latter never);
- whitespace anywhere outside a quoted value (Envoy writes none; only the ends of the whole
  header value are trimmed, as HTTP does), a quote, control character or DEL in an unquoted
  value;
- inside quotes a backslash takes the next character literally (``\\"`` is a quote); an
  unterminated quote, a backslash at the end, a control character, or anything but ``;``,
  ``,`` or the end after a closing quote;
- empty elements (``a,,b``), empty keys, a leading or trailing ``;`` or ``,``;
- an element without ``Hash`` (Envoy writes an element only for a connection with a client
  certificate, and always its hash).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509

from asgi_mtls.errors import CertificateRejected, RejectionReason, malformed
from asgi_mtls.sources.encoding import url_encoded_pem_to_der
from asgi_mtls.sources.headers.envoy_subject import envoy_subject
from asgi_mtls.sources.headers.format import OWS, DecodeOptions, HeaderFormat

__all__ = [
    "FORMATS",
    "XfccElement",
    "XfccPair",
    "decode_xfcc",
    "envoy_names",
    "parse_xfcc",
]

#: The header Envoy writes.
HEADER: Final = "x-forwarded-client-cert"

#: Keys Envoy writes, lowercased.  Anything else is refused.
KNOWN_KEYS: Final = frozenset({"by", "hash", "cert", "chain", "subject", "uri", "dns"})
#: Keys that may appear once per element.
SINGLE_KEYS: Final = frozenset({"hash", "cert", "chain", "subject"})
#: Keys whose value Envoy always double-quotes; every other key it never quotes.
QUOTED_KEYS: Final = frozenset({"cert", "chain", "subject"})

_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ENVOY_HASH = re.compile(r"[0-9a-f]{64}")


def _invalid(detail: str) -> CertificateRejected:
    """``malformed``, the detail naming the header (a rejection's log line names no source)."""
    return malformed(f"{HEADER}: {detail}")


@dataclass(frozen=True, slots=True)
class XfccPair:
    """One ``key=value`` pair: the key lowercased, the value unquoted and unescaped, and
    ``raw``, the value exactly as written (quotes and backslashes included)."""

    key: str
    value: str
    raw: str


@dataclass(frozen=True, slots=True)
class XfccElement:
    """One hop's element: its pairs in order."""

    pairs: tuple[XfccPair, ...]

    def values(self, key: str) -> list[str]:
        """Every value of ``key`` (case-insensitive), in order, unquoted and unescaped."""
        wanted = key.lower()
        return [pair.value for pair in self.pairs if pair.key == wanted]

    def raw_values(self, key: str) -> list[str]:
        """Every value of ``key`` exactly as written (quotes and escapes included)."""
        wanted = key.lower()
        return [pair.raw for pair in self.pairs if pair.key == wanted]

    def get(self, key: str) -> str | None:
        """The value of a key that appears at most once (``None`` when absent)."""
        found = self.values(key)
        return found[0] if found else None


class _Scanner:
    """A cursor over the header text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def key(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _KEY_CHARS:
            self.pos += 1
        if self.pos == start:
            raise _invalid(f"expected a key at offset {start}")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1  # the opening quote
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\" and self.pos + 1 < len(text):
                char = text[self.pos + 1]
                self.pos += 1
            elif char == '"':
                self.pos += 1
                return "".join(out)
            if char < " " or char == "\x7f":
                raise _invalid(f"control character in the quoted value at offset {self.pos}")
            out.append(char)
            self.pos += 1
        raise _invalid(f"unterminated quoted value starting at offset {start}")

    def unquoted(self) -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos] not in ";,":
            char = text[self.pos]
            if char == '"':
                raise _invalid(f"a quote inside an unquoted value at offset {self.pos}")
            if char <= " " or char == "\x7f":
                raise _invalid(f"whitespace or control character at offset {self.pos}")
            self.pos += 1
        return text[start : self.pos]


def parse_xfcc(value: str) -> list[XfccElement]:
    """Parse a whole XFCC header value into its elements (oldest first, newest last).

    Raises ``CertificateRejected`` (``malformed``, or ``duplicate_header`` for a repeated
    single-valued key) for anything outside the grammar in the module docstring.  Only the
    grammar is checked here; :func:`decode_xfcc` checks the elements against certificates.
    """
    scanner = _Scanner(value.strip(OWS))
    if scanner.at_end():
        raise _invalid("empty header")
    elements: list[XfccElement] = []
    pairs: list[XfccPair] = []
    while True:
        key = scanner.key().lower()
        if key not in KNOWN_KEYS:
            raise _invalid(f"unknown key {key[:40]!r}")
        if scanner.peek() != "=":
            raise _invalid(f"key {key!r} without '='")
        scanner.pos += 1
        start = scanner.pos
        if scanner.peek() == '"':
            if key not in QUOTED_KEYS:
                raise _invalid(f"Envoy never quotes the value of {key!r}")
            item = scanner.quoted()
            if not scanner.at_end() and scanner.peek() not in ";,":
                raise _invalid(f"unexpected data after the quoted value of {key!r}")
        else:
            if key in QUOTED_KEYS:
                raise _invalid(f"the value of {key!r} must be quoted")
            item = scanner.unquoted()
        if key in SINGLE_KEYS and any(pair.key == key for pair in pairs):
            raise CertificateRejected(
                RejectionReason.DUPLICATE_HEADER, f"{HEADER}: {key!r} appears twice in one element"
            )
        pairs.append(XfccPair(key, item, scanner.text[start : scanner.pos]))
        if scanner.at_end():
            elements.append(XfccElement(tuple(pairs)))
            return elements
        separator = scanner.peek()
        scanner.pos += 1
        if separator == ",":
            elements.append(XfccElement(tuple(pairs)))
            pairs = []
        if scanner.at_end():
            raise _invalid(f"trailing {separator!r}")


def envoy_names(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    """The ``URI`` and ``DNS`` values Envoy writes for ``certificate``: every URI SAN, in
    certificate order (``[""]`` when there is none: Envoy writes ``URI=`` then), and every
    DNS SAN, in certificate order.  Raises ``ValueError`` for an unparseable extension."""
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [""], []
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    return uris or [""], sans.get_values_for_type(x509.DNSName)


def _certificate(index: int, element: XfccElement) -> tuple[bytes, tuple[bytes, ...]] | None:
    """``(leaf DER, rest of Chain)`` of an element, or ``None`` when it carries neither
    ``Cert`` nor ``Chain``."""
    cert, chain = element.get("cert"), element.get("chain")
    if cert is None and chain is None:
        return None
    leaf: bytes | None = None
    if cert is not None:
        leaves = url_encoded_pem_to_der(cert, what=f"XFCC element {index} Cert")
        if len(leaves) != 1:
            raise _invalid(f"element {index}: Cert holds {len(leaves)} certificates")
        leaf = leaves[0]
    rest: tuple[bytes, ...] = ()
    if chain is not None:
        chain_ders = url_encoded_pem_to_der(chain, what=f"XFCC element {index} Chain")
        if leaf is not None and chain_ders[0] != leaf:
            raise _invalid(f"element {index}: the first certificate of Chain is not the Cert")
        leaf, rest = chain_ders[0], tuple(chain_ders[1:])
    assert leaf is not None
    return leaf, rest


def _check_names(index: int, element: XfccElement, leaf: bytes) -> None:
    """The element's ``Hash``, ``Subject``, ``URI`` and ``DNS`` are exactly what Envoy writes
    for ``leaf`` (compared as written, quotes and escapes included)."""
    if element.raw_values("hash") != [hashlib.sha256(leaf).hexdigest()]:
        raise _invalid(f"element {index}: Hash does not match the certificate")
    subjects = element.raw_values("subject")
    try:
        certificate = x509.load_der_x509_certificate(leaf)
        uris, dns = envoy_names(certificate)
        subject = f'"{envoy_subject(certificate)}"' if subjects else None
    except ValueError as exc:  # an unparseable certificate, extension or subject
        raise _invalid(f"element {index}: unreadable certificate ({exc})") from None
    if subjects and subjects != [subject]:
        raise _invalid(f"element {index}: Subject is not the certificate's subject")
    written_uris, written_dns = element.raw_values("uri"), element.raw_values("dns")
    if written_uris and written_uris != uris:
        raise _invalid(f"element {index}: URI pairs are not the certificate's URI SANs")
    if written_dns and written_dns != dns:
        raise _invalid(f"element {index}: DNS pairs are not the certificate's DNS SANs")


def decode_xfcc(
    value: str, *, elements: int = 1, element: int = 0
) -> tuple[bytes, tuple[bytes, ...]]:
    """The certificate of one XFCC element: ``(leaf DER, chain DER without the leaf)``.

    ``elements`` is how many elements the trusted hops write (one per Envoy that sets or
    appends XFCC); a header with any other number is refused.  ``element`` picks one of them
    as a list index (``0``: the oldest, written by the hop that terminated the client's TLS).
    Every element must carry a lower-case hex ``Hash``; every element that carries a
    certificate must match it as described in the module docstring.  The chosen element must
    carry ``Cert`` and/or ``Chain``:

    - ``Cert`` is the leaf.  ``Chain`` is the chain the client sent, leaf first; without
      ``Cert`` its first certificate is the leaf, with ``Cert`` that first certificate must be
      the same certificate.  The rest of the chain is only a path-building hint.
    - A chosen element without ``Cert`` or ``Chain`` is refused (``malformed``), not read as
      "no certificate": Envoy writes an element only for a connection that presented a
      verified client certificate, so it says a certificate was presented but not forwarded
      (the proxy lacks ``set_current_client_cert_details: {cert: true}``).  A request without
      any certificate carries no XFCC at all.
    """
    DecodeOptions(elements=elements, element=element)  # ValueError / TypeError when impossible
    parsed = parse_xfcc(value)
    if len(parsed) != elements:
        raise _invalid(
            f"{len(parsed)} element(s), expected {elements} (one per trusted Envoy hop; more "
            "means a client-written element or a separator inside a certificate name)"
        )
    chosen: tuple[bytes, tuple[bytes, ...]] | None = None
    for index, item in enumerate(parsed):
        hashes = item.raw_values("hash")
        if len(hashes) != 1 or not _ENVOY_HASH.fullmatch(hashes[0]):
            raise _invalid(f"element {index}: no lower-case hex SHA-256 Hash")
        found = _certificate(index, item)
        if found is not None:
            _check_names(index, item, found[0])
        if index == element % elements:
            chosen = found
    if chosen is None:
        raise _invalid(
            f"element {element} carries no Cert or Chain (configure Envoy's "
            "set_current_client_cert_details with cert: true)"
        )
    return chosen


def _decode(
    cert: str, chain: Sequence[str], options: DecodeOptions
) -> tuple[bytes, tuple[bytes, ...]]:
    return decode_xfcc(cert, elements=options.elements, element=options.element)


FORMATS: Final = (HeaderFormat("envoy", HEADER, _decode, reads_options=True),)
