"""Clients for end-to-end tests: HTTPS with a client certificate, and WebSockets.

The asyncio client of ``websockets`` is used throughout: its sync client has been seen to
block forever over TLS when it misses the handshake response (with uvicorn's own protocol
classes too), while the asyncio client honours its timeouts.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import connect

TIMEOUT = 10.0


def https_client(pki_files: Any, cert: Any = None, *, http2: bool = True) -> httpx.Client:
    """httpx over TLS trusting the test root, presenting ``cert`` (none: ``None``), speaking
    HTTP/2 only or HTTP/1.1 only."""
    return httpx.Client(
        verify=pki_files.client_context(cert), http2=http2, http1=not http2, timeout=TIMEOUT
    )


def websocket_first_json(url: str, context: ssl.SSLContext) -> Any:
    """Connect, read the first message as JSON, close."""

    async def run() -> Any:
        async with connect(url, ssl=context, open_timeout=TIMEOUT, close_timeout=2) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))

    return asyncio.run(run())


def websocket_rejection_status(url: str, context: ssl.SSLContext) -> int:
    """Try to connect; return the HTTP status of the refusal (fails if the server accepts)."""

    async def run() -> int:
        try:
            async with connect(url, ssl=context, open_timeout=TIMEOUT, close_timeout=2):
                pass
        except websockets.exceptions.InvalidStatus as denied:
            return int(denied.response.status_code)
        raise AssertionError(f"the server accepted the WebSocket at {url}")

    return asyncio.run(run())
