"""Envoy's x-forwarded-client-cert: the grammar, the element count, the checks that tie every
element to its certificate, and the attacks they stop.

Values are built as Envoy 1.40 writes them (``asgi_mtls.testing.xfcc_header``, compared byte
for byte with the real binary in ``tests/e2e/test_envoy.py``).  The attack: Envoy writes URI
and DNS SANs unquoted, so a certificate from the trusted CA whose SAN holds
``,Hash=<victim's hash>;Cert="<victim's PEM>"`` forges an element carrying the victim's
(public) certificate.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_mtls import CertificateRejected, HeaderSource, RejectionReason
from asgi_mtls.sources.headers.envoy import decode_xfcc, envoy_names, parse_xfcc
from asgi_mtls.sources.headers.envoy_subject import SHORT_NAMES, envoy_subject
from asgi_mtls.testing import xfcc_header

R = RejectionReason
DOC_HASH = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"
KEY = ec.generate_private_key(ec.SECP256R1())  # one key for the many certificates below


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


def forged_pairs(victim) -> str:
    """The pairs an attacker copies: the victim's hash and certificate (both public)."""
    return xfcc_header(victim, by=None, subject=False, uri=False, dns=False)


def uri(value: str) -> x509.GeneralName:
    return x509.UniformResourceIdentifier._init_without_validation(value)


def dns(value: str) -> x509.GeneralName:
    return x509.DNSName._init_without_validation(value)


def name(*attributes: x509.NameAttribute) -> x509.Name:
    return x509.Name(list(attributes))


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


def test_quoted_values_keep_separators_unescape_and_keep_their_raw_form():
    first, second = parse_xfcc(r'Subject="CN=a\"b,O=x;y=z\\",URI=spiffe://a/b')
    # The ',' after the closing quote ends the element; inside quotes ',;=' are plain text.
    assert first.get("subject") == 'CN=a"b,O=x;y=z\\'
    assert first.raw_values("subject") == [r'"CN=a\"b,O=x;y=z\\"']
    assert second.get("uri") == "spiffe://a/b"
    assert second.raw_values("uri") == ["spiffe://a/b"]


def test_keys_are_case_insensitive_and_values_case_sensitive():
    (element,) = parse_xfcc('bY=spiffe://A/B;hAsH=ABC;SUBJECT="CN=Mixed";uri=x;Dns=D.example')
    assert [(pair.key, pair.value) for pair in element.pairs] == [
        ("by", "spiffe://A/B"),
        ("hash", "ABC"),
        ("subject", "CN=Mixed"),
        ("uri", "x"),
        ("dns", "D.example"),
    ]


def test_repeatable_keys():
    (element,) = parse_xfcc("By=spiffe://p/1;By=spiffe://p/2;URI=a;URI=b;DNS=c;DNS=d")
    assert element.values("by") == ["spiffe://p/1", "spiffe://p/2"]
    assert element.values("uri") == ["a", "b"]
    assert element.values("dns") == ["c", "d"]


def test_empty_unquoted_value_and_equals_inside_it():
    (element,) = parse_xfcc("URI=;DNS=a;By=http://x/?q=1&r=2")
    assert element.get("uri") == ""
    assert element.get("by") == "http://x/?q=1&r=2"


