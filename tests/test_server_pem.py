"""The ASGI tls extension's PEM decoder (issue #10): as strict as the regex decoder the
header formats use, checked against it over the classes of bad input and over random edits of
real certificates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_mtls import CertificateRejected, RejectionReason, TLSExtensionSource
from asgi_mtls.sources.encoding import pem_certificate_to_der, server_pem_to_der
from asgi_mtls.testing import CertificateAuthority, asgi_tls_scope_extension

_ISSUING = CertificateAuthority("Server PEM Root").intermediate("Server PEM Issuing CA")
CLIENT = _ISSUING.issue_client("pem-client", spiffe_id="spiffe://bank.example/pem")
PEM = CLIENT.pem


def decoded(decoder, text: str) -> bytes | RejectionReason:
    """The DER, or the reason of the refusal (anything else escapes and fails the test)."""
    try:
        return decoder(text)
    except CertificateRejected as exc:
        return exc.reason


MANGLED = {
    "truncated": PEM[: len(PEM) // 2],
    "no END line": PEM.replace("-----END CERTIFICATE-----", ""),
    "no BEGIN line": PEM.replace("-----BEGIN CERTIFICATE-----", ""),
    "junk before": "junk" + PEM,
    "junk after": PEM + "junk",
    "another block type": PEM.replace("CERTIFICATE", "PRIVATE KEY"),
    "not base64": PEM.replace("A", "*", 1),
    "non-ASCII in the body": PEM.replace("A", "\u00c4", 1),
    "empty block": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    "armour only, overlapping": "-----BEGIN CERTIFICATE-----END CERTIFICATE-----",
    "empty": "",
    "two certificates": PEM + PEM,
    "a block inside a block": PEM.replace("\n", "\n" + PEM, 1),
    "padding in the middle": PEM.replace("\n", "=\n", 2),
    "DER with trailing bytes": PEM.replace("-----END", "AAAA\n-----END"),
    "base64 cut short": PEM.replace("\n-----END", "A\n-----END"),
}


@pytest.mark.parametrize("text", MANGLED.values(), ids=MANGLED.keys())
def test_bad_pem_is_malformed_for_both_decoders(text):
    assert decoded(server_pem_to_der, text) is RejectionReason.MALFORMED
    assert decoded(pem_certificate_to_der, text) is RejectionReason.MALFORMED


RESHAPED = {
    "as written": PEM,
    "CRLF": PEM.replace("\n", "\r\n"),
    "no final newline": PEM.rstrip("\n"),
    "surrounding whitespace": "\n\t  " + PEM + "  \n",
    "one long line": PEM.replace("\n", "").replace(
        "-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\n"
    ),
    "spaces for newlines": PEM.replace("\n", " "),
}


@pytest.mark.parametrize("text", RESHAPED.values(), ids=RESHAPED.keys())
def test_whitespace_is_free_for_both_decoders(text):
    assert decoded(server_pem_to_der, text) == CLIENT.der
    assert decoded(pem_certificate_to_der, text) == CLIENT.der


_EDIT_ALPHABET = "AZaz09+/=-\n \t\r*%.\u00a0\u00c4"


@settings(max_examples=400, deadline=None)
@given(
    position=st.integers(0, len(PEM)),
    cut=st.integers(0, 8),
    insert=st.text(alphabet=_EDIT_ALPHABET, max_size=6),
)
def test_the_decoders_agree_on_edited_certificates(position, cut, insert):
    text = PEM[:position] + insert + PEM[position + cut :]
    assert decoded(server_pem_to_der, text) == decoded(pem_certificate_to_der, text)


@given(st.text(max_size=300))
def test_server_pem_decoder_never_raises_anything_else(text):
    result = decoded(server_pem_to_der, text)
    assert result is RejectionReason.MALFORMED or result.startswith(b"\x30")


def test_tls_source_decodes_the_chain_with_it():
    source = TLSExtensionSource()
    scope = {"extensions": {"tls": asgi_tls_scope_extension(CLIENT)}}
    presented = source.decode(source.find(scope))
    assert presented.leaf == CLIENT.der
    assert presented.chain == (server_pem_to_der(_ISSUING.pem),)
    bad = {"client_cert_chain": [PEM, PEM + PEM], "client_cert_error": None}
    with pytest.raises(CertificateRejected) as info:
        source.decode(source.find({"extensions": {"tls": bad}}))
    assert info.value.reason is RejectionReason.MALFORMED


def test_decoded_chain_entries_are_remembered_within_a_bound():
    # Every client of an issuing CA sends the same intermediate: decoded once, remembered;
    # never more than a bounded number of entries, whatever clients send.
    source = TLSExtensionSource()
    issuing_pem = _ISSUING.pem

    def chain_of(*pems: str) -> tuple[bytes, ...]:
        tls = {"client_cert_chain": [PEM, *pems], "client_cert_error": None}
        return source.decode(source.find({"extensions": {"tls": tls}})).chain

    first = chain_of(issuing_pem)
    assert first == chain_of(issuing_pem) == (server_pem_to_der(issuing_pem),)
    strangers = [CertificateAuthority(f"Stranger {n}").pem for n in range(70)]
    for stranger in strangers:
        assert chain_of(stranger) == (server_pem_to_der(stranger),)
        assert len(source._hints) <= 64
    for bad in (issuing_pem + issuing_pem, issuing_pem.replace("A", "*", 1)):
        for _ in range(2):  # refused every time: a bad entry is never remembered
            with pytest.raises(CertificateRejected) as info:
                chain_of(bad)
            assert info.value.reason is RejectionReason.MALFORMED
    assert chain_of(issuing_pem) == first
