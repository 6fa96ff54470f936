"""In-process ASGI helpers: present a certificate and a transport peer to an app the way
``asgi_mtls.uvicorn`` would, without a TLS handshake.

For ``httpx.ASGITransport`` and Starlette's ``TestClient``.  They test an app's reaction to a
certificate, not a TLS configuration: for that, run uvicorn for real
(``tests/e2e/test_uvicorn_mtls.py``).
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from asgi_mtls.sources.headers.envoy_subject import envoy_subject
from asgi_mtls.sources.proxies import PEER_EXTENSION
from asgi_mtls.sources.tls import CONNECTION_EXTENSION
from asgi_mtls.testing.pki import IssuedCertificate, pem_of


def asgi_tls_scope_extension(
    cert: IssuedCertificate | None, *, include_chain: bool = True
) -> dict[str, Any]:
    """An ASGI ``tls`` extension dict (asgiref ``specs/tls.rst``, 0.2) for a connection
    presenting ``cert``: its PEM, then (unless ``include_chain=False``, as uvicorn on Python
    < 3.13 sends) its CA chain's."""
    chain: list[str] = []
    if cert is not None:
        chain.append(cert.pem)
        if include_chain:
            chain += [pem_of(c) for c in cert.chain]
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": cert.certificate.subject.rfc4514_string() if cert else None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": None,
    }


def server_name_tls_extension(cert: IssuedCertificate | None) -> dict[str, Any]:
    """The ``tls`` extension dict pyvoy (1.3) gives an HTTP request (issue #12): the TLS
    version and the client certificate's subject as Envoy prints it (BoringSSL's RFC 2253
    form), no certificate; ``""`` for a request without one (what pyvoy sends over HTTP/3 and
    when an optional certificate was not given).  For testing an app that opts in with
    :class:`~asgi_mtls.sources.ServerVerifiedNameSource`."""
    return {
        "tls_version": 0x0304,
        "client_cert_name": envoy_subject(cert.certificate) if cert is not None else "",
    }


def simulate_connection(
    app: ASGIApp, cert: IssuedCertificate | None = None, *, peer: str | None = "127.0.0.1"
) -> ASGIApp:
    """Wrap ``app`` as ``asgi_mtls.uvicorn`` would serve it: every HTTP and WebSocket scope
    gets the ASGI ``tls`` extension for a client presenting ``cert`` (none when ``cert`` is
    ``None``) and the transport peer ``peer`` (none when ``peer`` is ``None``: an unknown
    peer).  The scope is copied, never changed in place.  Like a keep-alive TLS connection of
    ``asgi_mtls.uvicorn``, all its scopes share one connection memo (``CONNECTION_EXTENSION``).
    """
    memo: dict[object, object] = {}

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            extensions = dict(scope.get("extensions") or {})
            if cert is not None:
                extensions["tls"] = asgi_tls_scope_extension(cert)
                extensions[CONNECTION_EXTENSION] = memo
            if peer is not None:
                extensions[PEER_EXTENSION] = {"family": "inet", "host": peer, "port": 40000}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return wrapper
