"""Every proxy header format: real certificates in, the right DER out; every malformed,
duplicated, oversized or contradicted value refused with its reason.

The proxies themselves do not run here: the header values are built by
``asgi_mtls.testing`` exactly as each proxy documents them (HAProxy, Caddy, Apache and nginx
also run for real in tests/e2e).
"""

from __future__ import annotations

import base64
import importlib
import pkgutil
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from asgi_mtls import CertificateRejected, HeaderSource, MTLSMiddleware, RejectionReason
from asgi_mtls.sources import (
    HEADER_FORMATS,
    CertificateSource,
    PresentedCertificate,
    TLSExtensionSource,
    TrustedProxies,
    header_format,
)
from asgi_mtls.sources import headers as headers_package
from asgi_mtls.sources.headers import Verdict
from asgi_mtls.testing import (
    HEADER_ENCODERS,
    IssuedCertificate,
    alb_header,
    alb_leaf_header,
    apache_header,
    base64_der_header,
    encode_certificate_headers,
    haproxy_chain_header,
    nginx_escaped_header,
    nginx_pem_header,
    simulate_connection,
    traefik_header,
    xfcc_header,
)
from tests.apps import PAYMENTS, starlette_app
from tests.asgi import get, reason

R = RejectionReason

#: Formats that carry the chain the client sent (the others forward the leaf only).
WITH_CHAIN = {"envoy", "rfc9440", "haproxy", "traefik", "aws-alb"}

DEFAULT_HEADERS = {
    "nginx": ("x-ssl-client-cert", None, "x-ssl-client-verify"),
    "nginx-pem": ("x-ssl-client-cert", None, "x-ssl-client-verify"),
    "envoy": ("x-forwarded-client-cert", None, None),
    "rfc9440": ("client-cert", "client-cert-chain", None),
    "haproxy": ("x-ssl-client-der", "x-ssl-client-chain-der", "x-ssl-client-verify-code"),
    "traefik": ("x-forwarded-tls-client-cert", None, None),
    "caddy": ("x-client-cert-der", None, None),
    "apache": ("x-ssl-client-cert", None, "x-ssl-client-verify"),
    "aws-alb": ("x-amzn-mtls-clientcert", None, None),
    "aws-alb-verify": ("x-amzn-mtls-clientcert-leaf", None, None),
    "cloudfront": ("cloudfront-viewer-cert-pem", None, None),
    "azure": ("x-arr-clientcert", None, None),
}


def scope_with(*pairs: tuple[str, str]) -> dict[str, object]:
    return {
        "type": "http",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
    }


def decode(source: HeaderSource, *pairs: tuple[str, str]) -> PresentedCertificate | None:
    raw = source.find(scope_with(*pairs))
    assert raw is not None
    return source.decode(raw)


def rejected(source: HeaderSource, *pairs: tuple[str, str]) -> RejectionReason:
    with pytest.raises(CertificateRejected) as info:
        decode(source, *pairs)
    return info.value.reason


def der(cert) -> bytes:
    return cert.public_bytes(Encoding.DER)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- the registry ----------------------------------------------------------------------------


def test_every_format_is_registered_with_its_default_headers():
    assert set(HEADER_FORMATS) == set(DEFAULT_HEADERS)
    for name, (header, chain, verify) in DEFAULT_HEADERS.items():
        source = HeaderSource(name)
        assert (source.header, source.chain_header, source.verify_header) == (header, chain, verify)
        assert source.name == name
        assert source.requires_trusted_proxy is True
        assert source.trusted_proxies is None


def test_every_family_module_is_in_the_registry():
    """A format family's module (``asgi_mtls/sources/headers/<family>.py``) lists its entries
    in ``FORMATS``; the registry holds each of them once, under a name no other uses."""
    entries = [
        spec
        for module in pkgutil.iter_modules(headers_package.__path__)
        for spec in getattr(
            importlib.import_module(f"{headers_package.__name__}.{module.name}"), "FORMATS", ()
        )
    ]
    assert sorted(spec.name for spec in entries) == sorted(HEADER_FORMATS)
    assert all(header_format(spec.name) is spec for spec in entries)