def test_only_the_ends_of_the_header_may_carry_whitespace():
    assert len(parse_xfcc(" \tURI=a;DNS=b,URI=c\t ")) == 2


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "URI=a;",  # trailing ';'
        "URI=a,",  # trailing ','
        "URI=a,,URI=b",  # empty element
        ",URI=a",  # leading empty element
        "URI=a, ,URI=b",  # an element of whitespace
        ";URI=a",
        "=a",
        "URI",  # no '='
        "URI=a;b",  # an unquoted URI containing ';' (Envoy writes it so)
        "By=spiffe://x;y/z;Hash=00",  # an unquoted By containing ';'
        "URI=a b",  # whitespace inside an unquoted value
        "URI=ab ;DNS=c",  # whitespace before a ';' (Envoy writes none)
        "URI=a; DNS=b",  # whitespace after a ';'
        "URI=a , URI=b",  # whitespace around a ','
        "URI=a\tb",
        'URI=a"b',  # quote inside an unquoted value
        'URI="a"',  # Envoy never quotes URI
        'DNS="a"',
        'By="spiffe://p"',
        'Hash="00"',
        'Subject="CN=x',  # unterminated
        'Subject="CN=x\\"',  # the only quote is escaped: unterminated
        'Subject="CN=x\\',  # backslash at the end
        'Subject="CN=x"junk;URI=a',  # data after the closing quote
        'Subject="CN=x" ;URI=a',  # whitespace after the closing quote
        "Subject=CN=x",  # Subject must be quoted
        "Cert=abc",  # Cert must be quoted
        "Chain=abc",  # Chain must be quoted
        "Foo=bar",  # unknown key
        "SAN=spiffe://a/b",  # Envoy before 1.7: not accepted
        "URI =a",  # space before '='
        'Subject="a\x01b"',  # control character
        'Subject="a\tb"',  # Envoy escapes a tab as \09
        "URI=a\x00",
        "URI=a\r\nX-Evil: 1",  # real Envoy answers 503 for such a SAN; never reaches here
        "URI=a\x7fb",
    ],
)
def test_malformed_grammar(value):
    assert reason_of(parse_xfcc, value) is R.MALFORMED


@pytest.mark.parametrize("key", ["Hash", "Cert", "Chain", "Subject"])
def test_single_valued_keys_may_not_repeat(key):
    value = f'{key}="a";{key.upper()}="b"' if key != "Hash" else "Hash=a;HASH=b"
    assert reason_of(parse_xfcc, value) is R.DUPLICATE_HEADER


# --- decoding one element ----------------------------------------------------------------------


def test_decodes_what_envoy_writes(pki):
    value = xfcc_header(pki.payments)
    assert value.startswith("By=spiffe://proxy.example/envoy;Hash=")
    assert ';Cert="-----BEGIN%20CERTIFICATE-----%0A' in value
    assert value.endswith(';Subject="";URI=spiffe://bank.example/payments')
    assert decode_xfcc(value) == (pki.payments.der, ())


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"by": None},
        {"subject": False},
        {"uri": False},
        {"dns": False},
        {"subject": False, "uri": False, "dns": False},
        {"include_chain": True},
    ],
)
@pytest.mark.parametrize("cert_name", ["payments", "cn_only", "dns_client"])
def test_every_envoy_configuration_decodes(pki, cert_name, options):
    cert = getattr(pki, cert_name)
    value = xfcc_header(cert, chain=cert.chain, **options)
    assert decode_xfcc(value)[0] == cert.der


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


def test_hash_must_be_the_certificates_in_envoys_spelling(pki):
    value = f"{hash_pair(pki.reports)};{cert_pair(pki.payments)}"
    assert reason_of(decode_xfcc, value) is R.MALFORMED
    assert decode_xfcc(f"{hash_pair(pki.payments)};{cert_pair(pki.payments)}")[0]
    upper = pki.payments.fingerprint_sha256.upper()  # Envoy writes lower-case hex
    for digest in (upper, "", "abc", "g" * 64, pki.payments.fingerprint_sha256 + "00"):
        value = f"Hash={digest};{cert_pair(pki.payments)}"
        assert reason_of(decode_xfcc, value) is R.MALFORMED


def test_hash_is_required_in_every_element(pki):
    assert reason_of(decode_xfcc, cert_pair(pki.payments)) is R.MALFORMED
    no_hash_before = f"By=spiffe://p,{xfcc_header(pki.payments)}"
    assert reason_of(decode_xfcc, no_hash_before, elements=2, element=1) is R.MALFORMED


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


# --- the names must be the certificate's, exactly as Envoy writes them --------------------------


