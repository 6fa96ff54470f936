"""Helpers for tests: a small, real PKI and ways to present its certificates.

Everything here builds genuine X.509 certificates with ``cryptography`` (no mocks), so the
same objects serve the library's own tests, the example app's development PKI and users'
tests of their own apps::

    ca = CertificateAuthority("Test Root")
    alice = ca.issue_client(spiffe_id="spiffe://example.org/alice")
    headers = encode_certificate_headers("nginx", alice)   # {"x-ssl-client-cert": ..., ...}

==================  ===========================================================================
module              what it holds
==================  ===========================================================================
``pki``             :class:`CertificateAuthority`, :class:`IssuedCertificate`
``revocation``      CRLs and OCSP responses (what ``CertificateAuthority.crl()`` and
                    ``ocsp_response()`` sign), pointers to them in certificates
``responder``       :class:`RevocationServer`, a local HTTP server publishing them
``headers``         proxy header values for every format of
                    ``asgi_mtls.sources.headers.HEADER_FORMATS`` (:data:`HEADER_ENCODERS`)
``asgi``            :func:`simulate_connection`, :func:`asgi_tls_scope_extension`,
                    :func:`server_name_tls_extension` (pyvoy's shape: a name, no certificate)
==================  ===========================================================================

Never use these certificates in production: the keys are generated in memory and written
to disk unencrypted.
"""

from __future__ import annotations

from asgi_mtls.testing.asgi import (
    asgi_tls_scope_extension,
    server_name_tls_extension,
    simulate_connection,
)
from asgi_mtls.testing.headers import (
    HEADER_ENCODERS,
    HeaderEncoder,
    alb_header,
    alb_leaf_header,
    apache_header,
    base64_der_header,
    client_cert_chain_header,
    client_cert_header,
    cloudfront_header,
    encode_certificate_headers,
    haproxy_chain_header,
    nginx_escaped_header,
    nginx_pem_header,
    traefik_header,
    xfcc_header,
)
from asgi_mtls.testing.pki import (
    CertificateAuthority,
    CertificateLike,
    IssuedCertificate,
    PrivateKey,
)
from asgi_mtls.testing.responder import RevocationServer, Route

__all__ = [
    "HEADER_ENCODERS",
    "CertificateAuthority",
    "CertificateLike",
    "HeaderEncoder",
    "IssuedCertificate",
    "PrivateKey",
    "RevocationServer",
    "Route",
    "alb_header",
    "alb_leaf_header",
    "apache_header",
    "asgi_tls_scope_extension",
    "base64_der_header",
    "client_cert_chain_header",
    "client_cert_header",
    "cloudfront_header",
    "encode_certificate_headers",
    "haproxy_chain_header",
    "nginx_escaped_header",
    "nginx_pem_header",
    "server_name_tls_extension",
    "simulate_connection",
    "traefik_header",
    "xfcc_header",
]
