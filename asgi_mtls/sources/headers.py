"""Certificates forwarded in HTTP headers by a TLS-terminating proxy.

One small, pure decoder per format (header values in, DER out), a registry of the formats
(default header names, decoder, how to read the proxy's verdict) and ONE source class,
:class:`HeaderSource`, driven by it::

    header_source("envoy")                                  # x-forwarded-client-cert
    header_source("haproxy", header="x-client-der", trusted_proxies=["10.0.0.5"])
    HeaderSource("rfc9440", verify_header="x-client-cert-verified")

A header only counts when the middleware has established that the TCP peer is a trusted
proxy; the certificate in it is then validated locally against the configured roots exactly
like a handshake certificate.  A chain in a header is only a path-building hint.  A proxy's
own verdict can only add a reason to reject, never a reason to accept.  ``docs/header-formats.md``
describes every format and the choices made where a proxy's documentation leaves room.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.sources.encoding import (
    base64_der,
    check_size,
    pem_certificate_to_der,
    pem_lines_to_der,
    split_der_certificates,
    strict_base64,
    url_encoded_pem_to_der,
)
from asgi_mtls.sources.proxies import TrustedProxies
from asgi_mtls.sources.rfc9440 import decode_client_cert, decode_client_cert_chain
from asgi_mtls.sources.types import PresentedCertificate, RawValues
from asgi_mtls.sources.xfcc import check_xfcc_options, decode_xfcc

__all__ = [
    "DEFAULT",
    "DEFAULT_MAX_HEADER_CHARS",
    "HEADER_FORMATS",
    "DecodeOptions",
    "HeaderFormat",
    "HeaderSource",
    "Verdict",
    "decode_alb_chain",
    "decode_apache_cert",
    "decode_base64_der",
    "decode_haproxy_chain",
    "decode_nginx_escaped_cert",
    "decode_nginx_pem",
    "decode_traefik",
    "decode_url_encoded_leaf",
    "header_format",
    "header_values",
]

DEFAULT_MAX_HEADER_CHARS = 32 * 1024
DEFAULT_MAX_CHAIN_LENGTH = 8
_OWS = " \t"


def header_values(scope: Mapping[str, object], names: Sequence[bytes]) -> list[list[str]] | None:
    """The values of each of ``names`` (lowercase) in ``scope["headers"]``, or ``None`` if none
    of them is present.  Values are decoded as latin-1, as HTTP/1.1 allows."""
    headers = scope.get("headers")
    if not isinstance(headers, Iterable):
        return None
    found: list[list[str]] = [[] for _ in names]
    seen = False
    for name, value in headers:
        lowered = name.lower()
        for index, wanted in enumerate(names):
            if lowered == wanted:
                found[index].append(value.decode("latin-1"))
                seen = True
    return found if seen else None


def _malformed(detail: str) -> CertificateRejected:
    return CertificateRejected(RejectionReason.MALFORMED, detail)


# --- the decoders: header values in, DER out -------------------------------------------------


def decode_nginx_escaped_cert(value: str, *, max_chars: int = DEFAULT_MAX_HEADER_CHARS) -> bytes:
    """nginx ``$ssl_client_escaped_cert``: the leaf PEM, URL-encoded.  Returns DER.

    Decoded with ``unquote`` (never ``unquote_plus``: a literal ``+`` is base64).  A value
    that still contains ``%`` after one round of decoding was encoded twice: rejected.
    """
    check_size(value, max_chars, "certificate header")
    text = unquote(value, encoding="ascii", errors="strict")
    if "%" in text:
        raise CertificateRejected(RejectionReason.MALFORMED, "certificate header is double-encoded")
    if " " in text.replace("BEGIN CERTIFICATE", "").replace("END CERTIFICATE", ""):
        # nginx escapes spaces; a bare one is a '+' that something decoded as form data.
        raise CertificateRejected(RejectionReason.MALFORMED, "space inside the certificate body")
    return pem_certificate_to_der(text)


def decode_nginx_pem(value: str) -> bytes:
    """nginx's deprecated ``$ssl_client_cert``: PEM whose lines after the first start with a
    tab (``\\n\\t``), which an HTTP/1.1 server receives as obsolete line folding and (h11)
    turns into single spaces.  Either form is accepted; the 64-character line shape is kept."""
    return pem_lines_to_der(value, what="$ssl_client_cert")


def decode_apache_cert(value: str) -> bytes:
    """Apache mod_ssl ``%{SSL_CLIENT_CERT}s`` through ``RequestHeader set``: the PEM with every
    newline turned into a space.  (``(null)``, no certificate, is handled by the source.)"""
    return pem_lines_to_der(value, what="SSL_CLIENT_CERT")


def decode_base64_der(value: str) -> bytes:
    """Base64 DER, nothing around it: HAProxy ``%[ssl_c_der,base64]``, Caddy
    ``{http.request.tls.client.certificate_der_base64}``, Azure ``X-ARR-ClientCert``."""
    return base64_der(value, what="base64 DER certificate")


def decode_haproxy_chain(value: str) -> list[bytes]:
    """HAProxy ``%[ssl_c_chain_der,base64]``: one base64 blob of the DER certificates the
    client sent after its leaf, concatenated.  Split by DER lengths, strictly; empty (the
    client sent no chain) is no chain."""
    if not value:
        return []
    return split_der_certificates(strict_base64(value, what="HAProxy chain"))


def decode_traefik(value: str) -> list[bytes]:
    """Traefik ``X-Forwarded-Tls-Client-Cert``: every certificate the client sent, leaf first,
    as PEM bodies without armour or newlines, joined by ``,``.  Before v2.9.4 each body was
    URL-encoded as well: a value containing ``%`` is decoded once (twice-encoded is refused)."""
    if "%" in value:
        try:
            value = unquote(value, encoding="ascii", errors="strict")
        except UnicodeDecodeError:
            raise _malformed("Traefik certificate header: not ASCII") from None
        if "%" in value:
            raise _malformed("Traefik certificate header: double URL-encoded")
    return [base64_der(item, what="Traefik certificate") for item in value.split(",")]


def decode_alb_chain(value: str) -> list[bytes]:
    """AWS ALB passthrough ``X-Amzn-Mtls-Clientcert``: the whole chain the client sent, leaf
    first, as URL-encoded PEM with ``+ = /`` left raw (so ``unquote``, never ``unquote_plus``)."""
    return url_encoded_pem_to_der(value, what="X-Amzn-Mtls-Clientcert")


def decode_url_encoded_leaf(value: str) -> bytes:
    """One URL-encoded PEM certificate: AWS ALB verify mode ``X-Amzn-Mtls-Clientcert-Leaf``
    (``+ = /`` raw), CloudFront ``CloudFront-Viewer-Cert-Pem``."""
    ders = url_encoded_pem_to_der(value, what="URL-encoded PEM certificate")
    if len(ders) != 1:
        raise _malformed(f"expected one certificate, found {len(ders)}")
    return ders[0]


# --- verdicts ----------------------------------------------------------------------------------


class Verdict(enum.Enum):
    """What a proxy's verdict header says."""

    #: Verified (or nothing to say): decide on the certificate alone.
    OK = "ok"
    #: "No certificate" (nginx/Apache ``NONE``, ``false``): fine for an anonymous request,
    #: a failure next to a certificate.
    ONLY_WITHOUT_CERTIFICATE = "none"
    #: The proxy failed to verify: ``proxy_verify_failed``.
    FAILED = "failed"


