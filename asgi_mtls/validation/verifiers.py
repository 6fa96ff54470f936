"""cryptography's client verifier as this package configures it, built once per trust snapshot
and second rather than once per certificate (issue #10).

The end-entity extension policy is cryptography's webpki default with one relaxation: the
subjectAltName may be absent, since many enterprise and Kubernetes CAs issue CN-only client
certificates.  The relaxation carries no Python callback (a callback costs a round trip into
Python, and a conversion of the extension, on every verification); the one rule of the default
policy that matters without a SAN, RFC 5280 §4.2.1.6's "with an empty subject the SAN must
be present and critical", is :func:`leaf_san_problem`, checked on the leaf after path
building.  Checking it after is equivalent: the rule reads the leaf alone, the leaf is in
every candidate path, so it fails every path or none.

Why a verifier may be shared: a ``ClientVerifier`` is immutable (a store, a time, a depth and
the policies), so one serves any number of verifications, from any thread.  cryptography
reads the validation time to the second (ASN.1 times have no fractions; a ``datetime``'s
microseconds are dropped), so a verifier built for any instant of a second gives the same
answers as one built for any other instant of it.  The key is the trust snapshot itself
(a reload makes a new one) and the whole second.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
)

from asgi_mtls.validation.trust import TrustState

__all__ = ["Verifiers", "leaf_san_problem"]


def leaf_san_problem(leaf: x509.Certificate, subject: x509.Name | None = None) -> str | None:
    """RFC 5280 §4.2.1.6: when the subject is empty, the subjectAltName MUST be present and
    critical.  Why ``leaf`` breaks that rule, or ``None``.  ``subject``: the leaf's, if the
    caller parsed it already."""
    if len(leaf.subject if subject is None else subject):
        return None
    try:
        san = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return "certificate has neither a subject nor a subjectAltName"
    if not san.critical:
        return "subjectAltName MUST be critical when the subject is empty"
    return None


class Verifiers:
    """Hands out the ``ClientVerifier`` for a trust snapshot and a time, building one only
    when the snapshot or the second changed since the last one (see the module docstring).

    One slot: validations of one moment share it; a validation at another second (a leaf
    verified at its own notBefore or notAfter under ``clock_skew``, or ``validate(at=...)``)
    replaces it, which costs one build.  Safe under threads: the slot is one tuple, read and
    replaced whole.
    """

    def __init__(self, max_chain_depth: int | None = None) -> None:
        self.max_chain_depth = max_chain_depth
        self._ca_policy = ExtensionPolicy.webpki_defaults_ca()
        self._ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        )
        self._last: tuple[TrustState, int, ClientVerifier] | None = None

    def get(self, trust: TrustState, at: dt.datetime) -> ClientVerifier:
        """The verifier of ``trust`` at ``at`` (timezone-aware)."""
        second = int(at.timestamp() // 1)
        last = self._last
        if last is not None and last[0] is trust and last[1] == second:
            return last[2]
        verifier = self.build(trust, at)
        self._last = (trust, second, verifier)
        return verifier

    def build(self, trust: TrustState, at: dt.datetime) -> ClientVerifier:
        """A new verifier of ``trust`` at ``at``."""
        builder = PolicyBuilder().store(trust.store).time(at)
        builder = builder.extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
        if self.max_chain_depth is not None:
            builder = builder.max_chain_depth(self.max_chain_depth)
        return builder.build_client_verifier()
