"""HAProxy: ``%[ssl_c_der,base64]`` and ``%[ssl_c_chain_der,base64]`` (format ``haproxy``),
with the ``%[ssl_c_verify]`` verdict.

HAProxy documents the sample fetches in its configuration manual (section 7.3.4, "Fetching
samples at Layer 5"); the header names are ours (HAProxy has no standard one).  The
deployment page is ``docs/deploy/haproxy.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from asgi_mtls.sources.encoding import split_der_certificates, strict_base64
from asgi_mtls.sources.headers.format import (
    DecodeOptions,
    HeaderFormat,
    Verdict,
    decode_base64_der,
)

__all__ = ["FORMATS", "decode_haproxy_chain", "openssl_code_verdict"]


def decode_haproxy_chain(value: str) -> list[bytes]:
    """HAProxy ``%[ssl_c_chain_der,base64]``: one base64 blob of the DER certificates the
    client sent after its leaf, concatenated.  Split by DER lengths, strictly; empty (the
    client sent no chain) is no chain."""
    if not value:
        return []
    return split_der_certificates(strict_base64(value, what="HAProxy chain"))


def openssl_code_verdict(value: str) -> Verdict:
    """HAProxy ``%[ssl_c_verify]``: OpenSSL's ``X509_V_*`` code, ``0`` for OK.  Any other
    value, integer or not, failed."""
    return Verdict.OK if value == "0" else Verdict.FAILED


def _decode(
    cert: str, chain: Sequence[str], options: DecodeOptions
) -> tuple[bytes, tuple[bytes, ...]]:
    hints = decode_haproxy_chain(chain[0]) if chain else []
    return decode_base64_der(cert), tuple(hints)


FORMATS: Final = (
    HeaderFormat(
        "haproxy",
        "x-ssl-client-der",
        _decode,
        chain_header="x-ssl-client-chain-der",
        verify_header="x-ssl-client-verify-code",
        verdict=openssl_code_verdict,
        absent=frozenset({""}),
    ),
)