def _mod_ssl_verdict(value: str) -> Verdict:
    """nginx ``$ssl_client_verify`` / Apache ``SSL_CLIENT_VERIFY``: ``SUCCESS``, ``NONE``;
    anything else (``FAILED:<reason>``, Apache's ``GENEROUS``) failed."""
    if value == "SUCCESS":
        return Verdict.OK
    if value == "NONE":
        return Verdict.ONLY_WITHOUT_CERTIFICATE
    return Verdict.FAILED


def _openssl_code_verdict(value: str) -> Verdict:
    """HAProxy ``%[ssl_c_verify]``: OpenSSL's ``X509_V_*`` code, ``0`` for OK.  Any other
    value, integer or not, failed."""
    return Verdict.OK if value == "0" else Verdict.FAILED


def _boolean_verdict(value: str) -> Verdict:
    """``true``/``false`` (Google Cloud ``{client_cert_chain_verified}``, Cloudflare
    ``cf.tls_client_auth.cert_verified``); anything else failed."""
    lowered = value.lower()
    if lowered == "true":
        return Verdict.OK
    if lowered == "false":
        return Verdict.ONLY_WITHOUT_CERTIFICATE
    return Verdict.FAILED


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Per-source options a decoder may use.  ``elements``: how many XFCC elements the
    trusted Envoys write; ``element``: which one to read (see :class:`HeaderSource`)."""

    elements: int = 1
    element: int = 0


#: A decoder: (certificate header value, chain header values, options) -> (leaf, chain hints).
Decoder = Callable[[str, Sequence[str], DecodeOptions], tuple[bytes, tuple[bytes, ...]]]


@dataclass(frozen=True, slots=True)
class HeaderFormat:
    """How one proxy forwards a certificate.

    ``absent`` lists certificate-header values that mean "no certificate" for this proxy
    (Apache's ``(null)``; the empty value HAProxy, Caddy and Google Cloud send).  For every
    other format an empty value is malformed.
    """

    name: str
    header: str
    decode: Decoder
    chain_header: str | None = None
    chain_repeatable: bool = False
    verify_header: str | None = None
    verdict: Callable[[str], Verdict] | None = None
    absent: frozenset[str] = frozenset()


def _leaf(function: Callable[[str], bytes]) -> Decoder:
    def decode(cert: str, chain: Sequence[str], options: DecodeOptions) -> tuple[bytes, tuple[()]]:
        return function(cert), ()

    return decode


def _leaf_first(function: Callable[[str], list[bytes]]) -> Decoder:
    def decode(
        cert: str, chain: Sequence[str], options: DecodeOptions
    ) -> tuple[bytes, tuple[bytes, ...]]:
        ders = function(cert)
        return ders[0], tuple(ders[1:])

    return decode


def _decode_nginx(
    cert: str, chain: Sequence[str], options: DecodeOptions
) -> tuple[bytes, tuple[()]]:
    return decode_nginx_escaped_cert(cert, max_chars=len(cert)), ()


def _decode_envoy(
    cert: str, chain: Sequence[str], options: DecodeOptions
) -> tuple[bytes, tuple[bytes, ...]]:
    return decode_xfcc(cert, elements=options.elements, element=options.element)


def _decode_rfc9440(
    cert: str, chain: Sequence[str], options: DecodeOptions
) -> tuple[bytes, tuple[bytes, ...]]:
    return decode_client_cert(cert), tuple(decode_client_cert_chain(chain))


def _decode_haproxy(
    cert: str, chain: Sequence[str], options: DecodeOptions
) -> tuple[bytes, tuple[bytes, ...]]:
    hints = decode_haproxy_chain(chain[0]) if chain else []
    return decode_base64_der(cert), tuple(hints)


#: Caddy 2.6 leaves an unknown placeholder as its text when there is no client certificate.
CADDY_PLACEHOLDER: Final = "{http.request.tls.client.certificate_der_base64}"

_FORMATS: Final[dict[str, HeaderFormat]] = {
    spec.name: spec
    for spec in (
        HeaderFormat(
            "nginx",
            "x-ssl-client-cert",
            _decode_nginx,
            verify_header="x-ssl-client-verify",
            verdict=_mod_ssl_verdict,
        ),
        HeaderFormat(
            "nginx-pem",
            "x-ssl-client-cert",
            _leaf(decode_nginx_pem),
            verify_header="x-ssl-client-verify",
            verdict=_mod_ssl_verdict,
        ),
        HeaderFormat("envoy", "x-forwarded-client-cert", _decode_envoy),
        HeaderFormat(
            "rfc9440",
            "client-cert",
            _decode_rfc9440,
            chain_header="client-cert-chain",
            chain_repeatable=True,
            verdict=_boolean_verdict,
            absent=frozenset({""}),
        ),
        HeaderFormat(
            "haproxy",
            "x-ssl-client-der",
            _decode_haproxy,
            chain_header="x-ssl-client-chain-der",
            verify_header="x-ssl-client-verify-code",
            verdict=_openssl_code_verdict,
            absent=frozenset({""}),
        ),
        HeaderFormat("traefik", "x-forwarded-tls-client-cert", _leaf_first(decode_traefik)),
        HeaderFormat(
            "caddy",
            "x-client-cert-der",
            _leaf(decode_base64_der),
            absent=frozenset({"", CADDY_PLACEHOLDER}),
        ),
        HeaderFormat(
            "apache",
            "x-ssl-client-cert",
            _leaf(decode_apache_cert),
            verify_header="x-ssl-client-verify",
            verdict=_mod_ssl_verdict,
            absent=frozenset({"(null)"}),
        ),
        HeaderFormat("aws-alb", "x-amzn-mtls-clientcert", _leaf_first(decode_alb_chain)),
        HeaderFormat(
            "aws-alb-verify", "x-amzn-mtls-clientcert-leaf", _leaf(decode_url_encoded_leaf)
        ),
        HeaderFormat("cloudfront", "cloudfront-viewer-cert-pem", _leaf(decode_url_encoded_leaf)),
        HeaderFormat("azure", "x-arr-clientcert", _leaf(decode_base64_der)),
    )
}

#: The format names ``header_source`` and ``HeaderSource`` accept.
HEADER_FORMATS: Final[tuple[str, ...]] = tuple(_FORMATS)


def header_format(name: str) -> HeaderFormat:
    """The registry entry of format ``name`` (``ValueError`` for an unknown name)."""
    try:
        return _FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown header format {name!r}; known: {', '.join(HEADER_FORMATS)}"
        ) from None


# --- the source --------------------------------------------------------------------------------


class _Default(enum.Enum):
    DEFAULT = "default"


#: "Use the format's default header name" (the default of ``chain_header``/``verify_header``;
#: pass ``None`` to ignore that header).
DEFAULT: Final = _Default.DEFAULT

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


def _header_name(value: str, what: str) -> str:
    lowered = value.lower() if isinstance(value, str) else ""
    if not lowered or any(char not in _TOKEN for char in lowered):
        raise ValueError(f"{what} must be an HTTP header name, got {value!r}")
    return lowered


class HeaderSource:
    """A certificate forwarded by a trusted proxy in headers of one :data:`HEADER_FORMATS`.

    :param format: the format name (``"nginx"``, ``"envoy"``, ``"rfc9440"``, ...).
    :param name: the source's name in identities, logs and the cache (default: ``format``);
        names must be unique among a middleware's sources.
    :param header: the certificate header (default: the format's).  Case-insensitive.
    :param chain_header: the chain header, for formats that have one (``rfc9440``,
        ``haproxy``); ``None`` ignores it.
    :param verify_header: the proxy's verdict header, for formats that have one (``nginx``,
        ``nginx-pem``, ``apache``, ``haproxy``; ``rfc9440`` reads ``true``/``false`` from a
        header you name); ``None`` ignores it.
    :param max_header_chars: any one header value (or all chain lines together) longer than
        this is refused (``too_large``) before any parsing.
    :param max_chain_length: more chain certificates than this is ``too_large``.
    :param trusted_proxies: proxies allowed to send this source's headers, instead of the
        middleware's ``trusted_proxies`` (``None``: use the middleware's).
    :param elements: ``envoy`` only: how many XFCC elements the trusted Envoys write, one
        per Envoy that sets or appends one (default ``1``: one Envoy with ``SANITIZE_SET``,
        the recommended edge; ``2`` for an edge plus a sidecar with ``APPEND_FORWARD``).  A
        header with any other number of elements is refused (``malformed``): an element
        that Envoy did not write (one a client sent to an ``APPEND_FORWARD`` edge, or one
        forged by a ``,`` inside a certificate's URI or DNS SAN, which Envoy writes
        unquoted) can then never shift which element is read.  There is no "any number":
        counting from either end of a header of unknown length lets one side forge.
    :param element: ``envoy`` only: which of the ``elements`` to read, as a list index
        (default ``0``, the oldest: written by the first trusted Envoy, the one that
        terminated the client's TLS; a sidecar after it describes that Envoy, not the
        client).  It must exist among ``elements`` (``ValueError`` at start-up), so ``0``
        and ``-elements`` name the same element.

    ``find`` returns ``(count, count, count, *certificate values, *chain values, *verdict
    values)``, raw, as the cache key; ``decode`` judges duplicates, sizes, the verdict, then
    decodes.  More than one certificate, verdict or (except ``rfc9440``) chain header is
    ``duplicate_header``.
    """

    name: str
    requires_trusted_proxy = True

    def __init__(
        self,
        format: str,
        *,
        name: str | None = None,
        header: str | None = None,
        chain_header: str | _Default | None = DEFAULT,
        verify_header: str | _Default | None = DEFAULT,
        max_header_chars: int = DEFAULT_MAX_HEADER_CHARS,
        max_chain_length: int = DEFAULT_MAX_CHAIN_LENGTH,
        trusted_proxies: Iterable[str] | TrustedProxies | None = None,
        elements: int = 1,
        element: int = 0,
    ) -> None:
        spec = header_format(format)
        self.format = spec
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError("name must be a non-empty string")
        self.name = name or spec.name
        self.header = _header_name(header if header is not None else spec.header, "header")
        if chain_header is DEFAULT:
            chain_header = spec.chain_header
        elif chain_header is not None and spec.chain_header is None:
            raise ValueError(f"the {spec.name} format has no chain header")
        self.chain_header = _header_name(chain_header, "chain_header") if chain_header else None
        if verify_header is DEFAULT:
            verify_header = spec.verify_header
        elif verify_header is not None and spec.verdict is None:
            raise ValueError(f"the {spec.name} format has no verdict header")
        self.verify_header = _header_name(verify_header, "verify_header") if verify_header else None
        names = [n for n in (self.header, self.chain_header, self.verify_header) if n]
        if len(set(names)) != len(names):
            raise ValueError(f"header names must differ, got {names}")
        if (element != 0 or elements != 1) and spec.name != "envoy":
            raise ValueError("elements and element apply to the envoy format only")
        check_xfcc_options(elements=elements, element=element)
        if max_header_chars < 1 or max_chain_length < 0:
            raise ValueError("max_header_chars must be positive, max_chain_length not negative")
        self.max_header_chars = max_header_chars
        self.max_chain_length = max_chain_length
        self.trusted_proxies: TrustedProxies | None = (
            None
            if trusted_proxies is None
            else trusted_proxies
            if isinstance(trusted_proxies, TrustedProxies)
            else TrustedProxies(trusted_proxies)
        )
        self._options = DecodeOptions(elements=elements, element=element)
        self._chain_name = self.chain_header.encode("latin-1") if self.chain_header else None
        self._verify_name = self.verify_header.encode("latin-1") if self.verify_header else None
        self._names = tuple(
            name
            for name in (self.header.encode("latin-1"), self._chain_name, self._verify_name)
            if name is not None
        )

    def __repr__(self) -> str:
        return (
            f"HeaderSource({self.format.name!r}, name={self.name!r}, header={self.header!r}, "
            f"chain_header={self.chain_header!r}, verify_header={self.verify_header!r}"
            + (
                f", elements={self._options.elements}, element={self._options.element})"
                if self.format.name == "envoy"
                else ")"
            )
        )

    def find(self, scope: Mapping[str, object]) -> RawValues | None:
        found = header_values(scope, self._names)
        if found is None:
            return None
        by_name = dict(zip(self._names, found, strict=True))
        certs = by_name[self._names[0]]
        chains = by_name.get(self._chain_name, []) if self._chain_name else []
        verdicts = by_name.get(self._verify_name, []) if self._verify_name else []
        return (str(len(certs)), str(len(chains)), str(len(verdicts)), *certs, *chains, *verdicts)

    def _split(self, raw: RawValues) -> tuple[list[str], list[str], list[str]]:
        counts: list[int] = []
        for count in raw[:3]:
            if not isinstance(count, str) or not (count.isascii() and count.isdigit()):
                raise _malformed("raw header values in an unexpected shape")
            counts.append(int(count))
        values = [value for value in raw[3:] if isinstance(value, str)]
        if len(counts) != 3 or len(values) != len(raw) - 3 or len(values) != sum(counts):
            raise _malformed("raw header values in an unexpected shape")
        certs, chains = counts[0], counts[0] + counts[1]
        return values[:certs], values[certs:chains], values[chains:]

    def decode(self, raw: RawValues) -> PresentedCertificate | None:
        certs, chains, verdicts = self._split(raw)
        spec = self.format
        if len(certs) > 1:
            raise CertificateRejected(
                RejectionReason.DUPLICATE_HEADER, f"{len(certs)} {self.header} headers"
            )
        if len(chains) > 1 and not spec.chain_repeatable:
            raise CertificateRejected(
                RejectionReason.DUPLICATE_HEADER, f"{len(chains)} {self.chain_header} headers"
            )
        if len(verdicts) > 1:
            raise CertificateRejected(
                RejectionReason.DUPLICATE_HEADER, f"{len(verdicts)} {self.verify_header} headers"
            )
        for value in (*certs, *verdicts):
            check_size(value, self.max_header_chars, "certificate header")
        check_size("".join(chains), self.max_header_chars, "certificate chain header")

        verdict: Verdict | None = None
        if verdicts:
            assert spec.verdict is not None
            reported = verdicts[0].strip(_OWS)
            verdict = spec.verdict(reported)
            if verdict is Verdict.FAILED:
                raise CertificateRejected(
                    RejectionReason.PROXY_VERIFY_FAILED, f"{self.verify_header}: {reported[:200]!r}"
                )
        cert = certs[0].strip(_OWS) if certs else None
        chain = [value.strip(_OWS) for value in chains]
        present = cert is not None and cert not in spec.absent
        if verdict is Verdict.ONLY_WITHOUT_CERTIFICATE and present:
            # "No certificate" next to a certificate: the proxy did not verify this one.
            raise CertificateRejected(
                RejectionReason.PROXY_VERIFY_FAILED,
                f"{self.verify_header}: {verdicts[0].strip(_OWS)[:200]!r} with a certificate",
            )
        if not present:
            if any(chain):
                raise _malformed(f"{self.chain_header} without a certificate")
            return None  # no certificate header, or the proxy's way of saying "none"
        assert cert is not None
        if not cert:
            raise _malformed(f"empty {self.header} header")
        try:
            leaf, hints = spec.decode(cert, chain, self._options)
        except ValueError as exc:  # defence in depth: decoders raise CertificateRejected
            raise _malformed(f"{self.header}: {type(exc).__name__}") from None
        if len(hints) > self.max_chain_length:
            raise CertificateRejected(
                RejectionReason.TOO_LARGE,
                f"{len(hints)} chain certificates, limit {self.max_chain_length}",
            )
        return PresentedCertificate(self.name, leaf, hints)
