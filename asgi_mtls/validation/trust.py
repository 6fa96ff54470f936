"""Trust material as one immutable snapshot, rebuilt from its sources for hot reload.

The validator never reads trust roots, intermediates, allowed issuers or pins from mutable
attributes: it reads one :class:`TrustState` reference at the start of each validation.  A
reload builds a complete new ``TrustState`` from the configured sources (files re-read) and
swaps that single reference, so a validation sees either the old set or the new one, never a
mix.  A source that fails to load leaves the old state in place.

Pins are SHA-256 digests (RFC 7469 style for keys): of the whole DER certificate
(``pinned_certificates``) or of its DER SubjectPublicKeyInfo (``pinned_keys``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import Store

from asgi_mtls.validation.trust_checks import check_trust_roots, read_certificates

__all__ = [
    "CertificateInput",
    "PinInput",
    "TrustSource",
    "TrustState",
    "certificate_sha256",
    "load_certificates",
    "parse_pin",
    "spki_sha256",
]

#: What may be given as trust roots, intermediates or allowed issuers: a path to a PEM file,
#: PEM or DER bytes, a certificate, or a sequence of any of these.
CertificateInput = (
    str
    | os.PathLike[str]
    | bytes
    | x509.Certificate
    | Sequence["str | os.PathLike[str] | bytes | x509.Certificate"]
)

#: Pins: a ``pathlib.Path`` (or other ``os.PathLike``) to a text file with one pin per line
#: (``#`` starts a comment), or an iterable of pins.  A pin is a SHA-256 digest in any
#: spelling :func:`parse_pin` reads, or a certificate (its own digest is taken).  A bare
#: ``str`` is refused: it would be ambiguous between a path and a single pin.
PinInput = os.PathLike[str] | Iterable[str | bytes | x509.Certificate]


def _load_one(
    item: str | os.PathLike[str] | bytes | x509.Certificate, option: str
) -> list[x509.Certificate]:
    if isinstance(item, x509.Certificate):
        return [item]
    return read_certificates(item, option)


def load_certificates(
    source: CertificateInput | None, option: str = "trust"
) -> list[x509.Certificate]:
    """Load certificates from any :data:`CertificateInput` (see there).  A file or bytes that
    hold no certificate is a :class:`~asgi_mtls.errors.ConfigurationError` naming ``option``
    and the file."""
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike, bytes, x509.Certificate)):
        return _load_one(source, option)
    certificates: list[x509.Certificate] = []
    for item in source:
        certificates += _load_one(item, option)
    return certificates


def certificate_sha256(certificate: x509.Certificate) -> bytes:
    """SHA-256 of the DER certificate (its usual "fingerprint")."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()


def spki_sha256(certificate: x509.Certificate) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo (RFC 7469's pin, ``curl --pinnedpubkey``)."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


#: Prefixes a pin may carry, compared case-insensitively: curl's ``sha256//`` (and the
#: single-slash variant), the ``sha256:`` label of fingerprint listings.
_PIN_PREFIXES = ("sha256//", "sha256/", "sha256:")
#: RFC 7469 §2.1.1's directive, ``pin-sha256="<base64>"``, as copied from an HPKP header.
_PIN_DIRECTIVE = 'pin-sha256="'


def parse_pin(value: str | bytes) -> bytes:
    """The SHA-256 digest a pin spells: the one parser of pins (issue #9), for the
    validator's ``pinned_certificates`` and ``pinned_keys`` and the ``fingerprint`` and
    ``spki_pin`` matchers.

    Accepted spellings (the union of what the validator and the matchers took):

    - 64 hex digits, either case, colons allowed (``openssl x509 -fingerprint -sha256``);
    - base64 of the 32 bytes (RFC 7469's ``pin-sha256`` value, curl's ``--pinnedpubkey``);
    - either of those after a ``sha256//``, ``sha256/`` or ``sha256:`` prefix (any case),
      or inside the RFC 7469 directive ``pin-sha256="..."`` (both quotes required);
    - the raw 32 bytes (``bytes`` only; other ``bytes`` are read as ASCII text).

    Anything else is a ``ValueError`` (a configuration error, raised at startup).
    """
    if isinstance(value, bytes):
        if len(value) == 32:
            return value
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"not a SHA-256 pin: {value!r}") from None
    if not isinstance(value, str):
        raise ValueError(f"not a SHA-256 pin: {value!r}")
    text = value.strip()
    if text.lower().startswith(_PIN_DIRECTIVE):
        if len(text) < len(_PIN_DIRECTIVE) + 1 or not text.endswith('"'):
            raise ValueError(f"unterminated pin-sha256 directive: {value!r}")
        text = text[len(_PIN_DIRECTIVE) : -1]
    else:
        for prefix in _PIN_PREFIXES:
            if text.lower().startswith(prefix):
                text = text[len(prefix) :]
                break
    compact = text.replace(":", "")
    if len(compact) == 64 and all(c in string.hexdigits for c in compact):
        return bytes.fromhex(compact)
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise ValueError(f"not a SHA-256 pin (64 hex digits or 44 base64 characters): {value!r}")
    return digest