@pytest.fixture(scope="module")
def named(pki):
    """A certificate with a subject, two URI SANs and two DNS SANs."""
    return pki.intermediate.issue(
        subject=name(
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bank, Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, "svc"),
        ),
        uris=["spiffe://bank.example/svc", "https://bank.example/svc"],
        dns_names=["svc.example", "svc2.example"],
    )


def replace_pairs(value: str, key: str, new: list[str]) -> str:
    """``value`` (one element) with every ``key=`` pair replaced by ``new`` at the place of
    the first one (or appended)."""
    pairs = value.split(";")  # safe here: no ';' inside these test values' quotes
    kept = [p for p in pairs if not p.startswith(f"{key}=")]
    at = next((i for i, p in enumerate(pairs) if p.startswith(f"{key}=")), len(kept))
    return ";".join(kept[:at] + new + kept[at:])


def test_the_names_as_envoy_writes_them(named):
    value = xfcc_header(named)
    assert ';Subject="CN=svc,O=Bank\\, Inc.";' in value
    assert value.endswith(
        ";URI=spiffe://bank.example/svc;URI=https://bank.example/svc;DNS=svc.example;DNS=svc2.example"
    )
    assert decode_xfcc(value)[0] == named.der


@pytest.mark.parametrize(
    ("key", "pairs"),
    [
        ("Subject", ['Subject="O=Bank\\, Inc.,CN=svc"']),  # RFC 4514 order: not Envoy's
        ("Subject", ['Subject="CN=svc,O=Bank, Inc."']),  # unescaped
        ("Subject", ['Subject="CN=other"']),
        ("Subject", ['Subject=""']),
        ("URI", ["URI=spiffe://bank.example/svc"]),  # one missing
        ("URI", ["URI=https://bank.example/svc", "URI=spiffe://bank.example/svc"]),  # order
        ("URI", ["URI=spiffe://bank.example/payments", "URI=https://bank.example/svc"]),
        ("URI", ["URI="]),
        ("URI", ["URI=spiffe://bank.example/svc", "URI=https://bank.example/svc", "URI=x"]),
        ("DNS", ["DNS=svc.example"]),
        ("DNS", ["DNS=svc2.example", "DNS=svc.example"]),
        ("DNS", ["DNS=svc.example", "DNS=svc2.example", "DNS=evil.example"]),
        ("DNS", ["DNS=SVC.example", "DNS=svc2.example"]),  # case matters: it is what Envoy wrote
    ],
)
def test_names_that_are_not_the_certificates_are_refused(named, key, pairs):
    value = replace_pairs(xfcc_header(named), key, pairs)
    assert value != xfcc_header(named)
    assert reason_of(decode_xfcc, value) is R.MALFORMED


@pytest.mark.parametrize("key", ["Subject", "URI", "DNS"])
def test_names_may_be_absent_when_envoy_is_not_asked_for_them(named, key):
    value = replace_pairs(xfcc_header(named), key, [])
    assert f";{key}=" not in value
    assert decode_xfcc(value)[0] == named.der


def test_a_certificate_without_names_gets_an_empty_uri_and_no_dns(pki):
    bare = pki.intermediate.issue(common_name="bare")
    assert envoy_names(bare.certificate) == ([""], [])
    value = xfcc_header(bare)
    assert value.endswith(';Subject="CN=bare";URI=')
    assert decode_xfcc(value)[0] == bare.der
    assert reason_of(decode_xfcc, value + ";DNS=bare.example") is R.MALFORMED


def test_every_element_with_a_certificate_is_checked_not_only_the_chosen_one(pki, named):
    good = xfcc_header(named)
    bad = replace_pairs(xfcc_header(pki.reports), "URI", ["URI=spiffe://bank.example/payments"])
    assert decode_xfcc(f"{good},{good}", elements=2)[0] == named.der
    assert reason_of(decode_xfcc, f"{bad},{good}", elements=2, element=1) is R.MALFORMED
    assert reason_of(decode_xfcc, f"{good},{bad}", elements=2, element=0) is R.MALFORMED
    # A hop configured without cert: its names cannot be checked, only its Hash's spelling.
    certless = xfcc_header(pki.reports, include_cert=False)
    assert decode_xfcc(f"{good},{certless}", elements=2)[0] == named.der


