"""Value types shared by the certificate sources."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

#: What ``CertificateSource.find`` returns: the raw values as received, hashable, so they can
#: key the verification cache without being decoded first.  Each source gives them its own
#: shape (``decode`` of the same source reads them back).
RawValues = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class PresentedCertificate:
    """A certificate as a client presented it: decoded, not yet trusted.

    ``chain`` holds any further certificates that came with it.  They are only hints for path
    building, never trust anchors.
    """

    source: str
    leaf: bytes
    chain: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class PresentedName:
    """A subject name the ASGI server says it verified, with no certificate (issue #12):
    parsed, never validated (:class:`~asgi_mtls.sources.ServerVerifiedNameSource`).
    ``text`` is the string as the server gave it."""

    source: str
    name: x509.Name
    text: str