@pytest.mark.parametrize("name", HEADER_FORMATS)
def test_every_format_has_an_encoder_shaped_like_its_decoder(name):
    """The encoders of ``asgi_mtls.testing`` are keyed by the decoders' registry: one per
    format, writing a chain header and a verdict exactly where the format has those headers."""
    assert set(HEADER_ENCODERS) == set(HEADER_FORMATS)
    spec, encoder = header_format(name), HEADER_ENCODERS[name]
    assert (encoder.chain is not None) is (spec.chain_header is not None)
    assert (encoder.verified is not None) is (spec.verify_header is not None)
    if encoder.verified is not None:
        assert spec.verdict is not None and spec.verdict(encoder.verified) is Verdict.OK


def test_unknown_format_and_bad_options():
    with pytest.raises(ValueError, match="unknown header format"):
        HeaderSource("squid")
    with pytest.raises(ValueError, match="no chain header"):
        HeaderSource("envoy", chain_header="x-chain")
    with pytest.raises(ValueError, match="no verdict header"):
        HeaderSource("caddy", verify_header="x-verify")
    with pytest.raises(ValueError, match="envoy format only"):
        HeaderSource("nginx", element=1)
    with pytest.raises(ValueError, match="envoy format only"):
        HeaderSource("haproxy", elements=2)
    with pytest.raises(ValueError, match="must differ"):
        HeaderSource("haproxy", header="x-a", chain_header="x-a")
    with pytest.raises(ValueError, match="HTTP header name"):
        HeaderSource("azure", header="bad header")
    with pytest.raises(ValueError, match="non-empty"):
        HeaderSource("azure", name="")
    with pytest.raises(TypeError):
        HeaderSource("envoy", element="last")  # type: ignore[arg-type]


def test_per_source_trusted_proxies_and_name_are_stored():
    source = HeaderSource("envoy", trusted_proxies=["10.0.0.0/8", "::1"], name="mesh")
    assert isinstance(source.trusted_proxies, TrustedProxies)
    assert source.trusted_proxies.networks and source.name == "mesh"
    proxies = TrustedProxies(["192.0.2.7"])
    assert HeaderSource("azure", trusted_proxies=proxies).trusted_proxies is proxies
    nginx = HeaderSource("nginx", trusted_proxies=["127.0.0.1"])
    assert isinstance(nginx, HeaderSource) and nginx.trusted_proxies is not None
    assert nginx.name == "nginx" and nginx.header == "x-ssl-client-cert"


@pytest.mark.anyio
async def test_the_middleware_uses_a_sources_own_trusted_proxies(pki):
    source = HeaderSource("azure", trusted_proxies=["10.9.0.0/16"])
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        intermediates=[pki.intermediate.certificate],
        trusted_proxies=["10.0.0.0/8"],
        sources=[source],
    )
    headers = encode_certificate_headers("azure", pki.payments)
    for peer, status in (("10.9.1.1", 200), ("10.1.1.1", 400)):
        response = await get(simulate_connection(middleware, peer=peer), "/whoami", headers)
        assert response.status_code == status


# --- round trips: real certificates, every format ----------------------------------------------


@pytest.mark.parametrize("name", HEADER_FORMATS)
def test_round_trip_with_an_intermediate(pki, name):
    """Every format through its encoder (``HEADER_ENCODERS``) and back through its decoder
    (the registry, driven by ``HeaderSource``): the same leaf, and the chain where the
    format carries one."""
    source = HeaderSource(name)
    headers = encode_certificate_headers(name, pki.payments)
    presented = decode(source, *headers.items())
    assert presented is not None
    assert presented.leaf == pki.payments.der
    assert presented.source == name
    expected = (der(pki.intermediate.certificate),) if name in WITH_CHAIN else ()
    assert presented.chain == expected


@pytest.mark.parametrize("name", HEADER_FORMATS)
def test_round_trip_without_a_chain(pki, name):
    source = HeaderSource(name)
    presented = decode(source, *encode_certificate_headers(name, pki.cn_only).items())
    assert presented is not None
    assert (presented.leaf, presented.chain) == (pki.cn_only.der, ())


