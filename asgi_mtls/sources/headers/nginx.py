"""nginx: ``$ssl_client_escaped_cert`` (format ``nginx``) and the deprecated
``$ssl_client_cert`` (format ``nginx-pem``), with the ``$ssl_client_verify`` verdict.

nginx documents both variables in ``ngx_http_ssl_module`` ("Embedded variables"); the
deployment page is ``docs/deploy/nginx.md``.
"""

from __future__ import annotations

from typing import Final

from asgi_mtls.sources.encoding import pem_lines_to_der
from asgi_mtls.sources.headers.format import decode_url_encoded_leaf, leaf, mod_ssl_format

__all__ = ["FORMATS", "decode_nginx_pem"]


def decode_nginx_pem(value: str) -> bytes:
    """nginx's deprecated ``$ssl_client_cert``: PEM whose lines after the first start with a
    tab (``\\n\\t``), which an HTTP/1.1 server receives as obsolete line folding and (h11)
    turns into single spaces.  Either form is accepted; the 64-character line shape is kept."""
    return pem_lines_to_der(value, what="$ssl_client_cert")


#: ``$ssl_client_escaped_cert`` is the leaf PEM URL-encoded with every reserved character
#: escaped: :func:`~asgi_mtls.sources.headers.format.decode_url_encoded_leaf` reads it.
FORMATS: Final = (
    mod_ssl_format("nginx", leaf(decode_url_encoded_leaf)),
    mod_ssl_format("nginx-pem", leaf(decode_nginx_pem)),
)
