"""pyvoy, for real (issue #12): it verifies the client certificate in the handshake (Envoy,
BoringSSL) and reports only its subject name, ``client_cert_name``, never the certificate.

Real pyvoy 1.3 (from its own virtualenv: ``conftest.pyvoy_binary``) serves
``tests/e2e/pyvoy_app.py`` over TLS with a required client certificate, HTTP/1.1 and HTTP/2;
httpx and websockets present real certificates from the test PKI.  These tests pin down what
pyvoy puts in the scope (``docs/deploy/pyvoy.md`` quotes them), that an app that did not opt in
refuses its clients (``untrusted``), and that ``ServerVerifiedNameSource`` turns the name into
the identity the certificate's subject gives, hostile subjects included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from asgi_mtls.errors import CertificateRejected
from asgi_mtls.identity import build_identity, resolve_principal_strategy
from asgi_mtls.sources.headers.envoy_subject import envoy_subject
from tests.test_server_verified_name import _subjects, name_identity

from .clients import https_client as client
from .clients import websocket_first_json, websocket_rejection_status
from .conftest import PKIFiles, pyvoy_binary
from .proxies import free_port, run_foreground

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def _serve(pki_files: PKIFiles, workdir: Path, *extra: str) -> Iterator[str]:
    port = free_port()
    argv = [
        pyvoy_binary(),
        "tests.e2e.pyvoy_app:app",
        "--address",
        "127.0.0.1",
        "--port",
        str(port),
        "--tls-cert",
        str(pki_files.server_cert),
        "--tls-key",
        str(pki_files.server_key),
        "--tls-ca-cert",
        str(pki_files.client_ca_bundle),
        "--tls-disable-http3",
        "--websockets",
        *extra,
    ]
    env = {"ASGI_MTLS_PYVOY_TRUST": str(pki_files.root_ca), "PYTHONPATH": str(ROOT)}
    with run_foreground("pyvoy", argv, workdir, port, env=env, cwd=ROOT, timeout=30):
        yield f"https://localhost:{port}"


@pytest.fixture(scope="module")
def pyvoy(pki, pki_files, tmp_path_factory) -> Iterator[str]:
    with _serve(pki_files, tmp_path_factory.mktemp("pyvoy")) as url:
        yield url


@pytest.mark.parametrize("http2", [False, True], ids=["HTTP/1.1", "HTTP/2"])
def test_what_pyvoy_puts_in_the_scope(pki, pki_files, pyvoy, http2):
    with client(pki_files, pki.cn_only, http2=http2) as http:
        seen = http.get(pyvoy + "/_scope/").json()
        forwarded = http.get(pyvoy + "/_scope/", headers={"x-forwarded-for": "10.9.8.7"}).json()
    # The subject as Envoy prints it (BoringSSL's RFC 2253 form), and no certificate.
    assert seen["tls"] == {"tls_version": 0x0304, "client_cert_name": "CN=legacy-batch,O=Bank"}
    assert seen["tls"]["client_cert_name"] == envoy_subject(pki.cn_only.certificate)
    assert seen["http_version"] == ("2" if http2 else "1.1")
    assert seen["extension_keys"] == ["http.response.trailers", "tls"]  # no asgi_mtls.peer
    assert seen["client"][0] == "127.0.0.1"
    assert seen["server"] == ["127.0.0.1", int(pyvoy.rsplit(":", 1)[1])]
    # scope["client"] comes from X-Forwarded-For, whoever sends it: never trust_scope_client.
    assert forwarded["client"] == ["10.9.8.7", 0]


def test_the_handshake_requires_a_certificate_from_the_ca(pki, pki_files, pyvoy):
    for cert in (None, pki.untrusted, pki.expired):
        with client(pki_files, cert) as http, pytest.raises(httpx.TransportError):
            http.get(pyvoy + "/_scope/")


def test_without_the_opt_in_pyvoy_clients_are_refused(pki, pki_files, pyvoy):
    with client(pki_files, pki.cn_only) as http:
        for path in ("/default/public", "/default/whoami"):
            response = http.get(pyvoy + path)
            assert (response.status_code, response.json()["reason"]) == (401, "untrusted")


@pytest.mark.parametrize("http2", [False, True], ids=["HTTP/1.1", "HTTP/2"])
def test_with_the_opt_in_the_name_is_the_identity(pki, pki_files, pyvoy, http2):
    with client(pki_files, pki.cn_only, http2=http2) as http:
        response = http.get(pyvoy + "/optin/whoami")
        spiffe_route = http.get(pyvoy + "/optin/payments")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "principal": "legacy-batch",
        "kind": "cn",
        "subject": pki.cn_only.certificate.subject.rfc4514_string(),
        "attributes": [["O", "Bank"], ["CN", "legacy-batch"]],
        "source": "client_cert_name",
        "verified_by": "server",
        "has_certificate": False,
    }
    assert (spiffe_route.status_code, spiffe_route.json()["reason"]) == (403, "forbidden")


def _expected(certificate: x509.Certificate) -> dict[str, Any] | str:
    try:
        identity = name_identity(envoy_subject(certificate))
    except CertificateRejected as exc:
        return exc.reason.value
    return {"principal": identity.principal, "subject": identity.subject}


@pytest.mark.parametrize("case", sorted(_subjects()))
def test_hostile_subjects_through_pyvoy(pki, pki_files, pyvoy, case):
    """What pyvoy reports for a certificate with a hostile subject, read by the opt-in: the
    subject the certificate has, or the typed refusal the in-process tests expect."""
    cert = pki.intermediate.issue_client(subject=_subjects()[case])
    with client(pki_files, cert, http2=True) as http:
        seen = http.get(pyvoy + "/_scope/").json()
        response = http.get(pyvoy + "/optin/whoami")
    assert seen["tls"]["client_cert_name"] == envoy_subject(cert.certificate)
    expected = _expected(cert.certificate)
    if isinstance(expected, str):
        assert response.json()["reason"] == expected
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert {key: body[key] for key in expected} == expected
    by_certificate = build_identity(
        (cert.certificate,), source="tls", principal=resolve_principal_strategy("default")
    )
    assert body["subject"] == by_certificate.subject
    assert body["attributes"] == [list(pair) for pair in by_certificate.subject_attributes]


def test_a_websocket_through_pyvoy(pki, pki_files, pyvoy):
    url = pyvoy.replace("https://", "wss://")
    body = websocket_first_json(url + "/optin/ws", pki_files.client_context(pki.cn_only))
    assert (body["principal"], body["verified_by"]) == ("legacy-batch", "server")
    refused = websocket_rejection_status(url + "/default/ws", pki_files.client_context(pki.cn_only))
    # 401 untrusted, closed before accept: pyvoy offers no websocket.http.response, so the
    # middleware closes with 1008 and pyvoy answers the handshake 403.
    assert refused == 403


def test_an_optional_certificate_not_given_is_anonymous(pki, pki_files, tmp_path):
    """``--no-tls-require-client-certificate``: pyvoy writes ``client_cert_name: ""`` for a
    client without one, which is anonymous, with or without the opt-in."""
    with _serve(pki_files, tmp_path, "--no-tls-require-client-certificate") as url:
        with client(pki_files, None) as http:
            seen = http.get(url + "/_scope/").json()
            public = http.get(url + "/optin/public")
            missing = http.get(url + "/optin/whoami")
        assert seen["tls"] == {"tls_version": 0x0304, "client_cert_name": ""}
        assert public.json() == {"ok": True, "user": None}
        assert (missing.status_code, missing.json()["reason"]) == (401, "missing")


@pytest.mark.parametrize(("name", "cn"), [("no_eku", "no-eku"), ("ca_as_client", "sneaky-ca")])
def test_what_the_handshake_lets_through_a_name_cannot_refuse(pki, pki_files, pyvoy, name, cn):
    """The weaker guarantee, measured: BoringSSL accepts a certificate without the clientAuth
    EKU and a CA certificate as a client; with the certificate the middleware refuses both
    (``wrong_usage``), with only their names it cannot tell."""
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(pyvoy + "/optin/whoami")
    assert response.status_code == 200, response.text
    assert (response.json()["principal"], response.json()["verified_by"]) == (cn, "server")
