"""Issue #13: the identity hook runs once per certificate, off the hit path, and fails closed."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from asgi_mtls import ClientIdentity, MTLSMiddleware, RejectionReason
from asgi_mtls.events import IdentityHookFailed, Rejected
from asgi_mtls.hooks import IdentityHook, PendingIdentity
from asgi_mtls.testing import CertificateAuthority, simulate_connection
from tests.apps import PAYMENTS, starlette_app
from tests.asgi import get, reason
from tests.test_events import Recorder

pytestmark = pytest.mark.anyio


class Directory:
    """An async look-up of accounts, counting its calls."""

    def __init__(self, **behaviour: Any) -> None:
        self.calls: list[str] = []
        self.behaviour = behaviour

    async def __call__(self, identity: ClientIdentity) -> ClientIdentity | None:
        self.calls.append(identity.principal)
        await asyncio.sleep(self.behaviour.get("delay", 0))
        if "raise" in self.behaviour:
            raise self.behaviour["raise"]
        if "answer" in self.behaviour:
            return self.behaviour["answer"](identity)
        if identity.principal in self.behaviour.get("disabled", ()):
            return None
        return identity.with_extra(tenant="acme", account=42)


def build(pki, cert, hook: Any, **options: Any):
    options.setdefault("trust", pki.root.certificate)
    options.setdefault("intermediates", [pki.intermediate.certificate])
    middleware = MTLSMiddleware(starlette_app(), on_identity=hook, **options)
    return middleware, simulate_connection(middleware, cert)


async def test_enriched_once_per_certificate_and_served_from_the_cache(pki):
    directory = Directory()
    middleware, app = build(pki, pki.payments, directory)
    for _ in range(5):
        response = await get(app, "/payments")
        assert response.json() == {"paid_by": PAYMENTS}
    identity = middleware.resolver.cache.get(("tls", _raw(middleware)))
    assert directory.calls == [PAYMENTS]  # once, never per request
    assert isinstance(identity, ClientIdentity)
    assert dict(identity.extra) == {"tenant": "acme", "account": 42}


def _raw(middleware: MTLSMiddleware) -> Any:
    (key,) = middleware.resolver.cache._accepted.entries  # the one certificate's key
    return key[1]


async def test_the_endpoint_sees_the_hooks_answer(pki):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from asgi_mtls import get_client_identity

    async def tenant(request: Request) -> JSONResponse:
        identity = get_client_identity(request)
        assert identity is not None
        return JSONResponse(dict(identity.extra))

    app = MTLSMiddleware(
        Starlette(routes=[Route("/tenant", tenant)]),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        on_identity=Directory(),
    )
    response = await get(simulate_connection(app, pki.payments), "/tenant")
    assert response.json() == {"tenant": "acme", "account": 42}


async def test_concurrent_first_requests_share_one_call(pki):
    directory = Directory(delay=0.05)
    _, app = build(pki, pki.payments, directory)
    responses = await asyncio.gather(*(get(app, "/payments") for _ in range(10)))
    assert {r.status_code for r in responses} == {200}
    assert directory.calls == [PAYMENTS]


async def test_none_refuses_the_client_and_the_refusal_is_cached(pki):
    directory = Directory(disabled={PAYMENTS})
    recorder = Recorder(hits=False)
    _, app = build(pki, pki.payments, directory, listeners=[recorder])
    for _ in range(3):
        response = await get(app, "/public")  # on every route but the exempt ones
        assert response.status_code == 403 and reason(response) == "identity_refused"
    assert directory.calls == [PAYMENTS]
    assert [e.reason for e in recorder.of(Rejected)] == [RejectionReason.IDENTITY_REFUSED] * 3
    assert {e.source for e in recorder.of(Rejected)} == {"tls"}


@pytest.mark.parametrize(
    ("behaviour", "code", "timed_out"),
    [
        ({"raise": ConnectionError("database down")}, "identity_hook_error", False),
        ({"raise": KeyError("x")}, "identity_hook_error", False),
        ({"delay": 1.0}, "identity_hook_timeout", True),
        ({"answer": lambda identity: "tenant-acme"}, "identity_hook_error", False),
        ({"answer": lambda identity: {"principal": "x"}}, "identity_hook_error", False),
    ],
    ids=["outage", "bug", "timeout", "a string", "a dict"],
)
async def test_failures_fail_closed_and_are_not_cached(pki, behaviour, code, timed_out):
    directory = Directory(**behaviour)
    recorder = Recorder(hits=False)
    hook = IdentityHook(directory, timeout=0.1)
    _, app = build(pki, pki.payments, hook, listeners=[recorder])
    for attempt in range(1, 3):
        response = await get(app, "/public")
        assert response.status_code == 503 and reason(response) == code
        assert len(directory.calls) == attempt  # asked again: a failure is not remembered
    failures = recorder.of(IdentityHookFailed)
    assert len(failures) == 2 and {f.timed_out for f in failures} == {timed_out}


async def test_an_identity_of_another_certificate_is_refused(pki):
    other = CertificateAuthority("Elsewhere").issue_client(spiffe_id=PAYMENTS)

    def swap(identity: ClientIdentity) -> ClientIdentity:
        from cryptography import x509

        certificate = x509.load_pem_x509_certificate(other.pem.encode())
        return dataclasses.replace(identity, certificate=certificate)

    _, app = build(pki, pki.payments, Directory(answer=swap))
    assert reason(await get(app, "/payments")) == "identity_hook_error"


async def test_hits_never_call_the_hook_and_the_ttl_bounds_the_answer(pki):
    now = [1_000_000.0]
    directory = Directory()
    hook = IdentityHook(directory, ttl=300)
    _, app = build(pki, pki.payments, hook, clock=lambda: now[0])
    for _ in range(3):
        assert (await get(app, "/payments")).status_code == 200
    assert len(directory.calls) == 1
    now[0] += 301
    assert (await get(app, "/payments")).status_code == 200
    assert len(directory.calls) == 2  # the answer expired: asked again


async def test_a_trust_change_during_the_hook_is_not_cached(pki, tmp_path):
    trust = pki.root.write(tmp_path, "trust")
    reloaded = []

    async def hook(identity: ClientIdentity) -> ClientIdentity:
        if not reloaded:
            trust.write_text(pki.root.pem + CertificateAuthority("Another").pem)
            reloaded.append(middleware.validator.reload())
        return identity

    middleware, app = build(pki, pki.payments, hook, trust=str(trust))
    assert (await get(app, "/payments")).status_code == 200  # served with its answer
    assert reloaded == [True]
    assert len(middleware.resolver.cache) == 0  # but not kept under the new trust


async def test_a_pending_identity_outside_the_middleware_is_a_refusal(pki):
    middleware, _ = build(pki, pki.payments, Directory())
    scope = {"type": "http", "path": "/", "headers": []}
    scope = {**scope, "extensions": {"tls": _tls(pki)}}
    with pytest.raises(PendingIdentity) as caught:
        middleware.resolver.resolve(scope)
    assert caught.value.reason is RejectionReason.IDENTITY_HOOK_ERROR
    assert caught.value.status_code == 503


def _tls(pki) -> dict[str, Any]:
    from asgi_mtls.testing import asgi_tls_scope_extension

    return asgi_tls_scope_extension(pki.payments)


async def test_the_hook_must_be_async():
    def blocking(identity: ClientIdentity) -> ClientIdentity:
        return identity

    with pytest.raises(TypeError, match="async"):
        IdentityHook(blocking)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        IdentityHook(Directory(), timeout=0)


async def test_a_failure_is_not_remembered_by_the_connection_memo(pki):
    """A server that keeps a per-connection memo (CONNECTION_EXTENSION): a hook failure must
    not stay in it; the next request of the same connection asks the hook again."""
    from asgi_mtls.sources.tls import CONNECTION_EXTENSION

    outcomes = [ConnectionError("database down"), None]

    async def flaky(identity: ClientIdentity) -> ClientIdentity:
        error = outcomes.pop(0)
        if error is not None:
            raise error
        return identity

    middleware, _ = build(pki, None, flaky)
    memo: dict[Any, Any] = {}  # one keep-alive connection

    async def connection(scope: Any, receive: Any, send: Any) -> None:
        scope["extensions"] = {**scope.get("extensions", {}), CONNECTION_EXTENSION: memo}
        await middleware(scope, receive, send)

    app = simulate_connection(connection, pki.payments)
    assert reason(await get(app, "/payments")) == "identity_hook_error"
    assert middleware.resolver not in memo  # forgotten
    assert (await get(app, "/payments")).json() == {"paid_by": PAYMENTS}
    assert outcomes == [] and middleware.resolver in memo


async def test_an_inner_middleware_with_a_hook_under_an_outer_one(pki):
    """Two MTLSMiddleware stacked (an outer one for the whole app, an inner one with its own
    hook): the outer one's identity in the scope does not stop the inner hook from running
    once and the request from being served with its answer."""
    directory = Directory()
    inner = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        on_identity=directory,
    )
    outer = MTLSMiddleware(
        inner, trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    app = simulate_connection(outer, pki.payments)
    for _ in range(3):
        response = await get(app, "/payments")
        assert response.status_code == 200 and response.json() == {"paid_by": PAYMENTS}
    assert directory.calls == [PAYMENTS]
