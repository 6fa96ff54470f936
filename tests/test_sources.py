from __future__ import annotations

from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from asgi_mtls import CertificateRejected, HeaderSource, RejectionReason, TLSExtensionSource
from asgi_mtls.sources import PresentedCertificate, TransportPeer, TrustedProxies, transport_peer
from asgi_mtls.sources.encoding import pem_certificate_to_der, pem_certificates_to_der
from asgi_mtls.sources.headers.format import decode_url_encoded_leaf
from asgi_mtls.testing import asgi_tls_scope_extension, nginx_escaped_header


def scope_with_headers(*pairs: tuple[str, str]) -> dict[str, object]:
    return {
        "type": "http",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
    }


def rejected(func, *args) -> RejectionReason:
    with pytest.raises(CertificateRejected) as info:
        func(*args)
    return info.value.reason


# --- PEM -------------------------------------------------------------------------------------


def test_pem_round_trip(pki):
    assert pem_certificate_to_der(pki.payments.pem) == pki.payments.der
    both = pki.payments.pem + "\n" + pki.intermediate.pem
    assert pem_certificates_to_der(both) == [
        pki.payments.der,
        pki.intermediate.certificate.public_bytes(Encoding.DER),
    ]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda pem: pem[: len(pem) // 2],  # truncated
        lambda pem: pem.replace("-----END CERTIFICATE-----", ""),
        lambda pem: "junk" + pem,
        lambda pem: pem + "junk",
        lambda pem: pem.replace("CERTIFICATE", "PRIVATE KEY"),
        lambda pem: pem.replace("A", "*", 1),  # not base64
        lambda pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        lambda pem: "",
        lambda pem: pem + pem,  # two certificates where one is expected
    ],
)
def test_malformed_pem(pki, mangle):
    assert rejected(pem_certificate_to_der, mangle(pki.payments.pem)) is RejectionReason.MALFORMED


# --- nginx -----------------------------------------------------------------------------------


def test_nginx_escaped_decodes_to_the_certificate(pki):
    value = nginx_escaped_header(pki.payments)
    assert "%2B" in value or "%2F" in value or "%3D" in value  # the quirks are exercised
    assert decode_url_encoded_leaf(value) == pki.payments.der


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda v: v[: len(v) // 2], RejectionReason.MALFORMED),  # truncated
        (lambda v: quote(v, safe=""), RejectionReason.MALFORMED),  # double-encoded
        (lambda v: "garbage", RejectionReason.MALFORMED),
        (lambda v: v + "x" * 40000, RejectionReason.TOO_LARGE),
        (lambda v: "%FF%FE", RejectionReason.MALFORMED),  # not ASCII after decoding
    ],
)
def test_nginx_header_bad_values(pki, mangle, reason):
    value = nginx_escaped_header(pki.payments)
    source = HeaderSource("nginx")
    raw = source.find(scope_with_headers(("x-ssl-client-cert", mangle(value))))
    assert raw is not None
    assert rejected(source.decode, raw) is reason


def test_nginx_plus_turned_into_space_is_rejected(pki):
    # unquote_plus would turn '+' into ' '; a PEM body with a space where '+' stood must fail.
    pem = pki.payments.pem
    body = pem.split("\n", 1)[1]
    assert "+" in body or "/" in body
    spaced = quote(pem.replace("+", " ").replace("/", " "), safe="")
    source = HeaderSource("nginx")
    raw = source.find(scope_with_headers(("x-ssl-client-cert", spaced)))
    assert rejected(source.decode, raw) is RejectionReason.MALFORMED


def test_nginx_source_find_and_verdicts(pki):
    source = HeaderSource("nginx")
    value = nginx_escaped_header(pki.payments)
    assert source.find(scope_with_headers(("host", "x"))) is None
    ok = source.decode(
        source.find(
            scope_with_headers(("X-SSL-Client-Cert", value), ("x-ssl-client-verify", "SUCCESS"))
        )
    )
    assert ok is not None and ok.leaf == pki.payments.der and ok.source == "nginx"
    # Verdict NONE without a certificate: anonymous.
    assert source.decode(source.find(scope_with_headers(("x-ssl-client-verify", "NONE")))) is None
    for verdict in ("FAILED:certificate has expired", "NONE", "GENEROUS"):
        raw = source.find(
            scope_with_headers(("x-ssl-client-cert", value), ("x-ssl-client-verify", verdict))
        )
        assert rejected(source.decode, raw) is RejectionReason.PROXY_VERIFY_FAILED
    raw = source.find(scope_with_headers(("x-ssl-client-verify", "FAILED:unable to get issuer")))
    assert rejected(source.decode, raw) is RejectionReason.PROXY_VERIFY_FAILED


def test_nginx_duplicates_and_empty(pki):
    source = HeaderSource("nginx")
    value = nginx_escaped_header(pki.payments)
    raw = source.find(
        scope_with_headers(("x-ssl-client-cert", value), ("x-ssl-client-cert", value))
    )
    assert rejected(source.decode, raw) is RejectionReason.DUPLICATE_HEADER
    raw = source.find(
        scope_with_headers(("x-ssl-client-verify", "SUCCESS"), ("x-ssl-client-verify", "SUCCESS"))
    )
    assert rejected(source.decode, raw) is RejectionReason.DUPLICATE_HEADER
    raw = source.find(scope_with_headers(("x-ssl-client-cert", "   ")))
    assert rejected(source.decode, raw) is RejectionReason.MALFORMED


