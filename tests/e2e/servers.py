"""Run real servers in-process for end-to-end tests."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

__all__ = ["start_uvicorn"]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextmanager
def start_uvicorn(config: uvicorn.Config, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``config`` from a background thread; yield its base URL, then stop it.

    For a host/port config the listening socket is bound here, before the server starts, on
    ``config.port`` (use ``0`` for a free port, race-free) and handed to uvicorn. Configs with
    ``uds`` yield ``"http(s)://localhost"`` (connect through the socket path); configs with
    ``fd`` yield the URL of the socket behind the descriptor.
    """
    scheme = "https" if config.is_ssl else "http"
    sockets: list[socket.socket] | None = None
    if config.uds is not None:
        url = f"{scheme}://localhost"
    elif config.fd is not None:
        with socket.socket(fileno=os.dup(config.fd)) as inherited:
            host, port = inherited.getsockname()[:2]
        url = f"{scheme}://{_url_host(host)}:{port}"
    else:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sockets = [sock]
        host, port = sock.getsockname()[:2]
        url = f"{scheme}://{_url_host(host)}:{port}"

    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": sockets}, name=f"uvicorn {url}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn at {url} exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn at {url} did not start in {startup_timeout} s")
            time.sleep(0.01)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        for sock in sockets or ():
            sock.close()
