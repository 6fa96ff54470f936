"""Typed names: what a certificate calls its holder, and of which kind.

A name keeps the kind of the field it was read from, and two names are equal only when kind and
value are: a CN, a DNS SAN or an email SAN holding the text ``spiffe://bank.example/payments`` is
never that SPIFFE ID (issue #8, "principal type confusion").  The same parser reads the names an
application writes in its requirements (:func:`parse_principal`), so a string in
``require_client("...")`` has a kind too, decided by its shape.

The subjectAltName kinds RFC 5280 §4.2.1.6 defines as ``IA5String`` (dNSName, rfc822Name, URI)
are checked here before a certificate's name is used at all (issue #8, "SAN content"): ASCII
only, and well formed for its kind.  A certificate carrying a name that fails is refused as a
whole (``invalid_name``): a CA that issued it is broken or abused, and an identity assembled from
the names that happen to pass would be a source of confusion.

References:

- RFC 5280 §4.2.1.6 (subjectAltName), RFC 1034 §3.5 and RFC 1123 §2.1 (host names),
  RFC 5321 §4.1.2 / RFC 5322 §3.4.1 (mailboxes), RFC 3986 §2-3 (URIs).
- SPIFFE ID specification §2 (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md).
"""

from __future__ import annotations

import enum
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from cryptography import x509

__all__ = [
    "NameKind",
    "Principal",
    "SpiffeId",
    "check_name",
    "is_dns_name",
    "is_email",
    "is_uri",
    "parse_principal",
    "parse_spiffe_id",
    "parse_trust_domain",
]

