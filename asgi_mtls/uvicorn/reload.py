"""Live rotation of the server certificate, its key and the client CA bundle (issue #12)."""

from __future__ import annotations

import os
import ssl
import time
from typing import TYPE_CHECKING, Any

from asgi_mtls.log import get_logger

if TYPE_CHECKING:
    import uvicorn as _uvicorn

__all__ = ["RELOAD_ATTRIBUTE", "RELOAD_INTERVAL", "CertificateReloader"]

logger = get_logger()

#: How often (seconds, at most once per handshake) the TLS files are checked for changes.
RELOAD_INTERVAL = 1.0
#: The attribute of a ``uvicorn.Config`` that turns certificate reloading off (``config()``'s
#: ``reload_certificates=False``); absent means on.
RELOAD_ATTRIBUTE = "asgi_mtls_reload_certificates"


class CertificateReloader:
    """Live rotation (issue #12): the server certificate, its key and the client CA bundle
    are read again when their files change, for new handshakes; open connections keep theirs.

    cert-manager and SPIRE replace these files every few hours.  The listening socket's
    ``SSLContext`` is fixed when uvicorn starts, so this is its ``sni_callback`` (OpenSSL calls
    it early in every handshake, with or without SNI): at most every
    :data:`RELOAD_INTERVAL` seconds it compares the files' (inode, size, mtime) with what was
    loaded, builds a fresh context the way uvicorn does (``uvicorn.config.create_ssl_context``)
    when they changed, and moves the handshake onto the newest context
    (``SSLObject.context = ...``: OpenSSL's ``SSL_set_SSL_CTX``, which takes the new
    certificate, key and verification store).  A fresh context rather than reloading the old
    one, because ``load_verify_locations`` only adds: a CA removed from the bundle must stop
    being trusted.  Files caught half-written (a key that does not match the certificate, an
    unreadable bundle) keep the previous context, logged once per change; the next change is
    tried again.
    """

    __slots__ = ("_checked", "_config", "_failed", "_loaded", "context")

    def __init__(self, config: _uvicorn.Config) -> None:
        self._config = config
        # Unknown: the listening context was built at startup, from files that may have
        # changed before this first connection.  The first check loads them once.
        self._loaded: tuple[object, ...] | None = None
        self._failed: tuple[object, ...] | None = None
        self._checked = -RELOAD_INTERVAL
        self.context: ssl.SSLContext | None = None  # None: the listening context is current

    def _files(self) -> tuple[object, ...]:
        config = self._config
        return (config.ssl_certfile, config.ssl_keyfile, config.ssl_ca_certs)

    def _signature(self) -> tuple[object, ...]:
        signature: list[object] = []
        for path in self._files():
            try:
                stat = os.stat(path) if path else None  # type: ignore[arg-type]
            except OSError as exc:
                signature.append(type(exc).__name__)
                continue
            signature.append(
                None if stat is None else (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            )
        return tuple(signature)

    def _build(self) -> ssl.SSLContext:
        from uvicorn.config import create_ssl_context

        config = self._config
        assert config.ssl_certfile is not None
        return create_ssl_context(
            certfile=config.ssl_certfile,
            keyfile=config.ssl_keyfile,
            password=config.ssl_keyfile_password,
            ssl_version=config.ssl_version,
            cert_reqs=config.ssl_cert_reqs,
            ca_certs=config.ssl_ca_certs,
            ciphers=config.ssl_ciphers,
            alpn_protocols=getattr(config.http_protocol_class, "alpn_protocols", None),
        )

    def refresh(self) -> None:
        """Load the files again if they changed since the last load (or failed attempt)."""
        signature = self._signature()
        if signature in (self._loaded, self._failed):
            return
        try:
            context = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._failed = signature
            logger.error(
                "TLS files changed but could not be loaded (%s: %s); new connections keep the "
                "previous certificate, key and client CAs: %s",
                type(exc).__name__,
                exc,
                ", ".join(str(path) for path in self._files() if path),
            )
            return
        context.sni_callback = self  # a handshake on it still checks for the next change
        first = self._loaded is None
        self.context, self._loaded, self._failed = context, signature, None
        if not first:
            logger.info("TLS files reloaded for new connections: %s", self._config.ssl_certfile)

    def __call__(self, ssl_object: Any, server_name: str | None, listening: Any) -> None:
        try:
            now = time.monotonic()
            if now - self._checked >= RELOAD_INTERVAL:
                self._checked = now
                self.refresh()
            if self.context is not None and ssl_object.context is not self.context:
                ssl_object.context = self.context
        except Exception:  # never fail a handshake over the reload itself
            logger.exception("TLS file reload failed; the handshake keeps the current context")

    @classmethod
    def install(cls, config: _uvicorn.Config) -> None:
        """Watch ``config``'s TLS files, once per listening context (the first connection's
        protocol does it, before its handshake).  Not with a custom ``ssl_context_factory``
        (it owns its context) nor with ``reload_certificates=False``."""
        context = getattr(config, "ssl", None)
        if (
            not isinstance(context, ssl.SSLContext)
            or context.sni_callback is not None
            or not getattr(config, RELOAD_ATTRIBUTE, True)
            or getattr(config, "ssl_context_factory", None) is not None
            or not getattr(config, "ssl_certfile", None)
        ):
            return
        context.sni_callback = cls(config)
