"""uvicorn TLS settings that leave every client anonymous: said once, at the first connection."""

from __future__ import annotations

import ssl
from typing import Any

from asgi_mtls.diagnostics import warn_once

__all__ = ["check_server_tls"]


def check_server_tls(config: Any) -> None:
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
