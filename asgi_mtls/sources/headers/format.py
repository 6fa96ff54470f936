"""What a header format is, and the pieces several formats share.

A :class:`HeaderFormat` is one registry entry: the proxy's default header names, its decoder
(header values in, DER out), how to read its verdict header and how it spells "no
certificate".  Each format family's module (``nginx.py``, ``envoy.py``, ...) builds its
entries from these parts; ``asgi_mtls.sources.headers`` collects them into the registry and
drives them all with one source class.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from asgi_mtls.errors import malformed
from asgi_mtls.sources.encoding import base64_der, url_encoded_pem_to_der

__all__ = [
    "OWS",
    "DecodeOptions",
    "Decoder",
    "HeaderFormat",
    "Verdict",
    "decode_base64_der",
    "decode_url_encoded_leaf",
    "leaf",
    "leaf_first",
    "mod_ssl_format",
    "mod_ssl_verdict",
]

#: Optional whitespace around a field value (RFC 9110 section 5.6.3: SP and HTAB).
OWS: Final = " \t"


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Per-source options a decoder may use.  ``elements``: how many XFCC elements the
    trusted Envoys write; ``element``: which one to read, as a list index (see
    ``HeaderSource``).

    ``elements`` must be a positive count and ``element`` one of its indexes (``ValueError`` /
    ``TypeError`` otherwise: a configuration that could never match a header).
    """

    elements: int = 1
    element: int = 0

    def __post_init__(self) -> None:
        elements, element = self.elements, self.element
        if isinstance(elements, bool) or not isinstance(elements, int) or elements < 1:
            raise ValueError(f"elements must be a positive int, got {elements!r}")
        if isinstance(element, bool) or not isinstance(element, int):
            raise TypeError("element must be an int")
        if not -elements <= element < elements:
            raise ValueError(f"element {element} does not exist among {elements} element(s)")


#: A decoder: (certificate header value, chain header values, options) -> (leaf, chain hints).
#: It raises ``CertificateRejected`` for anything it cannot read.
Decoder = Callable[[str, Sequence[str], DecodeOptions], tuple[bytes, tuple[bytes, ...]]]


@dataclass(frozen=True, slots=True)
class HeaderFormat:
    """How one proxy forwards a certificate.

    ``absent`` lists certificate-header values that mean "no certificate" for this proxy
    (Apache's ``(null)``; the empty value HAProxy, Caddy and Google Cloud send).  For every
    other format an empty value is malformed.  ``reads_options``: the decoder reads
    :class:`DecodeOptions` (``envoy``); a source of any other format accepts only the
    defaults.
    """

    name: str
    header: str
    decode: Decoder
    chain_header: str | None = None
    chain_repeatable: bool = False
    verify_header: str | None = None
    verdict: Callable[[str], Verdict] | None = None
    absent: frozenset[str] = frozenset()
    reads_options: bool = False


class Verdict(enum.Enum):
    """What a proxy's verdict header says."""

    #: Verified (or nothing to say): decide on the certificate alone.
    OK = "ok"
    #: "No certificate" (nginx/Apache ``NONE``, ``false``): fine for an anonymous request,
    #: a failure next to a certificate.
    ONLY_WITHOUT_CERTIFICATE = "none"
    #: The proxy failed to verify: ``proxy_verify_failed``.
    FAILED = "failed"


def leaf(function: Callable[[str], bytes]) -> Decoder:
    """A :data:`Decoder` for a format whose one header carries the leaf alone."""

    def decode(cert: str, chain: Sequence[str], options: DecodeOptions) -> tuple[bytes, tuple[()]]:
        return function(cert), ()

    return decode


def leaf_first(function: Callable[[str], list[bytes]]) -> Decoder:
    """A :data:`Decoder` for a format whose one header carries the chain, leaf first."""

    def decode(
        cert: str, chain: Sequence[str], options: DecodeOptions
    ) -> tuple[bytes, tuple[bytes, ...]]:
        ders = function(cert)
        return ders[0], tuple(ders[1:])

    return decode


# --- decoders, verdicts and entries several families share ------------------------------------


def decode_base64_der(value: str) -> bytes:
    """Base64 DER, nothing around it: HAProxy ``%[ssl_c_der,base64]``, Caddy
    ``{http.request.tls.client.certificate_der_base64}``, Azure ``X-ARR-ClientCert``."""
    return base64_der(value, what="base64 DER certificate")


def decode_url_encoded_leaf(value: str) -> bytes:
    """One URL-encoded PEM certificate: nginx ``$ssl_client_escaped_cert`` (every reserved
    character escaped), AWS ALB verify mode ``X-Amzn-Mtls-Clientcert-Leaf`` (``+ = /`` raw),
    CloudFront ``CloudFront-Viewer-Cert-Pem``.

    Decoded once with ``unquote``, never ``unquote_plus`` (a literal ``+`` is base64); a value
    still holding ``%`` after that was encoded twice, a space in the body is a ``+`` that
    something decoded as form data: both malformed (``url_encoded_pem_to_der``).
    """
    ders = url_encoded_pem_to_der(value, what="URL-encoded PEM certificate")
    if len(ders) != 1:
        raise malformed(f"expected one certificate, found {len(ders)}")
    return ders[0]


def mod_ssl_format(
    name: str, decode: Decoder, *, absent: frozenset[str] = frozenset()
) -> HeaderFormat:
    """A format of the mod_ssl family (Apache, and nginx, which copies its variables): the
    certificate in ``x-ssl-client-cert``, ``SSL_CLIENT_VERIFY`` in ``x-ssl-client-verify``
    (our names: neither server has a standard one)."""
    return HeaderFormat(
        name,
        "x-ssl-client-cert",
        decode,
        verify_header="x-ssl-client-verify",
        verdict=mod_ssl_verdict,
        absent=absent,
    )


def mod_ssl_verdict(value: str) -> Verdict:
    """Apache ``SSL_CLIENT_VERIFY`` and nginx ``$ssl_client_verify``, which copies it:
    ``SUCCESS``, ``NONE``; anything else (``FAILED:<reason>``, Apache's ``GENEROUS``)
    failed."""
    if value == "SUCCESS":
        return Verdict.OK
    if value == "NONE":
        return Verdict.ONLY_WITHOUT_CERTIFICATE
    return Verdict.FAILED
