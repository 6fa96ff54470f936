"""Traefik: the ``passTLSClientCert`` middleware with ``pem: true`` (format ``traefik``).

Traefik documents the header in "Middlewares / PassTLSClientCert"; the deployment page is
``docs/deploy/traefik.md``.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

from asgi_mtls.errors import malformed
from asgi_mtls.sources.encoding import base64_der
from asgi_mtls.sources.headers.format import HeaderFormat, leaf_first

__all__ = ["FORMATS", "decode_traefik"]


def decode_traefik(value: str) -> list[bytes]:
    """Traefik ``X-Forwarded-Tls-Client-Cert``: every certificate the client sent, leaf first,
    as PEM bodies without armour or newlines, joined by ``,``.  Before v2.9.4 each body was
    URL-encoded as well: a value containing ``%`` is decoded once (twice-encoded is refused)."""
    if "%" in value:
        try:
            value = unquote(value, encoding="ascii", errors="strict")
        except UnicodeDecodeError:
            raise malformed("Traefik certificate header: not ASCII") from None
        if "%" in value:
            raise malformed("Traefik certificate header: double URL-encoded")
    return [base64_der(item, what="Traefik certificate") for item in value.split(",")]


FORMATS: Final = (
    HeaderFormat("traefik", "x-forwarded-tls-client-cert", leaf_first(decode_traefik)),
)
