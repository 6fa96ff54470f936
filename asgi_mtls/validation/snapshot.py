"""What a validator works out once per trust snapshot, so that a new client costs its
signatures and little more (issue #10).

A configured root or intermediate is the same certificate for every client: whether its key
passes the key policy, whether its signature algorithm passes, whether it carries
nameConstraints, when it expires, and how large a path search the configured set allows, are
answered when the trust material is loaded (at startup and on each reload), not per request.
The warnings about configured certificates that can never be used are logged here too, once
per load.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509

from asgi_mtls.errors import CertificateRejected
from asgi_mtls.log import get_logger
from asgi_mtls.validation.constraints import name_constraints
from asgi_mtls.validation.paths import MAX_PATH_CANDIDATES, worst_case_search
from asgi_mtls.validation.policy import CertificatePolicy, describe_certificate
from asgi_mtls.validation.trust import TrustState
from asgi_mtls.validation.trust_checks import unusable_certificates

__all__ = ["Snapshot"]

logger = get_logger()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A trust snapshot with what one validator derives from it once, not per request.

    ``cleared`` lists the configured roots and intermediates that pass every check made on
    the path above the leaf (the key policy, the signature algorithm policy, no
    nameConstraints), with their notAfter.  They are keyed by ``id()``: cryptography hands
    back the very objects it was given in the verified chain, the snapshot keeps them alive
    (so no other object can share an ``id``), and a certificate not found there (a
    presented hint, a configured CA that fails a check) is checked in full, per request.
    """

    trust: TrustState
    cleared: Mapping[int, dt.datetime] = field(repr=False)
    #: No leaf presented without hints can exceed the path-search bound
    #: (:func:`~asgi_mtls.validation.paths.worst_case_search`).
    small_search: bool = False

    @classmethod
    def prepare(cls, state: TrustState, policy: CertificatePolicy, max_depth: int) -> Snapshot:
        """What a validator with ``policy`` and ``max_depth`` derives from ``state``.  CA
        certificates whose key the policy refuses are kept (a path through them is
        ``weak_key``) but logged: they can never be used."""
        cleared: dict[int, dt.datetime] = {}
        unusable = []
        for certificate in (*state.roots, *state.intermediates):
            try:
                problem = policy.key_problem(certificate)
            except ValueError as exc:
                problem = f"undecodable key: {exc}"
            if problem is not None:
                unusable.append(f"{describe_certificate(certificate)}: {problem}")
            elif name_constraints(certificate) is None and _signature_ok(policy, certificate):
                cleared[id(certificate)] = certificate.not_valid_after_utc
        if unusable:
            logger.warning(
                "%d configured CA certificate(s) can never be part of an accepted path (key "
                "policy, weak_key): %s",
                len(unusable),
                "; ".join(unusable),
            )
        _warn_unusable(state)
        return cls(
            trust=state,
            cleared=cleared,
            small_search=worst_case_search(state, max_depth) <= MAX_PATH_CANDIDATES,
        )


def _signature_ok(policy: CertificatePolicy, certificate: x509.Certificate) -> bool:
    try:
        policy.check_signature(certificate, "intermediate")
    except CertificateRejected:
        return False
    return True


def _warn_unusable(state: TrustState) -> None:
    """Issue #11: a trust set that loads but can never accept a client is said once per
    load, naming the option, rather than discovered as `untrusted` on every request."""
    for option, certificates in (("trust", state.roots), ("intermediates", state.intermediates)):
        problems = unusable_certificates(certificates)
        if not problems:
            continue
        never = option == "trust" and len(problems) == len(certificates)
        logger.warning(
            "%s: %s; %s",
            option,
            "; ".join(problems),
            "no client certificate can be accepted until this is fixed"
            if never
            else "such certificates can never be part of an accepted path",
        )
