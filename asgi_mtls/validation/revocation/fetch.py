"""Fetching revocation data over HTTP: one bounded request (total time, size), async."""

from __future__ import annotations

import asyncio


class FetchError(Exception):
    """A CRL or OCSP fetch failed (network, HTTP status, size, timeout)."""


async def download(url: str, *, body: bytes | None, max_bytes: int, timeout: float) -> bytes:
    """GET ``url`` (or POST ``body`` as an OCSP request); the body of a 200 answer.

    ``timeout`` bounds the whole exchange (connect, headers, body), not each step, so a
    server that drips bytes cannot keep it alive; redirects are not followed; more than
    ``max_bytes`` is an error.  Raises :class:`FetchError`.
    """

    import httpx  # only needed when revocation data is fetched over the network

    headers = (
        {"accept": "application/pkix-crl, application/octet-stream, */*"}
        if body is None
        else {"content-type": "application/ocsp-request", "accept": "application/ocsp-response"}
    )
    try:
        async with asyncio.timeout(timeout):
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                method = "GET" if body is None else "POST"
                async with client.stream(method, url, content=body, headers=headers) as response:
                    if response.status_code != 200:
                        raise FetchError(f"HTTP {response.status_code}")
                    length = response.headers.get("content-length")
                    if length is not None and length.isdigit() and int(length) > max_bytes:
                        raise FetchError(f"{length} bytes, limit {max_bytes}")
                    buffer = bytearray()
                    async for chunk in response.aiter_bytes():
                        buffer += chunk
                        if len(buffer) > max_bytes:
                            raise FetchError(f"more than {max_bytes} bytes")
                    return bytes(buffer)
    except TimeoutError:
        raise FetchError(f"no complete answer within {timeout} s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from None
