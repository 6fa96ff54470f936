"""What one connection adds to its ``http`` and ``websocket`` scopes (see :mod:`asgi_mtls.uvicorn`).

The per-connection facts, read once when the connection is made (the transport peer) or per
request and memoised while they do not change (the ``tls`` dict: the client's certificate
chain, its subject, the TLS version and the IANA cipher-suite number), and the ASGI wrapper
that puts them in a fresh ``scope["extensions"]`` for every request.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, TypedDict

from cryptography import x509

from asgi_mtls.sources.proxies import PEER_EXTENSION
from asgi_mtls.sources.tls import CONNECTION_EXTENSION

__all__ = ["ConnectionInfo", "ExtensionApp", "PeerInfo", "TLSInfo"]

_TLS_KEY = "tls"

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[Any]]


class PeerInfo(TypedDict):
    """The value of ``scope["extensions"]["asgi_mtls.peer"]``."""

    family: Literal["inet", "unix"]
    host: str | None
    port: int | None


class TLSInfo(TypedDict):
    """The value of ``scope["extensions"]["tls"]`` (ASGI TLS extension, spec 0.2)."""

    server_cert: str | None
    client_cert_chain: list[str]
    client_cert_name: str | None
    client_cert_error: str | None
    tls_version: int | None
    cipher_suite: int | None


# ``ssl.SSLObject.version()`` names -> TLS protocol version numbers.
_TLS_VERSIONS: dict[str, int] = {
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}

# OpenSSL cipher name -> IANA cipher-suite number, per SSLContext. OpenSSL's cipher id for a
# TLS cipher is 0x0300_0000 | <two-byte IANA id> (SSL_CIPHER_get_protocol_id is `id & 0xFFFF`),
# and ``SSLContext.get_ciphers()`` exposes that id for every cipher the context can negotiate.
_CIPHER_IDS: weakref.WeakKeyDictionary[ssl.SSLContext, dict[str, int]] = weakref.WeakKeyDictionary()


def _cipher_suite(ssl_object: Any, name: str | None) -> int | None:
    if name is None:
        return None
    context = getattr(ssl_object, "context", None)
    if not isinstance(context, ssl.SSLContext):
        return None
    ids = _CIPHER_IDS.get(context)
    if ids is None or name not in ids:
        # Built once per context; rebuilt if ciphers were changed after the first connection.
        ids = {
            c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers() if c["id"] >> 16 == 0x0300
        }
        _CIPHER_IDS[context] = ids
    return ids.get(name)


def _peer_of(transport: asyncio.BaseTransport) -> PeerInfo | None:
    """The real peer of ``transport``, or ``None`` when it cannot be determined.

    The family is read from the shape of the address the kernel reports, not from
    ``socket.family``: uvicorn's ``--fd`` wraps an inherited socket as ``AF_UNIX`` whatever it
    really is, so a TCP client would otherwise pass for a local Unix-socket peer.
    """
    peername = transport.get_extra_info("peername")
    if isinstance(peername, tuple | list):
        if (
            len(peername) >= 2
            and isinstance(peername[0], str)
            and isinstance(peername[1], int)
            and not isinstance(peername[1], bool)
        ):
            return {"family": "inet", "host": peername[0], "port": peername[1]}
        return None
    if isinstance(peername, str | bytes):  # AF_UNIX: "" for an unnamed client, else a path
        return {"family": "unix", "host": None, "port": None}
    if peername is None:
        # Some loops (uvloop on Unix sockets) cannot tell the peer of a Unix socket; our own
        # address is enough to know that the connection is one.
        sockname = transport.get_extra_info("sockname")
        if sockname is None:
            sock = transport.get_extra_info("socket")
            try:
                sockname = sock.getsockname() if sock is not None else None
            except OSError:
                sockname = None
        if isinstance(sockname, str | bytes):
            return {"family": "unix", "host": None, "port": None}
    return None


def _build_tls(ssl_object: Any, der: bytes | None, key: tuple[Any, ...]) -> TLSInfo:
    chain: list[str] = []
    name: str | None = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        try:
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:
            name = None
        if sys.version_info >= (3, 13):  # pragma: no cover - depends on the interpreter
            # The chain as the client sent it; OpenSSL leaves the leaf out on the server side
            # and Python 3.13 puts it back, so find the leaf rather than assume its place.
            get_chain = getattr(ssl_object, "get_unverified_chain", None)
            sent = [c for c in (get_chain() or ()) if isinstance(c, bytes)] if get_chain else []
            rest = sent[1:] if sent and sent[0] == der else [c for c in sent if c != der]
            chain += [ssl.DER_cert_to_PEM_cert(c) for c in rest]
    _, version, cipher_name = key
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version) if isinstance(version, str) else None,
        "cipher_suite": _cipher_suite(ssl_object, cipher_name),
    }


#: OpenSSL's ``SSL_OP_ALLOW_CLIENT_RENEGOTIATION`` (3.0+; Python does not name it).  Without
#: it an OpenSSL 3 server refuses client-initiated renegotiation, and uvicorn never starts one.
_ALLOW_CLIENT_RENEGOTIATION = 1 << 8


def _certificate_is_fixed(ssl_object: Any) -> bool:
    """Whether the connection's peer certificate can no longer change: TLS 1.3 (no
    renegotiation), or OpenSSL 3 refusing the client's renegotiation.  Then the ``tls``
    extension is a per-connection fact, read once (issue #10); else it is re-read per request
    so that a renegotiated certificate is never missed."""
    if ssl_object.version() == "TLSv1.3":
        return True
    context = getattr(ssl_object, "context", None)
    return (
        ssl.OPENSSL_VERSION_INFO >= (3, 0)
        and isinstance(context, ssl.SSLContext)
        and not context.options & _ALLOW_CLIENT_RENEGOTIATION
    )


class ConnectionInfo:
    """What one connection adds to its scopes; the per-connection memo lives here."""

    __slots__ = ("_fixed", "_tls", "_tls_key", "memo", "peer", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.peer: PeerInfo | None = None
        self._tls_key: tuple[Any, ...] | None = None
        self._tls: TLSInfo | None = None
        self._fixed = False
        #: The connection's memo (``asgi_mtls.sources.tls.CONNECTION_EXTENSION``): where the
        #: middleware remembers what this connection's certificate proved.  A new one
        #: whenever the certificate could have changed.
        self.memo: dict[Any, Any] = {}

    def bind(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.peer = _peer_of(transport)
        self._tls_key = self._tls = None
        self._fixed = False
        self.memo = {}

    def tls(self) -> TLSInfo | None:
        """A fresh ``tls`` dict for one request, or ``None`` on a plain connection."""
        if not self._fixed:
            if self.transport is None:
                return None
            ssl_object = self.transport.get_extra_info("ssl_object")
            if ssl_object is None:
                # A plain connection stays plain (uvicorn never upgrades one in place): a
                # fact of the connection, not asked again per request (issue #10).
                self._fixed = True
                return None
            # Re-encode only when something changed: keep-alive requests reuse the dict.
            der: bytes | None = ssl_object.getpeercert(binary_form=True)
            cipher = ssl_object.cipher()
            key = (der, ssl_object.version(), cipher[0] if cipher else None)
            if self._tls is None or key != self._tls_key:
                self._tls = _build_tls(ssl_object, der, key)
                self._tls_key = key
                self.memo = {}
            self._fixed = _certificate_is_fixed(ssl_object)
        known = self._tls
        if known is None:
            return None
        # Each scope gets its own dict and list, so an app that mutates its view cannot
        # change what a later request on the same connection sees.
        tls = known.copy()
        tls["client_cert_chain"] = list(known["client_cert_chain"])
        return tls

    def extend(self, scope: _Scope) -> _Scope:
        extensions: dict[str, Any] = {**(scope.get("extensions") or {})}
        if self.peer is not None:
            extensions[PEER_EXTENSION] = self.peer.copy()
        else:
            extensions.pop(PEER_EXTENSION, None)
        tls = self.tls()  # first: a changed certificate gives the connection a new memo
        if tls is not None:
            extensions[_TLS_KEY] = tls
        extensions[CONNECTION_EXTENSION] = self.memo
        # Replace the key in this request's own scope (never mutate the extensions dict it
        # held): uvicorn's ProxyHeadersMiddleware then rewrites the same scope that uvicorn
        # logs, so access logs keep showing the forwarded client as with stock uvicorn.
        scope["extensions"] = extensions
        return scope


class ExtensionApp:
    """ASGI wrapper that adds this connection's extensions to each request scope."""

    __slots__ = ("app", "connection")

    def __init__(self, app: _ASGIApp, connection: ConnectionInfo) -> None:
        self.app = app
        self.connection = connection

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> Any:
        if scope.get("type") in ("http", "websocket"):
            scope = self.connection.extend(scope)
        return await self.app(scope, receive, send)
