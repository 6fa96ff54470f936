"""Proxies trusted by their certificate, not their address: real nginx and Envoy talk mutual
TLS to real uvicorn, which verifies their certificate in the handshake; the middleware believes
the header only when that certificate is the configured one (issue #12).

The app trusts no address at all (``trusted_proxies=[ProxyCertificate(...)]``), so everything
here arrives from 127.0.0.1 and only the certificate of the connection decides.  The proxy's
certificate is issued by the same root as the clients' (as in a mesh), for clientAuth: it
would validate as a client, and must still never become the request's identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from asgi_mtls import MTLSMiddleware
from asgi_mtls.sources import ProxyCertificate, TLSExtensionSource
from asgi_mtls.testing import IssuedCertificate
from tests.apps import PAYMENTS, starlette_app

from .conftest import PKIFiles
from .proxies import client, free_port, spec, start_proxy
from .test_uvicorn_mtls import serve_tls

pytestmark = pytest.mark.e2e

PROXY_ID = "spiffe://mesh.example/ns/ingress/sa/proxy"
OTHER_ID = "spiffe://mesh.example/ns/ingress/sa/other"


@dataclass(frozen=True)
class Hop:
    url: str  # the proxy
    app: str  # the app, straight: https://localhost:PORT (uvicorn asks for a certificate)
    proxy_cert: IssuedCertificate
    format: str


def _trusting(pki, format: str, trusted: ProxyCertificate):
    return MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        sources=[TLSExtensionSource(), spec(format).source()],
        trusted_proxies=[trusted],
    )


@pytest.fixture(scope="module")
def proxy_cert(pki) -> IssuedCertificate:
    return pki.root.issue_client("ingress proxy", spiffe_id=PROXY_ID)


@pytest.fixture(scope="module", params=["nginx", "envoy"])
def hop(request, pki, pki_files: PKIFiles, proxy_cert, tmp_path_factory) -> Iterator[Hop]:
    proxy = spec(request.param)
    work = tmp_path_factory.mktemp(request.param + "-hop")
    cert, key = proxy_cert.write(work, "proxy")
    app = _trusting(pki, proxy.format, ProxyCertificate(spiffe_id=PROXY_ID))
    with serve_tls(pki, pki_files, app) as app_url:
        upstream = app_url.replace("https://localhost", "https://127.0.0.1")
        settings = proxy.settings(
            pki_files,
            work,
            free_port(),
            upstream,
            upstream_cert=str(cert),
            upstream_key=str(key),
            upstream_ca=str(pki_files.root_ca),
        )
        with start_proxy(proxy, settings, work) as url:
            yield Hop(url, app_url, proxy_cert, proxy.format)


def _get(pki_files: PKIFiles, url: str, cert=None, headers=None) -> httpx.Response:
    with client(pki_files, cert) as http:
        return http.get(url + "/whoami", headers=headers)


def test_the_client_arrives_through_a_proxy_known_by_its_certificate(pki, pki_files, hop):
    body = _get(pki_files, hop.url, pki.payments).json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    assert body["source"] == hop.format  # from the header, not the hop's tls extension


def test_the_proxys_certificate_is_never_the_identity(pki, pki_files, hop):
    # Through the proxy without a client certificate: anonymous, not the proxy.
    anonymous = _get(pki_files, hop.url)
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "missing"
    # Straight to the app with the proxy's certificate and no header: still nobody.
    straight = _get(pki_files, hop.app, hop.proxy_cert)
    assert straight.status_code == 401
    assert straight.json()["reason"] == "missing"


@pytest.mark.parametrize("presented", ["none", "client", "other-spiffe-id"])
def test_a_header_over_another_connection_is_refused(pki, pki_files, hop, presented):
    """Straight to the app from the proxy's own address, with the header the proxy would
    write: over a connection without a certificate, with a client's, or with a certificate
    from the same CA that names another SPIFFE ID, it is 400 untrusted_proxy."""
    cert = {
        "none": None,
        "client": pki.reports,
        "other-spiffe-id": pki.root.issue_client("other", spiffe_id=OTHER_ID),
    }[presented]
    response = _get(pki_files, hop.app, cert, spec(hop.format).sent(pki.payments))
    assert response.status_code == 400
    assert response.json()["reason"] == "untrusted_proxy"


def test_with_the_proxys_certificate_the_header_is_believed(pki, pki_files, hop):
    """Certificates are public, the key is not: whoever holds the proxy's key is the proxy.
    (What keeps the key on the proxy is the operator's business; this shows the rule.)"""
    body = _get(pki_files, hop.app, hop.proxy_cert, spec(hop.format).sent(pki.payments)).json()
    assert body["principal"] == PAYMENTS


def test_a_fingerprint_names_one_certificate(pki, pki_files, proxy_cert, tmp_path):
    """``ProxyCertificate(sha256=...)``: the proxy's own certificate is believed, another
    certificate with the very same SPIFFE ID is not."""
    app = _trusting(pki, "nginx", ProxyCertificate(sha256=proxy_cert.fingerprint_sha256))
    twin = pki.root.issue_client("ingress proxy", spiffe_id=PROXY_ID)
    forged = spec("nginx").sent(pki.payments)
    with serve_tls(pki, pki_files, app) as url:
        assert _get(pki_files, url, proxy_cert, forged).json()["principal"] == PAYMENTS
        refused = _get(pki_files, url, twin, forged)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "untrusted_proxy"
