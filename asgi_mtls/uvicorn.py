"""uvicorn protocol classes that fill the ASGI ``tls`` scope extension.

Why this module exists
----------------------
The ASGI TLS extension (asgiref ``specs/tls.rst``, version 0.2) is how an ASGI server tells
the application which client certificate was presented on the connection. No ASGI server
fills it: uvicorn terminates TLS, verifies the client certificate against
``--ssl-ca-certs`` and then throws the result away, so an application behind it cannot see
who connected.

uvicorn does let you choose the protocol classes it uses (``Config(http=..., ws=...)`` or
``--http module:Class --ws module:Class``). The classes here subclass each of uvicorn's own
protocols and change one thing: the ASGI app they call is wrapped so that every ``http`` and
``websocket`` scope carries, in a new ``scope["extensions"]`` dict (the one the server put
there, if any, is copied, never mutated):

``"tls"``
    The spec 0.2 dict, on TLS connections only: ``client_cert_chain`` (PEM strings, the
    client's leaf first, empty without a client certificate), ``client_cert_name`` (RFC 4514
    subject of the leaf), ``client_cert_error`` (always ``None``: a certificate that fails
    verification aborts the handshake, so no request ever carries one), ``tls_version``
    (``0x0304`` for TLS 1.3, ...), ``cipher_suite`` (the IANA number) and ``server_cert``
    (``None``: Python's ``ssl`` module has no way to read back the certificate it sent).

``"asgi_mtls.peer"``
    The real TCP peer of the connection, on TLS and plain connections alike:
    ``{"family": "inet", "host": "127.0.0.1", "port": 52344}`` (IPv6 hosts without
    brackets) or ``{"family": "unix", "host": None, "port": None}``. It is absent when the
    peer cannot be determined, which the middleware treats as unknown and refuses.

The wrapper sits at protocol level, *outside* uvicorn's ``ProxyHeadersMiddleware``, which
rewrites ``scope["client"]`` from ``X-Forwarded-For`` whenever the connecting address is in
``--forwarded-allow-ips``. ``scope["client"]`` therefore says who a proxy *claims* the client
is, while ``"asgi_mtls.peer"`` always says who actually holds the socket. Deciding whether to
trust forwarded client-certificate headers on ``"asgi_mtls.peer"`` is what keeps that trust
safe even when uvicorn runs with ``--forwarded-allow-ips '*'``.

Only the ``extensions`` key of each request's scope is replaced; everything else is as
uvicorn made it, so its access log still prints the ``X-Forwarded-For`` client as stock
uvicorn does.

Command line::

    uvicorn app:app --ssl-certfile server.pem --ssl-keyfile server.key \\
        --ssl-ca-certs clients-ca.pem --ssl-cert-reqs 1 \\
        --http asgi_mtls.uvicorn:HttpToolsProtocol \\
        --ws asgi_mtls.uvicorn:WebSocketsSansIOProtocol

(``--ssl-cert-reqs 1`` is ``ssl.CERT_OPTIONAL``: certificates are requested and verified,
but clients without one still connect and get ``client_cert_chain == []``; use ``2``,
``ssl.CERT_REQUIRED``, to refuse them during the handshake.)

From Python, :func:`config` builds the same :class:`uvicorn.Config` and :func:`run` serves it.

Classes: :class:`H11Protocol`, :class:`HttpToolsProtocol` (HTTP/1.1),
:class:`WebSocketsSansIOProtocol`, :class:`WSProtocol` and the deprecated legacy
:class:`WebSocketProtocol` (WebSockets), plus :data:`AutoHTTPProtocol` and
:data:`AutoWebSocketsProtocol`, which choose the way uvicorn's ``auto`` settings do. Each is
created on first access, so a missing optional package (httptools, websockets, wsproto) only
matters when its class is asked for, and then raises :class:`ImportError` saying what to
install. Custom protocol classes switch off uvicorn's HTTP/2 support; these serve HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import ssl
import sys
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from cryptography import x509

from asgi_mtls.diagnostics import warn_once
from asgi_mtls.sources.proxies import PEER_EXTENSION

if TYPE_CHECKING:
    import uvicorn as _uvicorn
    from uvicorn._types import ASGIApplication

__all__ = [
    "AutoHTTPProtocol",
    "AutoWebSocketsProtocol",
    "H11Protocol",
    "HttpToolsProtocol",
    "WSProtocol",
    "WebSocketProtocol",
    "WebSocketsSansIOProtocol",
    "config",
    "run",
]

_TLS_KEY = "tls"

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[Any]]

HTTPName = Literal["auto", "h11", "httptools"]
WSName = Literal["auto", "websockets", "websockets-sansio", "wsproto", "none"]


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


class _ConnectionInfo:
    """What one connection adds to its scopes; the per-connection memo lives here."""

    __slots__ = ("_tls", "_tls_key", "peer", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.peer: PeerInfo | None = None
        self._tls_key: tuple[Any, ...] | None = None
        self._tls: TLSInfo | None = None

    def bind(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.peer = _peer_of(transport)
        self._tls_key = self._tls = None

    def tls(self) -> TLSInfo | None:
        """A fresh ``tls`` dict for one request, or ``None`` on a plain connection."""
        if self.transport is None:
            return None
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        # Read per request (cheap) so a renegotiated certificate is never missed, but only
        # re-encode when something changed: keep-alive requests reuse the converted dict.
        der: bytes | None = ssl_object.getpeercert(binary_form=True)
        cipher = ssl_object.cipher()
        key = (der, ssl_object.version(), cipher[0] if cipher else None)
        if self._tls is None or key != self._tls_key:
            self._tls = _build_tls(ssl_object, der, key)
            self._tls_key = key
        # Each scope gets its own dict and list, so an app that mutates its view cannot
        # change what a later request on the same connection sees.
        tls = self._tls.copy()
        tls["client_cert_chain"] = list(self._tls["client_cert_chain"])
        return tls

    def extend(self, scope: _Scope) -> _Scope:
        extensions: dict[str, Any] = {**(scope.get("extensions") or {})}
        if self.peer is not None:
            extensions[PEER_EXTENSION] = self.peer.copy()
        else:
            extensions.pop(PEER_EXTENSION, None)
        tls = self.tls()
        if tls is not None:
            extensions[_TLS_KEY] = tls
        # Replace the key in this request's own scope (never mutate the extensions dict it
        # held): uvicorn's ProxyHeadersMiddleware then rewrites the same scope that uvicorn
        # logs, so access logs keep showing the forwarded client as with stock uvicorn.
        scope["extensions"] = extensions
        return scope


class _ExtensionApp:
    """ASGI wrapper that adds this connection's extensions to each request scope."""

    __slots__ = ("app", "connection")

    def __init__(self, app: _ASGIApp, connection: _ConnectionInfo) -> None:
        self.app = app
        self.connection = connection

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> Any:
        if scope.get("type") in ("http", "websocket"):
            scope = self.connection.extend(scope)
        return await self.app(scope, receive, send)