_MAX_SPIFFE_ID_BYTES: Final = 2048
_TRUST_DOMAIN: Final = re.compile(r"[a-z0-9._-]+")
_SPIFFE_SEGMENT: Final = re.compile(r"[A-Za-z0-9._-]+")
_DNS_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
#: RFC 5322 ``atext``: what a dot-atom local part may hold (quoted local parts are refused).
_ATOM: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
#: RFC 3986 §2: unreserved, gen-delims, sub-delims and ``%`` (checked as ``%HH`` below).
_URI_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HEX_SHA256: Final = re.compile(r"(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}")
#: Unicode categories never accepted in a name: controls, format characters (zero-width
#: space and joiners, bidi controls), surrogates, private use, unassigned, line and paragraph
#: separators.  A name holding one is a mistake or a trick.
_INVISIBLE: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_name(value: object, what: str) -> str:
    """``value`` if it is a usable name; else ``ValueError`` naming ``what``.

    Refuses non-strings, the empty string, and invisible or control characters (NUL,
    zero-width space, bidi controls, ...).  Nothing is normalised: ``\u0430dmin`` (with a
    Cyrillic a) stays a different name from ``admin``.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"invalid {what} {value!r}")
    if not value.isascii():
        for char in value:
            if unicodedata.category(char) in _INVISIBLE:
                raise ValueError(f"invalid {what} {value!r}: invisible or control character")
    elif not value.isprintable():  # in ASCII: a C0 control character or DEL
        raise ValueError(f"invalid {what} {value!r}: control character")
    return value


# -- the IA5String kinds of RFC 5280 -------------------------------------------------------------


def is_dns_name(value: str) -> bool:
    """A host name in RFC 1034 §3.5 preferred syntax as RFC 1123 §2.1 relaxes it: ASCII
    letters, digits and ``-`` in labels of 1 to 63 characters that neither start nor end with
    ``-``, at most 253 characters, no empty label (so no leading or trailing dot).  No ``_``
    and no wildcard: a client is one host, and RFC 5280 §4.2.1.6 requires this syntax."""
    if not value or len(value) > 253 or not value.isascii():
        return False
    return all(_DNS_LABEL.fullmatch(label) for label in value.split("."))


def is_email(value: str) -> bool:
    """An RFC 5321 mailbox in ASCII: a dot-atom local part (RFC 5322 §3.4.1; quoted local
    parts are refused), ``@``, and a host name (:func:`is_dns_name`)."""
    if not value.isascii() or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    if not local or len(local) > 64 or not all(_ATOM.fullmatch(atom) for atom in local.split(".")):
        return False
    return is_dns_name(domain)


def is_uri(value: str) -> bool:
    """An absolute URI (RFC 3986 §3: a scheme, then ``:``) made only of the characters §2
    allows, with well-formed ``%HH`` escapes.  Spaces, quotes, ``<>``, ``\\``, ``{}|^``` and
    anything outside ASCII are refused: they cannot appear in a URI, only in something
    crafted to look like one (or to break the header a proxy writes it into)."""
    if not value.isascii() or not _SCHEME.match(value):
        return False
    return _URI_CHARS.issuperset(value) and not _PERCENT.search(value)


# -- SPIFFE ------------------------------------------------------------------------------------


def parse_trust_domain(value: object) -> str:
    """A SPIFFE trust domain (SPIFFE ID §2.1): lowercase letters, digits, ``.``, ``-``, ``_``;
    ``ValueError`` otherwise (no uppercase, userinfo or port)."""
    if not isinstance(value, str) or not _TRUST_DOMAIN.fullmatch(value):
        raise ValueError(f"invalid SPIFFE trust domain {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A parsed SPIFFE ID: ``spiffe://<trust_domain><path>``."""

    trust_domain: str
    path: str

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"

    @property
    def segments(self) -> tuple[str, ...]:
        """The path's segments (``/ns/prod`` is ``("ns", "prod")``)."""
        return tuple(self.path.split("/")[1:]) if self.path else ()


def parse_spiffe_id(value: str) -> SpiffeId:
    """Parse ``value`` strictly per the SPIFFE ID specification; ``ValueError`` if invalid.

    Scheme exactly ``spiffe``; a valid trust domain (:func:`parse_trust_domain`); path
    segments of letters, digits, ``.``, ``-``, ``_``, none empty, ``.`` or ``..``; no trailing
    slash, query, fragment or percent-encoding; at most 2048 bytes.
    """
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_SPIFFE_ID_BYTES:
        raise ValueError("SPIFFE ID longer than 2048 bytes")
    prefix = "spiffe://"
    if not value.startswith(prefix):
        raise ValueError("SPIFFE ID must start with 'spiffe://'")
    trust_domain, slash, path = value[len(prefix) :].partition("/")
    if not trust_domain:
        raise ValueError("SPIFFE ID has an empty trust domain")
    parse_trust_domain(trust_domain)
    if not slash:
        return SpiffeId(trust_domain, "")
    for segment in path.split("/"):
        if not segment:
            raise ValueError("SPIFFE ID path has an empty segment or a trailing slash")
        if segment in (".", ".."):
            raise ValueError("SPIFFE ID path has a '.' or '..' segment")
        if not _SPIFFE_SEGMENT.fullmatch(segment):
            raise ValueError(f"invalid character in SPIFFE ID path segment {segment!r}")
    return SpiffeId(trust_domain, "/" + path)


# -- principals ------------------------------------------------------------------------------


class NameKind(enum.StrEnum):
    """Where a name comes from.  A principal is equal to a required name only if both kind
    and value are."""

    #: The certificate's only URI SAN, a valid SPIFFE ID.
    SPIFFE = "spiffe"
    #: Any other URI SAN.
    URI = "uri"
    #: A dNSName SAN.
    DNS = "dns"
    #: An rfc822Name SAN.
    EMAIL = "email"
    #: The subject's (only) commonName: only where the app asked for CNs.
    CN = "cn"
    #: The whole subject, as an RFC 4514 string of the parsed name.
    SUBJECT = "subject"
    #: The SHA-256 of the DER certificate, lowercase hex.
    FINGERPRINT = "fingerprint"
    #: Returned as a plain string by the app's own principal mapper: the app chose the names,
    #: so plain strings in requirements match it by value.
    CUSTOM = "custom"


_LABELS: Final = {
    NameKind.SPIFFE: "SPIFFE ID",
    NameKind.URI: "URI",
    NameKind.DNS: "DNS name",
    NameKind.EMAIL: "email",
    NameKind.CN: "CN",
    NameKind.SUBJECT: "subject",
    NameKind.FINGERPRINT: "certificate SHA-256",
    NameKind.CUSTOM: "principal",
}


@dataclass(frozen=True, slots=True)
class Principal:
    """A name with its kind.  ``str()`` is the value."""

    kind: NameKind
    value: str

    def __str__(self) -> str:
        return self.value

    def describe(self) -> str:
        """``"SPIFFE ID spiffe://..."``, ``"DNS name a.example"``, ...: for audits and logs."""
        return f"{_LABELS[self.kind]} {self.value}"


def parse_principal(text: str) -> Principal:
    """The typed name a requirement string means, by its shape; ``ValueError`` if none.

    - ``spiffe://...``: a SPIFFE ID (strictly parsed);
    - another ``scheme:...``: a URI;
    - ``local@domain``: an email address;
    - ``CN=...,O=...``: a subject (RFC 4514, compared as the parsed name);
    - 64 hex digits (``:`` separators allowed): a certificate SHA-256 fingerprint;
    - a host name: a DNS name.

    A common name is never written as a plain string (it would be indistinguishable from a DNS
    name): use the ``cn(...)`` matcher.  IP addresses are refused: no strategy names a client by
    one.
    """
    check_name(text, "principal")
    if text.lower().startswith("spiffe:"):
        return Principal(NameKind.SPIFFE, str(parse_spiffe_id(text)))
    if _HEX_SHA256.fullmatch(text):
        return Principal(NameKind.FINGERPRINT, text.replace(":", "").lower())
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        raise ValueError(f"principal {text!r} is an IP address; clients are not named by address")
    if _SCHEME.match(text) and is_uri(text):
        return Principal(NameKind.URI, text)
    if "@" in text and is_email(text):
        return Principal(NameKind.EMAIL, text)
    if is_dns_name(text):
        return Principal(NameKind.DNS, text)
    if "=" in text:
        try:
            name = x509.Name.from_rfc4514_string(text)
        except ValueError as exc:
            raise ValueError(f"principal {text!r} is not a valid RFC 4514 name: {exc}") from None
        if len(name):
            return Principal(NameKind.SUBJECT, name.rfc4514_string())
    raise ValueError(
        f"principal {text!r} is not a SPIFFE ID, URI, email address, DNS name, subject or "
        f"SHA-256 fingerprint; to match a certificate's common name, use cn({text!r})"
    )
