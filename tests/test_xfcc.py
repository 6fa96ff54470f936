"""Envoy's x-forwarded-client-cert: the grammar, quoting, element selection and the checks
that tie an element to one certificate.  Values are built as Envoy's
``mutateXfccRequestHeader`` writes them (``asgi_mtls.testing.xfcc_header``)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from asgi_mtls import CertificateRejected, RejectionReason
from asgi_mtls.sources import header_source
from asgi_mtls.sources.xfcc import decode_xfcc, parse_xfcc
from asgi_mtls.testing import xfcc_header

R = RejectionReason
DOC_HASH = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"


def reason_of(func, *args, **kwargs) -> RejectionReason:
    with pytest.raises(CertificateRejected) as info:
        func(*args, **kwargs)
    return info.value.reason


def envoy_pem(pem: str) -> str:
    for plain, escaped in (("\n", "%0A"), (" ", "%20"), ("+", "%2B"), ("/", "%2F"), ("=", "%3D")):
        pem = pem.replace(plain, escaped)
    return pem


def cert_pair(issued) -> str:
    return f'Cert="{envoy_pem(issued.pem)}"'


def hash_pair(issued) -> str:
    return f"Hash={issued.fingerprint_sha256}"


# --- the grammar -------------------------------------------------------------------------------


def test_envoy_documentation_examples_parse():
    one = (
        f"By=http://frontend.lyft.com;Hash={DOC_HASH};"
        'Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com'
    )
    (element,) = parse_xfcc(one)
    assert element.get("by") == "http://frontend.lyft.com"
    assert element.get("SUBJECT") == "/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client"
    assert element.values("uri") == ["http://testclient.lyft.com"]
    two = (
        f"By=http://frontend.lyft.com;Hash={DOC_HASH};URI=http://testclient.lyft.com,"
        f"By=http://backend.lyft.com;Hash={DOC_HASH[::-1]};URI=http://frontend.lyft.com"
    )
    first, second = parse_xfcc(two)
    assert first.get("by") == "http://frontend.lyft.com"
    assert second.get("by") == "http://backend.lyft.com"
    three = one + ";DNS=lyft.com;DNS=www.lyft.com"
    assert parse_xfcc(three)[0].values("dns") == ["lyft.com", "www.lyft.com"]


def test_quoted_values_keep_separators_and_unescape():
    first, second = parse_xfcc(r'Subject="CN=a\"b,O=x;y=z\\",URI=spiffe://a/b')
    # The ',' after the closing quote ends the element; inside quotes ',;=' are plain text.
    assert first.get("subject") == 'CN=a"b,O=x;y=z\\'
    assert second.get("uri") == "spiffe://a/b"


def test_keys_are_case_insensitive_and_values_case_sensitive():
    (element,) = parse_xfcc('bY=spiffe://A/B;hAsH=ABC;SUBJECT="CN=Mixed";uri=x;Dns=D.example')
    assert element.pairs == (
        ("by", "spiffe://A/B"),
        ("hash", "ABC"),
        ("subject", "CN=Mixed"),
        ("uri", "x"),
        ("dns", "D.example"),
    )


def test_repeatable_keys_and_legacy_san():
    (element,) = parse_xfcc("By=spiffe://p/1;By=spiffe://p/2;URI=a;URI=b;DNS=c;DNS=d;SAN=e;SAN=f")
    assert element.values("by") == ["spiffe://p/1", "spiffe://p/2"]
    assert element.values("uri") == ["a", "b"]
    assert element.values("san") == ["e", "f"]


def test_empty_unquoted_value_and_equals_inside_it():
    (element,) = parse_xfcc("URI=;DNS=a;By=http://x/?q=1&r=2")
    assert element.get("uri") == ""
    assert element.get("by") == "http://x/?q=1&r=2"


def test_whitespace_around_elements_and_pairs():
    elements = parse_xfcc(" URI=a ; DNS=b , URI=c\t")
    assert [e.pairs for e in elements] == [(("uri", "a"), ("dns", "b")), (("uri", "c"),)]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "URI=a;",  # trailing ';'
        "URI=a,",  # trailing ','
        "URI=a,,URI=b",  # empty element
        ";URI=a",
        "=a",
        "URI",  # no '='
        "URI=a;b",  # old Envoy: an unquoted URI containing ';'
        "By=spiffe://x;y/z;Hash=00",  # old Envoy: an unquoted By containing ';'
        "URI=http://a,b",  # an unquoted value containing ','
        "URI=a b",  # whitespace inside an unquoted value
        'URI=a"b',  # quote inside an unquoted value
        'Subject="CN=x',  # unterminated
        'Subject="CN=x\\"',  # the only quote is escaped: unterminated
        'Subject="CN=x\\',  # backslash at the end
        'Subject="CN=x"junk;URI=a',  # data after the closing quote
        "Subject=CN=x",  # Subject must be quoted
        "Cert=abc",  # Cert must be quoted
        "Chain=abc",  # Chain must be quoted
        "Foo=bar",  # unknown key
        "URI =a",  # space before '='
        'Subject="a\x01b"',  # control character
        "URI=a\x00",
    ],
)
def test_malformed_grammar(value):
    assert reason_of(parse_xfcc, value) is R.MALFORMED


@pytest.mark.parametrize("key", ["Hash", "Cert", "Chain", "Subject"])
def test_single_valued_keys_may_not_repeat(key):
    value = f'{key}="a";{key.upper()}="b"'
    assert reason_of(parse_xfcc, value) is R.DUPLICATE_HEADER


# --- decoding one element ----------------------------------------------------------------------


def test_decodes_what_envoy_writes(pki):
    value = xfcc_header(pki.payments)
    assert value.startswith("By=spiffe://proxy.example/envoy;Hash=")
    assert ';Cert="-----BEGIN%20CERTIFICATE-----%0A' in value
    assert ";URI=spiffe://bank.example/payments" in value
    assert decode_xfcc(value) == (pki.payments.der, ())


def test_chain_without_and_with_cert(pki):
    inter = pki.intermediate.certificate
    inter_der = inter.public_bytes(Encoding.DER)
    chain_only = xfcc_header(pki.payments, chain=[inter], include_cert=False, include_chain=True)
    assert "Cert=" not in chain_only
    assert decode_xfcc(chain_only) == (pki.payments.der, (inter_der,))
    both = xfcc_header(pki.payments, chain=[inter], include_chain=True)
    assert decode_xfcc(both) == (pki.payments.der, (inter_der,))


def test_chain_must_start_with_the_cert(pki):
    wrong_chain = envoy_pem(pki.reports.pem + pki.intermediate.pem)
    value = f'{hash_pair(pki.payments)};{cert_pair(pki.payments)};Chain="{wrong_chain}"'
    assert reason_of(decode_xfcc, value) is R.MALFORMED


def test_hash_must_match_the_certificate(pki):
    value = f"{hash_pair(pki.reports)};{cert_pair(pki.payments)}"
    assert reason_of(decode_xfcc, value) is R.MALFORMED
    upper = f"Hash={pki.payments.fingerprint_sha256.upper()};{cert_pair(pki.payments)}"
    assert decode_xfcc(upper)[0] == pki.payments.der
    for digest in ("", "abc", "g" * 64, pki.payments.fingerprint_sha256 + "00"):
        value = f"Hash={digest};{cert_pair(pki.payments)}"
        assert reason_of(decode_xfcc, value) is R.MALFORMED


def test_hash_is_required(pki):
    assert reason_of(decode_xfcc, cert_pair(pki.payments)) is R.MALFORMED


def test_duplicate_cert_or_chain(pki):
    for key in ("Cert", "Chain"):
        pair = f'{key}="{envoy_pem(pki.payments.pem)}"'
        value = f"{hash_pair(pki.payments)};{pair};{pair}"
        assert reason_of(decode_xfcc, value) is R.DUPLICATE_HEADER
    value = f"{hash_pair(pki.payments)};{hash_pair(pki.payments)};{cert_pair(pki.payments)}"
    assert reason_of(decode_xfcc, value) is R.DUPLICATE_HEADER


def test_an_element_without_a_certificate_is_refused_not_anonymous(pki):
    value = xfcc_header(pki.payments, include_cert=False)
    assert "Cert=" not in value and "Hash=" in value
    assert reason_of(decode_xfcc, value) is R.MALFORMED


def test_smuggled_cert_inside_a_quoted_subject_is_just_text(pki):
    """A subject crafted to look like a second ``Cert=`` pair: a ``split(';')`` parser would
    see it as a key; this one sees a Subject value."""
    # RFC 2253 (Envoy's Subject) escapes '"' and ';' with a backslash; a split(";") parser
    # still sees a key "Cert" in either spelling.
    crafted = f"CN=x;{cert_pair(pki.payments)};Hash={pki.payments.fingerprint_sha256}"
    smuggled = crafted.replace('"', '\\"').replace(";", "\\;")
    value = f'{hash_pair(pki.reports)};{cert_pair(pki.reports)};Subject="{smuggled}"'
    (element,) = parse_xfcc(value)
    assert [key for key, _ in element.pairs] == ["hash", "cert", "subject"]
    assert element.get("subject") == crafted
    assert decode_xfcc(value)[0] == pki.reports.der
    # Without a real Cert, the smuggled one is still not a key: no certificate at all.
    alone = f'{hash_pair(pki.payments)};Subject="{smuggled}"'
    naive = dict(pair.split("=", 1) for pair in alone.split(";") if "=" in pair)
    assert "Cert" in naive  # what a split(";") parser would have believed
    assert reason_of(decode_xfcc, alone) is R.MALFORMED


def test_smuggled_cert_through_an_unquoted_uri_is_caught(pki):
    # Old Envoy writes URI unquoted; a URI SAN holding ';Cert="..."' forges a pair.  It then
    # collides with Envoy's own Cert, or fails Envoy's own Hash.
    forged = f"URI=spiffe://x/y;{cert_pair(pki.payments)}"
    with_real = f"{hash_pair(pki.reports)};{cert_pair(pki.reports)};{forged}"
    assert reason_of(decode_xfcc, with_real) is R.DUPLICATE_HEADER
    without_real = f"{hash_pair(pki.reports)};{forged}"
    assert reason_of(decode_xfcc, without_real) is R.MALFORMED


@pytest.mark.parametrize(
    "mangle",
    [
        lambda pem: quote(envoy_pem(pem), safe=""),  # double-encoded
        lambda pem: envoy_pem(pem).replace("%2B", " ", 1).replace("%2F", " ", 1),  # form-decoded
        lambda pem: envoy_pem(pem)[:200],  # truncated
        lambda pem: envoy_pem(pem + pem),  # two certificates in Cert
        lambda pem: envoy_pem(pem).replace("CERTIFICATE", "PRIVATE KEY"),
        lambda pem: "%FF" + envoy_pem(pem),
    ],
)
def test_malformed_cert_values(pki, mangle):
    value = f'{hash_pair(pki.payments)};Cert="{mangle(pki.payments.pem)}"'
    assert reason_of(decode_xfcc, value) is R.MALFORMED


def test_by_and_uri_containing_semicolons_when_quoted_are_fine(pki):
    value = f'By="spiffe://p/a;b,c";{hash_pair(pki.payments)};{cert_pair(pki.payments)};URI="x;y"'
    (element,) = parse_xfcc(value)
    assert element.get("by") == "spiffe://p/a;b,c"
    assert decode_xfcc(value)[0] == pki.payments.der


# --- element selection -------------------------------------------------------------------------


def test_the_last_element_counts_by_default(pki):
    edge = xfcc_header(pki.reports, by="spiffe://edge")
    value = xfcc_header(pki.payments, previous=edge)
    assert len(parse_xfcc(value)) == 2
    assert decode_xfcc(value)[0] == pki.payments.der
    assert decode_xfcc(value, element=-1)[0] == pki.payments.der
    assert decode_xfcc(value, element=0)[0] == pki.reports.der
    assert decode_xfcc(value, element=-2)[0] == pki.reports.der
    assert reason_of(decode_xfcc, value, element=2) is R.MALFORMED
    assert reason_of(decode_xfcc, value, element=-3) is R.MALFORMED


def test_a_broken_earlier_element_spoils_the_header(pki):
    # A client may have sent its own XFCC that Envoy appended to (APPEND_FORWARD): the header
    # is parsed as a whole, so garbage anywhere is refused rather than skipped.
    value = xfcc_header(pki.payments, previous='Subject="unterminated')
    assert reason_of(decode_xfcc, value) is R.MALFORMED


def test_source_options_and_duplicate_header_lines(pki):
    edge = xfcc_header(pki.reports)
    value = xfcc_header(pki.payments, previous=edge)
    scope = {"headers": [(b"x-forwarded-client-cert", value.encode())]}
    last = header_source("envoy")
    presented = last.decode(last.find(scope))
    assert presented is not None and presented.leaf == pki.payments.der
    first = header_source("envoy", element=0)
    presented = first.decode(first.find(scope))
    assert presented is not None and presented.leaf == pki.reports.der
    twice = {"headers": [(b"x-forwarded-client-cert", edge.encode())] * 2}
    assert reason_of(last.decode, last.find(twice)) is R.DUPLICATE_HEADER