def _check_server_tls(config: Any) -> None:
    """Issue #11: uvicorn serving TLS without requesting client certificates (no
    ``--ssl-cert-reqs``), or requesting them without a CA to verify them (no
    ``--ssl-ca-certs``: every client certificate fails the handshake, a bare connection
    reset), is said once, at the first connection, with the flag that fixes it."""
    if not getattr(config, "is_ssl", False):
        return
    if getattr(config, "ssl_context_factory", None) is not None:
        return  # the factory decides; its context is not ours to judge
    if getattr(config, "ssl_cert_reqs", ssl.CERT_NONE) == ssl.CERT_NONE:
        warn_once(
            "cert-reqs",
            "uvicorn serves TLS without requesting client certificates, so every client "
            "is anonymous: add --ssl-cert-reqs 1 (optional) or 2 (required) and "
            "--ssl-ca-certs CA.pem (asgi-mtls serve does)",
        )
    elif not getattr(config, "ssl_ca_certs", None):
        warn_once(
            "ca-certs",
            "uvicorn requests client certificates but has no CA to verify them, so every "
            "client certificate fails the TLS handshake: add --ssl-ca-certs CA.pem",
        )


class _MTLSProtocolMixin(asyncio.Protocol):
    """Put first in the bases of a uvicorn protocol class; the only shared logic."""

    app: _ASGIApp

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _check_server_tls(kwargs.get("config", args[0] if args else None))
        self._asgi_mtls = _ConnectionInfo()
        self.app = _ExtensionApp(self.app, self._asgi_mtls)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._asgi_mtls.bind(transport)
        super().connection_made(transport)


