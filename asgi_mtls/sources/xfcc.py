"""Envoy's ``x-forwarded-client-cert`` (XFCC) header: a real parser for its grammar.

Envoy's documentation (``configuration/http/http_conn_man/headers``, "x-forwarded-client-cert")
defines the value as::

    XFCC     = element *( "," element )           ; one element per proxy hop, newest last
    element  = pair *( ";" pair )
    pair     = key "=" value                      ; keys case-insensitive
    value    = quoted / unquoted                  ; "," ";" "=" only inside quotes
    quoted   = DQUOTE *( qchar / "\\" CHAR ) DQUOTE

with the keys ``By``, ``Hash`` (hex SHA-256 of the client certificate's DER), ``Cert`` (the
client certificate, URL-encoded PEM), ``Chain`` (the chain the client sent, leaf first,
URL-encoded PEM), ``Subject`` (always quoted), ``URI`` and ``DNS`` (one pair per name), and the
legacy ``SAN``.

The parser is a character scanner, never a ``split(";")``: a ``Cert=`` inside a quoted
``Subject`` is part of that value and can never be seen as a key.  Rules where the
documentation leaves room, chosen to fail closed:

- An unquoted value runs to the next ``;`` or ``,``.  Old Envoy writes ``By`` and ``URI``
  unquoted even when they contain ``;`` or ``,``; such a value then leaves a piece without
  ``=`` (``URI=http://x/a;b``) or an unknown key, and the whole header is refused as
  malformed rather than guessed at.  ``=`` inside an unquoted value is kept
  (``URI=http://x/?a=b``).  ``"`` or whitespace inside an unquoted value is malformed.
- Inside quotes, a backslash takes the next character literally (``\\"`` is a quote).  An
  unterminated quote, or anything but ``;``/``,`` after a closing quote, is malformed.
- Only the keys above are accepted; any other key is malformed.  ``By``, ``URI``, ``DNS`` and
  ``SAN`` may repeat; ``Hash``, ``Cert``, ``Chain`` and ``Subject`` may not
  (``duplicate_header``: the element states the certificate twice).  ``Cert``, ``Chain`` and
  ``Subject`` must be quoted, as Envoy always writes them.
- Empty elements (``a=b,,c=d``), empty keys and a trailing ``;`` or ``,`` are malformed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.sources.encoding import url_encoded_pem_to_der

__all__ = ["XfccElement", "decode_xfcc", "parse_xfcc"]

#: Keys Envoy writes, lowercased.  Anything else is refused.
KNOWN_KEYS: Final = frozenset({"by", "hash", "cert", "chain", "subject", "uri", "dns", "san"})
#: Keys that may appear once per element.
SINGLE_KEYS: Final = frozenset({"hash", "cert", "chain", "subject"})
#: Keys whose value Envoy always double-quotes.
QUOTED_KEYS: Final = frozenset({"cert", "chain", "subject"})

_OWS = " \t"
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_HEX_SHA256 = re.compile(r"[0-9A-Fa-f]{64}")


def _malformed(detail: str) -> CertificateRejected:
    return CertificateRejected(RejectionReason.MALFORMED, f"x-forwarded-client-cert: {detail}")


@dataclass(frozen=True, slots=True)
class XfccElement:
    """One hop's element: its ``(key, value)`` pairs in order, keys lowercased, values
    unquoted and unescaped."""

    pairs: tuple[tuple[str, str], ...]

    def values(self, key: str) -> list[str]:
        """Every value of ``key`` (case-insensitive), in order."""
        wanted = key.lower()
        return [value for name, value in self.pairs if name == wanted]

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

    def skip_ows(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _OWS:
            self.pos += 1

    def key(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _KEY_CHARS:
            self.pos += 1
        if self.pos == start:
            raise _malformed(f"expected a key at offset {start}")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        assert self.peek() == '"'
        start = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(text):
                    break
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                return "".join(out)
            if (char < " " and char != "\t") or char == "\x7f":
                raise _malformed(f"control character in the quoted value at offset {self.pos}")
            out.append(char)
            self.pos += 1
        raise _malformed(f"unterminated quoted value starting at offset {start}")

    def unquoted(self) -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos] not in ";,":
            self.pos += 1
        value = text[start : self.pos].rstrip(_OWS)
        for char in value:
            if char == '"':
                raise _malformed(f"a quote inside an unquoted value at offset {start}")
            if char <= " " or char == "\x7f":
                raise _malformed(f"whitespace or control character in an unquoted value at {start}")
        return value


def parse_xfcc(value: str) -> list[XfccElement]:
    """Parse a whole XFCC header value into its elements (oldest first, newest last).

    Raises ``CertificateRejected`` (``malformed``, or ``duplicate_header`` for a repeated
    single-valued key) for anything outside the grammar in the module docstring.
    """
    scanner = _Scanner(value)
    scanner.skip_ows()
    if scanner.at_end():
        raise _malformed("empty header")
    elements: list[XfccElement] = []
    pairs: list[tuple[str, str]] = []
    while True:
        scanner.skip_ows()
        key = scanner.key().lower()
        if key not in KNOWN_KEYS:
            raise _malformed(f"unknown key {key[:40]!r}")
        if scanner.peek() != "=":
            raise _malformed(f"key {key!r} without '='")
        scanner.pos += 1
        if scanner.peek() == '"':
            item = scanner.quoted()
            scanner.skip_ows()
            if not scanner.at_end() and scanner.peek() not in ";,":
                raise _malformed(f"unexpected data after the quoted value of {key!r}")
        else:
            if key in QUOTED_KEYS:
                raise _malformed(f"the value of {key!r} must be quoted")
            item = scanner.unquoted()
        if key in SINGLE_KEYS and any(name == key for name, _ in pairs):
            raise CertificateRejected(
                RejectionReason.DUPLICATE_HEADER,
                f"x-forwarded-client-cert: {key!r} appears twice in one element",
            )
        pairs.append((key, item))
        if scanner.at_end():
            elements.append(XfccElement(tuple(pairs)))
            return elements
        separator = scanner.peek()
        scanner.pos += 1
        if separator == ",":
            elements.append(XfccElement(tuple(pairs)))
            pairs = []
        scanner.skip_ows()
        if scanner.at_end():
            raise _malformed(f"trailing {separator!r}")


def decode_xfcc(value: str, *, element: int = -1) -> tuple[bytes, tuple[bytes, ...]]:
    """The certificate of one XFCC element: ``(leaf DER, chain DER without the leaf)``.

    ``element`` indexes the elements like a Python list: ``-1`` (the default) is the last one,
    appended by the proxy nearest to the app.  The element must carry ``Hash`` and ``Cert``
    and/or ``Chain``:

    - ``Cert`` is the leaf.  ``Chain`` is the chain the client sent, leaf first; without
      ``Cert`` its first certificate is the leaf, with ``Cert`` that first certificate must be
      the same certificate.  The rest of the chain is only a path-building hint.
    - ``Hash`` must be the SHA-256 of the leaf's DER (hex, any case).  Envoy always writes it;
      requiring it means that a ``Cert`` smuggled into an unquoted ``URI``/``By`` value can
      never stand unchecked.
    - An element without ``Cert`` or ``Chain`` is refused (``malformed``), not read as "no
      certificate": Envoy writes an element only for a connection that presented a verified
      client certificate, so it says a certificate was presented but not forwarded (the
      proxy lacks ``set_current_client_cert_details: {cert: true}``).  Treating it as
      anonymous would hide that.  A request without any certificate carries no XFCC at all.
    """
    elements = parse_xfcc(value)
    try:
        chosen = elements[element]
    except IndexError:
        raise _malformed(f"element {element} requested, the header has {len(elements)}") from None
    cert, chain, digest = chosen.get("cert"), chosen.get("chain"), chosen.get("hash")
    if cert is None and chain is None:
        raise _malformed(
            "the element carries no Cert or Chain (configure Envoy's "
            "set_current_client_cert_details with cert: true)"
        )
    leaf: bytes | None = None
    if cert is not None:
        leaves = url_encoded_pem_to_der(cert, what="XFCC Cert")
        if len(leaves) != 1:
            raise _malformed(f"Cert holds {len(leaves)} certificates, expected one")
        leaf = leaves[0]
    rest: Sequence[bytes] = ()
    if chain is not None:
        chain_ders = url_encoded_pem_to_der(chain, what="XFCC Chain")
        if leaf is not None and chain_ders[0] != leaf:
            raise _malformed("the first certificate of Chain is not the Cert")
        leaf, rest = chain_ders[0], chain_ders[1:]
    assert leaf is not None
    if digest is None:
        raise _malformed("the element carries no Hash")
    if not _HEX_SHA256.fullmatch(digest):
        raise _malformed("Hash is not a hex SHA-256 digest")
    if digest.lower() != hashlib.sha256(leaf).hexdigest():
        raise _malformed("Hash does not match the certificate")
    return leaf, tuple(rest)
