"""Helpers shared by the CRL and OCSP modules: time, URLs, signatures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

#: How far in the future a CRL's thisUpdate or an OCSP response's thisUpdate may be (clock
#: differences between the CA and this host) before the data is refused.
THIS_UPDATE_TOLERANCE: Final = dt.timedelta(minutes=5)
#: Signature hashes never accepted on CRLs and OCSP responses.
WEAK_HASHES: Final = (hashes.MD5, hashes.SHA1)


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def http_urls(names: Iterable[x509.GeneralName]) -> list[str]:
    """The http(s) URIs among ``names`` (LDAP and other schemes are not fetched)."""
    urls = []
    for name in names:
        if isinstance(name, x509.UniformResourceIdentifier):
            url = name.value
            if url.lower().startswith(("http://", "https://")):
                urls.append(url)
    return urls


def is_weak_hash(hash_algorithm: hashes.HashAlgorithm | None) -> bool:
    """MD5 and SHA-1: never accepted in a signature this package relies on."""
    return isinstance(hash_algorithm, WEAK_HASHES)


def verify_signature(
    public_key: object,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
    algorithm_oid: x509.ObjectIdentifier,
) -> None:
    """Verify a signature made with a certificate's key; raises InvalidSignature/ValueError."""
    if is_weak_hash(hash_algorithm):
        raise ValueError(f"weak signature hash {hash_algorithm.name if hash_algorithm else ''}")
    if isinstance(public_key, rsa.RSAPublicKey):
        if algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS or hash_algorithm is None:
            raise ValueError("RSASSA-PSS signatures on OCSP responses are not supported")
        public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if hash_algorithm is None:
            raise ValueError("ECDSA signature without a hash algorithm")
        public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        public_key.verify(signature, data)
    else:
        raise ValueError(f"unsupported signing key {type(public_key).__name__}")