def _pin_digests(
    pins: PinInput | None, digest: Callable[[x509.Certificate], bytes]
) -> frozenset[bytes]:
    if pins is None:
        return frozenset()
    if isinstance(pins, str):
        raise TypeError("pins must be a list of pins or a pathlib.Path, not a single str")
    if isinstance(pins, os.PathLike):
        lines = Path(pins).read_text(encoding="ascii").splitlines()
        items: Iterable[str | bytes | x509.Certificate] = [
            line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()
        ]
    else:
        items = pins
    digests = set()
    for item in items:
        digests.add(digest(item) if isinstance(item, x509.Certificate) else parse_pin(item))
    return frozenset(digests)


def by_subject(
    certificates: Iterable[x509.Certificate],
) -> dict[bytes, tuple[x509.Certificate, ...]]:
    """Certificates grouped by the DER of their subject name."""
    groups: dict[bytes, list[x509.Certificate]] = {}
    for certificate in certificates:
        groups.setdefault(certificate.subject.public_bytes(), []).append(certificate)
    return {subject: tuple(group) for subject, group in groups.items()}


def _issuer_id(certificate: x509.Certificate) -> tuple[bytes, bytes]:
    return certificate.subject.public_bytes(), spki_sha256(certificate)


@dataclass(frozen=True, slots=True, eq=False)
class TrustState:
    """One immutable, complete set of trust material; never modified after it is built."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    #: ``None``: any issuer under the roots.  Else the leaf's direct issuer must match one of
    #: these by subject and public key (so a re-issued CA certificate with the same key and
    #: name still matches).
    allowed_issuers: tuple[x509.Certificate, ...] | None
    pinned_certificates: frozenset[bytes]
    pinned_keys: frozenset[bytes]
    store: Store = field(repr=False)
    allowed_issuer_ids: frozenset[tuple[bytes, bytes]] = field(repr=False)
    #: Identifies the content: two states with equal digests hold the same material.
    digest: bytes = field(repr=False)
    #: DER of every configured root and intermediate (to drop presented duplicates).
    known_ders: frozenset[bytes] = field(repr=False, default=frozenset())
    #: Subject (DER) -> configured roots / intermediates with that subject: the candidate
    #: issuers path building considers, for bounding its search.
    roots_by_subject: Mapping[bytes, tuple[x509.Certificate, ...]] = field(
        repr=False, default_factory=dict
    )
    intermediates_by_subject: Mapping[bytes, tuple[x509.Certificate, ...]] = field(
        repr=False, default_factory=dict
    )

    @classmethod
    def build(
        cls,
        roots: Sequence[x509.Certificate],
        intermediates: Sequence[x509.Certificate] = (),
        *,
        allowed_issuers: Sequence[x509.Certificate] | None = None,
        pinned_certificates: frozenset[bytes] = frozenset(),
        pinned_keys: frozenset[bytes] = frozenset(),
    ) -> TrustState:
        check_trust_roots(roots)
        if allowed_issuers is not None and not allowed_issuers:
            raise ValueError("allowed_issuers is empty: no client could ever be accepted")
        content = hashlib.sha256()
        for group in (roots, intermediates, allowed_issuers or ()):
            content.update(b"|")
            for certificate in group:
                content.update(certificate_sha256(certificate))
        for pins in (pinned_certificates, pinned_keys):
            content.update(b"|" + b"".join(sorted(pins)))
        content.update(b"|" + (b"any" if allowed_issuers is None else b"some"))
        return cls(
            roots=tuple(roots),
            intermediates=tuple(intermediates),
            allowed_issuers=None if allowed_issuers is None else tuple(allowed_issuers),
            pinned_certificates=pinned_certificates,
            pinned_keys=pinned_keys,
            store=Store(list(roots)),
            allowed_issuer_ids=frozenset(_issuer_id(c) for c in allowed_issuers or ()),
            digest=content.digest(),
            known_ders=frozenset(
                c.public_bytes(serialization.Encoding.DER) for c in (*roots, *intermediates)
            ),
            roots_by_subject=by_subject(roots),
            intermediates_by_subject=by_subject(intermediates),
        )

    @property
    def has_pins(self) -> bool:
        return bool(self.pinned_certificates or self.pinned_keys)

    def issuer_allowed(self, issuer: x509.Certificate) -> bool:
        return self.allowed_issuers is None or _issuer_id(issuer) in self.allowed_issuer_ids

    def pinned(self, path: Sequence[x509.Certificate]) -> bool:
        """Whether any certificate of the validated ``path`` matches a pin (RFC 7469: a pin
        may name the leaf, an intermediate or the root)."""
        for certificate in path:
            if certificate_sha256(certificate) in self.pinned_certificates:
                return True
            if spki_sha256(certificate) in self.pinned_keys:
                return True
        return False


def _paths_in(source: object) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        return [Path(source)]
    if source is None or isinstance(source, (bytes, x509.Certificate)):
        return []
    if isinstance(source, Iterable):
        return [path for item in source for path in _paths_in(item)]
    return []


#: (path, mtime in ns, size); ``-1, -1`` for a file that cannot be stat'ed.
FileStamp = tuple[str, int, int]


def file_stamps(paths: Iterable[Path]) -> tuple[FileStamp, ...]:
    """The change-detection key of ``paths``: mtime and size (a missing file is a change)."""
    stamps = []
    for path in paths:
        try:
            stat = path.stat()
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append((str(path), -1, -1))
    return tuple(stamps)


class TrustSource:
    """The configured inputs of a validator's trust material, kept as given so that
    :meth:`load` can re-read the files among them."""

    def __init__(
        self,
        trust_roots: CertificateInput,
        *,
        intermediates: CertificateInput | None = None,
        allowed_issuers: CertificateInput | None = None,
        pinned_certificates: PinInput | None = None,
        pinned_keys: PinInput | None = None,
    ) -> None:
        for name, pins in (
            ("pinned_certificates", pinned_certificates),
            ("pinned_keys", pinned_keys),
        ):
            if isinstance(pins, str):
                raise TypeError(f"{name} must be a list of pins or a pathlib.Path, not a str")
        # Materialise one-shot iterables (generators) so that reloads see the same pins.
        self._pinned_certificates = (
            pinned_certificates
            if pinned_certificates is None or isinstance(pinned_certificates, os.PathLike)
            else tuple(pinned_certificates)
        )
        self._pinned_keys = (
            pinned_keys
            if pinned_keys is None or isinstance(pinned_keys, os.PathLike)
            else tuple(pinned_keys)
        )
        self._trust_roots = trust_roots
        self._intermediates = intermediates
        self._allowed_issuers = allowed_issuers
        self.files: tuple[Path, ...] = tuple(
            dict.fromkeys(
                _paths_in(trust_roots)
                + _paths_in(intermediates)
                + _paths_in(allowed_issuers)
                + _paths_in(self._pinned_certificates)
                + _paths_in(self._pinned_keys)
            )
        )

    def load(self) -> TrustState:
        """Read every input (files now) into a new :class:`TrustState`; raises on bad input."""
        allowed = (
            None
            if self._allowed_issuers is None
            else load_certificates(self._allowed_issuers, "allowed_issuers")
        )
        return TrustState.build(
            load_certificates(self._trust_roots),
            load_certificates(self._intermediates, "intermediates"),
            allowed_issuers=allowed,
            pinned_certificates=_pin_digests(self._pinned_certificates, certificate_sha256),
            pinned_keys=_pin_digests(self._pinned_keys, spki_sha256),
        )

    def stamps(self) -> tuple[FileStamp, ...]:
        return file_stamps(self.files)
