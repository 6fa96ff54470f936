"""``config()`` and ``run()``: a :class:`uvicorn.Config` with the protocol classes, from Python."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from asgi_mtls.uvicorn.protocols import protocol_class
from asgi_mtls.uvicorn.reload import RELOAD_ATTRIBUTE

if TYPE_CHECKING:
    import uvicorn as _uvicorn
    from uvicorn._types import ASGIApplication

__all__ = ["HTTPName", "WSName", "config", "run"]

HTTPName = Literal["auto", "h11", "httptools"]
WSName = Literal["auto", "websockets", "websockets-sansio", "wsproto", "none"]


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
    reload_certificates: bool = True,
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

    With ``reload_certificates`` (the default), ``certfile``, ``keyfile`` and ``client_ca`` are
    read again when they change, for new connections, without a restart and without dropping
    open ones (checked at most once a second, on a handshake; see
    :class:`~asgi_mtls.uvicorn.reload.CertificateReloader`).  The same happens under the
    ``uvicorn`` command line with these classes.
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

    http_class = protocol_class(_HTTP_CLASSES[http])
    if http_class is None:  # pragma: no cover - HTTP names always resolve to a class
        raise RuntimeError(f"no HTTP protocol class for http={http!r}")
    ws_name = _WS_CLASSES[ws]
    ws_class = protocol_class(ws_name) if ws_name is not None else None
    if tls:
        uvicorn_kwargs.update(
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            ssl_ca_certs=client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL,
        )
    built = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_class,
        ws=ws_class if ws_class is not None else "none",
        **uvicorn_kwargs,
    )
    setattr(built, RELOAD_ATTRIBUTE, reload_certificates)
    return built


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
    reload_certificates: bool = True,
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
            reload_certificates=reload_certificates,
            **uvicorn_kwargs,
        )
    ).run()
