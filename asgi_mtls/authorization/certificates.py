"""Matchers on the certificate itself: subject attributes, the issuer, the fingerprint and the
public key, compared by the rules of :mod:`~asgi_mtls.authorization.matchers`::

    sre = subject_attribute("OU", "SRE") & issuer("CN=Corp Issuing CA,O=Corp")
    pinned = spki_pin("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")

``subject_attribute`` reads the subject, so it may match a server-verified name (issue #12);
``issuer``, ``fingerprint`` and ``spki_pin`` read what only a certificate holds, and never
match one (``identity.certificate is None``: nothing to compare, not an error).
"""

from __future__ import annotations

import base64
import re
from typing import Final

from cryptography import x509

from asgi_mtls.authorization.matchers import ValueIn, name_set
from asgi_mtls.authorization.requirements import Requirement, check_name
from asgi_mtls.identity import ClientIdentity
from asgi_mtls.identity.identity import SHORT_NAMES
from asgi_mtls.validation.trust import parse_pin

__all__ = ["fingerprint", "issuer", "spki_pin", "subject_attribute"]

_DOTTED_OID: Final = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
#: Subject attribute names as ClientIdentity spells them, and their OIDs.
_ATTRIBUTE_NAMES: Final = frozenset(SHORT_NAMES.values())
_SHORT_NAME_OF_OID: Final = {oid.dotted_string: name for oid, name in SHORT_NAMES.items()}


def subject_attribute(name: str, *values: str) -> Requirement:
    """One of the subject's ``name`` attributes equals one of ``values``:
    ``subject_attribute("OU", "SRE")``.  ``name`` is a short name (``CN``, ``O``, ``OU``,
    ``C``, ``ST``, ``L``, ``STREET``, ``DC``, ``UID``, ``serialNumber``, ``emailAddress``) or a
    dotted OID (the OID of a named attribute means that attribute); anything else is a
    ``ValueError`` (a typo must not silently match nothing)."""
    if name not in _ATTRIBUTE_NAMES and not _DOTTED_OID.fullmatch(str(name)):
        known = ", ".join(sorted(_ATTRIBUTE_NAMES))
        raise ValueError(f"unknown subject attribute {name!r}; use one of {known} or an OID")
    name = _SHORT_NAME_OF_OID.get(name, name)
    allowed = name_set(values, f"{name} value")
    return ValueIn(
        f"subject {name} in", lambda identity: identity.attribute(name), allowed, pure=True
    )


def _name_key(name: x509.Name) -> tuple[frozenset[tuple[str, object]], ...]:
    """A parsed Name as comparable values: RDNs in order, each a set of (OID, value)."""
    return tuple(
        frozenset((attribute.oid.dotted_string, attribute.value) for attribute in rdn)
        for rdn in name.rdns
    )


class _Issuer(Requirement):
    pure = True

    def __init__(self, names: tuple[x509.Name, ...]) -> None:
        self.names = names
        self.keys = frozenset(_name_key(name) for name in names)

    def _matches(self, identity: ClientIdentity) -> bool:
        certificate = identity.certificate
        # A server-verified name (issue #12): the issuer is unknown, so no issuer matches.
        return certificate is not None and _name_key(certificate.issuer) in self.keys

    def describe(self) -> str:
        return "issuer " + " or ".join(name.rfc4514_string() for name in self.names)


def issuer(*names: str | x509.Name) -> Requirement:
    """The leaf certificate was issued by a CA with one of these names (RFC 4514 strings such
    as ``"CN=Corp Issuing CA,O=Corp"``, or ``x509.Name``).  Compared as parsed names, RDN by
    RDN and value by value, exactly (no case folding)."""
    parsed = []
    for name in names:
        if isinstance(name, x509.Name):
            value = name
        else:
            check_name(name, "issuer")
            try:
                value = x509.Name.from_rfc4514_string(name)
            except ValueError as exc:
                raise ValueError(f"invalid issuer name {name!r}: {exc}") from None
        if len(value) == 0:
            raise ValueError("an issuer name must not be empty")
        for attribute in value:
            if isinstance(attribute.value, str):
                check_name(attribute.value, "issuer attribute value")
        parsed.append(value)
    if not parsed:
        raise ValueError("at least one issuer is needed")
    return _Issuer(tuple(parsed))


# -- keys and certificates ------------------------------------------------------------------


def _digests(values: tuple[str, ...], what: str) -> frozenset[str]:
    """The SHA-256 digests (lowercase hex, as ``ClientIdentity`` spells them) that ``values``
    spell, read by the one pin parser (:func:`~asgi_mtls.validation.trust.parse_pin`: hex with
    or without colons, base64, ``sha256//``, ``pin-sha256="..."``)."""
    if not values:
        raise ValueError(f"at least one {what} is needed")
    digests = set()
    for value in values:
        try:
            digests.add(parse_pin(value).hex())
        except ValueError as exc:
            raise ValueError(f"invalid {what} {value!r}: {exc}") from None
    return frozenset(digests)


def _fingerprint(identity: ClientIdentity) -> tuple[str, ...]:
    return () if identity.certificate is None else (identity.fingerprint_sha256,)


def fingerprint(*digests: str) -> Requirement:
    """The leaf certificate's SHA-256 fingerprint is one of ``digests``: hex (any case, ``:``
    separators allowed, as ``openssl x509 -fingerprint -sha256`` prints it) or any other
    spelling :func:`~asgi_mtls.validation.trust.parse_pin` reads."""
    return ValueIn(
        "certificate SHA-256 in", _fingerprint, _digests(digests, "fingerprint"), pure=True
    )


class _SpkiPin(ValueIn):
    """Described by its pins in base64, the way they are usually written."""

    def describe(self) -> str:
        pins = sorted(base64.b64encode(bytes.fromhex(d)).decode() for d in self.allowed)
        return "public key pin in " + ", ".join(pins)


def _spki(identity: ClientIdentity) -> tuple[str, ...]:
    return () if identity.certificate is None else (identity.spki_sha256,)


def spki_pin(*pins: str) -> Requirement:
    """The leaf's public key is pinned: SHA-256 of its SubjectPublicKeyInfo equals one of
    ``pins``, given as base64 (as in HPKP ``pin-sha256="..."`` and curl ``sha256//``) or hex
    (:func:`~asgi_mtls.validation.trust.parse_pin`).  A pin survives certificate renewal
    with the same key."""
    return _SpkiPin("public key pin in", _spki, _digests(pins, "SPKI pin"), pure=True)
