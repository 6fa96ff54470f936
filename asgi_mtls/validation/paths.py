"""The candidate issuers around path building: bounding the search before it, and finding a
weak key in the paths that failed.

cryptography builds the path; this module only looks at the same candidates it would (the
configured roots and intermediates plus the presented hints, matched by issuer name) for two
reasons:

- :meth:`IssuerGraph.search_size` refuses inputs whose search would explode (see there);
- :meth:`IssuerGraph.weak_issuer` explains a failure: when cryptography refused every path
  and one of them, signatures checked, reaches a configured root through a key the
  :class:`~asgi_mtls.validation.policy.CertificatePolicy` refuses, the refusal is
  ``weak_key`` naming that certificate rather than a generic ``untrusted``.  cryptography
  refuses DSA, P-192 or P-224 issuers with "Forbidden public key algorithm"; this finds which
  one.  It runs only after a refusal, so it can never turn one into an acceptance.

Presented certificates are compared with the configured ones on their DER before they are
parsed (:func:`distinct_hints`): a client that sends its configured intermediate along, as
TLS clients do, costs a set lookup, not a parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.validation.policy import CertificatePolicy
from asgi_mtls.validation.trust import TrustState

__all__ = [
    "MAX_PATH_CANDIDATES",
    "IssuerGraph",
    "distinct_hints",
    "parse_presented",
    "worst_case_search",
]

#: Upper bound on the candidate issuers path building may try (see
#: :meth:`IssuerGraph.search_size`), and on the signature checks of :meth:`weak_issuer`.
MAX_PATH_CANDIDATES: Final = 256


def parse_presented(certificate: x509.Certificate | bytes) -> x509.Certificate:
    """A presented certificate (object or DER), parsed; ``malformed`` when it is not DER."""
    if isinstance(certificate, x509.Certificate):
        return certificate
    try:
        return x509.load_der_x509_certificate(certificate)
    except ValueError as exc:
        raise CertificateRejected(
            RejectionReason.MALFORMED, f"not a DER certificate: {exc}"
        ) from None


def distinct_hints(
    hints: Sequence[x509.Certificate | bytes], trust: TrustState
) -> list[x509.Certificate]:
    """The presented certificates minus repeats and minus configured ones, parsed: a repeated
    candidate only multiplies the work of path building.  Compared on their DER, before
    parsing; ``malformed`` for one that is not DER."""
    known = trust.known_ders
    seen: set[bytes] = set()
    distinct = []
    for hint in hints:
        der = hint if isinstance(hint, bytes) else hint.public_bytes(serialization.Encoding.DER)
        if der not in known and der not in seen:
            seen.add(der)
            distinct.append(parse_presented(hint))
    return distinct


def worst_case_search(trust: TrustState, max_depth: int) -> int:
    """The largest :meth:`IssuerGraph.search_size` estimate any leaf can reach when no hint
    is presented (stopped once past :data:`MAX_PATH_CANDIDATES`).

    Why this bounds every such leaf: without hints, the candidates are the configured roots
    and intermediates, and the estimate (names only) depends on the leaf through its issuer
    name alone.  A name no configured certificate bears gives 0; any other is the subject of
    a configured certificate, and every one of those is tried here.  So when this is at most
    :data:`MAX_PATH_CANDIDATES`, the search-size check cannot refuse a leaf presented
    without hints, and the validator skips it.
    """
    worst = 0
    for subject in {*trust.roots_by_subject, *trust.intermediates_by_subject}:
        worst = max(worst, _count(trust, trust.intermediates_by_subject, subject, max_depth))
        if worst > MAX_PATH_CANDIDATES:
            break
    return worst


def _count(
    trust: TrustState,
    intermediates: Mapping[bytes, Sequence[x509.Certificate]],
    issuer: bytes,
    max_depth: int,
    signs: Callable[[x509.Certificate, x509.Certificate], bool] | None = None,
    leaf: x509.Certificate | None = None,
) -> int:
    """The candidates a depth-first search from a leaf issued by ``issuer`` (a DER name)
    tries, stopped once past :data:`MAX_PATH_CANDIDATES`.  With ``signs`` (and the
    ``leaf``), only candidates whose signature on the certificate below verifies are
    descended into; without, every same-name candidate is (the estimate)."""
    count = 0
    stack: list[tuple[bytes, x509.Certificate | None, int]] = [(issuer, leaf, 0)]
    while stack:
        name, working, depth = stack.pop()
        count += len(trust.roots_by_subject.get(name, ()))
        for candidate in intermediates.get(name, ()):
            count += 1
            if count > MAX_PATH_CANDIDATES:
                return count
            if depth + 1 > max_depth:
                continue
            if signs is not None and (working is None or not signs(candidate, working)):
                continue
            stack.append((candidate.issuer.public_bytes(), candidate, depth + 1))
    return count


class IssuerGraph:
    """Who may have issued whom, by name, among the candidates of one validation."""

    def __init__(
        self, leaf: x509.Certificate, hints: Sequence[x509.Certificate], trust: TrustState
    ) -> None:
        self.leaf = leaf
        self.trust = trust
        self.intermediates: dict[bytes, list[x509.Certificate]] = {
            subject: list(group) for subject, group in trust.intermediates_by_subject.items()
        }
        for hint in hints:
            self.intermediates.setdefault(hint.subject.public_bytes(), []).append(hint)
        self._signed: dict[tuple[int, int], bool] = {}

    def signs(self, issuer: x509.Certificate, child: x509.Certificate) -> bool:
        """Whether ``issuer``'s key verifies ``child``'s signature (memoised per pair)."""
        key = (id(issuer), id(child))
        if key not in self._signed:
            try:
                child.verify_directly_issued_by(issuer)
                self._signed[key] = True
            except Exception:  # any failure: the builder would not recurse either
                self._signed[key] = False
        return self._signed[key]

    def search_size(self, max_depth: int) -> int:
        """An upper bound on the candidate issuers cryptography's depth-first path building
        will try (each costs a signature check), stopped once past
        :data:`MAX_PATH_CANDIDATES`.

        cryptography (48 and 50) neither detects loops nor bounds the number of signature checks:
        eight presented certificates forming a cross-signed loop keep it busy for minutes,
        holding the GIL (the event loop stops).  Such inputs are refused before they reach it.

        The first count assumes every same-name candidate verifies (names only, cheap); only
        when it is too large is it redone with real signature checks (memoised, so at most
        one per pair of certificates), which is how the path builder itself prunes.
        """
        estimate = self._count(max_depth, checked=False)
        if estimate <= MAX_PATH_CANDIDATES:
            return estimate
        return self._count(max_depth, checked=True)

    def _count(self, max_depth: int, *, checked: bool) -> int:
        return _count(
            self.trust,
            self.intermediates,
            self.leaf.issuer.public_bytes(),
            max_depth,
            signs=self.signs if checked else None,
            leaf=self.leaf,
        )

    def weak_issuer(
        self, policy: CertificatePolicy, max_depth: int
    ) -> tuple[str, x509.Certificate, str] | None:
        """``(role, certificate, problem)`` for the first certificate whose key ``policy``
        refuses on a signature-checked chain from the leaf to a configured root (roots
        included), or ``None``.  At most :data:`MAX_PATH_CANDIDATES` signature checks."""
        checks = 0
        # (certificate, depth, the first weak issuer above the leaf on the way, if any)
        stack: list[tuple[x509.Certificate, int, tuple[str, x509.Certificate, str] | None]] = [
            (self.leaf, 0, None)
        ]
        while stack:
            working, depth, weak = stack.pop()
            issuer = working.issuer.public_bytes()
            candidates = [
                *(("root", c) for c in self.trust.roots_by_subject.get(issuer, ())),
                *(("intermediate", c) for c in self.intermediates.get(issuer, ())),
            ]
            for role, candidate in candidates:
                checks += 1
                if checks > MAX_PATH_CANDIDATES:
                    return None
                if candidate is working or not self.signs(candidate, working):
                    continue
                found = weak
                if found is None:
                    try:
                        problem = policy.key_problem(candidate)
                    except ValueError:
                        continue  # an undecodable key verified nothing
                    if problem is not None:
                        found = (role, candidate, problem)
                if role == "root":
                    if found is not None:
                        return found
                elif depth + 1 <= max_depth:
                    stack.append((candidate, depth + 1, found))
        return None