# --- the element count and the element read ----------------------------------------------------


def test_the_count_is_exact(pki):
    one = xfcc_header(pki.payments)
    two = xfcc_header(pki.reports, previous=one)
    three = xfcc_header(pki.cn_only, previous=two)
    assert decode_xfcc(one)[0] == pki.payments.der
    for value, count in ((two, 2), (three, 3)):
        assert len(parse_xfcc(value)) == count
        assert reason_of(decode_xfcc, value) is R.MALFORMED  # the default: one element
    assert reason_of(decode_xfcc, one, elements=2) is R.MALFORMED  # fewer is wrong too
    assert reason_of(decode_xfcc, three, elements=2, element=0) is R.MALFORMED


def test_element_indexes_the_expected_elements(pki):
    two = xfcc_header(pki.payments, previous=xfcc_header(pki.reports))
    assert decode_xfcc(two, elements=2, element=0)[0] == pki.reports.der
    assert decode_xfcc(two, elements=2, element=-2)[0] == pki.reports.der
    assert decode_xfcc(two, elements=2, element=1)[0] == pki.payments.der
    assert decode_xfcc(two, elements=2, element=-1)[0] == pki.payments.der


@pytest.mark.parametrize(
    ("elements", "element", "error"),
    [
        (1, 1, ValueError),
        (1, -2, ValueError),
        (2, 2, ValueError),
        (0, 0, ValueError),
        (-1, 0, ValueError),
        (True, 0, ValueError),
        (1, True, TypeError),
        (1, "last", TypeError),
    ],
)
def test_impossible_options_fail_at_start_up(elements, element, error):
    with pytest.raises(error):
        HeaderSource("envoy", elements=elements, element=element)
    with pytest.raises(error):
        decode_xfcc("URI=a", elements=elements, element=element)


def test_a_broken_earlier_element_spoils_the_header(pki):
    # A client may have sent its own XFCC that an APPEND_FORWARD edge appended to: the header
    # is parsed as a whole, so garbage anywhere is refused rather than skipped.
    value = xfcc_header(pki.payments, previous='Subject="unterminated')
    assert reason_of(decode_xfcc, value, elements=2) is R.MALFORMED


def test_source_options_and_duplicate_header_lines(pki):
    edge = xfcc_header(pki.reports)
    value = xfcc_header(pki.payments, previous=edge)
    scope = {"headers": [(b"x-forwarded-client-cert", value.encode())]}
    default = HeaderSource("envoy")
    assert reason_of(default.decode, default.find(scope)) is R.MALFORMED  # two elements
    first = HeaderSource("envoy", elements=2)
    presented = first.decode(first.find(scope))
    assert presented is not None and presented.leaf == pki.reports.der
    last = HeaderSource("envoy", elements=2, element=-1)
    presented = last.decode(last.find(scope))
    assert presented is not None and presented.leaf == pki.payments.der
    assert "elements=2, element=-1" in repr(last)
    twice = {"headers": [(b"x-forwarded-client-cert", edge.encode())] * 2}
    assert reason_of(default.decode, default.find(twice)) is R.DUPLICATE_HEADER


# --- the attack class --------------------------------------------------------------------------

#: Where an attacker's text lands in the element Envoy writes.
POSITIONS = ["uri", "dns", "second-uri", "second-dns"]


def payloads(victim) -> dict[str, str]:
    """Text that, written unquoted, makes a naive parser see the victim."""
    forged = forged_pairs(victim)
    full = xfcc_header(victim, by=None)
    return {
        "new-element": f"x,{forged}",
        "whole-element": f"x,{full}",
        "same-element": f"x;{forged}",
        "element-then-more": f"x,{forged};URI=y",
        "two-new-elements": f"x,{forged},{forged}",
        "empty-element": f"x,,{forged}",
        "quoted-start": f'"x",{forged}',
        "escaped-quote": f'x\\",{forged}',
        "spaces": f"x , {forged}",
        "only-forged": forged,
        "leading-comma": f",{forged}",
    }