# Public name -> (uvicorn module, uvicorn class, optional package it needs).
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "H11Protocol": ("uvicorn.protocols.http.h11_impl", "H11Protocol", "h11"),
    "HttpToolsProtocol": (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol",
        "httptools",
    ),
    "WebSocketProtocol": (
        "uvicorn.protocols.websockets.websockets_impl",
        "WebSocketProtocol",
        "websockets",
    ),
    "WebSocketsSansIOProtocol": (
        "uvicorn.protocols.websockets.websockets_sansio_impl",
        "WebSocketsSansIOProtocol",
        "websockets",
    ),
    "WSProtocol": ("uvicorn.protocols.websockets.wsproto_impl", "WSProtocol", "wsproto"),
}


def _load(name: str) -> type[asyncio.Protocol]:
    module_name, class_name, package = _BACKENDS[name]
    try:
        base = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise ImportError(
            f"asgi_mtls.uvicorn.{name} is not available: uvicorn's {class_name} needs the "
            f"optional package {package!r} (pip install {package}), and importing "
            f"{module_name} failed: {exc}"
        ) from exc
    cls: type[asyncio.Protocol] = type(
        name,
        (_MTLSProtocolMixin, base),
        {
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"uvicorn's {class_name} filling the ASGI ``tls`` and "
            f"``asgi_mtls.peer`` scope extensions.",
        },
    )
    return cls


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _protocol_class(name: str) -> type[asyncio.Protocol] | None:
    """The class behind a public name, created once and then kept in the module namespace."""
    namespace = globals()
    if name in namespace:
        cached: type[asyncio.Protocol] | None = namespace[name]
        return cached
    if name in _BACKENDS:
        value: type[asyncio.Protocol] | None = _load(name)
    elif name == "AutoHTTPProtocol":
        value = _protocol_class("HttpToolsProtocol" if _importable("httptools") else "H11Protocol")
    elif name == "AutoWebSocketsProtocol":
        if _importable("websockets"):
            value = _protocol_class("WebSocketsSansIOProtocol")
        elif _importable("wsproto"):
            value = _protocol_class("WSProtocol")
        else:
            value = None  # like uvicorn's auto: no WebSocket support
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    namespace[name] = value  # later lookups (and pickling by name) find it directly
    return value


if TYPE_CHECKING:
    H11Protocol: type[asyncio.Protocol]
    HttpToolsProtocol: type[asyncio.Protocol]
    WebSocketProtocol: type[asyncio.Protocol]
    WebSocketsSansIOProtocol: type[asyncio.Protocol]
    WSProtocol: type[asyncio.Protocol]
    AutoHTTPProtocol: type[asyncio.Protocol]
    AutoWebSocketsProtocol: type[asyncio.Protocol] | None
else:

    def __getattr__(name: str) -> type[asyncio.Protocol] | None:
        return _protocol_class(name)

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


_HTTP_CLASSES: dict[str, str] = {
    "auto": "AutoHTTPProtocol",
    "h11": "H11Protocol",
    "httptools": "HttpToolsProtocol",
}
_WS_CLASSES: dict[str, str | None] = {
    "auto": "AutoWebSocketsProtocol",
    "websockets": "WebSocketProtocol",
    "websockets-sansio": "WebSocketsSansIOProtocol",
    "wsproto": "WSProtocol",
    "none": None,
}
# Config arguments that config() sets itself from its own parameters.
_OWNED_KWARGS: dict[str, str] = {
    "ssl_certfile": "certfile",
    "ssl_keyfile": "keyfile",
    "ssl_ca_certs": "client_ca",
    "ssl_cert_reqs": "require_client_cert",
}

_StrPath = str | os.PathLike[str]


