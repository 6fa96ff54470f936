"""Why a certificate is ``untrusted``, in terms of what was expected.

cryptography's verifier explains a failed path search with messages such as "candidates
exhausted: all candidates exhausted with no interior errors", which tell an operator nothing
about the usual causes: a client certificate from another CA, a missing intermediate, a CA
certificate with the right name but another key.  Issue #11 asks that a refusal say what was
expected ("issued by 'CN=Other CA', which is not among the trusted roots: 'CN=Clients CA'").
This walks the issuer names the way path building would (configured intermediates and the
presented hints, by subject) and names the first link that is missing.  It runs only after
the verifier has refused, for the log detail; it never decides anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from cryptography import x509

from asgi_mtls.validation.trust import TrustState, by_subject

__all__ = ["untrusted_detail"]

#: How many trusted roots a message lists by name.
_LISTED: Final = 4
#: How far up the issuer names are followed (cryptography's default depth, plus the leaf).
_MAX_WALK: Final = 9


def _names(certificates: Sequence[x509.Certificate]) -> str:
    names = [repr(c.subject.rfc4514_string()) for c in certificates[:_LISTED]]
    if len(certificates) > _LISTED:
        names.append(f"and {len(certificates) - _LISTED} more")
    return ", ".join(names)


def untrusted_detail(
    leaf: x509.Certificate,
    hints: Sequence[x509.Certificate],
    trust: TrustState,
    reason: str,
) -> str:
    """The log detail of an ``untrusted`` refusal: the missing link, then ``reason``
    (cryptography's own words)."""
    reason = " ".join(reason.split())
    roots = _names(trust.roots)
    issuers = by_subject([*trust.intermediates, *hints])
    current = leaf
    for _ in range(_MAX_WALK):
        issuer = current.issuer.public_bytes()
        issuer_name = repr(current.issuer.rfc4514_string())
        what = "issued by" if current is leaf else f"chains up to {_subject(current)}, issued by"
        if issuer in trust.roots_by_subject:
            return (
                f"{what} {issuer_name}, a trusted root by name, but the path through it does "
                f"not verify (another key with the same name, or the CA may not issue client "
                f"certificates): {reason}"
            )
        candidates = [c for c in issuers.get(issuer, ()) if c is not current]
        if not candidates:
            known = (
                f"; intermediates known: {_names(trust.intermediates)}"
                if trust.intermediates
                else ""
            )
            return (
                f"{what} {issuer_name}, which is not among the trusted roots: {roots}{known} "
                f"(an intermediate CA must be sent by the client or configured as "
                f"intermediates=; {reason})"
            )
        current = candidates[0]
    return reason


def _subject(certificate: x509.Certificate) -> str:
    return repr(certificate.subject.rfc4514_string())