def attacker(pki, position: str, payload: str):
    sans = {
        "uri": [uri(payload)],
        "dns": [dns(payload)],
        "second-uri": [uri("https://attacker.example"), uri(payload)],
        "second-dns": [dns("attacker.example"), dns(payload)],
    }[position]
    return pki.intermediate.issue(common_name="attacker", sans=sans, key=KEY)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # Forged pairs in Envoy's own element repeat its Hash (or Cert): duplicate_header.
        pytest.param("same-element", R.DUPLICATE_HEADER, id="same-element"),
        pytest.param("only-forged", R.DUPLICATE_HEADER, id="only-forged"),
        # A forged element changes the count, or its names are not its certificate's.
        pytest.param("new-element", R.MALFORMED, id="new-element"),
        pytest.param("whole-element", R.MALFORMED, id="whole-element"),
        pytest.param("element-then-more", R.MALFORMED, id="element-then-more"),
        pytest.param("two-new-elements", R.MALFORMED, id="two-new-elements"),
        pytest.param("leading-comma", R.MALFORMED, id="leading-comma"),
        # Text Envoy's grammar never holds: refused by the parser.
        pytest.param("empty-element", R.MALFORMED, id="empty-element"),
        pytest.param("quoted-start", R.MALFORMED, id="quoted-start"),
        pytest.param("escaped-quote", R.MALFORMED, id="escaped-quote"),
        pytest.param("spaces", R.MALFORMED, id="spaces"),
    ],
)
@pytest.mark.parametrize(("elements", "element"), [(1, 0), (2, 0), (2, -1), (3, -1)])
def test_san_injection_never_yields_the_victim(pki, position, payload, expected, elements, element):
    """Every payload, in every SAN position, against every count the app may expect (also
    the count the forgery produces): refused, never the victim's certificate."""
    cert = attacker(pki, position, payloads(pki.payments)[payload])
    value = xfcc_header(cert, chain=cert.chain, include_chain=True)
    assert reason_of(decode_xfcc, value, elements=elements, element=element) is expected


@pytest.mark.parametrize("elements", [2, 3])
def test_injection_behind_a_sidecar_is_refused(pki, elements):
    """Edge element about the attacker, then a sidecar element (APPEND_FORWARD)."""
    cert = attacker(pki, "uri", payloads(pki.payments)["whole-element"])
    value = xfcc_header(pki.reports, previous=xfcc_header(cert), by="spiffe://sidecar")
    for element in range(-elements, elements):
        assert reason_of(decode_xfcc, value, elements=elements, element=element) is R.MALFORMED


def test_injection_through_by_is_refused(pki):
    """``By`` is the proxy's own URI SAN: a hop with a hostile certificate of its own is an
    operator mistake, and still does not yield the victim."""
    forged = forged_pairs(pki.payments)
    for by in (f"x,{forged}", f"x;{forged}", f"x,{xfcc_header(pki.payments, by=None)}"):
        value = xfcc_header(pki.reports, by=by)
        for elements, element in ((1, 0), (2, 0), (2, 1)):
            # By comes first: the forged Hash and Envoy's own land in one element.
            reason = reason_of(decode_xfcc, value, elements=elements, element=element)
            assert reason is R.DUPLICATE_HEADER


