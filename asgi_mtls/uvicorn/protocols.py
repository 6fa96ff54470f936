"""The protocol classes: each of uvicorn's own, with the scope extensions; created on first use."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

from asgi_mtls.uvicorn.checks import check_server_tls
from asgi_mtls.uvicorn.connection import ConnectionInfo, ExtensionApp
from asgi_mtls.uvicorn.reload import CertificateReloader

__all__ = ["protocol_class"]

#: Where the classes are found by name (``--http asgi_mtls.uvicorn:HttpToolsProtocol``,
#: pickling under ``--workers``): the package, not this module.
_PUBLIC_MODULE: Final = __name__.rpartition(".")[0]
#: The classes created so far, by public name.
_CLASSES: dict[str, type[asyncio.Protocol] | None] = {}


class _MTLSProtocolMixin(asyncio.Protocol):
    """Put first in the bases of a uvicorn protocol class; the only shared logic."""

    app: Callable[..., Awaitable[Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_server_tls(kwargs.get("config", args[0] if args else None))
        self._asgi_mtls = ConnectionInfo()
        self.app = ExtensionApp(self.app, self._asgi_mtls)
        config = getattr(self, "config", None)
        if config is not None and getattr(config, "ssl", None) is not None:
            CertificateReloader.install(config)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._asgi_mtls.bind(transport)
        super().connection_made(transport)


# Public name -> (uvicorn module, uvicorn class, optional package it needs).
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "H11Protocol": ("uvicorn.protocols.http.h11_impl", "H11Protocol", "h11"),
    "HttpToolsProtocol": (
        "uvicorn.protocols.http.httptools_impl",
        "HttpToolsProtocol",
        "httptools",
    ),
    "WebSocketProtocol": (
        "uvicorn.protocols.websockets.websockets_impl",
        "WebSocketProtocol",
        "websockets",
    ),
    "WebSocketsSansIOProtocol": (
        "uvicorn.protocols.websockets.websockets_sansio_impl",
        "WebSocketsSansIOProtocol",
        "websockets",
    ),
    "WSProtocol": ("uvicorn.protocols.websockets.wsproto_impl", "WSProtocol", "wsproto"),
}


def _load(name: str) -> type[asyncio.Protocol]:
    module_name, class_name, package = _BACKENDS[name]
    try:
        base = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise ImportError(
            f"asgi_mtls.uvicorn.{name} is not available: uvicorn's {class_name} needs the "
            f"optional package {package!r} (pip install {package}), and importing "
            f"{module_name} failed: {exc}"
        ) from exc
    cls: type[asyncio.Protocol] = type(
        name,
        (_MTLSProtocolMixin, base),
        {
            "__module__": _PUBLIC_MODULE,
            "__qualname__": name,
            "__doc__": f"uvicorn's {class_name} filling the ASGI ``tls`` and "
            f"``asgi_mtls.peer`` scope extensions.",
        },
    )
    return cls


#: uvicorn's ``auto`` choices (``uvicorn.protocols.http.auto``, ``...websockets.auto``): the
#: first class whose package imports, else the fallback (h11 comes with uvicorn; without
#: websockets or wsproto there is no WebSocket support).
_AUTO: dict[str, tuple[tuple[str, ...], str | None]] = {
    "AutoHTTPProtocol": (("HttpToolsProtocol",), "H11Protocol"),
    "AutoWebSocketsProtocol": (("WebSocketsSansIOProtocol", "WSProtocol"), None),
}


def _auto(name: str) -> type[asyncio.Protocol] | None:
    candidates, fallback = _AUTO[name]
    for candidate in candidates:
        try:
            importlib.import_module(_BACKENDS[candidate][2])
        except ImportError:
            continue
        return protocol_class(candidate)
    return protocol_class(fallback) if fallback is not None else None


def protocol_class(name: str) -> type[asyncio.Protocol] | None:
    """The class behind a public name, created once (the package keeps it in its namespace)."""
    if name in _CLASSES:
        return _CLASSES[name]
    if name in _BACKENDS:
        value: type[asyncio.Protocol] | None = _load(name)
    elif name in _AUTO:
        value = _auto(name)
    else:
        raise AttributeError(f"module {_PUBLIC_MODULE!r} has no attribute {name!r}")
    _CLASSES[name] = value
    return value
