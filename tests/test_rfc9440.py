"""RFC 9440 Client-Cert / Client-Cert-Chain: RFC 8941 byte-sequence syntax, strictly."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from asgi_mtls import CertificateRejected, HeaderSource, RejectionReason
from asgi_mtls.sources.headers.rfc9440 import decode_client_cert, decode_client_cert_chain
from asgi_mtls.testing import client_cert_chain_header, client_cert_header

R = RejectionReason


def reason_of(func, *args) -> RejectionReason:
    with pytest.raises(CertificateRejected) as info:
        func(*args)
    return info.value.reason


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def der(cert) -> bytes:
    return cert.public_bytes(Encoding.DER)


def test_client_cert_round_trip(pki):
    value = client_cert_header(pki.payments)
    assert value.startswith(":MII") and value.endswith(":")
    assert decode_client_cert(value) == pki.payments.der
    assert decode_client_cert(f"  {value} ") == pki.payments.der  # SP around an Item


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v[1:],  # no opening colon
        lambda v: v[:-1],  # unterminated
        lambda v: v + ";a=1",  # parameters
        lambda v: v + ";x",
        lambda v: v + " ;a=1",
        lambda v: v + ", " + v,  # a list where an Item is expected
        lambda v: v + v,
        lambda v: "::",  # empty byte sequence
        lambda v: ":" + v.strip(":").rstrip("=") + ":",  # padding removed
        lambda v: v.replace("+", "-").replace("/", "_"),  # base64url
        lambda v: v[:30] + " " + v[30:],  # whitespace inside
        lambda v: v[:30] + "\n" + v[30:],
        lambda v: v.strip(":"),  # bare base64 (the HAProxy/Caddy format)
        lambda v: '"' + v.strip(":") + '"',  # a string, not bytes
        lambda v: "(" + v + ")",  # an inner list
        lambda v: "\t" + v,  # HTAB is not SP
        lambda v: ":" + b64(base64.b64decode(v.strip(":")) + b"\x00") + ":",  # trailing byte
        lambda v: ":" + b64(base64.b64decode(v.strip(":"))[:-5]) + ":",  # truncated DER
        lambda v: ":" + b64(b"not a certificate") + ":",
        lambda v: "",
    ],
)
def test_client_cert_syntax_errors(padded_client, mangle):
    original = client_cert_header(padded_client)
    value = mangle(original)
    assert value != original
    assert reason_of(decode_client_cert, value) is R.MALFORMED


def test_chain_list_syntax(pki):
    inter, root = der(pki.intermediate.certificate), der(pki.root.certificate)
    one, two = f":{b64(inter)}:", f":{b64(root)}:"
    assert decode_client_cert_chain([f"{one}, {two}"]) == [inter, root]
    assert decode_client_cert_chain([f"{one},{two}"]) == [inter, root]
    assert decode_client_cert_chain([f"{one} \t,\t {two}  "]) == [inter, root]
    assert decode_client_cert_chain([""]) == []
    assert decode_client_cert_chain([]) == []
    assert client_cert_chain_header([pki.intermediate.certificate]) == one


def test_chain_across_repeated_header_lines_keeps_order(pki):
    inter, root = der(pki.intermediate.certificate), der(pki.root.certificate)
    one, two = f":{b64(inter)}:", f":{b64(root)}:"
    assert decode_client_cert_chain([one, two]) == [inter, root]
    assert decode_client_cert_chain([two, one]) == [root, inter]
    assert decode_client_cert_chain([one, "", two]) == [inter, root]  # an empty line adds nothing
    assert decode_client_cert_chain([f"{one}, {two}", one]) == [inter, root, inter]


@pytest.mark.parametrize(
    "build",
    [
        lambda one, two: f"{one},",  # trailing comma
        lambda one, two: f",{one}",
        lambda one, two: f"{one},,{two}",
        lambda one, two: f"{one} {two}",  # missing comma
        lambda one, two: f"{one};a=1, {two}",  # parameters
        lambda one, two: f"{one}, ({two})",  # inner list
        lambda one, two: f"{one}, token",
        lambda one, two: f"{one}, ::",
        lambda one, two: f"{one}, {two[:-1]}",  # the last one unterminated
    ],
)
def test_chain_syntax_errors(pki, build):
    inter, root = der(pki.intermediate.certificate), der(pki.root.certificate)
    value = build(f":{b64(inter)}:", f":{b64(root)}:")
    assert reason_of(decode_client_cert_chain, [value]) is R.MALFORMED


def test_source_repeated_chain_lines_and_singleton_leaf(pki):
    source = HeaderSource("rfc9440")
    leaf = ("client-cert", client_cert_header(pki.payments))
    inter = ("client-cert-chain", client_cert_chain_header([pki.intermediate.certificate]))
    root = ("client-cert-chain", client_cert_chain_header([pki.root.certificate]))
    scope = {"headers": [(k.encode(), v.encode()) for k, v in (leaf, inter, root)]}
    presented = source.decode(source.find(scope))
    assert presented is not None
    assert presented.leaf == pki.payments.der
    assert presented.chain == (der(pki.intermediate.certificate), der(pki.root.certificate))
    twice = {"headers": [(k.encode(), v.encode()) for k, v in (leaf, leaf)]}
    assert reason_of(source.decode, source.find(twice)) is R.DUPLICATE_HEADER
    # The chain lines together are held to the size limit.
    small = HeaderSource("rfc9440", max_header_chars=len(inter[1]) + 10)
    assert reason_of(small.decode, small.find(scope)) is R.TOO_LARGE


def test_gcp_style_custom_names(pki):
    source = HeaderSource(
        "rfc9440",
        header="X-Client-Cert-Leaf",
        chain_header="X-Client-Cert-Chain",
        verify_header="X-Client-Cert-Chain-Verified",
    )
    headers = [
        (b"x-client-cert-leaf", client_cert_header(pki.payments).encode()),
        (b"x-client-cert-chain", b""),  # the client sent no intermediates
        (b"x-client-cert-chain-verified", b"true"),
    ]
    presented = source.decode(source.find({"headers": headers}))
    assert presented is not None and presented.chain == ()
    anonymous = [(b"x-client-cert-leaf", b""), (b"x-client-cert-chain-verified", b"false")]
    assert source.decode(source.find({"headers": anonymous})) is None