@pytest.mark.parametrize(
    "text",
    [
        'x",{forged};Subject="',
        'x\\",{forged}',
        'x\\\\",{forged}',
        'x";{forged};x="',
        "x,{forged}",
    ],
)
def test_smuggled_cert_inside_a_quoted_subject_is_just_text(pki, text):
    """A subject crafted to close Envoy's quote and add the victim's pairs: Envoy's Subject
    escapes '"' and '\\' (and ',' ';'), so it stays one value of the attacker's own element
    and the certificate decodes as itself.  A ``split(";")`` parser would see a key ``Cert``."""
    payload = text.format(forged=forged_pairs(pki.payments))
    cert = pki.intermediate.issue(
        subject=name(x509.NameAttribute(NameOID.ORGANIZATION_NAME, payload)), key=KEY
    )
    value = xfcc_header(cert)
    (element,) = parse_xfcc(value)
    assert [pair.key for pair in element.pairs] == ["by", "hash", "cert", "subject", "uri"]
    assert element.values("hash") == [cert.fingerprint_sha256]
    assert decode_xfcc(value)[0] == cert.der
    naive = [pair.split("=", 1)[0] for pair in value.split(";") if "=" in pair]
    assert naive.count("Cert") == 2  # what a split(";") parser would have believed
    # Without the element's own Cert, the smuggled one is still not a key: no certificate.
    alone = xfcc_header(cert, include_cert=False)
    assert reason_of(decode_xfcc, alone) is R.MALFORMED


def test_smuggled_cert_through_an_unquoted_uri_is_caught(pki):
    # A URI SAN holding ';Cert="..."' (Envoy writes it raw) forges a pair.  It then collides
    # with Envoy's own Cert, or fails Envoy's own Hash.
    forged = f"URI=spiffe://x/y;{cert_pair(pki.payments)}"
    with_real = f"{hash_pair(pki.reports)};{cert_pair(pki.reports)};{forged}"
    assert reason_of(decode_xfcc, with_real) is R.DUPLICATE_HEADER
    without_real = f"{hash_pair(pki.reports)};{forged}"
    assert reason_of(decode_xfcc, without_real) is R.MALFORMED


#: Characters that matter to the grammar, and ordinary ones.
SAN_TEXT = st.text(alphabet=st.sampled_from(list(',;="\\ \taz.:/-x%#')), max_size=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    uris=st.lists(SAN_TEXT, max_size=2),
    dns_names=st.lists(SAN_TEXT, max_size=2),
)
def test_any_san_decodes_as_itself_or_is_refused(pki, uris, dns_names):
    """The property, for SANs of any shape: what Envoy writes decodes to the certificate
    itself exactly when every SAN is representable unquoted (no ',', ';', '"', whitespace),
    and is refused as malformed otherwise; never another certificate.  (These SANs cannot
    spell a key Envoy writes once, so no duplicate_header.)"""
    cert = pki.intermediate.issue(
        common_name="prop", sans=[uri(u) for u in uris] + [dns(d) for d in dns_names], key=KEY
    )
    value = xfcc_header(cert)
    representable = not any(set(',;" \t') & set(text) for text in uris + dns_names)
    if representable:
        assert decode_xfcc(value)[0] == cert.der
    else:
        assert reason_of(decode_xfcc, value) is R.MALFORMED


# --- the subject as BoringSSL prints it --------------------------------------------------------

