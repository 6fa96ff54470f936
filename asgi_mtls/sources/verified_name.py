"""The opt-in for servers that report a client certificate's subject name and not the
certificate (issue #12): :class:`ServerVerifiedNameSource`.

asgiref ``specs/tls.rst`` lets an ASGI server fill ``client_cert_name`` (the RFC 4514 subject of
the verified client certificate) without ``client_cert_chain``.  pyvoy does exactly that
(``docs/deploy/pyvoy.md``, measured with pyvoy 1.3.0: ``{"tls_version": 772,
"client_cert_name": "CN=payments"}``).  With no certificate there is nothing to validate, so
:class:`~asgi_mtls.sources.TLSExtensionSource` refuses such a request (``untrusted``).  Issue
#12: such a name "must not become an identity unless the app opts in explicitly, with the
weaker guarantee documented".  Listing this source in ``sources=`` is that opt-in.

The guarantee is weaker, and the name of the class says whose word it is: **the server's**.
asgi-mtls never sees the certificate, so ``trust=``, the key and signature policy, revocation,
the subjectAltName syntax checks, pins and allowed issuers do not apply; the identity is
exactly as good as the server's own client-CA configuration (pyvoy: ``--tls-ca-cert``) and its
requiring a certificate on every listener it serves.  The identity says so
(``verified_by == "server"``, no certificate, no SANs, a ``cn`` or ``subject`` principal only;
:func:`~asgi_mtls.identity.reader.build_name_identity`), and the middleware logs a
:class:`~asgi_mtls.events.ConfigurationWarning` when the source is configured
(:func:`name_source_warning`).

Rules (issue #12):

- **A certificate always wins.**  The source reads only the shape "a name, no certificate, no
  error": with a ``client_cert_chain`` or a ``client_cert`` present the source steps aside and
  :class:`~asgi_mtls.sources.TLSExtensionSource` validates the certificate (the name is
  ignored); with a ``client_cert_error`` it refuses as always.  So it needs a
  ``TLSExtensionSource`` beside it (:func:`name_source_warning` refuses the configuration
  otherwise: a certificate the server gives must never go unread).
- **No certificate is anonymous.**  ``None`` and ``""`` mean "no client certificate" (pyvoy
  writes ``""`` over HTTP/3 and when an optional certificate was not sent): the request is
  anonymous, exactly as without this source.
- **Parsed, never split.**  The name is read with cryptography's
  :meth:`x509.Name.from_rfc4514_string`, knowing the attribute names BoringSSL and OpenSSL
  print (``emailAddress``, ``GN``, ``street``...; the table of
  :mod:`asgi_mtls.sources.headers.envoy_subject`).  Refused before parsing: a name that is not
  a ``str`` (``malformed``), longer than ``max_name_chars`` (``too_large``), holding a control
  character or NUL, which an RFC 4514 string escapes (``malformed``), or a ``=#``: RFC 4514's
  ``#hex`` value form, which BoringSSL prints for a value that is not a string or of an
  attribute it has no name for (organizationIdentifier), and which cryptography does not
  decode (``invalid_name``; the check also refuses the rare literal ``=#``, fail closed).  A
  name that does not parse is ``malformed``.  The values then get a certificate's subject
  checks (NUL ``malformed``, invisible characters ``invalid_name``).
- **Multi-valued RDNs in certificate order.**  The RFC 2253 printer of OpenSSL and BoringSSL
  (Envoy, so pyvoy) writes the attributes of a multi-valued RDN last to first, as it writes the
  RDNs; they are put back in encoded order, so ``subject`` and ``subject_attributes`` are what
  a certificate identity of the same certificate has.
- **Cached like a certificate.**  ``find`` returns the name itself as the raw value: the
  resolver caches the outcome under ``("client_cert_name", raw)``, and keeps it as long as an
  accepted certificate's at most (an hour: there is no notAfter to bound it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from cryptography import x509

from asgi_mtls.errors import CertificateRejected, ConfigurationError, RejectionReason
from asgi_mtls.sources.headers.envoy_subject import SHORT_NAMES
from asgi_mtls.sources.tls import TLSExtensionSource
from asgi_mtls.sources.types import PresentedName, RawValues

__all__ = [
    "MAX_NAME_CHARS",
    "ServerVerifiedNameSource",
    "name_source_warning",
    "parse_client_cert_name",
]

#: The longest ``client_cert_name`` read (characters).  A subject takes a few hundred; a
#: BoringSSL-printed one with every non-ASCII byte escaped as ``\XX`` a few times more.
MAX_NAME_CHARS: Final = 4096

#: The attribute names the RFC 2253 printers of OpenSSL and BoringSSL write, for the parser
#: (cryptography knows only RFC 4514's nine); each maps to the OID it names.
_ATTRIBUTE_NAMES: Final[dict[str, x509.ObjectIdentifier]] = {
    name: x509.ObjectIdentifier(oid) for oid, name in SHORT_NAMES.items()
}

#: What the middleware logs once when the source is configured (issue #12).
WARNING: Final = (
    "ServerVerifiedNameSource is on (issue #12): a client_cert_name that the ASGI server "
    "reports without the certificate becomes an identity (verified_by='server'). asgi-mtls "
    "validates nothing for it: trust=, revocation, the key policy, pins, allowed issuers and "
    "the SAN checks do not apply. Such an identity is only as good as the server's own "
    "client-CA configuration and its requiring a client certificate on every listener "
    "(pyvoy: --tls-ca-cert, and --tls-disable-http3, since its HTTP/3 listener asks for none)"
)


def _refusal(reason: RejectionReason, detail: str) -> CertificateRejected:
    return CertificateRejected(reason, detail, source=ServerVerifiedNameSource.name)


def parse_client_cert_name(text: str, *, max_chars: int = MAX_NAME_CHARS) -> x509.Name:
    """``text`` (a ``client_cert_name``) as a parsed, non-empty :class:`x509.Name`, its
    multi-valued RDNs in encoded order; ``CertificateRejected`` otherwise (see the module
    docstring for each reason)."""
    if len(text) > max_chars:
        raise _refusal(
            RejectionReason.TOO_LARGE,
            f"client_cert_name has {len(text)} characters, limit {max_chars}",
        )
    if any(char < " " or char == "\x7f" for char in text):
        raise _refusal(
            RejectionReason.MALFORMED,
            f"client_cert_name {text[:200]!r} holds a control character",
        )
    if "=#" in text:
        raise _refusal(
            RejectionReason.INVALID_NAME,
            f"client_cert_name {text[:200]!r} has a value in #hex form (not a string, or an "
            "attribute the server has no name for): it cannot be read as text",
        )
    try:
        name = x509.Name.from_rfc4514_string(text, _ATTRIBUTE_NAMES)
    except ValueError as exc:  # UnicodeDecodeError and binascii.Error included
        raise _refusal(
            RejectionReason.MALFORMED,
            f"client_cert_name {text[:200]!r} is not an RFC 4514 name: {exc}",
        ) from None
    if len(name) == 0:
        raise _refusal(RejectionReason.MALFORMED, "client_cert_name is an empty name")
    return x509.Name([x509.RelativeDistinguishedName(reversed(list(rdn))) for rdn in name.rdns])


class ServerVerifiedNameSource:
    """The subject name an ASGI server says it verified, without the certificate: an opt-in
    identity of the weaker kind (``verified_by == "server"``; issue #12, module docstring).

    List it with a :class:`~asgi_mtls.sources.TLSExtensionSource`, which keeps reading (and
    validating) any certificate the server does give::

        MTLSMiddleware(app, trust="clients-root.pem",
                       sources=[TLSExtensionSource(), ServerVerifiedNameSource()])
    """

    name = "client_cert_name"
    requires_trusted_proxy = False

    def __init__(self, *, max_name_chars: int = MAX_NAME_CHARS) -> None:
        if max_name_chars <= 0:
            raise ValueError("max_name_chars must be > 0")
        self.max_name_chars = max_name_chars

    def find(self, scope: Mapping[str, object]) -> RawValues | None:
        extensions = scope.get("extensions")
        if not isinstance(extensions, Mapping):
            return None
        tls = extensions.get("tls")
        if not isinstance(tls, Mapping):
            return None
        if (
            tls.get("client_cert_chain")
            or tls.get("client_cert")
            or tls.get("client_cert_error") is not None
        ):
            return None  # a certificate, or the server's error: TLSExtensionSource's
        name = tls.get("client_cert_name")
        if name is None or name == "":
            return None  # no client certificate: anonymous, as without this source
        # A refusal is (None, reason, detail): the value itself is not kept as a cache key.
        if type(name) is not str:
            detail = f"client_cert_name is a {type(name).__name__}, not a str"
            return (None, RejectionReason.MALFORMED.value, detail)
        if len(name) > self.max_name_chars:
            detail = f"client_cert_name has {len(name)} characters, limit {self.max_name_chars}"
            return (None, RejectionReason.TOO_LARGE.value, detail)
        return (name,)

    def decode(self, raw: RawValues) -> PresentedName:
        text = raw[0]
        if not isinstance(text, str):
            raise _refusal(RejectionReason(str(raw[1])), str(raw[2]))
        return PresentedName(
            self.name, parse_client_cert_name(text, max_chars=self.max_name_chars), text
        )


def name_source_warning(sources: Sequence[object]) -> str | None:
    """What the middleware logs when ``sources`` hold a :class:`ServerVerifiedNameSource`
    (``None``: they hold none).  ``ConfigurationError`` when one is listed without a
    :class:`~asgi_mtls.sources.TLSExtensionSource`: the certificate a server does give would
    then go unread, and its request anonymous."""
    if not any(isinstance(source, ServerVerifiedNameSource) for source in sources):
        return None
    if not any(isinstance(source, TLSExtensionSource) for source in sources):
        raise ConfigurationError(
            "sources: ServerVerifiedNameSource reads only a name without a certificate; list "
            "TLSExtensionSource() beside it, so that a certificate the server gives is "
            "validated (issue #12)"
        )
    return WARNING
