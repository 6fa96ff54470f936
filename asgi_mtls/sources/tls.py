"""The ASGI ``tls`` extension as a certificate source.

asgiref ``specs/tls.rst`` (0.2): ``scope["extensions"]["tls"]["client_cert_chain"]`` is an
iterable of PEM strings, ``[0]`` the leaf, the rest whatever the client sent.  Only ``[0]``
is relied on; the rest is a path-building hint.  ``asgi_mtls.uvicorn`` makes uvicorn fill it;
anycorn fills it itself.

The shapes servers are converging on are accepted (issue #12): the chain as any iterable (a
list, anycorn's tuple), its entries as PEM strings or DER bytes, and, without a chain, a DER
``client_cert`` (uvicorn's open pull requests).  ``find`` turns each into the PEM strings the
decoder reads.  A server that reports only ``client_cert_name`` (pyvoy) gives a name and no
certificate: nothing to validate, so this source never makes it an identity; the request is
refused (``untrusted``), never downgraded to anonymous, because the client did present a
certificate.  The app may opt in to such names, with their weaker guarantee, by listing
:class:`~asgi_mtls.sources.ServerVerifiedNameSource` beside this source: it is asked first and
takes exactly that shape (issue #12).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.sources.encoding import check_size, server_pem_to_der
from asgi_mtls.sources.types import PresentedCertificate, RawValues

__all__ = ["CONNECTION_EXTENSION", "TLSExtensionSource"]

#: A server may put a dict under this key of ``scope["extensions"]``, one per connection and
#: the same for every request of it (``asgi_mtls.uvicorn`` does, on TLS and plain
#: connections): the middleware remembers there what the connection's certificate proved and
#: whether its transport peer (``asgi_mtls.peer``) is a trusted proxy, so a keep-alive request
#: costs one lookup.  The server gives a connection a new dict whenever its certificate could
#: have changed.
CONNECTION_EXTENSION = "asgi_mtls.connection"

#: How many decoded chain entries a source remembers (a few per issuing CA in use).
_MAX_REMEMBERED_HINTS = 64


def _pem(item: object) -> str | None:
    """A chain entry given as bytes: DER (or PEM text as bytes) as a PEM string; anything
    else ``None``, which the decoder refuses as ``malformed``."""
    if not isinstance(item, bytes | bytearray) or not item:
        return None
    if item.lstrip().startswith(b"-----BEGIN"):
        return bytes(item).decode("ascii", errors="replace")
    return ssl.DER_cert_to_PEM_cert(bytes(item))


class TLSExtensionSource:
    """Reads the client certificate the ASGI server verified in the TLS handshake."""

    name = "tls"
    requires_trusted_proxy = False

    def __init__(self, *, max_chain_length: int = 8, max_certificate_chars: int = 32 * 1024):
        self.max_chain_length = max_chain_length
        self.max_certificate_chars = max_certificate_chars
        #: Chain entries (never the leaf) already decoded: every client of an issuing CA
        #: sends the same intermediate, so it is decoded once, not per new client.  Bounded;
        #: emptied when full.
        self._hints: dict[str, bytes] = {}

    def find(self, scope: Mapping[str, object]) -> RawValues | None:
        # ``type(...) is dict`` first: what servers use, and a tenth of an ABC check.
        extensions = scope.get("extensions")
        if type(extensions) is not dict and not isinstance(extensions, Mapping):
            return None
        tls = extensions.get("tls")
        if tls is None:
            return None  # a plain connection: the common case behind a proxy
        if type(tls) is not dict and not isinstance(tls, Mapping):
            return None
        chain = tls.get("client_cert_chain")
        error = tls.get("client_cert_error")
        if error is None and type(chain) is list and chain and type(chain[0]) is str:
            # The hot path (issue #10): what asgi_mtls.uvicorn gives, a list of PEM strings.
            # Taken as they are; ``decode`` refuses anything else on a miss, and a hit can
            # only be values that were decoded once already.
            return (None, *chain)
        if not chain:
            der = tls.get("client_cert")
            if isinstance(der, bytes | bytearray) and der and error is None:
                return (None, _pem(der))  # a DER client_cert without a chain
            name = tls.get("client_cert_name")
            if error is None and name:
                # A name is not a certificate: refused, never an identity nor anonymous.
                return (f"client_cert_name {str(name)[:200]!r} without client_cert_chain",)
            # A server that reports a handshake-level error but no certificate still failed
            # to verify something the client sent: surface it rather than go anonymous.
            return None if error is None else (str(error),)
        reported = None if error is None else str(error)
        if isinstance(chain, str | bytes) or not isinstance(chain, Iterable):
            return (reported, None)  # None marks an entry that is not a certificate
        return (reported, *(item if isinstance(item, str) else _pem(item) for item in chain))

    def decode(self, raw: RawValues) -> PresentedCertificate:
        error, *chain = raw
        if error is not None:
            raise CertificateRejected(
                RejectionReason.UNTRUSTED, f"the server reported client_cert_error={error!r}"
            )
        if not chain or any(item is None for item in chain):
            raise CertificateRejected(RejectionReason.MALFORMED, "client_cert_chain is not a list")
        if len(chain) > self.max_chain_length:
            raise CertificateRejected(
                RejectionReason.TOO_LARGE,
                f"client_cert_chain has {len(chain)} certificates, limit {self.max_chain_length}",
            )
        ders = []
        for position, entry in enumerate(chain):
            item = entry if isinstance(entry, str) else _pem(entry)
            if item is None:
                raise CertificateRejected(
                    RejectionReason.MALFORMED, "a client_cert_chain entry is not a certificate"
                )
            check_size(item, self.max_certificate_chars, "client_cert_chain entry")
            if position == 0:
                ders.append(server_pem_to_der(item))
            else:
                ders.append(self._hint(item))
        return PresentedCertificate(self.name, ders[0], tuple(ders[1:]))

    def _hint(self, pem: str) -> bytes:
        der = self._hints.get(pem)
        if der is None:
            der = server_pem_to_der(pem)  # raises for a bad one: nothing is remembered
            if len(self._hints) >= _MAX_REMEMBERED_HINTS:
                self._hints.clear()
            self._hints[pem] = der
        return der