def config(
    app: ASGIApplication | Callable[..., Any] | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    certfile: _StrPath | None,
    keyfile: _StrPath | None,
    client_ca: _StrPath | None,
    require_client_cert: bool = False,
    http: HTTPName = "auto",
    ws: WSName = "auto",
    **uvicorn_kwargs: Any,
) -> _uvicorn.Config:
    """A :class:`uvicorn.Config` serving ``app`` with this module's protocol classes.

    With ``certfile``, ``keyfile`` and ``client_ca`` uvicorn terminates TLS and verifies
    client certificates against ``client_ca``: clients without one are still served
    (``client_cert_chain == []``) unless ``require_client_cert`` is true, in which case the
    handshake refuses them. Pass all three as ``None`` for plain HTTP behind a TLS-terminating
    proxy; ``asgi_mtls.peer`` is still filled. ``http`` and ``ws`` take uvicorn's names and
    map them to this module's classes. Other keyword arguments go to :class:`uvicorn.Config`
    unchanged.
    """
    import uvicorn

    if uvicorn_kwargs.get("http2"):
        raise ValueError(
            "http2=True cannot be used: uvicorn serves HTTP/2 only through its own 'zttp' "
            "protocol, and choosing custom protocol classes (which is how asgi_mtls.uvicorn "
            "fills the tls extension) disables HTTP/2. These classes serve HTTP/1.1."
        )
    for kwarg, ours in _OWNED_KWARGS.items():
        if kwarg in uvicorn_kwargs:
            raise ValueError(f"pass {ours}= instead of {kwarg}=: config() sets {kwarg} itself")
    if http not in _HTTP_CLASSES:
        raise ValueError(
            f"http={http!r} is not supported; choose one of {', '.join(map(repr, _HTTP_CLASSES))}"
            + (" (HTTP/2 via zttp cannot fill the tls extension)" if str(http) == "zttp" else "")
        )
    if ws not in _WS_CLASSES:
        raise ValueError(
            f"ws={ws!r} is not supported; choose one of {', '.join(map(repr, _WS_CLASSES))}"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, not {port!r}")
    if certfile is not None and keyfile is None:
        raise ValueError("certfile was given without keyfile: TLS needs both")
    if keyfile is not None and certfile is None:
        raise ValueError("keyfile was given without certfile: TLS needs both")
    tls = certfile is not None
    if client_ca is not None and not tls:
        raise ValueError(
            "client_ca was given without certfile and keyfile: client certificates can only "
            "be verified on a TLS listener"
        )
    if tls and client_ca is None:
        raise ValueError(
            "certfile and keyfile were given without client_ca: pass the CA bundle that "
            "issues client certificates (or all three as None for plain HTTP behind a proxy)"
        )
    if require_client_cert and not tls:
        raise ValueError("require_client_cert=True needs TLS: pass certfile, keyfile and client_ca")
    if not tls and uvicorn_kwargs.get("ssl_context_factory") is not None:
        raise ValueError(
            "ssl_context_factory was given for a plain-HTTP config: pass certfile, keyfile "
            "and client_ca to serve TLS"
        )

    http_class = _protocol_class(_HTTP_CLASSES[http])
    if http_class is None:  # pragma: no cover - HTTP names always resolve to a class
        raise RuntimeError(f"no HTTP protocol class for http={http!r}")
    ws_name = _WS_CLASSES[ws]
    ws_class = _protocol_class(ws_name) if ws_name is not None else None
    if tls:
        uvicorn_kwargs.update(
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            ssl_ca_certs=client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL,
        )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_class,
        ws=ws_class if ws_class is not None else "none",
        **uvicorn_kwargs,
    )


def run(
    app: ASGIApplication | Callable[..., Any] | str,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    certfile: _StrPath | None,
    keyfile: _StrPath | None,
    client_ca: _StrPath | None,
    require_client_cert: bool = False,
    http: HTTPName = "auto",
    ws: WSName = "auto",
    **uvicorn_kwargs: Any,
) -> None:
    """Serve ``app`` with :func:`config`'s settings until interrupted (one process).

    Reloading and multiple workers need uvicorn's supervisors: use the command line for those.
    """
    import uvicorn

    if uvicorn_kwargs.get("reload") or (uvicorn_kwargs.get("workers") or 1) > 1:
        raise ValueError(
            "run() serves one process: for reload=True or workers > 1 use the uvicorn command "
            "line with --http/--ws asgi_mtls.uvicorn classes (see this module's docstring)"
        )
    uvicorn.Server(
        config(
            app,
            host=host,
            port=port,
            certfile=certfile,
            keyfile=keyfile,
            client_ca=client_ca,
            require_client_cert=require_client_cert,
            http=http,
            ws=ws,
            **uvicorn_kwargs,
        )
    ).run()
