"""Cloud load balancers: AWS ALB in mutual-TLS passthrough (``aws-alb``) and verify
(``aws-alb-verify``) modes, CloudFront viewer mTLS (``cloudfront``), Azure App Service
(``azure``).

References: AWS, "Mutual authentication with TLS in Application Load Balancer" (the
``X-Amzn-Mtls-*`` headers); CloudFront, "Viewer mTLS headers"; Microsoft, "Configure TLS
mutual authentication for Azure App Service" (``X-ARR-ClientCert``).  None of these runs in
CI: the values are built as documented (``asgi_mtls.testing``).  Deployment pages:
``docs/deploy/aws-alb.md``, ``docs/deploy/rfc9440.md`` (CloudFront), ``docs/deploy/azure.md``.
"""

from __future__ import annotations

from typing import Final

from asgi_mtls.sources.encoding import url_encoded_pem_to_der
from asgi_mtls.sources.headers.format import (
    HeaderFormat,
    decode_base64_der,
    decode_url_encoded_leaf,
    leaf,
    leaf_first,
)

__all__ = ["FORMATS", "decode_alb_chain"]


def decode_alb_chain(value: str) -> list[bytes]:
    """AWS ALB passthrough ``X-Amzn-Mtls-Clientcert``: the whole chain the client sent, leaf
    first, as URL-encoded PEM with ``+ = /`` left raw (so ``unquote``, never ``unquote_plus``)."""
    return url_encoded_pem_to_der(value, what="X-Amzn-Mtls-Clientcert")


FORMATS: Final = (
    HeaderFormat("aws-alb", "x-amzn-mtls-clientcert", leaf_first(decode_alb_chain)),
    HeaderFormat("aws-alb-verify", "x-amzn-mtls-clientcert-leaf", leaf(decode_url_encoded_leaf)),
    HeaderFormat("cloudfront", "cloudfront-viewer-cert-pem", leaf(decode_url_encoded_leaf)),
    HeaderFormat("azure", "x-arr-clientcert", leaf(decode_base64_der)),
)
