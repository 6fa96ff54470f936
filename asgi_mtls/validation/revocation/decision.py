"""The revocation decision: what the data held says about one validated path.

Pure reading: the verdict of the CRLs held for one certificate (RFC 5280 §6.3), the verdict of
the OCSP answer held for the leaf (RFC 6960), and the decision over all of them under each
check's policy.  A certificate found revoked is always refused (``revoked``); an unknown
status is refused under ``hard-fail`` (``revocation_unknown``), accepted and logged under
``soft-fail``.  What to fetch is the checker's business, not this module's.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.x509 import ocsp

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.log import get_logger
from asgi_mtls.validation.revocation.common import THIS_UPDATE_TOLERANCE
from asgi_mtls.validation.revocation.crl import CrlRecord, crl_covers, distribution_point_names
from asgi_mtls.validation.revocation.ocsp import OcspAnswer
from asgi_mtls.validation.revocation.state import OcspKey, RevocationState

__all__ = [
    "RevocationPolicy",
    "RevocationResult",
    "Verdict",
    "crl_unknown",
    "crl_verdict",
    "decide",
    "ocsp_verdict",
]

logger = get_logger()


class RevocationPolicy(enum.StrEnum):
    """What a check does: not run, accept an unknown status, or reject it."""

    OFF = "off"
    SOFT_FAIL = "soft-fail"
    HARD_FAIL = "hard-fail"


@dataclass(frozen=True, slots=True)
class RevocationResult:
    """The answer for a chain that is not revoked.

    ``status``: ``"good"`` (every enabled check had a fresh answer), ``"unknown"`` (a
    soft-fail check had none; accepted and logged) or ``"not_checked"`` (all checks off).
    ``valid_until``: the earliest nextUpdate of the revocation data used; the answer must not
    be reused after it (``None``: no data was used).
    """

    status: Literal["good", "unknown", "not_checked"]
    valid_until: dt.datetime | None


@dataclass(slots=True)
class Verdict:
    """What one check found: revoked (why), unknown (why), or good until when."""

    revoked: str | None = None
    unknown: str | None = None
    good_until: dt.datetime | None = None
    #: The OCSP answer this verdict wanted (marked when a hard-fail refusal follows).
    ocsp_keys: list[OcspKey] = field(default_factory=list)


def crl_verdict(
    records: Sequence[CrlRecord],
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    *,
    is_ca: bool,
    at: dt.datetime,
    refresh_interval: dt.timedelta,
    signed_by: Callable[[CrlRecord, x509.Certificate], bool],
) -> Verdict:
    """The verdict of the CRLs ``records`` (those issued under ``issuer``'s name) on
    ``certificate``: revoked, or good until the latest fresh one's freshness ends.  Only
    CRLs that cover the certificate (scope: user/CA certificates, distribution point) and
    are validly signed by ``issuer`` count.  ``unknown`` is left for :func:`crl_unknown`."""
    names: frozenset[x509.GeneralName] | None = None

    def cert_names() -> frozenset[x509.GeneralName]:
        nonlocal names
        if names is None:
            names = distribution_point_names(certificate)
        return names

    verdict = Verdict()
    for record in records:
        if not crl_covers(record, is_ca, cert_names) or not signed_by(record, issuer):
            continue
        if certificate.serial_number in record.serials:
            entry = record.crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            when = entry.revocation_date_utc.isoformat() if entry is not None else "?"
            verdict.revoked = (
                f"{certificate.subject.rfc4514_string()!r} serial "
                f"{certificate.serial_number:x} revoked at {when} ({record.source})"
            )
            return verdict
        fresh_until = record.fresh_until(refresh_interval)
        fresh = record.this_update - THIS_UPDATE_TOLERANCE <= at <= fresh_until
        if fresh and (verdict.good_until is None or fresh_until > verdict.good_until):
            verdict.good_until = fresh_until
    return verdict


def crl_unknown(
    certificate: x509.Certificate,
    urls: Sequence[str],
    records: Sequence[CrlRecord],
    fetch_errors: Sequence[str],
) -> str:
    """Why no CRL answered for ``certificate``: none to be had, or none fresh (with the
    last fetch error of its distribution points, when there is one)."""
    subject = certificate.subject.rfc4514_string()
    if not urls and not records:
        return f"{subject!r}: no CRL for its issuer and no distribution point"
    why = f" (last fetch: {fetch_errors[0]})" if any(fetch_errors) else ""
    return f"{subject!r}: no fresh CRL from its issuer{why}"


def ocsp_verdict(
    answer: OcspAnswer | None,
    leaf: x509.Certificate,
    *,
    key: OcspKey,
    has_responder: bool,
    at: dt.datetime,
    refresh_interval: dt.timedelta,
    fetch_error: str | None,
) -> Verdict:
    """The verdict of the OCSP ``answer`` held for ``leaf`` (``None``: none yet)."""
    verdict = Verdict(ocsp_keys=[key])
    if answer is not None and answer.status == ocsp.OCSPCertStatus.REVOKED:
        when = answer.revocation_time.isoformat() if answer.revocation_time else "?"
        verdict.revoked = f"serial {leaf.serial_number:x} revoked at {when}"
        return verdict
    if answer is not None:
        fresh_until = answer.fresh_until(refresh_interval)
        if answer.this_update - THIS_UPDATE_TOLERANCE <= at <= fresh_until:
            if answer.status == ocsp.OCSPCertStatus.GOOD:
                verdict.good_until = fresh_until
            else:
                verdict.unknown = "the responder does not know the certificate"
            return verdict
    if not has_responder:
        verdict.unknown = "no OCSP responder URL (authorityInfoAccess) in the certificate"
    else:
        why = f" (last fetch: {fetch_error})" if fetch_error else ""
        verdict.unknown = f"no fresh OCSP response{why}"
    return verdict


def decide(
    verdicts: Sequence[tuple[RevocationPolicy, str, Verdict]],
    leaf: x509.Certificate,
    state: RevocationState,
) -> RevocationResult:
    """The decision over every check's ``(policy, kind, verdict)``: raise ``revoked`` for
    any revocation, ``revocation_unknown`` for any unknown status under hard-fail (noting
    the OCSP answers wanted, see :meth:`RevocationState.mark_hard_unknown`); else the
    result, unknown statuses under soft-fail logged."""
    for _, kind, verdict in verdicts:
        if verdict.revoked is not None:
            raise CertificateRejected(RejectionReason.REVOKED, f"{kind}: {verdict.revoked}")
    hard = [
        (kind, v)
        for policy, kind, v in verdicts
        if v.unknown and policy is RevocationPolicy.HARD_FAIL
    ]
    if hard:
        state.mark_hard_unknown(key for _, verdict in hard for key in verdict.ocsp_keys)
        detail = "; ".join(f"{kind}: {verdict.unknown}" for kind, verdict in hard)
        raise CertificateRejected(RejectionReason.REVOCATION_UNKNOWN, detail)
    soft = [f"{kind}: {v.unknown}" for _, kind, v in verdicts if v.unknown]
    if soft:
        logger.warning(
            "revocation status unknown, accepted (soft-fail): serial=%x %s",
            leaf.serial_number,
            "; ".join(soft),
        )
    until = [v.good_until for _, _, v in verdicts if v.good_until is not None]
    return RevocationResult("unknown" if soft else "good", min(until) if until else None)
