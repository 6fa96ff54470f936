"""require_client(...) as a FastAPI dependency, in process."""

from __future__ import annotations

import inspect
import json
import threading

import pytest
from fastapi import Depends, FastAPI

from asgi_mtls import PUBLIC, ClientIdentity, MTLSMiddleware, require_client
from asgi_mtls.testing import simulate_connection
from tests.apps import PAYMENTS, fastapi_app
from tests.asgi import drive_websocket, get, reason


def served(pki, cert):
    app = fastapi_app()
    app.add_middleware(
        MTLSMiddleware, trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    return simulate_connection(app, cert)


@pytest.mark.parametrize(
    "declarable", [require_client(PAYMENTS), PUBLIC], ids=["requirement", "public"]
)
def test_fastapi_reads_a_coroutine_of_the_connection(declarable):
    # What FastAPI unwraps a requirement to, on every request (issue #10): a plain coroutine
    # function of the HTTP connection, reached in one step and unwrapping no further.
    unwrapped = inspect.unwrap(declarable)
    assert inspect.isfunction(unwrapped)
    assert inspect.iscoroutinefunction(unwrapped)
    assert not hasattr(unwrapped, "__wrapped__")
    assert list(inspect.signature(declarable).parameters) == ["connection"]


@pytest.mark.anyio
async def test_dependency_returns_the_identity(pki):
    response = await get(served(pki, pki.payments), "/whoami")
    assert response.status_code == 200
    assert response.json()["principal"] == PAYMENTS
    assert (await get(served(pki, pki.payments), "/payments")).json() == {"paid_by": PAYMENTS}


@pytest.mark.anyio
async def test_dependency_denials_use_the_reason_codes(pki):
    forbidden = await get(served(pki, pki.reports), "/payments")
    assert forbidden.status_code == 403
    assert reason(forbidden) == "forbidden"
    missing = await get(served(pki, None), "/payments")
    assert missing.status_code == 401
    assert reason(missing) == "missing"
    assert (await get(served(pki, None), "/public")).json() == {"ok": True}


@pytest.mark.anyio
async def test_dependency_is_awaited_on_the_event_loop(pki):
    # FastAPI runs sync dependencies in a thread pool; ours must be awaited in the loop thread.
    threads: list[threading.Thread] = []

    def record(identity) -> bool:
        threads.append(threading.current_thread())
        return True

    app = FastAPI()

    @app.get("/x")
    async def endpoint(client: ClientIdentity = Depends(require_client(predicate=record))) -> str:
        return client.principal

    app.add_middleware(MTLSMiddleware, trust=pki.root.certificate)
    response = await get(simulate_connection(app, pki.cn_only), "/x")
    assert response.json() == "legacy-batch"
    assert threads == [threading.current_thread()]


@pytest.mark.anyio
async def test_websocket_dependency(pki):
    sent = await drive_websocket(
        served(pki, pki.payments), "/ws/payments", http_response_extension=True
    )
    assert sent[0]["type"] == "websocket.accept"
    assert json.loads(sent[1]["text"]) == {"paid_by": PAYMENTS}
    sent = await drive_websocket(
        served(pki, pki.reports), "/ws/payments", http_response_extension=False
    )
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "forbidden"}]
    sent = await drive_websocket(served(pki, None), "/ws/payments", http_response_extension=True)
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 401


@pytest.mark.anyio
async def test_middleware_wrapping_fastapi_from_outside_still_answers_4xx(pki):
    # Outside ServerErrorMiddleware: the dependency's CertificateRejected is an HTTPException,
    # so FastAPI's own handler answers it, never a 500.
    app = MTLSMiddleware(
        fastapi_app(), trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    forbidden = await get(simulate_connection(app, pki.reports), "/payments")
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": "this client is not allowed to call this resource"}
    ok = await get(simulate_connection(app, pki.payments), "/payments")
    assert ok.json() == {"paid_by": PAYMENTS}


@pytest.mark.anyio
async def test_rejection_handler_registered_by_hand(pki):
    from asgi_mtls import CertificateRejected
    from asgi_mtls.authorization import rejection_handler

    inner = fastapi_app()
    inner.add_exception_handler(CertificateRejected, rejection_handler)
    app = MTLSMiddleware(
        inner, trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    forbidden = await get(simulate_connection(app, pki.reports), "/payments")
    assert forbidden.status_code == 403
    assert reason(forbidden) == "forbidden"


@pytest.mark.anyio
async def test_failing_predicate_denies(pki, caplog):
    def broken(identity) -> bool:
        raise KeyError("no such attribute")

    app = FastAPI()

    @app.get("/x")
    async def endpoint(client: ClientIdentity = Depends(require_client(predicate=broken))) -> str:
        return client.principal

    app.add_middleware(MTLSMiddleware, trust=pki.root.certificate)
    with caplog.at_level("WARNING", logger="asgi_mtls"):
        response = await get(simulate_connection(app, pki.cn_only), "/x")
    assert response.status_code == 403
    assert reason(response) == "forbidden"
    assert "predicate" in caplog.text


@pytest.mark.anyio
async def test_handler_registered_through_other_middleware(pki):
    from starlette.middleware.gzip import GZipMiddleware

    app = fastapi_app()
    app.add_middleware(GZipMiddleware)  # ends up between MTLSMiddleware and the router
    app.add_middleware(
        MTLSMiddleware, trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    forbidden = await get(simulate_connection(app, pki.reports), "/payments")
    assert forbidden.status_code == 403
    assert reason(forbidden) == "forbidden"
