"""Caddy: ``header_up X-Client-Cert-Der {http.request.tls.client.certificate_der_base64}``
(format ``caddy``).

Caddy documents the placeholder among the HTTP placeholders of its ``reverse_proxy``
directive; the header name is ours.  The deployment page is ``docs/deploy/caddy.md``.
"""

from __future__ import annotations

from typing import Final

from asgi_mtls.sources.headers.format import HeaderFormat, decode_base64_der, leaf

__all__ = ["CADDY_PLACEHOLDER", "FORMATS"]

#: Caddy 2.6 leaves an unknown placeholder as its text when there is no client certificate
#: (newer releases send an empty value).
CADDY_PLACEHOLDER: Final = "{http.request.tls.client.certificate_der_base64}"

FORMATS: Final = (
    HeaderFormat(
        "caddy",
        "x-client-cert-der",
        leaf(decode_base64_der),
        absent=frozenset({"", CADDY_PLACEHOLDER}),
    ),
)
