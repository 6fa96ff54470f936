"""Proxies trusted by their certificate (``ProxyCertificate``): the entry, the match, and what
the middleware does with the connection's certificate.  Real nginx and Envoy over real mutual
TLS: ``tests/e2e/test_proxy_certificates.py``."""

from __future__ import annotations

import ssl

import pytest
from cryptography import x509

from asgi_mtls import MTLSMiddleware
from asgi_mtls.sources import HeaderSource, ProxyCertificate, TLSExtensionSource, TrustedProxies
from asgi_mtls.sources.proxies import connection_certificate
from asgi_mtls.testing import nginx_escaped_header, simulate_connection
from tests.apps import PAYMENTS, starlette_app
from tests.asgi import get, reason

PROXY_ID = "spiffe://mesh.example/ns/ingress/sa/nginx"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"spiffe_id": PROXY_ID, "sha256": "0" * 64}, "exactly one"),
        ({"spiffe_id": "https://mesh.example/nginx"}, "spiffe://DOMAIN/PATH"),
        ({"spiffe_id": "spiffe://mesh.example"}, "spiffe://DOMAIN/PATH"),
        ({"spiffe_id": "spiffe:///nginx"}, "spiffe://DOMAIN/PATH"),
        ({"spiffe_id": " " + PROXY_ID}, "spiffe://DOMAIN/PATH"),
        ({"sha256": "0" * 63}, "64 hex"),
        ({"sha256": "g" * 64}, "64 hex"),
    ],
)
def test_entries_that_name_nothing_fail_at_startup(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProxyCertificate(**kwargs)


def test_a_fingerprint_is_read_in_any_usual_spelling(pki):
    digest = pki.payments.fingerprint_sha256
    colons = ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()
    assert ProxyCertificate(sha256=colons).matches(pki.payments.der)
    assert not ProxyCertificate(sha256=colons).matches(pki.reports.der)


def _uri(value: str) -> x509.GeneralName:
    return x509.UniformResourceIdentifier._init_without_validation(value)


@pytest.mark.parametrize(
    "names",
    [
        {"uris": [PROXY_ID + "/"]},
        {"uris": [PROXY_ID.upper()]},
        {"uris": [PROXY_ID[:-1]]},
        {"uris": [PROXY_ID + "x"]},
        {"uris": [PROXY_ID, "spiffe://mesh.example/other"]},  # an SVID has one URI SAN
        {"uris": ["spiffe://mesh.example/other", PROXY_ID]},
        {"sans": [_uri(PROXY_ID + "\x00")]},
        {"dns_names": ["mesh.example"], "common_name": PROXY_ID},  # the text, not a URI SAN
        {"sans": [x509.RFC822Name._init_without_validation(PROXY_ID)]},
        {},
    ],
    ids=lambda names: repr(names)[:60],
)
def test_only_the_exact_single_uri_san_matches(pki, names):
    cert = pki.root.issue(**names)
    assert not ProxyCertificate(spiffe_id=PROXY_ID).matches(cert.der)
    assert ProxyCertificate(spiffe_id=PROXY_ID).matches(pki.root.issue(uris=[PROXY_ID]).der)


def test_garbage_never_matches():
    assert not ProxyCertificate(spiffe_id=PROXY_ID).matches(b"\x30\x03garbage")


def _scope(tls: object) -> dict[str, object]:
    return {"extensions": {"tls": tls}}


def test_connection_certificate_reads_every_shape_of_the_tls_extension(pki):
    pem, der = pki.payments.pem, pki.payments.der
    assert connection_certificate(_scope({"client_cert_chain": [pem]})) == pem
    assert connection_certificate(_scope({"client_cert_chain": (pem,)})) == pem
    assert connection_certificate(_scope({"client_cert_chain": [der]})) == der
    assert connection_certificate(_scope({"client_cert_chain": [], "client_cert": der})) == der
    for tls in (
        {"client_cert_chain": [pem], "client_cert_error": "bad"},  # the server said no
        {"client_cert_chain": []},
        {"client_cert_name": "CN=proxy"},  # a name is not a certificate
        {"client_cert_chain": pem},  # a string, not a list
        "not a mapping",
    ):
        assert connection_certificate(_scope(tls)) is None
    assert connection_certificate({}) is None


def test_trusted_proxies_by_certificate_and_by_address(pki):
    proxy = pki.root.issue_client("proxy", spiffe_id=PROXY_ID)
    proxies = TrustedProxies(["10.0.0.0/8", ProxyCertificate(spiffe_id=PROXY_ID)])
    assert proxies and proxies.certificates == (ProxyCertificate(spiffe_id=PROXY_ID),)
    assert proxies.trusts_certificate(_scope({"client_cert_chain": [proxy.pem]}))
    assert not proxies.trusts_certificate(_scope({"client_cert_chain": [pki.payments.pem]}))
    assert not proxies.trusts_certificate(_scope({"client_cert_chain": ["not PEM"]}))
    assert "certificate spiffe://" in str(proxies.certificates[0])
    assert TrustedProxies([ProxyCertificate(sha256="0" * 64)])  # certificates alone count


# --- through the middleware --------------------------------------------------------------------


def stack(pki, connection_cert, *, peer="203.0.113.9", **options):
    options.setdefault("trusted_proxies", [ProxyCertificate(spiffe_id=PROXY_ID)])
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        sources=[TLSExtensionSource(), HeaderSource("nginx")],
        **options,
    )
    return simulate_connection(middleware, connection_cert, peer=peer)


