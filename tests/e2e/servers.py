"""Run real servers in-process for end-to-end tests."""

from __future__ import annotations

import functools
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

__all__ = ["start_anycorn", "start_uvicorn"]


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


@contextmanager
def start_anycorn(
    app: Any,
    *,
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str],
    ca_certs: str | os.PathLike[str],
    verify_mode: ssl.VerifyMode = ssl.CERT_OPTIONAL,
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve ``app`` with anycorn (HTTP/1.1 and HTTP/2 over TLS, client certificates verified
    against ``ca_certs``) on 127.0.0.1 from a background thread; yield ``https://localhost:PORT``.

    anycorn fills the ASGI ``tls`` extension itself (spec 0.2).  It runs through its own
    ``serve()`` on an AnyIO event loop in the thread, and stops when the block exits.
    """
    import anyio
    from anycorn import Config, serve

    with socket.socket() as probe:  # a free port (anycorn binds by address)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile, config.ca_certs = str(certfile), str(keyfile), str(ca_certs)
    config.verify_mode = verify_mode
    config.errorlog = None
    config.graceful_timeout = 1.0
    stop = threading.Event()

    async def shutdown() -> None:
        while not stop.is_set():
            await anyio.sleep(0.05)

    thread = threading.Thread(
        target=anyio.run,
        args=(functools.partial(serve, app, config, shutdown_trigger=shutdown),),
        name=f"anycorn 127.0.0.1:{port}",
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"anycorn did not serve on 127.0.0.1:{port}") from None
                time.sleep(0.05)
        yield f"https://localhost:{port}"
    finally:
        stop.set()
        thread.join(timeout=10)
