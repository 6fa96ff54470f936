"""Properties of every header format, for any input.

1. Whatever the header values (any text, any combination of the format's headers, in any
   capitalisation, among unrelated headers), ``decode(find(scope))`` returns a
   ``PresentedCertificate`` or ``None`` or raises ``CertificateRejected``, nothing else, and
   exactly the one the documented rules give (duplicates, sizes, verdict, "no certificate",
   then the format's decoder).
2. What ``asgi_mtls.testing`` encodes as a proxy would, the source decodes back to the same
   leaf and chain, whatever the header-name casing, surrounding whitespace and neighbours.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_mtls import CertificateRejected, RejectionReason
from asgi_mtls.sources import HEADER_FORMATS, HeaderSource, PresentedCertificate
from asgi_mtls.sources.headers.format import OWS, Verdict
from asgi_mtls.testing import CertificateAuthority, IssuedCertificate, encode_certificate_headers
from tests.test_header_formats import WITH_CHAIN

# Modest on purpose: the whole file runs in a few seconds (12 formats x 80 examples, plus 150
# round trips).  Raise max_examples locally when changing a decoder.
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PER_FORMAT = settings(SETTINGS, max_examples=80)

# A few certificates made once: an EC leaf under an intermediate, an RSA leaf (longer DER,
# multi-byte lengths), and a subject full of the characters XFCC and RFC 2253 quote.
_ROOT = CertificateAuthority("Property Root")
_INTERMEDIATE = _ROOT.intermediate("Property Intermediate")
CERTIFICATES: list[IssuedCertificate] = [
    _INTERMEDIATE.issue_client(
        "ec-client", spiffe_id="spiffe://example.org/a", dns_names=["a.example", "b.example"]
    ),
    _ROOT.issue_client("rsa-client", rsa_bits=2048),
    _INTERMEDIATE.issue_client('quote" semi; comma, eq= back\\slash', organization="O+/=%"),
]

#: The headers of each format (certificate, chain, verdict), default names.
NAMES = {
    name: [n for n in (s.header, s.chain_header, s.verify_header) if n]
    for name, s in ((name, HeaderSource(name)) for name in HEADER_FORMATS)
}
#: Also exercise the optional RFC 9440 verdict header.
SOURCES: dict[str, HeaderSource] = {name: HeaderSource(name) for name in HEADER_FORMATS}
SOURCES["rfc9440"] = HeaderSource("rfc9440", verify_header="x-client-cert-verified")
NAMES["rfc9440"].append("x-client-cert-verified")

# Text that reaches the decoders' deeper branches, not only their first check.
FRAGMENTS = [
    ":",
    ";",
    ",",
    ", ",
    '"',
    "\\",
    "=",
    "%",
    "%0A",
    "%2B",
    "%25",
    "+",
    "/",
    " ",
    "\t",
    "(null)",
    "NONE",
    "SUCCESS",
    "FAILED:x",
    "0",
    "true",
    "Cert=",
    'Cert="',
    "Hash=",
    "Chain=",
    "Subject=",
    "URI=",
    "By=",
    "DNS=",
    "-----BEGIN CERTIFICATE-----",
    "-----END CERTIFICATE-----",
    "-----BEGIN%20CERTIFICATE-----",
    "MII",
    "MIIB",
    "AAAA",
    "==",
    "{http.request.tls.client.certificate_der_base64}",
]
latin1_text = st.text(alphabet=st.characters(max_codepoint=255), max_size=80)
fragments = st.lists(st.one_of(st.sampled_from(FRAGMENTS), latin1_text), max_size=12).map("".join)


def _valid_values(name: str) -> list[str]:
    values: list[str] = []
    for cert in CERTIFICATES:
        values += encode_certificate_headers(name, cert).values()
    return values


VALID = {name: _valid_values(name) for name in HEADER_FORMATS}


@st.composite
def mutated(draw: st.DrawFn, name: str) -> str:
    """A real value of this format, cut, spliced or with text inserted."""
    value = draw(st.sampled_from(VALID[name]))
    start = draw(st.integers(0, len(value)))
    end = draw(st.integers(start, len(value)))
    insert = draw(st.one_of(st.just(""), fragments))
    return value[:start] + insert + value[end:]


def casings(name: str) -> st.SearchStrategy[str]:
    alternating = "".join(c.upper() if i % 2 else c for i, c in enumerate(name))
    return st.sampled_from([name, name.upper(), name.title(), alternating])


def scope_of(pairs: list[tuple[str, str]]) -> dict[str, object]:
    """The scope a server builds: header names lowercased, as the ASGI HTTP spec requires
    (whatever casing the client wrote; Starlette's own ``Headers`` relies on it too)."""
    return {
        "type": "http",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
    }


#: What the documented rules decide before the decoder runs: the decoder's turn.
DECODER = "decoder"


def ruling(source: HeaderSource, pairs: list[tuple[str, str]]) -> RejectionReason | str | None:
    """The outcome ``docs/header-formats.md`` ("Rules every format follows") gives for these
    headers, in its order: nothing to find (``None``), a refusal, ``None`` for "no
    certificate", or :data:`DECODER` (the format's decoder: a certificate or ``malformed``)."""
    spec = source.format
    wanted = [name for name in (source.header, source.chain_header, source.verify_header) if name]
    values: dict[str, list[str]] = {name: [] for name in wanted}
    for key, value in pairs:
        if key.lower() in values:
            values[key.lower()].append(value)
    certs = values[source.header]
    chains = values[source.chain_header] if source.chain_header else []
    verdicts = values[source.verify_header] if source.verify_header else []
    if not (certs or chains or verdicts):
        return None
    if len(certs) > 1 or len(verdicts) > 1 or (len(chains) > 1 and not spec.chain_repeatable):
        return RejectionReason.DUPLICATE_HEADER
    limit = source.max_header_chars
    if any(len(v) > limit for v in certs + verdicts) or len("".join(chains)) > limit:
        return RejectionReason.TOO_LARGE
    verdict = spec.verdict(verdicts[0].strip(OWS)) if verdicts and spec.verdict else None
    if verdict is Verdict.FAILED:
        return RejectionReason.PROXY_VERIFY_FAILED
    cert = certs[0].strip(OWS) if certs else None
    present = cert is not None and cert not in spec.absent
    if present and verdict is Verdict.ONLY_WITHOUT_CERTIFICATE:
        return RejectionReason.PROXY_VERIFY_FAILED
    if not present:
        return RejectionReason.MALFORMED if any(c.strip(OWS) for c in chains) else None
    return DECODER if cert else RejectionReason.MALFORMED


def judge(source: HeaderSource, pairs: list[tuple[str, str]]) -> object:
    """``decode(find(scope))`` for these headers: exactly what :func:`ruling` says, the same
    answer twice (cacheable), and nothing but a certificate, ``None`` or a refusal."""
    raw = source.find(scope_of(pairs))
    expected = ruling(source, pairs)
    if raw is None:
        assert expected is None
        return None
    try:
        result = source.decode(raw)
    except CertificateRejected as exc:
        assert exc.reason is (RejectionReason.MALFORMED if expected == DECODER else expected)
        # Deterministic in raw: the same raw values give the same answer (cacheable).
        with pytest.raises(CertificateRejected) as again:
            source.decode(raw)
        assert again.value.reason is exc.reason
        return exc.reason
    if expected == DECODER:
        assert isinstance(result, PresentedCertificate)
    else:
        assert expected is None and result is None
    assert source.decode(raw) == result
    return result


NOISE = st.tuples(st.sampled_from(["host", "x-other", "cookie", ""]), latin1_text)
VALUES = {
    name: st.one_of(fragments, mutated(name), st.sampled_from(VALID[name]))
    for name in HEADER_FORMATS
}
CASINGS = {header: casings(header) for headers in NAMES.values() for header in headers}


@st.composite
def header_soup(draw: st.DrawFn, name: str) -> list[tuple[str, str]]:
    """Any combination of the format's headers (0-3 of each), any casing, with any values
    (free text, or mutated real values), among unrelated headers."""
    pairs: list[tuple[str, str]] = []
    for header in NAMES[name]:
        for _ in range(draw(st.integers(0, 3))):
            pairs.append((draw(CASINGS[header]), draw(VALUES[name])))
    pairs += draw(st.lists(NOISE, max_size=3))
    return draw(st.permutations(pairs))


SOUPS = {name: header_soup(name) for name in HEADER_FORMATS}


@pytest.mark.parametrize("name", HEADER_FORMATS)
@PER_FORMAT
@given(data=st.data())
def test_any_header_values_give_a_certificate_none_or_a_rejection(name, data):
    judge(SOURCES[name], data.draw(SOUPS[name]))


@SETTINGS
@given(
    name=st.sampled_from(HEADER_FORMATS),
    index=st.integers(0, len(CERTIFICATES) - 1),
    with_chain=st.booleans(),
    data=st.data(),
)
def test_encode_then_decode_round_trips(name, index, with_chain, data):
    cert = CERTIFICATES[index]
    chain: list[x509.Certificate] = list(cert.chain) if with_chain else []
    headers = encode_certificate_headers(name, cert, chain=chain)
    ows = st.sampled_from(["", " ", "\t", "  ", " \t"])
    pairs = [
        (data.draw(casings(header)), data.draw(ows) + value + data.draw(ows))
        for header, value in headers.items()
    ]
    pairs += data.draw(st.lists(st.tuples(st.sampled_from(["host", "accept"]), latin1_text)))
    pairs = data.draw(st.permutations(pairs))
    presented = judge(SOURCES[name], pairs)
    assert isinstance(presented, PresentedCertificate), presented
    assert presented.leaf == cert.der
    expected = tuple(c.public_bytes(Encoding.DER) for c in chain) if name in WITH_CHAIN else ()
    assert presented.chain == expected
    assert presented.source == name