@pytest.fixture(scope="module")
def proxy(pki):
    # From the clients' root, for clientAuth: it would validate as a client.
    return pki.root.issue_client("proxy", spiffe_id=PROXY_ID)


HEADER = "x-ssl-client-cert"


@pytest.mark.anyio
async def test_the_hop_certificate_admits_the_header_and_is_never_the_identity(pki, proxy):
    app = stack(pki, proxy)
    forwarded = await get(app, "/whoami", {HEADER: nginx_escaped_header(pki.payments)})
    assert forwarded.json()["principal"] == PAYMENTS  # no conflicting_sources
    assert forwarded.json()["source"] == "nginx"
    anonymous = await get(app, "/whoami")
    assert (anonymous.status_code, reason(anonymous)) == (401, "missing")


@pytest.mark.anyio
@pytest.mark.parametrize("connection", ["none", "client", "twin-by-fingerprint"])
async def test_a_header_over_another_connection_is_untrusted_proxy(pki, proxy, connection):
    options = {}
    cert = {"none": None, "client": pki.reports, "twin-by-fingerprint": proxy}[connection]
    if connection == "twin-by-fingerprint":  # same SPIFFE ID, another certificate
        other = pki.root.issue_client("proxy", spiffe_id=PROXY_ID)
        options["trusted_proxies"] = [ProxyCertificate(sha256=other.fingerprint_sha256)]
    app = stack(pki, cert, **options)
    response = await get(app, "/whoami", {HEADER: nginx_escaped_header(pki.payments)})
    assert (response.status_code, reason(response)) == (400, "untrusted_proxy")


@pytest.mark.anyio
async def test_a_source_with_its_own_proxies_hides_the_hop_too(pki, proxy):
    """The hop is hidden from the tls source whichever trusted-proxy set names it."""
    app = simulate_connection(
        MTLSMiddleware(
            starlette_app(),
            trust=pki.root.certificate,
            intermediates=[pki.intermediate.certificate],
            sources=[
                TLSExtensionSource(),
                HeaderSource("nginx", trusted_proxies=[ProxyCertificate(spiffe_id=PROXY_ID)]),
            ],
        ),
        proxy,
        peer="203.0.113.9",
    )
    anonymous = await get(app, "/whoami")
    assert reason(anonymous) == "missing"
    body = (await get(app, "/whoami", {HEADER: nginx_escaped_header(pki.payments)})).json()
    assert body["principal"] == PAYMENTS


@pytest.mark.anyio
async def test_without_certificate_entries_the_tls_extension_is_the_client(pki, proxy):
    """Nothing changes for apps that trust by address: the connection's certificate is the
    client's, as before (here the proxy certificate validates as a client)."""
    app = stack(pki, proxy, trusted_proxies=["10.0.0.0/8"])
    assert (await get(app, "/whoami")).json()["principal"] == PROXY_ID


def test_pem_and_der_of_the_hop_give_the_same_decision(pki, proxy):
    proxies = TrustedProxies([ProxyCertificate(spiffe_id=PROXY_ID)])
    der = ssl.PEM_cert_to_DER_cert(proxy.pem)
    assert proxies.trusts_certificate(_scope({"client_cert_chain": [der]}))
    assert proxies.trusts_certificate(_scope({"client_cert_chain": [], "client_cert": der}))
