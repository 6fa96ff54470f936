"""Proxy header values, exactly as each proxy writes them, for every registered format.

One function per header value (``nginx_escaped_header``, ``xfcc_header``, ...), and
:data:`HEADER_ENCODERS`, keyed by the same names as the decoders' registry
(``asgi_mtls.sources.headers.HEADER_FORMATS``): the inverse of each decoder, which
:func:`encode_certificate_headers` looks up (a test checks that every format has one, with
a chain and a verdict exactly where the decoder's entry has those headers).  ``chain`` is
always what the client sent after its leaf (intermediates), leaf excluded.

Each encoder follows the proxy's documentation or source, cited in its docstring; those of
nginx, HAProxy, Caddy, Apache and Envoy are also compared with the real programs in
``tests/e2e``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes

from asgi_mtls.sources.headers import header_format
from asgi_mtls.sources.headers.envoy import envoy_names
from asgi_mtls.sources.headers.envoy_subject import envoy_subject
from asgi_mtls.testing.pki import CertificateLike, IssuedCertificate, certificate_of, der_of, pem_of


def _b64(cert: CertificateLike) -> str:
    return base64.b64encode(der_of(cert)).decode("ascii")


def nginx_escaped_header(cert: CertificateLike) -> str:
    """nginx ``$ssl_client_escaped_cert``: the PEM, URL-encoded with every reserved character
    escaped."""
    return quote(pem_of(cert), safe="")


def nginx_pem_header(cert: CertificateLike) -> str:
    """nginx's deprecated ``$ssl_client_cert``: the PEM without its final newline, every other
    newline followed by a tab (``ngx_ssl_get_certificate``).  An HTTP/1.1 server receives
    the tabs as obsolete line folding; h11 turns each fold into one space."""
    return pem_of(cert)[:-1].replace("\n", "\n\t")


def xfcc_header(
    cert: CertificateLike,
    *,
    chain: Sequence[CertificateLike] = (),
    by: str | None = "spiffe://proxy.example/envoy",
    include_cert: bool = True,
    include_chain: bool = False,
    subject: bool = True,
    uri: bool = True,
    dns: bool = True,
    previous: str | None = None,
) -> str:
    """Envoy's ``x-forwarded-client-cert`` element for ``cert``, byte for byte as Envoy 1.40
    writes it (compared with the real binary in ``tests/e2e/test_envoy.py``), pairs joined by
    ``;`` in this order: ``By=`` (the proxy's own URI SAN, unquoted; ``None`` for a proxy
    certificate without one), ``Hash=`` (lower-case hex SHA-256 of the DER), ``Cert="..."``
    and ``Chain="..."`` (URL-encoded PEM: newline, space, ``+ / =`` escaped; the chain is
    what the client sent, leaf first), ``Subject="..."`` (the subject as BoringSSL prints it
    in RFC 2253 form: ``asgi_mtls.sources.headers.envoy_subject``), one ``URI=`` per URI SAN
    (one empty ``URI=`` when there is none) and one ``DNS=`` per DNS SAN.  URI and DNS values
    are written raw, unquoted, whatever they contain, as Envoy does.  ``previous`` is the
    XFCC that arrived from earlier hops (``APPEND_FORWARD`` appends after a ``,``)."""

    def envoy_escape(pem: str) -> str:
        for plain, escaped in (
            ("\n", "%0A"),
            (" ", "%20"),
            ("+", "%2B"),
            ("/", "%2F"),
            ("=", "%3D"),
        ):
            pem = pem.replace(plain, escaped)
        return pem

    certificate = certificate_of(cert)
    pairs: list[str] = []
    if by is not None:
        pairs.append(f"By={by}")
    pairs.append(f"Hash={certificate.fingerprint(hashes.SHA256()).hex()}")
    if include_cert:
        pairs.append(f'Cert="{envoy_escape(pem_of(certificate))}"')
    if include_chain:
        full = "".join(pem_of(c) for c in (certificate, *chain))
        pairs.append(f'Chain="{envoy_escape(full)}"')
    uris, dns_names = envoy_names(certificate)
    if subject:
        pairs.append(f'Subject="{envoy_subject(certificate)}"')
    if uri:
        pairs += [f"URI={u}" for u in uris]
    if dns:
        pairs += [f"DNS={d}" for d in dns_names]
    element = ";".join(pairs)
    return f"{previous},{element}" if previous else element


def client_cert_header(cert: CertificateLike) -> str:
    """RFC 9440 ``Client-Cert``: ``:<base64 DER>:`` (an RFC 8941 byte sequence)."""
    return f":{_b64(cert)}:"


def client_cert_chain_header(chain: Sequence[CertificateLike]) -> str:
    """RFC 9440 ``Client-Cert-Chain``: byte sequences joined by ``", "``, leaf excluded."""
    return ", ".join(f":{_b64(c)}:" for c in chain)


def base64_der_header(cert: CertificateLike) -> str:
    """Base64 DER: HAProxy ``%[ssl_c_der,base64]``, Caddy
    ``{http.request.tls.client.certificate_der_base64}``, Azure ``X-ARR-ClientCert``."""
    return _b64(cert)


def haproxy_chain_header(chain: Sequence[CertificateLike]) -> str:
    """HAProxy ``%[ssl_c_chain_der,base64]``: base64 of the concatenated DER of the chain the
    client sent after its leaf; empty when it sent none."""
    return base64.b64encode(b"".join(der_of(c) for c in chain)).decode("ascii")


def traefik_header(
    cert: CertificateLike, chain: Sequence[CertificateLike] = (), *, legacy: bool = False
) -> str:
    """Traefik ``X-Forwarded-Tls-Client-Cert``: each certificate's PEM body without armour or
    newlines, leaf first, joined by ``,``; ``legacy=True`` URL-encodes each body as Traefik
    did before v2.9.4 (Go's ``url.QueryEscape``)."""
    bodies = []
    for certificate in (cert, *chain):
        pem = pem_of(certificate)
        body = pem.replace("-----BEGIN CERTIFICATE-----", "").replace(
            "-----END CERTIFICATE-----", ""
        )
        body = body.replace("\n", "")
        bodies.append(quote(body, safe="") if legacy else body)
    return ",".join(bodies)


def apache_header(cert: CertificateLike) -> str:
    """Apache ``RequestHeader set X-SSL-Client-Cert "%{SSL_CLIENT_CERT}s"``: the PEM with every
    newline (the last one too) turned into a space.  Without a certificate: ``(null)``."""
    return pem_of(cert).replace("\n", " ")


def alb_header(cert: CertificateLike, chain: Sequence[CertificateLike] = ()) -> str:
    """AWS ALB passthrough ``X-Amzn-Mtls-Clientcert``: the whole chain, leaf first, as
    URL-encoded PEM with ``+ = /`` as safe characters."""
    return quote("".join(pem_of(c) for c in (cert, *chain)), safe="+=/")


def alb_leaf_header(cert: CertificateLike) -> str:
    """AWS ALB verify mode ``X-Amzn-Mtls-Clientcert-Leaf``: the leaf, URL-encoded PEM with
    ``+ = /`` as safe characters."""
    return quote(pem_of(cert), safe="+=/")


def cloudfront_header(cert: CertificateLike) -> str:
    """CloudFront ``CloudFront-Viewer-Cert-Pem``: the leaf as URL-encoded PEM
    (``-----BEGIN%20CERTIFICATE-----%0AMII...``)."""
    return quote(pem_of(cert), safe="")


# --- the registry of encoders -----------------------------------------------------------------

#: Encodes the certificate header's value: (leaf, the chain the client sent) -> value.
CertificateEncoder = Callable[[CertificateLike, Sequence[CertificateLike]], str]


@dataclass(frozen=True, slots=True)
class HeaderEncoder:
    """How a proxy of one format writes its headers: the inverse of that format's decoder.

    ``certificate`` writes the certificate header; ``chain`` the chain header (``None``: the
    proxy sends none for that chain), for formats with one; ``verified`` is the verdict
    header's value for a certificate the proxy verified, for formats with a default verdict
    header.
    """

    certificate: CertificateEncoder
    chain: Callable[[Sequence[CertificateLike]], str | None] | None = None
    verified: str | None = None


def _leaf_only(encode: Callable[[CertificateLike], str]) -> CertificateEncoder:
    """An encoder for a format that forwards the leaf alone."""

    def certificate(cert: CertificateLike, chain: Sequence[CertificateLike]) -> str:
        return encode(cert)

    return certificate


def _xfcc(cert: CertificateLike, chain: Sequence[CertificateLike]) -> str:
    return xfcc_header(cert, chain=chain, include_chain=bool(chain))


def _rfc9440_chain(chain: Sequence[CertificateLike]) -> str | None:
    return client_cert_chain_header(chain) if chain else None  # no field without a chain


#: Format name (one of ``HEADER_FORMATS``) -> its encoder.
HEADER_ENCODERS: Final[Mapping[str, HeaderEncoder]] = {
    "nginx": HeaderEncoder(_leaf_only(nginx_escaped_header), verified="SUCCESS"),
    "nginx-pem": HeaderEncoder(_leaf_only(nginx_pem_header), verified="SUCCESS"),
    "envoy": HeaderEncoder(_xfcc),
    "rfc9440": HeaderEncoder(_leaf_only(client_cert_header), chain=_rfc9440_chain),
    "haproxy": HeaderEncoder(
        _leaf_only(base64_der_header), chain=haproxy_chain_header, verified="0"
    ),
    "traefik": HeaderEncoder(traefik_header),
    "caddy": HeaderEncoder(_leaf_only(base64_der_header)),
    "apache": HeaderEncoder(_leaf_only(apache_header), verified="SUCCESS"),
    "aws-alb": HeaderEncoder(alb_header),
    "aws-alb-verify": HeaderEncoder(_leaf_only(alb_leaf_header)),
    "cloudfront": HeaderEncoder(_leaf_only(cloudfront_header)),
    "azure": HeaderEncoder(_leaf_only(base64_der_header)),
}


def encode_certificate_headers(
    format: str,
    cert: CertificateLike,
    *,
    chain: Sequence[CertificateLike] | None = None,
    header: str | None = None,
    chain_header: str | None = None,
    verify_header: str | None = None,
    verdict: str | None = None,
) -> dict[str, str]:
    """The headers a proxy of ``format`` (one of ``HEADER_FORMATS``) sends for a client
    presenting ``cert``, under the format's default names unless overridden.

    ``chain`` defaults to ``cert.chain`` for an :class:`IssuedCertificate`; formats that carry
    a chain get it.  ``verdict`` is the verdict header's value (default: the proxy's success
    value where the format has a verdict header by default: ``SUCCESS``, ``0``).
    """
    spec = header_format(format)
    encoder = HEADER_ENCODERS[spec.name]
    if chain is None:
        chain = cert.chain if isinstance(cert, IssuedCertificate) else ()
    headers = {header or spec.header: encoder.certificate(cert, chain)}
    chain_value = encoder.chain(chain) if encoder.chain else None
    if chain_value is not None:
        headers[chain_header or spec.chain_header or ""] = chain_value
    verdict_name = verify_header or spec.verify_header
    verdict_value = verdict if verdict is not None else encoder.verified
    if verdict_name and verdict_value is not None:
        headers[verdict_name] = verdict_value
    return headers
