"""CertificateValidator: is this client certificate trusted, now?

Path validation is cryptography's ``x509.verification`` (RFC 5280 as the CA/B Forum profile
reads it), with the client-side choices a service needs:

- trust roots come only from configuration (a PEM file, PEM/DER bytes, certificates); there is
  no system trust store;
- certificates sent with the request are path-building hints only, appended to the configured
  intermediates;
- the clientAuth extended key usage is required (a leaf without an EKU extension is refused
  unless ``allow_missing_eku=True``);
- one key and signature policy (:mod:`~asgi_mtls.validation.policy`) for every certificate
  of the path, the leaf included: RSA of at least 2048 bits in whole bytes with an exponent
  of at least 65537, EC on P-256/P-384/P-521, Ed25519/Ed448, nothing else (``weak_key``); no
  MD5 or SHA-1 signatures (``weak_signature``), ``signature_algorithms`` narrowing further;
- a trust set that looks like a public CA bundle is refused unless ``allow_public_roots``
  (:mod:`~asgi_mtls.validation.public_roots`), at construction and on every reload;
- a leaf without subjectAltName (CN-only, as Kubernetes and many enterprise CAs issue) is
  accepted when its chain is good: cryptography's default end-entity policy demands a SAN, so
  the policy is relaxed for exactly that extension, keeping RFC 5280's rule that a SAN must
  be present and critical when the subject is empty;
- name constraints: cryptography applies DNS, IP and email constraints to SANs; this module
  adds RFC 5280's directoryName constraints on subjects, and refuses a SAN-less leaf under a
  CA constrained by other name types (its names could not be checked);
- optional narrowing: allowed issuers, pins (certificate or SPKI SHA-256), revocation
  (:mod:`asgi_mtls.validation.revocation`).

Before path building, the leaf is checked for the reasons a client can act on (expired, not
yet valid, not a client certificate), so rejections carry a precise reason code.  Those
checks and every check after path building only ever reject: acceptance is always the
verifier's.

Trust material lives in one immutable :class:`~asgi_mtls.validation.trust.TrustState`;
:meth:`reload` swaps it atomically (:mod:`~asgi_mtls.validation.reload`), and
:attr:`CertificateValidator.generation` tells caches when an earlier answer may no longer hold.

A never-seen certificate should cost its signatures and little more (issue #10): what
depends only on the trust material (the keys of the configured CAs, their name constraints,
the worst path search they allow) is worked out once per snapshot
(:mod:`~asgi_mtls.validation.snapshot`); the verifier is built once per snapshot and second
(:mod:`~asgi_mtls.validation.verifiers`); presented copies of configured certificates are
dropped before they are parsed (:mod:`~asgi_mtls.validation.paths`).  Module map:
:mod:`~asgi_mtls.validation.leaf` (the leaf pre-checks), :mod:`~asgi_mtls.validation.constraints`
(name constraints), :mod:`~asgi_mtls.validation.policy` (keys and signatures),
:mod:`~asgi_mtls.validation.reload` (hot reload).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from cryptography import x509
from cryptography.x509.verification import VerificationError

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.log import get_logger
from asgi_mtls.validation.constraints import check_name_constraints
from asgi_mtls.validation.explain import untrusted_detail
from asgi_mtls.validation.leaf import LeafChecks
from asgi_mtls.validation.notices import ValidationNotice
from asgi_mtls.validation.paths import (
    MAX_PATH_CANDIDATES,
    IssuerGraph,
    distinct_hints,
    parse_presented,
)
from asgi_mtls.validation.policy import RSA_FLOOR_BITS, CertificatePolicy, describe_certificate
from asgi_mtls.validation.public_roots import MAX_SELF_SIGNED_ROOTS
from asgi_mtls.validation.reload import TrustKeeper
from asgi_mtls.validation.revocation import RevocationChecker
from asgi_mtls.validation.snapshot import Snapshot
from asgi_mtls.validation.trust import (
    CertificateInput,
    PinInput,
    TrustSource,
    TrustState,
    load_certificates,
)
from asgi_mtls.validation.verifiers import Verifiers, leaf_san_problem

__all__ = ["CertificateInput", "CertificateValidator", "VerifiedChain", "load_certificates"]

logger = get_logger()

#: Upper bound on certificates accepted as path-building hints from one request.
MAX_PRESENTED_CHAIN = 8
#: cryptography's default maximum number of intermediates.
DEFAULT_MAX_DEPTH = 8


class HasGeneration(Protocol):
    """Something whose ``generation`` a cache compares per request
    (:attr:`CertificateValidator.generation_holder`)."""

    @property
    def generation(self) -> int: ...


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A successful validation: ``chain[0]`` is the leaf, ``chain[-1]`` the trust root."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    #: Until when the result may be reused: the earliest notAfter in the chain, or the
    #: earliest nextUpdate of the revocation data used, whichever is sooner.
    expires_at: dt.datetime
    #: ``"good"``, ``"unknown"`` (accepted under a soft-fail policy) or ``"not_checked"``.
    revocation: Literal["good", "unknown", "not_checked"] = "not_checked"
    #: The leaf's subject, parsed once (cryptography parses it anew on every access, about
    #: 4 µs: issue #10); ``None`` when not read.
    subject: x509.Name | None = None


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _seconds(value: float | dt.timedelta) -> dt.timedelta:
    return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=value)


def _role(index: int, length: int) -> str:
    """What the certificate at ``index`` of a validated path of ``length`` is, for logs."""
    if index == 0:
        return "leaf"
    return "root" if index == length - 1 else "intermediate"


class CertificateValidator:
    """Validates client certificates against configured trust roots.

    ``validate(leaf, chain, at=None)`` returns a :class:`VerifiedChain` or raises
    :class:`~asgi_mtls.errors.CertificateRejected`.  Safe to share between middlewares and
    threads: trust material is one immutable snapshot, swapped whole by :meth:`reload`.

    :param allowed_issuers: CA certificates allowed to issue client certificates directly
        (the leaf's issuer must be one of them, by subject and public key).  ``None``: any CA
        under the roots.
    :param pinned_certificates: SHA-256 fingerprints of certificates, or a file of them; when
        pins are configured, some certificate of the validated path must match one.
    :param pinned_keys: SHA-256 digests of SubjectPublicKeyInfo (RFC 7469), or a file of
        them; same rule, together with ``pinned_certificates``.
    :param min_rsa_bits: the shortest RSA modulus accepted anywhere in the path; at least
        2048 (a lower value is a ``ValueError``: the floor cannot be weakened).
    :param ec_curves: the named curves accepted for EC keys anywhere in the path, a subset
        of ``["P-256", "P-384", "P-521"]`` (``None``: all three).
    :param allow_eddsa: accept Ed25519 and Ed448 keys (in practice in leaves: cryptography's
        webpki profile does not let them sign certificates).
    :param signature_algorithms: signature algorithm OIDs accepted on the leaf and the
        intermediates (cryptography's webpki set still applies).  ``None``: that set.
        See :mod:`~asgi_mtls.validation.policy` for the key and signature policy.
    :param allow_public_roots: accept a trust set holding well-known public roots or more
        than ``max_self_signed_roots`` self-signed roots (logged as a WARNING once); without
        it such a set is a ``ValueError`` (see :mod:`~asgi_mtls.validation.public_roots`).
    :param max_self_signed_roots: how many self-signed roots a trust set may hold before it
        is taken for a public bundle.
    :param clock_skew: tolerance for the leaf's notBefore/notAfter (seconds or timedelta).
    :param revocation: a :class:`~asgi_mtls.validation.revocation.RevocationChecker`.
    :param reload_interval: seconds between checks of the trust files for changes by the
        background task of :meth:`start` (``None``: only explicit :meth:`reload`).
    """

    def __init__(
        self,
        trust_roots: CertificateInput,
        *,
        intermediates: CertificateInput | None = None,
        allow_missing_eku: bool = False,
        max_chain_depth: int | None = None,
        min_rsa_bits: int = RSA_FLOOR_BITS,
        ec_curves: Iterable[str] | None = None,
        allow_eddsa: bool = True,
        allowed_issuers: CertificateInput | None = None,
        pinned_certificates: PinInput | None = None,
        pinned_keys: PinInput | None = None,
        signature_algorithms: Iterable[x509.ObjectIdentifier] | None = None,
        clock_skew: float | dt.timedelta = 0,
        revocation: RevocationChecker | None = None,
        reload_interval: float | None = None,
        allow_public_roots: bool = False,
        max_self_signed_roots: int = MAX_SELF_SIGNED_ROOTS,
    ) -> None:
        self.policy = CertificatePolicy.build(
            min_rsa_bits=min_rsa_bits,
            ec_curves=ec_curves,
            allow_eddsa=allow_eddsa,
            signature_algorithms=signature_algorithms,
        )
        if max_self_signed_roots < 1:
            raise ValueError("max_self_signed_roots must be at least 1")
        self.allow_public_roots = allow_public_roots
        self.max_self_signed_roots = max_self_signed_roots
        self.reload_interval = reload_interval
        self.clock_skew = _seconds(clock_skew)
        if self.clock_skew < dt.timedelta(0):
            raise ValueError("clock_skew must not be negative")
        self.allow_missing_eku = allow_missing_eku
        self.max_chain_depth = max_chain_depth
        self._depth = DEFAULT_MAX_DEPTH if max_chain_depth is None else max_chain_depth
        self._revocation = revocation
        self._leaf_checks = LeafChecks(self.policy, self.clock_skew, allow_missing_eku)
        self._verifiers = Verifiers(max_chain_depth)
        source = TrustSource(
            trust_roots,
            intermediates=intermediates,
            allowed_issuers=allowed_issuers,
            pinned_certificates=pinned_certificates,
            pinned_keys=pinned_keys,
        )
        self._keeper = TrustKeeper(
            source,
            lambda state: Snapshot.prepare(state, self.policy, self._depth),
            allow_public_roots=allow_public_roots,
            max_self_signed_roots=max_self_signed_roots,
            revocation=revocation,
            reload_interval=reload_interval,
        )

    @property
    def revocation(self) -> RevocationChecker | None:
        """The revocation checker, fixed at construction (the trust keeper holds it too)."""
        return self._revocation

    def __repr__(self) -> str:
        subjects = [root.subject.rfc4514_string() for root in self.trust_roots]
        return f"CertificateValidator(trust_roots={subjects!r})"

    @property
    def min_rsa_bits(self) -> int:
        return self.policy.min_rsa_bits

    @property
    def signature_algorithms(self) -> frozenset[x509.ObjectIdentifier] | None:
        return self.policy.signature_algorithms

    @property
    def trust(self) -> TrustState:
        """The current trust material (an immutable snapshot)."""
        return self._keeper.current.trust

    @property
    def trust_roots(self) -> tuple[x509.Certificate, ...]:
        return self.trust.roots

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return self.trust.intermediates

    @property
    def generation(self) -> int:
        """Increases whenever trust material (a reload) or revocation state changes in a way
        that can change an answer.  A cache of validation results compares it per request
        and drops its entries when it moved."""
        revocation = self.revocation.generation if self.revocation is not None else 0
        return self._keeper.generation + revocation

    @property
    def generation_holder(self) -> HasGeneration:
        """An object whose ``generation`` attribute is always :attr:`generation`, the cheapest
        to read per request (issue #10): the trust keeper itself when there is no revocation
        checker (a plain attribute, not this property's sum), else this validator."""
        return self._keeper if self.revocation is None else self

    def validate(
        self,
        leaf: x509.Certificate | bytes,
        chain: Iterable[x509.Certificate | bytes] = (),
        *,
        at: dt.datetime | None = None,
    ) -> VerifiedChain:
        """Validate ``leaf`` (with untrusted ``chain`` hints) at time ``at`` (default: now).

        Synchronous and free of I/O: revocation is read from in-memory state.
        """
        snapshot = self._keeper.current  # one snapshot for the whole validation
        trust = snapshot.trust
        moment = _utc(at) if at is not None else dt.datetime.now(dt.UTC)
        presented = list(chain)
        if len(presented) > MAX_PRESENTED_CHAIN:
            raise CertificateRejected(
                RejectionReason.TOO_LARGE,
                f"{len(presented)} chain certificates presented, limit {MAX_PRESENTED_CHAIN}",
            )
        leaf_certificate = parse_presented(leaf)
        hints = distinct_hints(presented, trust)
        verify_at = self._leaf_checks.check(leaf_certificate, moment)
        graph = None
        if hints or not snapshot.small_search:
            graph = IssuerGraph(leaf_certificate, hints, trust)
            if graph.search_size(self._depth) > MAX_PATH_CANDIDATES:
                raise CertificateRejected(
                    RejectionReason.UNTRUSTED,
                    f"path building would try more than {MAX_PATH_CANDIDATES} candidate "
                    "issuers (looping or repeated chain certificates)",
                )
        verifier = self._verifiers.get(trust, verify_at)
        candidates = [*trust.intermediates, *hints]
        try:
            verified = verifier.verify(leaf_certificate, candidates)
        except VerificationError as exc:
            raise self._path_refusal(str(exc), leaf_certificate, hints, trust, graph) from None
        path = tuple(verified.chain)
        subject = leaf_certificate.subject
        problem = leaf_san_problem(leaf_certificate, subject)
        if problem is not None:  # the rule the end-entity policy leaves to us (verifiers.py)
            raise self._path_refusal(problem, leaf_certificate, hints, trust, graph, explain=False)
        expires_at = self._check_path(path, snapshot)
        if trust.allowed_issuers is not None and (
            len(path) < 2 or not trust.issuer_allowed(path[1])
        ):
            # A path of one (the leaf is itself a configured anchor) has no issuer to allow.
            raise CertificateRejected(
                RejectionReason.ISSUER_NOT_ALLOWED,
                f"issued by {leaf_certificate.issuer.rfc4514_string()!r}, not an allowed issuer",
            )
        if trust.has_pins and not trust.pinned(path):
            raise CertificateRejected(
                RejectionReason.NOT_PINNED,
                f"no pin matches the chain of {leaf_certificate.subject.rfc4514_string()!r}",
            )
        status: Literal["good", "unknown", "not_checked"] = "not_checked"
        if self.revocation is not None:
            result = self.revocation.check(path, moment)
            status = result.status
            if result.valid_until is not None:
                expires_at = min(expires_at, result.valid_until)
        return VerifiedChain(
            leaf=leaf_certificate,
            chain=path,
            expires_at=expires_at,
            revocation=status,
            subject=subject,
        )

    def _path_refusal(
        self,
        why: str,
        leaf: x509.Certificate,
        hints: list[x509.Certificate],
        trust: TrustState,
        graph: IssuerGraph | None,
        *,
        explain: bool = True,
    ) -> CertificateRejected:
        """Path building failed (``why``): ``untrusted``, or ``weak_key`` naming the issuer
        when a key the policy refuses is on the way to a root (cryptography refuses DSA and
        small-curve issuers without saying which).  With ``explain``, an ``untrusted`` detail
        names the missing link (:func:`~asgi_mtls.validation.explain.untrusted_detail`)."""
        graph = graph if graph is not None else IssuerGraph(leaf, hints, trust)
        weak = graph.weak_issuer(self.policy, self._depth)
        if weak is not None:
            role, certificate, problem = weak
            return CertificateRejected(
                RejectionReason.WEAK_KEY,
                f"{role} {describe_certificate(certificate)}: {problem} ({why})",
            )
        detail = untrusted_detail(leaf, hints, trust, why) if explain else why
        return CertificateRejected(RejectionReason.UNTRUSTED, detail)

    def _check_path(self, path: tuple[x509.Certificate, ...], snapshot: Snapshot) -> dt.datetime:
        """The checks of the validated path above the leaf: keys (``weak_key``), signature
        algorithms of the intermediates (``weak_signature``; the anchor's self-signature is
        not relied upon) and the name constraints cryptography does not apply
        (``untrusted``).  Returns the earliest notAfter of the path.

        A path made of cleared configured certificates (see :class:`Snapshot`) passes them
        all by construction: only the notAfters are read.
        """
        cleared = snapshot.cleared
        expires_at = path[0].not_valid_after_utc
        for certificate in path[1:]:
            not_after = cleared.get(id(certificate))
            if not_after is None:
                break
            expires_at = min(expires_at, not_after)
        else:
            return expires_at
        for index, certificate in enumerate(path[1:], start=1):
            self.policy.check_key(certificate, _role(index, len(path)))
        for index, certificate in enumerate(path[1:-1], start=1):
            self.policy.check_signature(certificate, _role(index, len(path)))
        check_name_constraints(path)
        return min(c.not_valid_after_utc for c in path)

    # --- hot reload and background work (asgi_mtls.validation.reload) --------------------

    def reload(self) -> bool:
        """Re-read the trust files (roots, intermediates, allowed issuers, pins) and the
        revocation checker's CRL files, and swap in the new material atomically.

        Returns whether anything changed (then :attr:`generation` has increased).  When a new
        file is bad (unreadable, no certificate, an invalid pin, public roots that are not
        allowed), the previous material is kept and the error logged, once per change of
        the files.
        """
        return self._keeper.reload()

    def reload_if_changed(self) -> bool:
        """:meth:`reload` when a trust or CRL file's mtime or size changed since last read."""
        return self._keeper.reload_if_changed()

    def observe(self, listener: Callable[[ValidationNotice], object]) -> None:
        """Call ``listener`` with a :mod:`~asgi_mtls.validation.notices` value for every trust
        reload (or failed one) and every revocation update or failed fetch, from whichever
        thread made the change.  The middleware registers its event listeners here."""
        self._keeper.notices.add(listener)
        if self.revocation is not None:
            self.revocation.notices.add(listener)

    async def start(self) -> None:
        """Start background work on the running loop: polling the trust files every
        ``reload_interval`` seconds (when set) and the revocation checker's refresh loop.
        Idempotent."""
        await self._keeper.start(lambda: self.reload_if_changed())

    async def aclose(self) -> None:
        """Stop the background work started by :meth:`start`."""
        await self._keeper.aclose()
