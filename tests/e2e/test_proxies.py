"""Every proxy, the same tests: real proxies terminating mutual TLS in front of real uvicorn.

Each proxy runs the configuration ``asgi-mtls proxy-config`` prints
(:func:`asgi_mtls.proxy_configs.render`), in front of the test app behind ``MTLSMiddleware``
with that proxy's ``HeaderSource`` believed from 127.0.0.1 only, on uvicorn with the
``asgi_mtls.uvicorn`` classes (so the real TCP peer is known, with X-Forwarded-For trusted from
anyone).  The end client connects from 127.0.0.2.  The specs are in ``proxies.SPECS``; what is
specific to one proxy (its lenient modes, its known failure modes, Envoy's XFCC) is in that
proxy's own module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asgi_mtls.cli import main
from asgi_mtls.proxy_configs import ProxySettings, file_name
from tests.apps import PAYMENTS

from .clients import websocket_first_json, websocket_rejection_status
from .conftest import PKIFiles
from .proxies import (
    END_CLIENT,
    SPECS,
    ProxySpec,
    assert_refused_in_handshake,
    cli_arguments,
    client,
    forged_request,
    free_port,
    proxy_app,
    serve_upstream,
    start_proxy,
)

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Running:
    spec: ProxySpec
    url: str  # the proxy, https://localhost:PORT
    upstream: str  # the app, straight (http://127.0.0.1:PORT)
    settings: ProxySettings
    config: Path  # the configuration file the proxy runs


@pytest.fixture(scope="module", params=SPECS, ids=lambda spec: spec.id)
def proxy(request, pki, pki_files: PKIFiles, tmp_path_factory) -> Iterator[Running]:
    spec: ProxySpec = request.param
    work = tmp_path_factory.mktemp(spec.id)
    with serve_upstream(proxy_app(pki, spec.source())) as upstream:
        settings = spec.settings(pki_files, work, free_port(), upstream)
        with start_proxy(spec, settings, work) as url:
            yield Running(spec, url, upstream, settings, work / file_name(spec.proxy))


def test_proxy_config_prints_the_configuration_the_tests_run(proxy, capsys):
    """``asgi-mtls proxy-config`` with the options for these settings prints, byte for byte,
    the file this proxy is running."""
    assert main(["proxy-config", proxy.spec.proxy, *cli_arguments(proxy.settings)]) == 0
    assert capsys.readouterr().out == proxy.config.read_text()


def test_identity_arrives_through_the_proxy(pki, pki_files, proxy):
    with client(pki_files, pki.payments) as http:
        response = http.get(proxy.url + "/whoami")
    assert response.status_code == 200
    body = response.json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    assert body["source"] == proxy.spec.format
    # uvicorn took the end client's address from X-Forwarded-For; the proxy's is 127.0.0.1.
    assert body["client_host"] == END_CLIENT


def test_cn_only_client_through_the_proxy(pki, pki_files, proxy):
    with client(pki_files, pki.cn_only) as http:
        body = http.get(proxy.url + "/whoami").json()
    assert body["principal"] == "legacy-batch"
    assert body["fingerprint"] == pki.cn_only.fingerprint_sha256


def _sent(pki_files: PKIFiles, url: str, cert=None, headers=None) -> dict[str, str]:
    """The headers the app received, read before the middleware, lowercase names."""
    with client(pki_files, cert) as http:
        pairs = http.get(url + "/_proxy-headers", headers=headers).json()
    return {name.lower(): value.strip() for name, value in pairs}


def test_the_headers_the_proxy_sends(pki, pki_files, proxy):
    """The exact values each proxy writes, compared with asgi_mtls.testing's encoders (the
    chain is what the client sent after its leaf, here the intermediate); and what it sends
    without a client certificate, even when the client sent the headers itself."""
    expected = {
        name.lower(): value.strip() for name, value in proxy.spec.sent(pki.payments).items()
    }
    sent = _sent(pki_files, proxy.url, pki.payments)
    assert {name: sent.get(name) for name in expected} == expected
    forged = proxy.spec.sent(pki.payments)
    anonymous = _sent(pki_files, proxy.url, headers=forged)
    assert {name: anonymous.get(name) for name in expected} == {
        name: proxy.spec.sent_without.get(name) for name in expected
    }


def test_no_certificate_through_the_proxy(pki_files, proxy):
    with client(pki_files) as http:
        assert http.get(proxy.url + "/public").json() == {"ok": True, "user": None}
        missing = http.get(proxy.url + "/whoami")
    assert missing.status_code == 401
    assert missing.json()["reason"] == "missing"


def assert_refused_by_the_proxy(pki_files: PKIFiles, spec: ProxySpec, cert, url: str) -> None:
    """A TLS alert, or nginx's own 400 page (it verifies after the handshake)."""
    if spec.handshake_refusal == "alert":
        assert_refused_in_handshake(pki_files, cert, url + "/whoami")
        return
    with client(pki_files, cert) as http:
        response = http.get(url + "/whoami")
    assert response.status_code == 400
    assert "certificate" in response.text.lower()
    assert PAYMENTS not in response.text


