"""The middleware in process: every stage wired together, real certificates, no sockets."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from asgi_mtls import (
    CertificateValidator,
    HeaderSource,
    MTLSMiddleware,
    TLSExtensionSource,
    TrustedProxies,
)
from asgi_mtls.testing import IssuedCertificate, nginx_escaped_header, simulate_connection
from tests.apps import PAYMENTS, starlette_app
from tests.asgi import drive_websocket, get, reason


def stack(
    pki, cert: IssuedCertificate | None = None, *, peer: str | None = "127.0.0.1", **options: Any
):
    options.setdefault("trust", pki.root.certificate)
    if not isinstance(options["trust"], CertificateValidator):
        options.setdefault("intermediates", [pki.intermediate.certificate])
    middleware = MTLSMiddleware(starlette_app(), **options)
    return middleware, simulate_connection(middleware, cert, peer=peer)


@pytest.mark.anyio
async def test_identity_from_tls_extension(pki):
    _, app = stack(pki, pki.payments)
    response = await get(app, "/whoami")
    assert response.status_code == 200
    assert response.json()["principal"] == PAYMENTS
    assert response.json()["fingerprint"] == pki.payments.fingerprint_sha256
    assert response.json()["source"] == "tls"


@pytest.mark.anyio
async def test_authorization_outcomes(pki):
    _, payments_app = stack(pki, pki.payments)
    _, reports_app = stack(pki, pki.reports)
    _, anonymous = stack(pki, None)
    assert (await get(payments_app, "/payments")).json() == {"paid_by": PAYMENTS}
    forbidden = await get(reports_app, "/payments")
    assert forbidden.status_code == 403 and reason(forbidden) == "forbidden"
    assert (await get(reports_app, "/reports")).status_code == 200
    assert (await get(payments_app, "/reports")).status_code == 403
    missing = await get(anonymous, "/payments")
    assert missing.status_code == 401 and reason(missing) == "missing"
    assert (await get(anonymous, "/public")).json() == {"ok": True, "user": None}


@pytest.mark.anyio
async def test_starlette_user_and_requires(pki):
    _, app = stack(pki, pki.cn_only)
    assert (await get(app, "/starlette-requires")).json() == {"user": "legacy-batch"}
    assert (await get(app, "/public")).json()["user"] == "legacy-batch"
    _, anonymous = stack(pki, None)
    assert (await get(anonymous, "/starlette-requires")).status_code == 403


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("untrusted", 401, "untrusted"),
        ("expired", 401, "expired"),
        ("not_yet_valid", 401, "not_yet_valid"),
        ("server_only", 401, "wrong_usage"),
        ("no_eku", 401, "wrong_usage"),
        ("ca_as_client", 401, "wrong_usage"),
    ],
)
async def test_bad_certificates_never_reach_the_app(pki, name, status, code, caplog):
    _, app = stack(pki, getattr(pki, name))
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        for path in ("/public", "/whoami"):  # a bad certificate is refused on public routes too
            response = await get(app, path)
            assert response.status_code == status
            assert reason(response) == code
    assert f"reason={code}" in caplog.text


@pytest.mark.anyio
async def test_nginx_header_from_trusted_proxy(pki):
    _, app = stack(pki, None, peer="10.1.2.3", trusted_proxies=["10.0.0.0/8"])
    header = {
        "x-ssl-client-cert": nginx_escaped_header(pki.payments),
        "x-ssl-client-verify": "SUCCESS",
    }
    response = await get(app, "/whoami", header)
    assert response.status_code == 200
    assert response.json()["source"] == "nginx"
    assert response.json()["fingerprint"] == pki.payments.fingerprint_sha256


@pytest.mark.anyio
async def test_header_from_untrusted_peer_is_rejected(pki, caplog):
    header = {"x-ssl-client-cert": nginx_escaped_header(pki.payments)}
    _, app = stack(pki, None, peer="203.0.113.5", trusted_proxies=["10.0.0.0/8"])
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        response = await get(app, "/public", header)
    assert response.status_code == 400 and reason(response) == "untrusted_proxy"
    assert "untrusted peer 203.0.113.5" in caplog.text
    # No trusted proxies configured at all: the header can never count, so it is not even
    # read (issue #10); a request that needs a certificate is refused as missing, and the
    # log line says which header was ignored and what would make it count.
    _, plain = stack(pki, None, sources=[TLSExtensionSource(), HeaderSource("nginx")])
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        refused = await get(plain, "/whoami", header)
    assert refused.status_code == 401 and reason(refused) == "missing"
    assert "nginx certificate header was ignored" in caplog.text
    assert "trusted_proxies=" in caplog.text
    assert (await get(plain, "/public", header)).json() == {"ok": True, "user": None}


@pytest.mark.anyio
async def test_forwarded_client_address_does_not_count(pki):
    # The server rewrote scope["client"] from X-Forwarded-For (uvicorn's proxy headers);
    # the recorded transport peer is what decides.
    header = {"x-ssl-client-cert": nginx_escaped_header(pki.payments)}
    _, app = stack(pki, None, peer="203.0.113.5", trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    # httpx's ASGITransport reports client 127.0.0.1: trusted if it were believed.
    assert reason(await get(app, "/whoami", header)) == "untrusted_proxy"


@pytest.mark.anyio
async def test_unknown_transport_peer_fails_closed(pki):
    header = {"x-ssl-client-cert": nginx_escaped_header(pki.payments)}
    _, app = stack(pki, None, peer=None, trusted_proxies=["127.0.0.1"])
    response = await get(app, "/whoami", header)
    assert reason(response) == "untrusted_proxy"
    # Opting into scope["client"] (a server that does not rewrite it) makes it count.
    _, opted = stack(pki, None, peer=None, trusted_proxies=["127.0.0.1"], trust_scope_client=True)
    assert (await get(opted, "/whoami", header)).json()["principal"] == PAYMENTS


@pytest.mark.anyio
async def test_ignore_untrusted_headers_option(pki):
    header = {"x-ssl-client-cert": nginx_escaped_header(pki.payments)}
    _, app = stack(
        pki, None, peer="203.0.113.5", trusted_proxies=["10.0.0.0/8"], on_untrusted_header="ignore"
    )
    assert (await get(app, "/public", header)).json() == {"ok": True, "user": None}
    assert reason(await get(app, "/whoami", header)) == "missing"


@pytest.mark.anyio
async def test_two_sources_at_once_are_rejected(pki):
    header = {"x-ssl-client-cert": nginx_escaped_header(pki.payments)}
    _, app = stack(pki, pki.payments, peer="127.0.0.1", trusted_proxies=["127.0.0.1"])
    response = await get(app, "/whoami", header)
    assert response.status_code == 400 and reason(response) == "conflicting_sources"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ([("x-ssl-client-cert", "garbage")], "malformed"),
        ([("x-ssl-client-cert", "%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE")], "malformed"),
        ([("x-ssl-client-cert", "A" * 40000)], "too_large"),
        ([("x-ssl-client-cert", "x"), ("x-ssl-client-cert", "y")], "duplicate_header"),
        ([("x-ssl-client-verify", "FAILED:certificate revoked")], "proxy_verify_failed"),
    ],
)
async def test_malformed_header_inputs(pki, headers, code):
    _, app = stack(pki, None, trusted_proxies=["127.0.0.1"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/public", headers=headers)
    assert 400 <= response.status_code < 500
    assert reason(response) == code


@pytest.mark.anyio
async def test_truncated_pem_in_tls_extension(pki):
    middleware = MTLSMiddleware(starlette_app(), trust=pki.root.certificate)

    async def truncated(scope, receive, send):
        tls = {"client_cert_chain": [pki.cn_only.pem[:200]]}
        await middleware({**scope, "extensions": {"tls": tls}}, receive, send)

    response = await get(truncated, "/public")
    assert response.status_code == 400 and reason(response) == "malformed"


@pytest.mark.anyio
async def test_require_certificate_everywhere_with_exempt_paths(pki):
    _, anonymous = stack(pki, None, require_certificate=True, exempt_paths=["/health", "/public*"])
    assert (await get(anonymous, "/health")).status_code == 200
    assert (await get(anonymous, "/public")).status_code == 200
    assert reason(await get(anonymous, "/starlette-requires")) == "missing"
    _, bad = stack(pki, pki.expired, require_certificate=True, exempt_paths=["/health"])
    assert (await get(bad, "/health")).status_code == 200  # exempt: the certificate is not read
    assert reason(await get(bad, "/whoami")) == "expired"


@pytest.mark.anyio
async def test_repeat_clients_hit_the_cache(pki):
    middleware, app = stack(pki, pki.payments)
    for _ in range(5):
        assert (await get(app, "/whoami")).status_code == 200
    assert middleware.resolver.misses == 1
    middleware, bad = stack(pki, pki.untrusted)
    for _ in range(3):
        assert reason(await get(bad, "/whoami")) == "untrusted"
    assert middleware.resolver.misses == 1


@pytest.mark.anyio
async def test_cache_entries_do_not_outlive_the_certificate(pki):
    clock_now = [pki.payments.certificate.not_valid_after_utc.timestamp() - 10]
    middleware, app = stack(pki, pki.payments, clock=lambda: clock_now[0])
    # The validator reads real time; the cache bound comes from notAfter.
    assert (await get(app, "/whoami")).status_code == 200
    cache = middleware.resolver.cache
    key, (_, expires_at, _) = next(iter(cache._accepted.entries.items()))
    assert expires_at <= pki.payments.certificate.not_valid_after_utc.timestamp()
    assert cache.get(key) is not None
    clock_now[0] += 11
    assert cache.get(key) is None


@pytest.mark.anyio
async def test_validator_faults_fail_closed(pki, caplog):
    class Broken(CertificateValidator):
        def validate(self, *args, **kwargs):
            raise RuntimeError("boom")

    _, app = stack(pki, pki.payments, trust=Broken(pki.root.certificate))
    with caplog.at_level(logging.ERROR, logger="asgi_mtls"):
        response = await get(app, "/whoami")
    assert response.status_code == 401 and reason(response) == "validation_error"
    assert "boom" not in response.text
    assert "validation failed unexpectedly" in caplog.text


@pytest.mark.anyio
async def test_scope_is_copied_not_mutated(pki):
    seen: dict[str, Any] = {}

    async def inner(scope, receive, send):
        seen.update(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = MTLSMiddleware(
        inner, trust=pki.root.certificate, intermediates=[pki.intermediate.certificate]
    )
    original: dict[str, Any] = {}

    async def outer(scope, receive, send):
        original.update(scope)
        await middleware(scope, receive, send)

    await get(simulate_connection(outer, pki.payments), "/")
    assert "user" in seen and "asgi_mtls.identity" in seen
    assert "user" not in original and "asgi_mtls.identity" not in original


@pytest.mark.anyio
async def test_lifespan_passes_through(pki):
    calls = []

    async def inner(scope, receive, send):
        calls.append(scope)

    middleware = MTLSMiddleware(inner, trust=pki.root.certificate)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await middleware(scope, None, None)
    assert calls == [scope] and calls[0] is scope


@pytest.mark.anyio
async def test_websocket_carries_the_identity(pki):
    _, app = stack(pki, pki.payments)
    sent = await drive_websocket(app, "/ws/payments", http_response_extension=True)
    assert sent[0] == {"type": "websocket.accept", "subprotocol": None, "headers": []}
    assert json.loads(sent[1]["text"]) == {"paid_by": PAYMENTS}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("cert", "status", "code"),
    [("untrusted", 401, "untrusted"), ("reports", 403, "forbidden"), (None, 401, "missing")],
)
async def test_websocket_denied_before_accept(pki, cert, status, code):
    _, app = stack(pki, getattr(pki, cert) if cert else None)
    sent = await drive_websocket(app, "/ws/payments", http_response_extension=False)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": code}]
    sent = await drive_websocket(app, "/ws/payments", http_response_extension=True)
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == status
    assert json.loads(sent[1]["body"])["reason"] == code


def test_configuration_errors(pki):
    with pytest.raises(ValueError, match="on_untrusted_header"):
        MTLSMiddleware(starlette_app(), trust=pki.root.certificate, on_untrusted_header="allow")
    with pytest.raises(ValueError, match="unique"):
        MTLSMiddleware(
            starlette_app(),
            trust=pki.root.certificate,
            sources=[TLSExtensionSource(), TLSExtensionSource()],
        )
    with pytest.raises(ValueError, match="at least one"):
        MTLSMiddleware(starlette_app(), trust=pki.root.certificate, sources=[])
    with pytest.raises(ValueError, match="trusted proxy entry"):
        MTLSMiddleware(starlette_app(), trust=pki.root.certificate, trusted_proxies=["*"])
    with pytest.raises(ValueError, match="intermediates"):
        MTLSMiddleware(
            starlette_app(),
            trust=CertificateValidator(pki.root.certificate),
            intermediates=[pki.intermediate.certificate],
        )


@pytest.mark.anyio
async def test_require_client_without_middleware_is_a_loud_error():
    with pytest.raises(RuntimeError, match="MTLSMiddleware"):
        await get(starlette_app(), "/whoami")


@pytest.mark.anyio
async def test_log_lines_cannot_be_forged_through_the_path(pki, caplog):
    _, app = stack(pki, pki.untrusted)
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        await get(app, "/public%0Aclient certificate accepted: principal=admin")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "\n" not in lines[0]
    assert "\\n" in lines[0]
    assert "peer=127.0.0.1" in lines[0]


@pytest.mark.anyio
async def test_log_says_when_the_peer_is_unknown(pki, caplog):
    _, app = stack(pki, None, peer=None, trusted_proxies=["127.0.0.1"])
    with caplog.at_level(logging.WARNING, logger="asgi_mtls"):
        await get(app, "/whoami", {"x-ssl-client-cert": nginx_escaped_header(pki.payments)})
    assert "peer=unknown" in caplog.text
    assert "unknown transport peer" in caplog.text


@pytest.mark.anyio
async def test_a_source_can_have_its_own_trusted_proxies(pki):
    source = HeaderSource("nginx")
    source.trusted_proxies = TrustedProxies(["10.9.0.0/16"])  # type: ignore[attr-defined]
    header = {"x-ssl-client-cert": nginx_escaped_header(pki.payments)}
    for peer, expected in (("10.9.1.1", 200), ("10.1.1.1", 400)):
        _, app = stack(pki, None, peer=peer, trusted_proxies=["10.0.0.0/8"], sources=[source])
        assert (await get(app, "/whoami", header)).status_code == expected
