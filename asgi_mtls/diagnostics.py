"""Deployment mistakes that only requests can reveal, each said once with the flag that fixes it.

Some mistakes cannot be seen when the middleware is built, because they are in how the server
runs, not in the middleware's options (issue #11):

- uvicorn terminates TLS but runs without ``asgi_mtls.uvicorn``'s protocol classes: no ASGI
  ``tls`` extension reaches the app, so every client looks anonymous (401 ``missing``);
- a header source is configured but the server does not report the transport peer (the same
  classes record it), so every certificate header is refused as ``untrusted_proxy`` from an
  "unknown transport peer", on public routes too.

The first refusal that shows one of them logs a WARNING naming the fix; later ones stay
quiet.  This runs on the refusal path only (from the log listener, :mod:`asgi_mtls.events.log`),
never on an accepted request.  A TLS server that does not request client certificates is
reported by the protocol classes themselves (:mod:`asgi_mtls.uvicorn`), which can see it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Final

from asgi_mtls.log import get_logger

__all__ = ["PROTOCOL_FLAGS", "hint_for_refusal", "warn_once"]

logger = get_logger("config")  # configuration warnings, beside the listener's

#: The uvicorn flags that make it pass the client certificate and the transport peer.
PROTOCOL_FLAGS: Final = (
    "--http asgi_mtls.uvicorn:HttpToolsProtocol --ws asgi_mtls.uvicorn:WebSocketsSansIOProtocol"
)
_PEER_EXTENSION: Final = "asgi_mtls.peer"

_said: set[str] = set()
_lock = threading.Lock()


def warn_once(key: str, message: str) -> None:
    """Log ``message`` as a WARNING the first time ``key`` is seen in this process."""
    with _lock:
        if key in _said:
            return
        _said.add(key)
    logger.warning("%s", message)


def hint_for_refusal(scope: Mapping[str, Any], reason: str, peer: object) -> None:
    """After a refusal with code ``reason`` (``peer``: the transport peer, ``None`` when
    unknown), warn once if the scope shows a server set up without what asgi-mtls needs."""
    extensions = scope.get("extensions") or {}
    if reason == "untrusted_proxy" and peer is None:
        warn_once(
            "peer",
            "certificate headers are refused (untrusted_proxy) because the server does not "
            "report the transport peer, so no proxy can be recognised: run uvicorn with "
            f"{PROTOCOL_FLAGS} (asgi-mtls serve does), or set trust_scope_client=True if the "
            "server never rewrites scope['client'] from forwarding headers",
        )
    elif (
        reason == "missing" and "tls" not in extensions and scope.get("scheme") in ("https", "wss")
    ):
        warn_once(
            "tls",
            "the server terminates TLS but passes no client certificate to the app (no ASGI "
            f"'tls' extension), so every client is anonymous: run uvicorn with {PROTOCOL_FLAGS} "
            "(asgi-mtls serve does)",
        )
    elif (
        reason == "missing"
        and peer is None
        and "tls" not in extensions
        and _PEER_EXTENSION not in extensions
    ):
        warn_once(
            "plain",
            "no client certificate can reach the app: the server passes neither the ASGI 'tls' "
            "extension nor the transport peer; serve TLS with uvicorn and "
            f"{PROTOCOL_FLAGS}, or put a TLS proxy in front with the same classes and a "
            "HeaderSource",
        )
