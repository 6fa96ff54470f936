"""Certificates forwarded in HTTP headers by a TLS-terminating proxy.

One small decoder per format.  A header only counts when the middleware has established that
the TCP peer is a trusted proxy; the certificate in it is then validated locally against the
configured roots exactly like a handshake certificate.  A proxy's own verdict can only add a
reason to reject, never a reason to accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import unquote

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.sources.encoding import check_size, pem_certificate_to_der
from asgi_mtls.sources.types import PresentedCertificate, RawValues

__all__ = ["NginxHeaderSource", "decode_nginx_escaped_cert", "header_values"]

DEFAULT_MAX_HEADER_CHARS = 32 * 1024


def header_values(scope: Mapping[str, object], names: Sequence[bytes]) -> list[list[str]] | None:
    """The values of each of ``names`` (lowercase) in ``scope["headers"]``, or ``None`` if none
    of them is present.  Values are decoded as latin-1, as HTTP/1.1 allows."""
    headers = scope.get("headers")
    if not isinstance(headers, Iterable):
        return None
    found: list[list[str]] = [[] for _ in names]
    seen = False
    for name, value in headers:
        lowered = name.lower()
        for index, wanted in enumerate(names):
            if lowered == wanted:
                found[index].append(value.decode("latin-1"))
                seen = True
    return found if seen else None


def decode_nginx_escaped_cert(value: str, *, max_chars: int = DEFAULT_MAX_HEADER_CHARS) -> bytes:
    """nginx ``$ssl_client_escaped_cert``: the leaf PEM, URL-encoded.  Returns DER.

    Decoded with ``unquote`` (never ``unquote_plus``: a literal ``+`` is base64).  A value
    that still contains ``%`` after one round of decoding was encoded twice: rejected.
    """
    check_size(value, max_chars, "certificate header")
    text = unquote(value, encoding="ascii", errors="strict")
    if "%" in text:
        raise CertificateRejected(RejectionReason.MALFORMED, "certificate header is double-encoded")
    if " " in text.replace("BEGIN CERTIFICATE", "").replace("END CERTIFICATE", ""):
        # nginx escapes spaces; a bare one is a '+' that something decoded as form data.
        raise CertificateRejected(RejectionReason.MALFORMED, "space inside the certificate body")
    return pem_certificate_to_der(text)


class NginxHeaderSource:
    """nginx forwarding ``$ssl_client_escaped_cert`` (and optionally ``$ssl_client_verify``).

    nginx config::

        proxy_set_header X-SSL-Client-Cert   $ssl_client_escaped_cert;
        proxy_set_header X-SSL-Client-Verify $ssl_client_verify;

    nginx omits a header whose value is empty, so a request without a client certificate
    arrives without the certificate header.  ``verify_header=None`` ignores the verdict.
    """

    name = "nginx"
    requires_trusted_proxy = True

    def __init__(
        self,
        header: str = "x-ssl-client-cert",
        *,
        verify_header: str | None = "x-ssl-client-verify",
        max_header_chars: int = DEFAULT_MAX_HEADER_CHARS,
    ) -> None:
        self.header = header.lower()
        self.verify_header = verify_header.lower() if verify_header else None
        self.max_header_chars = max_header_chars
        names = [self.header.encode("latin-1")]
        if self.verify_header:
            names.append(self.verify_header.encode("latin-1"))
        self._names = tuple(names)

    def find(self, scope: Mapping[str, object]) -> RawValues | None:
        found = header_values(scope, self._names)
        if found is None:
            return None
        # Encode the counts in the key so that duplicates are judged in decode().
        certs = found[0]
        verdicts = found[1] if len(found) > 1 else []
        return (str(len(certs)), str(len(verdicts)), *certs, *verdicts)

    def decode(self, raw: RawValues) -> PresentedCertificate | None:
        cert_count, verdict_count = int(raw[0] or 0), int(raw[1] or 0)
        certs = raw[2 : 2 + cert_count]
        verdicts = raw[2 + cert_count : 2 + cert_count + verdict_count]
        if cert_count > 1:
            raise CertificateRejected(
                RejectionReason.DUPLICATE_HEADER, f"{cert_count} {self.header} headers"
            )
        if verdict_count > 1:
            raise CertificateRejected(
                RejectionReason.DUPLICATE_HEADER, f"{verdict_count} {self.verify_header} headers"
            )
        verdict = verdicts[0].strip() if verdicts and verdicts[0] is not None else None
        # Any verdict but SUCCESS next to a certificate ("FAILED:...", or "NONE" while a
        # certificate is present) is a reason to reject; "NONE" alone means anonymous.
        if verdict is not None and verdict != "SUCCESS" and (verdict != "NONE" or cert_count):
            raise CertificateRejected(
                RejectionReason.PROXY_VERIFY_FAILED, f"{self.verify_header}: {verdict[:200]!r}"
            )
        if cert_count == 0:
            return None  # only the verdict header (nginx sends "NONE" without a certificate)
        if not (certs[0] or "").strip():
            raise CertificateRejected(RejectionReason.MALFORMED, f"empty {self.header} header")
        value = certs[0]
        assert value is not None
        try:
            der = decode_nginx_escaped_cert(value, max_chars=self.max_header_chars)
        except UnicodeDecodeError:
            raise CertificateRejected(
                RejectionReason.MALFORMED, "certificate header is not ASCII"
            ) from None
        return PresentedCertificate(self.name, der)