@pytest.mark.parametrize("name", HEADER_FORMATS)
def test_header_names_can_be_overridden(pki, name):
    _, chain, verify = DEFAULT_HEADERS[name]
    options = {"header": "X-Custom-Cert"}
    if chain:
        options["chain_header"] = "X-Custom-Chain"
    if verify:
        options["verify_header"] = "X-Custom-Verify"
    source = HeaderSource(name, **options)
    assert source.header == "x-custom-cert"
    assert source.find(scope_with(*encode_certificate_headers(name, pki.payments).items())) is None
    headers = encode_certificate_headers(
        name,
        pki.payments,
        header="X-CUSTOM-CERT",
        chain_header="x-custom-chain",
        verify_header="X-Custom-Verify",
    )
    presented = decode(source, *headers.items())
    assert presented is not None and presented.leaf == pki.payments.der
    if name in WITH_CHAIN:
        assert presented.chain == (der(pki.intermediate.certificate),)


@pytest.mark.anyio
@pytest.mark.parametrize("name", HEADER_FORMATS)
async def test_through_the_middleware(pki, name):
    """Chain-carrying formats let the app build the path without configured intermediates;
    leaf-only formats need them (a header chain is a hint, never an anchor)."""
    headers = encode_certificate_headers(name, pki.payments)
    for intermediates in (None, [pki.intermediate.certificate]):
        middleware = MTLSMiddleware(
            starlette_app(),
            trust=pki.root.certificate,
            intermediates=intermediates,
            trusted_proxies=["127.0.0.1"],
            sources=[HeaderSource(name)],
        )
        response = await get(simulate_connection(middleware), "/whoami", headers)
        if intermediates or name in WITH_CHAIN:
            assert response.status_code == 200
            assert response.json()["principal"] == PAYMENTS
            assert response.json()["source"] == name
        else:
            assert reason(response) == "untrusted"
    elsewhere = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        trusted_proxies=["10.0.0.1"],
        sources=[HeaderSource(name)],
    )
    response = await get(simulate_connection(elsewhere), "/whoami", headers)
    assert reason(response) == "untrusted_proxy"
    # No proxy trusted at all: the header is never read, the request is anonymous.
    nobody = MTLSMiddleware(
        starlette_app(), trust=pki.root.certificate, sources=[HeaderSource(name)]
    )
    assert reason(await get(simulate_connection(nobody), "/whoami", headers)) == "missing"


@pytest.mark.anyio
async def test_a_header_chain_is_never_an_anchor(pki):
    # The attacker root rides along in the chain: the leaf still has no path to our root.
    headers = encode_certificate_headers(
        "rfc9440", pki.untrusted, chain=[pki.other_root.certificate]
    )
    middleware = MTLSMiddleware(
        starlette_app(),
        trust=pki.root.certificate,
        trusted_proxies=["127.0.0.1"],
        sources=[HeaderSource("rfc9440")],
    )
    assert reason(await get(simulate_connection(middleware), "/whoami", headers)) == "untrusted"


# --- generic rules: size, duplicates, emptiness, chain limits -------------------------------


@pytest.mark.parametrize("name", HEADER_FORMATS)
def test_oversized_values_are_refused_before_parsing(pki, name):
    header = DEFAULT_HEADERS[name][0]
    assert rejected(HeaderSource(name), (header, "A" * 40000)) is R.TOO_LARGE
    value = encode_certificate_headers(name, pki.payments)[header]
    small = HeaderSource(name, max_header_chars=len(value) - 1)
    assert rejected(small, (header, value)) is R.TOO_LARGE
    assert decode(HeaderSource(name, max_header_chars=len(value)), (header, value)) is not None


@pytest.mark.parametrize("name", HEADER_FORMATS)
def test_duplicate_certificate_headers(pki, name):
    header = DEFAULT_HEADERS[name][0]
    value = encode_certificate_headers(name, pki.payments)[header]
    source = HeaderSource(name)
    assert rejected(source, (header, value), (header.upper(), value)) is R.DUPLICATE_HEADER
    assert rejected(source, (header, value), (header, "")) is R.DUPLICATE_HEADER


@pytest.mark.parametrize("name", ["nginx", "nginx-pem", "apache", "haproxy"])
def test_duplicate_verdict_headers(pki, name):
    headers = encode_certificate_headers(name, pki.payments)
    verify = DEFAULT_HEADERS[name][2]
    pairs = [*headers.items(), (verify, headers[verify])]
    assert rejected(HeaderSource(name), *pairs) is R.DUPLICATE_HEADER


