"""HTTP/2 with client certificates, end to end: real anycorn (an AnyIO fork of Hypercorn),
which fills the ASGI ``tls`` extension itself (spec 0.2), serving the app behind
``MTLSMiddleware`` to httpx over real TLS, HTTP/2 and HTTP/1.1, and WebSockets.

What the middleware meets there that uvicorn does not show: the chain is a tuple, and every
stream of an HTTP/2 connection gets the *same* ``tls`` dict object (anycorn builds it once per
connection), so nothing may mutate it; several streams on one connection each carry the
identity, concurrently.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from asgi_mtls import MTLSMiddleware
from tests.apps import PAYMENTS, REPORTS, starlette_app

from .clients import https_client as client
from .clients import websocket_first_json, websocket_rejection_status
from .conftest import PKIFiles
from .servers import start_anycorn

pytestmark = pytest.mark.e2e

#: id() of the tls dict each request saw, and a snapshot of it, per client port.
SEEN: dict[int, list[tuple[int, str]]] = {}


def connection_report(app: Any) -> Any:
    """``/_connection``: what the server put in the scope (outside the middleware)."""

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_connection":
            tls = scope["extensions"]["tls"]
            port = scope["client"][1]
            SEEN.setdefault(port, []).append((id(tls), json.dumps(tls, default=str)))
            body = {
                "http_version": scope["http_version"],
                "client_port": port,
                "chain_type": type(tls["client_cert_chain"]).__name__,
                "chain_length": len(tls["client_cert_chain"]),
                "client_cert_name": tls["client_cert_name"],
                "tls_version": tls["tls_version"],
            }
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})
            return
        await app(scope, receive, send)

    return wrapper


@pytest.fixture(scope="module")
def anycorn(pki, pki_files: PKIFiles) -> Iterator[str]:
    app = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
    )
    with start_anycorn(
        connection_report(app),
        certfile=pki_files.server_cert,
        keyfile=pki_files.server_key,
        ca_certs=pki_files.client_ca_bundle,
    ) as url:
        yield url


@pytest.mark.parametrize("http2", [True, False], ids=["HTTP/2", "HTTP/1.1"])
def test_identity_over_http2_and_http1(pki, pki_files, anycorn, http2):
    with client(pki_files, pki.payments, http2=http2) as http:
        response = http.get(anycorn + "/whoami")
        shape = http.get(anycorn + "/_connection").json()
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.status_code == 200
    assert response.json()["principal"] == PAYMENTS
    assert response.json()["fingerprint"] == pki.payments.fingerprint_sha256
    assert response.json()["source"] == "tls"
    # anycorn's shape of the extension: a tuple, the leaf alone on Python < 3.13 (no
    # get_verified_chain), and an RFC 4514 name.
    assert shape["http_version"] == ("2" if http2 else "1.1")
    assert shape["chain_type"] == "tuple"
    assert shape["chain_length"] >= 1
    assert shape["tls_version"] in (0x0303, 0x0304)


def test_many_streams_on_one_connection_each_carry_the_identity(pki, pki_files, anycorn):
    """Forty concurrent streams multiplexed on one HTTP/2 connection: every one is the same
    client, and every one saw the connection's one tls dict, unchanged by the middleware."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            verify=pki_files.client_context(pki.payments), http2=True, http1=False, timeout=10
        ) as http:
            first = await http.get(anycorn + "/_connection")
            requests = [http.get(anycorn + "/whoami") for _ in range(20)]
            requests += [http.get(anycorn + "/_connection") for _ in range(20)]
            return [first, *await asyncio.gather(*requests)]

    responses = asyncio.run(run())
    assert {r.http_version for r in responses} == {"HTTP/2"}
    whoami = [r.json() for r in responses if "principal" in r.json()]
    reports = [r.json() for r in responses if "client_port" in r.json()]
    assert len(whoami) == 20 and {w["principal"] for w in whoami} == {PAYMENTS}
    ports = {r["client_port"] for r in reports}
    assert len(ports) == 1  # one connection
    (seen,) = [SEEN[port] for port in ports]
    assert len({identity for identity, _ in seen}) == 1  # one dict for every stream
    assert len({snapshot for _, snapshot in seen}) == 1  # never changed


def test_no_certificate_and_wrong_client_over_http2(pki, pki_files, anycorn):
    with client(pki_files) as http:
        assert http.get(anycorn + "/public").json() == {"ok": True, "user": None}
        missing = http.get(anycorn + "/whoami")
    assert (missing.status_code, missing.json()["reason"]) == (401, "missing")
    with client(pki_files, pki.reports) as http:
        assert http.get(anycorn + "/reports").json() == {"report_for": REPORTS}
        denied = http.get(anycorn + "/payments")
    assert (denied.status_code, denied.json()["reason"]) == (403, "forbidden")


@pytest.mark.parametrize("name", ["untrusted", "expired", "server_only"])
def test_bad_certificates_fail_the_handshake(pki, pki_files, anycorn, name):
    with client(pki_files, getattr(pki, name)) as http, pytest.raises(httpx.TransportError):
        http.get(anycorn + "/whoami")


@pytest.mark.parametrize(
    ("name", "code"), [("no_eku", "wrong_usage"), ("ca_as_client", "wrong_usage")]
)
def test_what_the_handshake_lets_through_the_middleware_refuses(
    pki, pki_files, anycorn, name, code
):
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(anycorn + "/public")
    assert (response.status_code, response.json()["reason"]) == (401, code)


def test_websocket_through_anycorn(pki, pki_files, anycorn):
    url = anycorn.replace("https://", "wss://")
    body = websocket_first_json(url + "/ws", pki_files.client_context(pki.payments))
    assert body["principal"] == PAYMENTS
    assert body["source"] == "tls"
    assert (
        websocket_rejection_status(url + "/ws/payments", pki_files.client_context(pki.reports))
        == 403
    )
