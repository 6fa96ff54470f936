"""Apache mod_ssl: ``RequestHeader set X-SSL-Client-Cert "%{SSL_CLIENT_CERT}s"`` (format
``apache``), with the ``SSL_CLIENT_VERIFY`` verdict.

mod_ssl's environment variables are documented in ``mod_ssl.html`` ("Environment
Variables"); the deployment page is ``docs/deploy/apache.md``.
"""

from __future__ import annotations

from typing import Final

from asgi_mtls.sources.encoding import pem_lines_to_der
from asgi_mtls.sources.headers.format import leaf, mod_ssl_format

__all__ = ["FORMATS", "decode_apache_cert"]


def decode_apache_cert(value: str) -> bytes:
    """Apache mod_ssl ``%{SSL_CLIENT_CERT}s`` through ``RequestHeader set``: the PEM with every
    newline turned into a space.  (``(null)``, no certificate, is handled by the source.)"""
    return pem_lines_to_der(value, what="SSL_CLIENT_CERT")


FORMATS: Final = (mod_ssl_format("apache", leaf(decode_apache_cert), absent=frozenset({"(null)"})),)