def test_duplicate_chain_headers(pki):
    headers = encode_certificate_headers("haproxy", pki.payments)
    chain = headers["x-ssl-client-chain-der"]
    pairs = [*headers.items(), ("x-ssl-client-chain-der", chain)]
    assert rejected(HeaderSource("haproxy"), *pairs) is R.DUPLICATE_HEADER
    # RFC 9440 section 2.3: Client-Cert-Chain may be split over several lines.
    two = encode_certificate_headers("rfc9440", pki.payments, chain=[pki.intermediate.certificate])
    extra = (
        "client-cert-chain",
        encode_certificate_headers("rfc9440", pki.cn_only, chain=[pki.root.certificate])[
            "client-cert-chain"
        ],
    )
    presented = decode(HeaderSource("rfc9440"), *two.items(), extra)
    assert presented is not None
    assert presented.chain == (der(pki.intermediate.certificate), der(pki.root.certificate))


@pytest.mark.parametrize("name", sorted(set(HEADER_FORMATS) - {"haproxy", "caddy", "rfc9440"}))
@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_empty_certificate_is_malformed(name, value):
    assert rejected(HeaderSource(name), (DEFAULT_HEADERS[name][0], value)) is R.MALFORMED


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("haproxy", ""),  # HAProxy's set-header with an empty sample
        ("caddy", ""),  # Caddy >= 2.7 without a client certificate
        ("caddy", "{http.request.tls.client.certificate_der_base64}"),  # Caddy 2.6
        ("rfc9440", ""),  # Google Cloud's {client_cert_leaf} without a certificate
        ("apache", "(null)"),  # mod_ssl without a certificate
    ],
)
def test_the_proxys_own_spelling_of_no_certificate(name, value):
    assert decode(HeaderSource(name), (DEFAULT_HEADERS[name][0], value)) is None


def test_a_chain_without_a_certificate_is_malformed(pki):
    chain = haproxy_chain_header([pki.intermediate.certificate])
    source = HeaderSource("haproxy")
    assert rejected(source, ("x-ssl-client-chain-der", chain)) is R.MALFORMED
    assert rejected(source, ("x-ssl-client-der", ""), ("x-ssl-client-chain-der", chain)) is (
        R.MALFORMED
    )
    # HAProxy sends an empty chain when the client sent none.
    assert decode(source, ("x-ssl-client-chain-der", "")) is None
    rfc = HeaderSource("rfc9440")
    value = f":{b64(der(pki.intermediate.certificate))}:"
    assert rejected(rfc, ("client-cert-chain", value)) is R.MALFORMED


def test_chain_length_limit(pki):
    headers = encode_certificate_headers(
        "aws-alb", pki.payments, chain=[pki.intermediate.certificate, pki.root.certificate]
    )
    assert rejected(HeaderSource("aws-alb", max_chain_length=1), *headers.items()) is R.TOO_LARGE
    presented = decode(HeaderSource("aws-alb", max_chain_length=2), *headers.items())
    assert presented is not None and len(presented.chain) == 2


def test_raw_values_in_a_foreign_shape_are_malformed():
    source = HeaderSource("azure")
    for raw in [(), ("1",), ((3, b"v"),), ((0, "v"),), ((0,),), ((0, b"v"), None)]:
        with pytest.raises(CertificateRejected) as info:
            source.decode(raw)
        assert info.value.reason is R.MALFORMED


# --- verdicts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nginx", "nginx-pem", "apache"])
def test_mod_ssl_style_verdicts(pki, name):
    source = HeaderSource(name)
    header, _, verify = DEFAULT_HEADERS[name]
    value = encode_certificate_headers(name, pki.payments)[header]
    assert decode(source, (header, value), (verify, "SUCCESS")) is not None
    assert decode(source, (verify, "NONE")) is None  # anonymous
    for verdict in ("NONE", "GENEROUS", "FAILED:certificate has expired", "", "success"):
        assert rejected(source, (header, value), (verify, verdict)) is R.PROXY_VERIFY_FAILED
    assert rejected(source, (verify, "FAILED:unable to get issuer")) is R.PROXY_VERIFY_FAILED
    ignoring = HeaderSource(name, verify_header=None)
    assert decode(ignoring, (header, value), (verify, "FAILED:x")) is not None