@pytest.mark.parametrize("name", ["untrusted", "expired", "server_only"])
def test_the_proxy_refuses_bad_certificates_in_the_handshake(pki, pki_files, proxy, name):
    """A certificate from another CA, an expired one, or a serverAuth-only one never reaches
    the app."""
    assert_refused_by_the_proxy(pki_files, proxy.spec, getattr(pki, name), proxy.url)


#: The proxies with a mode that forwards certificates they failed to verify
#: (``forward_failed``: nginx and Apache ``optional_no_ca``, HAProxy ``*-ignore-err all``):
#: per certificate, the verdict they forward (a prefix), or ``None`` where the proxy refuses
#: it anyway.  nginx and Apache pass only "unknown issuer" failures on.
LENIENT = {
    "nginx": {"untrusted": "FAILED:", "expired": None, "server_only": None},
    "apache": {"untrusted": "FAILED:", "expired": None, "server_only": None},
    # OpenSSL's X509_V_ERR_* codes: unable to verify the leaf, expired, invalid purpose.
    "haproxy": {"untrusted": "21", "expired": "10", "server_only": "26"},
}


@pytest.fixture(scope="module", params=sorted(LENIENT))
def lenient(request, pki, pki_files: PKIFiles, tmp_path_factory) -> Iterator[Running]:
    spec = next(s for s in SPECS if s.id == request.param)
    work = tmp_path_factory.mktemp(spec.id + "-lenient")
    with serve_upstream(proxy_app(pki, spec.source())) as upstream:
        settings = spec.settings(pki_files, work, free_port(), upstream, forward_failed=True)
        with start_proxy(spec, settings, work) as url:
            yield Running(spec, url, upstream, settings, work / file_name(spec.proxy))


@pytest.mark.parametrize("name", ["untrusted", "expired", "server_only"])
def test_failed_certificates_the_proxy_forwards_are_refused_by_the_app(
    pki, pki_files, lenient, name
):
    """The proxy's verdict only ever adds a reason to refuse: 401 proxy_verify_failed."""
    cert = getattr(pki, name)
    verdict = LENIENT[lenient.spec.id][name]
    if verdict is None:
        assert_refused_by_the_proxy(pki_files, lenient.spec, cert, lenient.url)
        return
    sent = _sent(pki_files, lenient.url, cert)
    assert sent[lenient.spec.source().verify_header or ""].startswith(verdict)
    with client(pki_files, cert) as http:
        response = http.get(lenient.url + "/whoami")
    assert response.status_code == 401
    assert response.json()["reason"] == "proxy_verify_failed"


@pytest.mark.parametrize(
    ("name", "path", "status", "code"),
    [
        ("reports", "/payments", 403, "forbidden"),
        # OpenSSL, BoringSSL and Go accept a client certificate without EKU, and a CA
        # certificate with clientAuth; the app's validator does not.
        ("no_eku", "/public", 401, "wrong_usage"),
        ("ca_as_client", "/public", 401, "wrong_usage"),
    ],
)
def test_app_refusals_through_the_proxy(pki, pki_files, proxy, name, path, status, code):
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(proxy.url + path)
    assert response.status_code == status
    assert response.json()["reason"] == code


@pytest.mark.parametrize("case", [str, str.lower, str.upper], ids=["as-sent", "lower", "upper"])
def test_client_cannot_smuggle_a_certificate_header(pki, pki_files, proxy, case):
    """The client sends the headers the proxy would write for another client's certificate
    (in three capitalisations): without a certificate of its own it stays anonymous, with one
    its own certificate wins."""
    forged = {case(name): value for name, value in proxy.spec.sent(pki.payments).items()}
    with client(pki_files) as http:
        anonymous = http.get(proxy.url + "/whoami", headers=forged)
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "missing"
    with client(pki_files, pki.cn_only) as http:
        body = http.get(proxy.url + "/whoami", headers=forged).json()
    assert body["principal"] == "legacy-batch"


def test_forged_header_straight_to_uvicorn_is_rejected(pki, proxy):
    """The same headers sent to the app directly, claiming (X-Forwarded-For) to come from the
    proxy, with uvicorn trusting X-Forwarded-For from anyone: the real TCP peer decides."""
    response = forged_request(proxy.upstream + "/whoami", proxy.spec.sent(pki.payments))
    assert response.status_code == 400
    assert response.json()["reason"] == "untrusted_proxy"


def test_websocket_through_the_proxy(pki, pki_files, proxy):
    url = proxy.url.replace("https://", "wss://") + "/ws"
    body = websocket_first_json(url, pki_files.client_context(pki.payments))
    assert body["principal"] == PAYMENTS
    assert body["source"] == proxy.spec.format


def test_websocket_denied_through_the_proxy(pki, pki_files, proxy):
    url = proxy.url.replace("https://", "wss://") + "/ws/payments"
    assert websocket_rejection_status(url, pki_files.client_context(pki.reports)) == 403
