"""Driving ASGI apps in process, for unit tests of the middleware and helpers."""

from __future__ import annotations

from typing import Any

import httpx


async def get(app, path: str, headers: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get(path, headers=headers)


def reason(response: httpx.Response) -> str:
    """The rejection reason code of an error response (and check the error's shape)."""
    body = response.json()
    assert body["error"] == "client_certificate"
    return body["reason"]


async def drive_websocket(app, path: str, *, http_response_extension: bool) -> list[dict[str, Any]]:
    """Run one WebSocket session against ``app`` as a server would; return what it sent."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "scheme": "wss",
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 443),
        "subprotocols": [],
        "asgi": {"version": "3.0"},
        "extensions": {"websocket.http.response": {}} if http_response_extension else {},
    }
    await app(scope, receive, send)
    return sent