@given(st.text(max_size=300))
def test_nginx_decoder_never_raises_anything_else(value):
    source = HeaderSource("nginx")
    raw = source.find(
        scope_with_headers(("x-ssl-client-cert", value.encode("utf-8").decode("latin-1")))
    )
    try:
        result = source.decode(raw)
    except CertificateRejected as exc:
        # One header, far under the size limit, no verdict: unreadable is all it can be.
        assert exc.reason is RejectionReason.MALFORMED
    else:
        assert isinstance(result, PresentedCertificate)


@given(st.binary(max_size=300))
def test_pem_decoder_never_raises_anything_else(data):
    try:
        blocks = pem_certificates_to_der(data.decode("latin-1"))
    except CertificateRejected as exc:
        assert exc.reason is RejectionReason.MALFORMED
    else:
        assert blocks
        assert all(block.startswith(b"\x30") for block in blocks)


# --- ASGI tls extension ----------------------------------------------------------------------


def test_tls_source(pki):
    source = TLSExtensionSource()
    scope = {"extensions": {"tls": asgi_tls_scope_extension(pki.payments)}}
    presented = source.decode(source.find(scope))
    assert presented.leaf == pki.payments.der
    assert presented.chain == (pki.intermediate.certificate.public_bytes(Encoding.DER),)
    assert source.find({"extensions": {"tls": asgi_tls_scope_extension(None)}}) is None
    assert source.find({"extensions": {}}) is None
    assert source.find({}) is None


@pytest.mark.parametrize(
    ("tls", "reason"),
    [
        ({"client_cert_chain": "not a list"}, RejectionReason.MALFORMED),
        ({"client_cert_chain": [b"bytes"]}, RejectionReason.MALFORMED),
        ({"client_cert_chain": ["garbage"]}, RejectionReason.MALFORMED),
        ({"client_cert_chain": [], "client_cert_error": "bad cert"}, RejectionReason.UNTRUSTED),
    ],
)
def test_tls_source_bad_values(tls, reason):
    source = TLSExtensionSource()
    raw = source.find({"extensions": {"tls": tls}})
    assert raw is not None
    assert rejected(source.decode, raw) is reason


def test_tls_source_chain_limit(pki):
    source = TLSExtensionSource(max_chain_length=2)
    tls = {"client_cert_chain": [pki.payments.pem] + [pki.intermediate.pem] * 2}
    assert (
        rejected(source.decode, source.find({"extensions": {"tls": tls}}))
        is RejectionReason.TOO_LARGE
    )


# --- trusted proxies -------------------------------------------------------------------------


def test_trusted_proxies_ipv4_ipv6_and_mapped():
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"])
    inet = lambda host: TransportPeer("inet", host)  # noqa: E731
    assert proxies.is_trusted(inet("10.1.2.3"))
    assert proxies.is_trusted(inet("192.0.2.7"))
    assert not proxies.is_trusted(inet("192.0.2.8"))
    assert proxies.is_trusted(inet("2001:db8::5"))
    assert proxies.is_trusted(inet("::1"))
    assert proxies.is_trusted(inet("::ffff:10.0.0.1"))  # IPv4-mapped IPv6
    assert not proxies.is_trusted(inet("11.0.0.1"))
    assert not proxies.is_trusted(inet("not-an-ip"))
    assert not proxies.is_trusted(inet("testclient"))
    assert not proxies.is_trusted(None)
    assert not proxies.is_trusted(TransportPeer("unix"))
    assert TrustedProxies(["unix:"]).is_trusted(TransportPeer("unix"))


@pytest.mark.parametrize("entry", ["*", "", "10.0.0.1/8", "example.com", "300.0.0.1"])
def test_trusted_proxies_refuse_bad_entries(entry):
    with pytest.raises(ValueError, match="trusted proxy entry"):
        TrustedProxies([entry])


def test_transport_peer_prefers_the_recorded_peer():
    scope = {
        "client": ("10.0.0.1", 1),
        "extensions": {"asgi_mtls.peer": {"family": "inet", "host": "203.0.113.9", "port": 2}},
    }
    assert transport_peer(scope, trust_scope_client=True) == TransportPeer("inet", "203.0.113.9")
    assert transport_peer({"client": ("10.0.0.1", 1)}, trust_scope_client=False) is None
    assert transport_peer({"client": ("10.0.0.1", 1)}, trust_scope_client=True) == TransportPeer(
        "inet", "10.0.0.1"
    )
    unix = {"extensions": {"asgi_mtls.peer": {"family": "unix", "host": None, "port": None}}}
    assert transport_peer(unix, trust_scope_client=False) == TransportPeer("unix")
    broken = {"client": ("10.0.0.1", 1), "extensions": {"asgi_mtls.peer": {"family": "inet"}}}
    assert transport_peer(broken, trust_scope_client=True) is None
