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

Modules: :mod:`~asgi_mtls.uvicorn.connection` (what a connection adds to its scopes),
:mod:`~asgi_mtls.uvicorn.protocols` (the classes, created on first use),
:mod:`~asgi_mtls.uvicorn.reload` (live rotation of the TLS files),
:mod:`~asgi_mtls.uvicorn.checks` (uvicorn TLS settings that leave clients anonymous) and
:mod:`~asgi_mtls.uvicorn.server` (:func:`config` and :func:`run`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from asgi_mtls.uvicorn.connection import PeerInfo as PeerInfo
from asgi_mtls.uvicorn.connection import TLSInfo as TLSInfo
from asgi_mtls.uvicorn.protocols import protocol_class
from asgi_mtls.uvicorn.reload import RELOAD_INTERVAL as RELOAD_INTERVAL
from asgi_mtls.uvicorn.server import HTTPName as HTTPName
from asgi_mtls.uvicorn.server import WSName as WSName
from asgi_mtls.uvicorn.server import config, run

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
        value = protocol_class(name)
        globals()[name] = value  # later lookups (and pickling by name) find it directly
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
