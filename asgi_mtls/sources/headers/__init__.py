"""Certificates forwarded in HTTP headers by a TLS-terminating proxy.

One module per format family holds its small, pure decoders (header values in, DER out) and
its registry entries (:class:`HeaderFormat`: default header names, decoder, how to read the
proxy's verdict); this package collects them into one registry and drives them all with ONE
source class, :class:`HeaderSource`::

    HeaderSource("envoy")                                   # x-forwarded-client-cert
    HeaderSource("haproxy", header="x-client-der", trusted_proxies=["10.0.0.5"])
    HeaderSource("rfc9440", verify_header="x-client-cert-verified")

========================  ==========================================================
module                    formats
========================  ==========================================================
``nginx``                 ``nginx``, ``nginx-pem``
``envoy``                 ``envoy`` (XFCC; ``envoy_subject`` prints BoringSSL subjects)
``rfc9440``               ``rfc9440`` (Cloudflare, Google Cloud)
``haproxy``               ``haproxy``
``traefik``               ``traefik``
``caddy``                 ``caddy``
``apache``                ``apache``
``cloud``                 ``aws-alb``, ``aws-alb-verify``, ``cloudfront``, ``azure``
``format``                the entry type, and the decoders and verdicts shared by several
========================  ==========================================================

A header only counts when the middleware has established that the TCP peer is a trusted
proxy; the certificate in it is then validated locally against the configured roots exactly
like a handshake certificate.  A chain in a header is only a path-building hint.  A proxy's
own verdict can only add a reason to reject, never a reason to accept.  ``docs/header-formats.md``
describes every format and the choices made where a proxy's documentation leaves room;
``asgi_mtls.testing.headers`` holds an encoder for every entry of this registry.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from asgi_mtls.errors import CertificateRejected, RejectionReason, malformed
from asgi_mtls.sources.encoding import check_size
from asgi_mtls.sources.headers import apache, caddy, cloud, envoy, haproxy, nginx, rfc9440, traefik
from asgi_mtls.sources.headers.format import OWS, DecodeOptions, HeaderFormat, Verdict
from asgi_mtls.sources.proxies import ProxyCertificate, TrustedProxies
from asgi_mtls.sources.types import PresentedCertificate, RawValues

__all__ = [
    "DEFAULT",
    "DEFAULT_MAX_HEADER_CHARS",
    "HEADER_FORMATS",
    "DecodeOptions",
    "HeaderFormat",
    "HeaderSource",
    "Verdict",
    "header_format",
]

DEFAULT_MAX_HEADER_CHARS = 32 * 1024
DEFAULT_MAX_CHAIN_LENGTH = 8


# --- the registry ------------------------------------------------------------------------------

_FAMILIES: Final = (nginx, envoy, rfc9440, haproxy, traefik, caddy, apache, cloud)
_FORMATS: Final[dict[str, HeaderFormat]] = {
    spec.name: spec for family in _FAMILIES for spec in family.FORMATS
}

#: The format names ``HeaderSource`` accepts, in registry order.
HEADER_FORMATS: Final[tuple[str, ...]] = tuple(_FORMATS)


def header_format(name: str) -> HeaderFormat:
    """The registry entry of format ``name`` (``ValueError`` for an unknown name)."""
    try:
        return _FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown header format {name!r}; known: {', '.join(HEADER_FORMATS)}"
        ) from None


def _scan(slots: Mapping[bytes, int], scope: Mapping[str, object]) -> RawValues | None:
    """``((slot, value), ...)`` for each header whose name is in ``slots``, in order; ``None``
    when there is none (the common case: one containment test per header, issue #10).

    Names are compared as the ASGI HTTP spec delivers them, lowercased by the server; values
    stay bytes (they are the cache key, decoded only when the outcome is not cached)."""
    headers = scope.get("headers")
    if not headers:
        return None
    hits: list[tuple[int, bytes]] | None = None
    try:
        for name, value in headers:  # type: ignore[attr-defined]
            if name in slots:
                hit = (slots[name], value if type(value) is bytes else bytes(value))
                if hits is None:
                    hits = [hit]
                else:
                    hits.append(hit)
    except (TypeError, ValueError):
        raise malformed("scope headers are not a list of (name, value) pairs") from None
    return tuple(hits) if hits is not None else None


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

    ``find`` returns ``((slot, value), ...)``, the raw header values with their role
    (certificate, chain, verdict), as the cache key; ``decode`` judges duplicates, sizes, the
    verdict, then decodes.  More than one certificate, verdict or (except ``rfc9440``) chain
    header is ``duplicate_header``.
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
        trusted_proxies: Iterable[str | ProxyCertificate] | TrustedProxies | None = None,
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
        if not spec.reads_options and (elements, element) != (1, 0):
            readers = ", ".join(f.name for f in _FORMATS.values() if f.reads_options)
            raise ValueError(f"elements and element apply to the {readers} format only")
        self._options = DecodeOptions(elements=elements, element=element)
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
        self._chain_name = self.chain_header.encode("latin-1") if self.chain_header else None
        self._verify_name = self.verify_header.encode("latin-1") if self.verify_header else None
        #: Header name -> 0 (certificate), 1 (chain) or 2 (verdict): what ``find`` looks for.
        self._slots = {
            name: slot
            for slot, name in enumerate(
                (self.header.encode("latin-1"), self._chain_name, self._verify_name)
            )
            if name is not None
        }
        #: ``find(scope)``: the scan itself, bound to this source's header names (one Python
        #: call per request, not two: issue #10).
        self.find: Callable[[Mapping[str, object]], RawValues | None] = functools.partial(
            _scan, self._slots
        )

    def __repr__(self) -> str:
        return (
            f"HeaderSource({self.format.name!r}, name={self.name!r}, header={self.header!r}, "
            f"chain_header={self.chain_header!r}, verify_header={self.verify_header!r}"
            + (
                f", elements={self._options.elements}, element={self._options.element})"
                if self.format.reads_options
                else ")"
            )
        )

    def _split(self, raw: RawValues) -> tuple[list[str], list[str], list[str]]:
        """``find``'s ``((slot, value), ...)`` as the certificate, chain and verdict values."""
        values: tuple[list[str], list[str], list[str]] = ([], [], [])
        for item in raw:
            if (
                not isinstance(item, tuple)
                or len(item) != 2
                or item[0] not in (0, 1, 2)
                or not isinstance(item[1], bytes)
            ):
                raise malformed("raw header values in an unexpected shape")
            values[item[0]].append(item[1].decode("latin-1"))
        if not raw:
            raise malformed("raw header values in an unexpected shape")
        return values

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
            reported = verdicts[0].strip(OWS)
            verdict = spec.verdict(reported)
            if verdict is Verdict.FAILED:
                raise CertificateRejected(
                    RejectionReason.PROXY_VERIFY_FAILED, f"{self.verify_header}: {reported[:200]!r}"
                )
        cert = certs[0].strip(OWS) if certs else None
        chain = [value.strip(OWS) for value in chains]
        present = cert is not None and cert not in spec.absent
        if verdict is Verdict.ONLY_WITHOUT_CERTIFICATE and present:
            # "No certificate" next to a certificate: the proxy did not verify this one.
            raise CertificateRejected(
                RejectionReason.PROXY_VERIFY_FAILED,
                f"{self.verify_header}: {verdicts[0].strip(OWS)[:200]!r} with a certificate",
            )
        if not present:
            if any(chain):
                raise malformed(f"{self.chain_header} without a certificate")
            return None  # no certificate header, or the proxy's way of saying "none"
        assert cert is not None
        if not cert:
            raise malformed(f"empty {self.header} header")
        try:
            leaf, hints = spec.decode(cert, chain, self._options)
        except ValueError as exc:  # defence in depth: decoders raise CertificateRejected
            raise malformed(f"{self.header}: {type(exc).__name__}") from None
        if len(hints) > self.max_chain_length:
            raise CertificateRejected(
                RejectionReason.TOO_LARGE,
                f"{len(hints)} chain certificates, limit {self.max_chain_length}",
            )
        return PresentedCertificate(self.name, leaf, hints)
