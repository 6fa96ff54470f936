"""Revocation through the whole product: real uvicorn terminating TLS, the middleware with a
validator that checks CRLs, and a CRL endpoint on 127.0.0.1.

The handshake (uvicorn) does not check revocation; the middleware does.  Cache invalidation
on a generation change needs the middleware's wiring; here the validator-level contract is
checked (see tests/test_revocation.py for the generation tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from asgi_mtls import CertificateValidator, MTLSMiddleware
from asgi_mtls.testing import RevocationServer
from asgi_mtls.validation.revocation import RevocationChecker
from tests.apps import starlette_app

from .conftest import PKIFiles
from .test_uvicorn_mtls import serve_tls

pytestmark = pytest.mark.e2e


@contextmanager
def serve(validator: CertificateValidator, pki_files: PKIFiles) -> Iterator[str]:
    with serve_tls(None, pki_files, MTLSMiddleware(starlette_app(), trust=validator)) as url:
        yield url


def get(pki_files: PKIFiles, url: str, cert) -> httpx.Response:
    with httpx.Client(verify=pki_files.client_context(cert), timeout=10) as http:
        return http.get(url + "/whoami")


@pytest.fixture
def crl_server(pki) -> Iterator[tuple[RevocationServer, str]]:
    with RevocationServer() as server:
        yield server, server.serve_crl("/clients.crl", pki.intermediate)


def make_validator(pki, **options) -> tuple[CertificateValidator, RevocationChecker]:
    checker = RevocationChecker(crl_scope="leaf", **options)
    validator = CertificateValidator(
        pki.root.certificate, intermediates=[pki.intermediate.certificate], revocation=checker
    )
    return validator, checker


@pytest.mark.timeout(60)
def test_revoked_client_is_refused_over_real_tls(pki, pki_files, crl_server):
    server, crl_url = crl_server
    good = pki.intermediate.issue_client(
        spiffe_id="spiffe://bank.example/e2e-good", crl_urls=[crl_url]
    )
    bad = pki.intermediate.issue_client(
        spiffe_id="spiffe://bank.example/e2e-bad", crl_urls=[crl_url]
    )
    pki.intermediate.revoke(bad)
    validator, checker = make_validator(pki, crl="hard-fail")
    asyncio.run(checker.prefetch([good.certificate, pki.intermediate.certificate]))
    with serve(validator, pki_files) as url:
        accepted = get(pki_files, url, good)
        refused = get(pki_files, url, bad)
    assert accepted.status_code == 200
    assert accepted.json()["principal"] == "spiffe://bank.example/e2e-good"
    assert refused.status_code == 401
    assert refused.json()["reason"] == "revoked"
    assert server.requests == [("GET", "/clients.crl")]  # fetched once, at startup


@pytest.mark.timeout(60)
def test_hard_fail_before_the_crl_is_known(pki, pki_files, crl_server):
    _, crl_url = crl_server
    client = pki.intermediate.issue_client(
        spiffe_id="spiffe://bank.example/e2e-new", crl_urls=[crl_url]
    )
    validator, _ = make_validator(pki, crl="hard-fail")
    with serve(validator, pki_files) as url:
        first = get(pki_files, url, client)
        # The request did not wait for the CRL; the fetch it triggered runs on the server's
        # event loop and lands shortly after.
        for _ in range(500):
            if validator.generation > 0:
                break
            time.sleep(0.01)
    assert first.status_code == 401
    assert first.json()["reason"] == "revocation_unknown"
    assert validator.generation > 0
    assert validator.validate(client.certificate).revocation == "good"


@pytest.mark.timeout(60)
def test_hanging_crl_endpoint_does_not_hold_requests(pki, pki_files, crl_server):
    server, crl_url = crl_server
    server.hang = True
    client = pki.intermediate.issue_client(
        spiffe_id="spiffe://bank.example/e2e-soft", crl_urls=[crl_url]
    )
    # A 30 s fetch budget, far longer than the client's patience: requests must not wait.
    validator, checker = make_validator(pki, crl="soft-fail", timeout=30.0)
    with (
        serve(validator, pki_files) as url,
        httpx.Client(verify=pki_files.client_context(client), timeout=5) as http,
    ):
        responses = [http.get(url + "/whoami") for _ in range(3)]
        deadline = time.monotonic() + 10
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        responses.append(http.get(url + "/whoami"))  # while the fetch hangs
        assert len(server.requests) == 1  # one fetch in flight, not one per request
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert checker.fetch_attempts == 1