def test_apache_null_certificate_with_none_verdict_is_anonymous():
    source = HeaderSource("apache")
    assert decode(source, ("x-ssl-client-cert", "(null)"), ("x-ssl-client-verify", "NONE")) is None
    assert (
        rejected(source, ("x-ssl-client-cert", "(null)"), ("x-ssl-client-verify", "GENEROUS"))
        is R.PROXY_VERIFY_FAILED
    )


def test_haproxy_verdict_codes(pki):
    source = HeaderSource("haproxy")
    cert = ("x-ssl-client-der", base64_der_header(pki.payments))
    assert decode(source, cert, ("x-ssl-client-verify-code", "0")) is not None
    for code in ("21", "10", "-1", "00", "0x0", "zero", "", " 1"):
        verdict = ("x-ssl-client-verify-code", code)
        assert rejected(source, cert, verdict) is R.PROXY_VERIFY_FAILED
    assert decode(source, ("x-ssl-client-verify-code", "0")) is None
    assert rejected(source, ("x-ssl-client-verify-code", "21")) is R.PROXY_VERIFY_FAILED


def test_rfc9440_optional_boolean_verdict(pki):
    source = HeaderSource("rfc9440", verify_header="X-Client-Cert-Verified")
    headers = encode_certificate_headers("rfc9440", pki.payments)
    verified = ("x-client-cert-verified", "true")
    assert decode(source, *headers.items(), verified) is not None
    assert decode(source, *headers.items(), ("x-client-cert-verified", "True")) is not None
    for verdict in ("false", "1", "yes", ""):
        pairs = (*headers.items(), ("x-client-cert-verified", verdict))
        assert rejected(source, *pairs) is R.PROXY_VERIFY_FAILED
    assert decode(source, ("x-client-cert-verified", "false")) is None
    assert decode(source, ("client-cert", ""), ("x-client-cert-verified", "false")) is None
    # Without a configured verdict header, the header is not even looked at.
    assert HeaderSource("rfc9440").verify_header is None


def test_a_verdict_never_rescues_a_bad_certificate():
    source = HeaderSource("nginx-pem")
    reason_ = rejected(source, ("x-ssl-client-cert", "garbage"), ("x-ssl-client-verify", "SUCCESS"))
    assert reason_ is R.MALFORMED


# --- format by format: the quirks ----------------------------------------------------------------


def test_nginx_pem_tab_continuation_and_folded_forms(pki):
    source = HeaderSource("nginx-pem")
    value = nginx_pem_header(pki.payments)
    assert "\n\t" in value and not value.endswith("\n")
    folded = value.replace("\n\t", " ")  # what h11 hands the app
    for form in (value, folded, value.replace("\n", "\r\n")):
        presented = decode(source, ("x-ssl-client-cert", form))
        assert presented is not None and presented.leaf == pki.payments.der


def test_apache_value_with_and_without_the_trailing_space(pki):
    source = HeaderSource("apache")
    value = apache_header(pki.payments)
    assert value.endswith("----- ") and "\n" not in value
    for form in (value, value.rstrip()):
        presented = decode(source, ("x-ssl-client-cert", form))
        assert presented is not None and presented.leaf == pki.payments.der


def test_haproxy_chain_blob_is_split_by_der_lengths(pki):
    chain = [pki.intermediate.certificate, pki.root.certificate]
    source = HeaderSource("haproxy")
    cert = ("x-ssl-client-der", base64_der_header(pki.payments))
    presented = decode(source, cert, ("x-ssl-client-chain-der", haproxy_chain_header(chain)))
    assert presented is not None and presented.chain == tuple(der(c) for c in chain)
    assert haproxy_chain_header([]) == ""
    presented = decode(source, cert, ("x-ssl-client-chain-der", ""))
    assert presented is not None and presented.chain == ()


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda inter: inter + b"\x00", id="trailing-byte"),
        pytest.param(lambda inter: inter + inter[:10], id="truncated-second"),
        pytest.param(lambda inter: inter[:-1], id="truncated"),
        pytest.param(lambda inter: b"\x31" + inter[1:], id="not-a-sequence"),
        pytest.param(lambda inter: inter[:1] + b"\x80" + inter[2:], id="indefinite-length"),
        pytest.param(lambda inter: b"\x30\x81\x05hello", id="long-form-below-128"),
        pytest.param(lambda inter: b"\x30\x84\x00\x00\x00\x05hello", id="leading-zero-length"),
        pytest.param(lambda inter: b"\x30", id="no-length"),
    ],
)
def test_haproxy_malformed_chain(pki, corrupt):
    blob = corrupt(der(pki.intermediate.certificate))
    source = HeaderSource("haproxy")
    cert = ("x-ssl-client-der", base64_der_header(pki.payments))
    assert rejected(source, cert, ("x-ssl-client-chain-der", b64(blob))) is R.MALFORMED