A = x509.NameAttribute


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        # Each expected string is what Envoy 1.40 wrote for such a certificate.
        (name(A(NameOID.COMMON_NAME, "v")), "CN=v"),
        (
            name(
                A(NameOID.COUNTRY_NAME, "US"),
                A(NameOID.ORGANIZATION_NAME, "O1"),
                A(NameOID.ORGANIZATIONAL_UNIT_NAME, "OU1"),
                A(NameOID.COMMON_NAME, "cn"),
            ),
            "CN=cn,OU=OU1,O=O1,C=US",
        ),
        (
            name(A(NameOID.COMMON_NAME, ' #a,b+c"d\\e<f>g;h=i/j ')),
            'CN=\\ #a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h=i/j\\ ',
        ),
        (name(A(NameOID.COMMON_NAME, "#x")), "CN=\\#x"),
        (name(A(NameOID.COMMON_NAME, "é€😀")), "CN=\\C3\\A9\\E2\\82\\AC\\F0\\9F\\98\\80"),
        (name(A(NameOID.COMMON_NAME, "a\x01b\x7fc\td")), "CN=a\\01b\\7Fc\\09d"),
        (name(A(NameOID.EMAIL_ADDRESS, "a@b")), "emailAddress=a@b"),
        (name(A(NameOID.STREET_ADDRESS, "s")), "street=s"),
        (name(A(NameOID.GIVEN_NAME, "g"), A(NameOID.SURNAME, "s")), "SN=s,GN=g"),
        (name(A(NameOID.DOMAIN_COMPONENT, "dc"), A(NameOID.USER_ID, "u")), "UID=u,DC=dc"),
        (name(A(x509.ObjectIdentifier("1.2.3.4.5"), "hello")), "1.2.3.4.5=#0C0568656C6C6F"),
        (name(A(NameOID.ORGANIZATION_IDENTIFIER, "v")), "2.5.4.97=#0C0176"),
        (name(A(NameOID.JURISDICTION_COUNTRY_NAME, "US")), "1.3.6.1.4.1.311.60.2.1.3=#13025553"),
        (name(A(NameOID.COMMON_NAME, "ab c", _ASN1Type.BMPString)), "CN=ab c"),
        (name(A(NameOID.COMMON_NAME, "é€", _ASN1Type.BMPString)), "CN=\\C3\\A9\\E2\\82\\AC"),
        (
            name(A(NameOID.COMMON_NAME, "é€😀", _ASN1Type.UniversalString)),
            "CN=\\C3\\A9\\E2\\82\\AC\\F0\\9F\\98\\80",
        ),
        # A T61String is one character per byte: the UTF-8 bytes cryptography wrote become
        # Latin-1 characters, each then written as UTF-8.
        (
            name(A(NameOID.COMMON_NAME, "é€", _ASN1Type.T61String)),
            "CN=\\C3\\83\\C2\\A9\\C3\\A2\\C2\\82\\C2\\AC",
        ),
        (name(A(NameOID.COMMON_NAME, "123", _ASN1Type.NumericString)), "CN=123"),
        (
            x509.Name(
                [
                    x509.RelativeDistinguishedName(
                        [
                            A(NameOID.COMMON_NAME, "z"),
                            A(NameOID.ORGANIZATION_NAME, "a"),
                            A(NameOID.USER_ID, "m"),
                        ]
                    ),
                    x509.RelativeDistinguishedName([A(NameOID.COUNTRY_NAME, "US")]),
                ]
            ),
            "C=US,UID=m+O=a+CN=z",
        ),
        (x509.Name([]), ""),
    ],
)
def test_envoy_subject_matches_what_envoy_wrote(pki, subject, expected):
    cert = pki.intermediate.issue(subject=subject, dns_names=["x.example"], key=KEY)
    assert envoy_subject(cert.certificate) == expected


def test_short_names_cover_the_attribute_arcs_seen_in_boringssl():
    assert SHORT_NAMES["2.5.4.3"] == "CN"
    assert SHORT_NAMES["1.2.840.113549.1.9.1"] == "emailAddress"
    assert SHORT_NAMES["0.9.2342.19200300.100.1.25"] == "DC"
    assert "2.5.4.97" not in SHORT_NAMES  # organizationIdentifier: BoringSSL has no name


def test_a_subject_boringssl_cannot_print_is_refused(pki):
    # A UTF8String with invalid UTF-8: cryptography parses the certificate, the subject cannot
    # be printed, and an element naming it cannot be checked.
    cert = pki.intermediate.issue(
        subject=name(A(NameOID.COMMON_NAME, "placeholder")), uris=["spiffe://a/b"], key=KEY
    )
    der = cert.der
    bad = der.replace(b"placeholder", b"placeholde\xff")
    with pytest.raises(ValueError):
        envoy_subject(x509.load_der_x509_certificate(bad))
    pem = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(bad).decode()
    pem += "-----END CERTIFICATE-----\n"
    value = f'Hash={hashlib.sha256(bad).hexdigest()};Cert="{envoy_pem(pem)}";Subject="CN=x"'
    assert reason_of(decode_xfcc, value) is R.MALFORMED