def test_base64_with_nonzero_pad_bits_is_refused(padded_client):
    value = base64_der_header(padded_client)
    padded = value.rstrip("=")
    # Flip the lowest bit of the last data character: same bytes for a lax decoder.
    last = padded[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = padded[:-1] + alphabet[alphabet.index(last) ^ 1] + value[len(padded) :]
    assert twin != value
    assert len(value) != len(padded)
    assert rejected(HeaderSource("azure"), ("x-arr-clientcert", twin)) is R.MALFORMED


def test_traefik_current_and_legacy_forms(pki):
    source = HeaderSource("traefik")
    chain = [pki.intermediate.certificate]
    for legacy in (False, True):
        value = traefik_header(pki.payments, chain, legacy=legacy)
        assert ("%" in value) is legacy
        presented = decode(source, ("x-forwarded-tls-client-cert", value))
        assert presented is not None
        assert presented.leaf == pki.payments.der
        assert presented.chain == (der(pki.intermediate.certificate),)


def test_alb_keeps_plus_equals_slash_raw_and_decodes_with_unquote(pki):
    value = alb_header(pki.payments, [pki.intermediate.certificate])
    assert "+" in value and "%2B" not in value and "%20" in value and "%0A" in value
    presented = decode(HeaderSource("aws-alb"), ("x-amzn-mtls-clientcert", value))
    assert presented is not None
    assert presented.leaf == pki.payments.der  # leaf first
    assert presented.chain == (der(pki.intermediate.certificate),)
    # The fully escaped spelling decodes to the same certificates.
    escaped = quote("".join([pki.payments.pem, pki.intermediate.pem]), safe="")
    again = decode(HeaderSource("aws-alb"), ("x-amzn-mtls-clientcert", escaped))
    assert again == presented


@pytest.mark.parametrize("name", ["nginx", "aws-alb-verify", "cloudfront"])
def test_url_encoded_leaf_must_be_one_certificate(pki, name):
    two = alb_header(pki.payments, [pki.intermediate.certificate])
    header = DEFAULT_HEADERS[name][0]
    assert rejected(HeaderSource(name), (header, two)) is R.MALFORMED


@pytest.mark.parametrize("name", ["nginx", "aws-alb-verify", "cloudfront"])
def test_url_encoded_leaf_in_either_escaping(pki, name):
    """nginx escapes every reserved character, ALB leaves ``+ = /`` raw, CloudFront documents
    the former: one decoder reads both spellings of one URL-encoded PEM certificate."""
    source = HeaderSource(name)
    for value in (nginx_escaped_header(pki.payments), alb_leaf_header(pki.payments)):
        presented = decode(source, (DEFAULT_HEADERS[name][0], value))
        assert presented is not None and presented.leaf == pki.payments.der


# --- malformed values: each encoding's corruptions, for every format that uses it -------------


def swap_plus_for_space(value: str) -> str:
    """What form decoding (``unquote_plus``) does to a raw ``+``; with no ``+`` in this run's
    random certificate, a ``/`` stands in (the same corruption of a base64 line)."""
    char = "+" if "+" in value else "/"
    assert char in value
    return value.replace(char, " ", 1)


def truncated(value: str) -> str:
    return value[: len(value) // 2]


#: A well-formed value of each encoding (the spelling the corruptions start from).
SPELLINGS = {
    "pem-tab-lines": lambda pki, padded: nginx_pem_header(pki.payments),
    "pem-space-lines": lambda pki, padded: apache_header(pki.payments),
    "base64-der": lambda pki, padded: base64_der_header(padded),  # padded: '=' to bend
    "traefik": lambda pki, padded: traefik_header(pki.payments, [pki.intermediate.certificate]),
    "url-encoded-pem": lambda pki, padded: alb_leaf_header(pki.payments),  # '+ = /' raw
}

#: Encoding -> the formats that use it, and the corruptions every one of them must refuse.
CORRUPTIONS = {
    "pem-tab-lines": (
        ["nginx-pem"],
        {
            "truncated": truncated,
            "no-end-armour": lambda v: v.replace("-----END CERTIFICATE-----", ""),
            "plus-as-space": swap_plus_for_space,  # splits a 64-character line
            "lines-glued": lambda v: v.replace("\n\t", ""),  # one long line
            "two-certificates": lambda v: v + " " + v,
            "junk-before": lambda v: "junk " + v,
            "public-key": lambda v: v.replace("CERTIFICATE", "PUBLIC KEY"),
            "url-encoded": lambda v: quote(v.replace("\n\t", "\n"), safe=""),  # nginx's other
        },
    ),
    "pem-space-lines": (
        ["apache"],
        {
            "truncated": truncated,
            "plus-as-space": swap_plus_for_space,
            "lines-broken": lambda v: v.replace(" ", "\n", 3).replace(" ", "", 2),
            "NULL-upper": lambda v: "(NULL)",
            "null-then-pem": lambda v: "(null) " + v,
            "url-encoded": lambda v: quote(v, safe=""),
            "not-base64": lambda v: v.replace("A", "*", 1),
        },
    ),
    "base64-der": (
        ["haproxy", "caddy", "azure"],
        {
            "truncated": truncated,  # and badly padded
            "truncated-on-quantum": lambda v: v[:-4],  # the DER length check catches it
            "no-padding": lambda v: v.rstrip("="),
            "url-safe-alphabet": lambda v: v.replace("+", "-").replace("/", "_"),
            "plus-as-space": swap_plus_for_space,
            "line-break": lambda v: v[:64] + "\n" + v[64:],
            "rfc9440-syntax": lambda v: ":" + v + ":",
            "pem-armour": lambda v: f"-----BEGIN CERTIFICATE-----{v}-----END CERTIFICATE-----",
            "trailing-byte": lambda v: b64(base64.b64decode(v) + b"\x00"),
            "url-encoded": lambda v: quote(v, safe=""),
        },
    ),
    "traefik": (
        ["traefik"],
        {
            "legacy-encoded-twice": lambda v: quote(quote(v, safe=""), safe=""),
            "trailing-comma": lambda v: v + ",",
            "empty-item": lambda v: v.replace(",", ",,"),
            "space-after-comma": lambda v: v.replace(",", ", "),
            "plus-as-space": swap_plus_for_space,
            "truncated-leaf": lambda v: v.split(",")[0][:-8],
            "pem-armour": lambda v: f"-----BEGIN CERTIFICATE-----{v}-----END CERTIFICATE-----",
            "mixed-double-encoded": lambda v: v.replace("+", "%2B", 1).replace("/", "%252F", 1),
            "not-ascii": lambda v: "%FF" + v,
        },
    ),
    "url-encoded-pem": (
        ["nginx", "aws-alb", "aws-alb-verify", "cloudfront"],
        {
            "truncated": truncated,
            "double-encoded": lambda v: quote(v, safe=""),
            "plus-as-space": swap_plus_for_space,  # what unquote_plus does to a raw '+'
            "form-encoded-spaces": lambda v: v.replace("%20", "+"),
            "junk-in-armour": lambda v: v.replace("%0A", "%0A-", 2),
            "escaped-percent": lambda v: v.replace("%", "%25", 1),
            "not-ascii": lambda v: "%C3%A9" + v,
            "crl": lambda v: v.replace("CERTIFICATE", "X509 CRL"),
        },
    ),
}

MALFORMED_VALUES = [
    pytest.param(name, encoding, corrupt, id=f"{name}-{label}")
    for encoding, (names, corruptions) in CORRUPTIONS.items()
    for name in names
    for label, corrupt in corruptions.items()
]


def test_every_format_has_its_corruptions():
    assert {name for names, _ in CORRUPTIONS.values() for name in names} == set(HEADER_FORMATS) - {
        "envoy",
        "rfc9440",
    }  # their grammars have their own files: test_xfcc, test_rfc9440


@pytest.mark.parametrize(("name", "encoding", "corrupt"), MALFORMED_VALUES)
def test_corrupted_values_are_malformed(pki, padded_client, name, encoding, corrupt):
    original = SPELLINGS[encoding](pki, padded_client)
    value = corrupt(original)
    assert value != original
    assert rejected(HeaderSource(name), (DEFAULT_HEADERS[name][0], value)) is R.MALFORMED


# --- names next to the certificate: an injection class, across every format -----------------


def _hostile(pki) -> dict[str, IssuedCertificate]:
    """Certificates from the trusted intermediate whose names carry the pairs that would make
    a parser of names see the victim (pki.payments): its hash and its PEM, both public."""
    victim = pki.payments
    forged = xfcc_header(victim, by=None, subject=False, uri=False, dns=False)
    full = xfcc_header(victim, by=None)
    issue = pki.intermediate.issue

    def uri(value: str) -> x509.GeneralName:
        return x509.UniformResourceIdentifier._init_without_validation(value)

    def dns(value: str) -> x509.GeneralName:
        return x509.DNSName._init_without_validation(value)

    return {
        "uri-element": issue(common_name="a", sans=[uri(f"https://a.example/x,{forged}")]),
        "uri-whole-element": issue(common_name="a", sans=[uri(f"https://a.example/x,{full}")]),
        "uri-pairs": issue(common_name="a", sans=[uri(f"https://a.example/x;{forged}")]),
        "dns-element": issue(common_name="a", sans=[dns(f"a.example,{forged}")]),
        "dns-pairs": issue(common_name="a", sans=[dns(f"a.example;{forged}")]),
        "uri-quote": issue(common_name="a", sans=[uri(f'"x",{forged}')]),
        "subject": issue(
            subject=x509.Name(
                [x509.NameAttribute(NameOID.ORGANIZATION_NAME, f'x",{forged};Subject="')]
            )
        ),
    }


#: Each payload, and what Envoy's format answers for it (``None``: the certificate as itself).
#: Pairs forged into Envoy's own element repeat its Hash; a forged element changes the count.
HOSTILE = {
    "uri-element": "malformed",
    "uri-whole-element": "malformed",
    "uri-pairs": "duplicate_header",
    "dns-element": "malformed",
    "dns-pairs": "duplicate_header",
    "uri-quote": "malformed",
    "subject": None,
}


@pytest.fixture(scope="module")
def hostile(pki) -> dict[str, IssuedCertificate]:
    certificates = _hostile(pki)
    assert sorted(certificates) == sorted(HOSTILE)
    return certificates


@pytest.mark.anyio
@pytest.mark.parametrize("payload", HOSTILE)
@pytest.mark.parametrize("name", HEADER_FORMATS)
async def test_names_with_injection_payloads_never_authenticate_the_victim(
    pki, hostile, name, payload
):
    """Only Envoy's format writes names next to the certificate, and only in XFCC do they share
    the header's grammar; every other format carries the names inside the DER alone (base64,
    URL-encoded or PEM), where no separator can escape.  So every other format decodes the
    hostile certificate as itself and the app answers exactly as for that certificate in the
    TLS handshake (the identity stage judges its names); Envoy refuses the SAN payloads at the
    source and reads the quoted Subject one as itself.  Nobody becomes the victim."""
    cert = hostile[payload]
    headers = encode_certificate_headers(name, cert)

    def app(source: CertificateSource) -> MTLSMiddleware:
        return MTLSMiddleware(
            starlette_app(),
            trust=pki.root.certificate,
            intermediates=[pki.intermediate.certificate],
            trusted_proxies=["127.0.0.1"],
            sources=[source],
            principal="fingerprint",
        )

    response = await get(simulate_connection(app(HeaderSource(name))), "/whoami", headers)
    handshake = await get(simulate_connection(app(TLSExtensionSource()), cert), "/whoami")
    assert response.json().get("principal") != pki.payments.fingerprint_sha256
    refused = HOSTILE[payload] if name == "envoy" else None
    if refused is not None:
        assert (response.status_code, reason(response)) == (400, refused)
    else:
        assert (response.status_code, response.json()) == (
            handshake.status_code,
            {**handshake.json(), **({"source": name} if "source" in handshake.json() else {})},
        )
        presented = decode(HeaderSource(name), *headers.items())
        assert presented is not None and presented.leaf == cert.der
