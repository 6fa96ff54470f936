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
:meth:`reload` swaps it atomically, and :attr:`CertificateValidator.generation` tells caches
when an earlier answer may no longer hold.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    VerificationError,
)

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.validation.explain import untrusted_detail
from asgi_mtls.validation.paths import MAX_PATH_CANDIDATES, IssuerGraph, distinct_hints
from asgi_mtls.validation.policy import RSA_FLOOR_BITS, CertificatePolicy, describe_certificate
from asgi_mtls.validation.public_roots import MAX_SELF_SIGNED_ROOTS, check_public_roots
from asgi_mtls.validation.revocation import RevocationChecker
from asgi_mtls.validation.trust import (
    CertificateInput,
    PinInput,
    TrustSource,
    TrustState,
    load_certificates,
)
from asgi_mtls.validation.trust_checks import unusable_certificates

__all__ = ["CertificateInput", "CertificateValidator", "VerifiedChain", "load_certificates"]

logger = logging.getLogger("asgi_mtls")

#: Upper bound on certificates accepted as path-building hints from one request.
MAX_PRESENTED_CHAIN = 8
#: cryptography's default maximum number of intermediates.
DEFAULT_MAX_DEPTH = 8


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


def _san_required_when_subject_empty(
    policy: Policy, certificate: x509.Certificate, san: x509.SubjectAlternativeName | None
) -> None:
    # RFC 5280 4.2.1.6: with an empty subject, the SAN must be present and critical.
    if len(certificate.subject) == 0:
        if san is None:
            raise ValueError("certificate has neither a subject nor a subjectAltName")
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        if not extension.critical:
            raise ValueError("subjectAltName MUST be critical when the subject is empty")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _normalise(value: str | bytes) -> str | bytes:
    # Close to RFC 4518's caseIgnoreMatch: case-folded, inner whitespace collapsed.
    return " ".join(value.split()).casefold() if isinstance(value, str) else value


def _rdn_key(rdn: x509.RelativeDistinguishedName) -> frozenset[tuple[str, str | bytes]]:
    return frozenset((a.oid.dotted_string, _normalise(a.value)) for a in rdn)


def _name_within(name: x509.Name, base: x509.Name) -> bool:
    """RFC 5280 §4.2.1.10: ``name`` is in the directoryName subtree ``base`` when ``base``'s
    RDN sequence is a prefix of ``name``'s."""
    if len(base.rdns) > len(name.rdns):
        return False
    return all(_rdn_key(a) == _rdn_key(b) for a, b in zip(base.rdns, name.rdns, strict=False))


def _check_name_constraints(path: tuple[x509.Certificate, ...]) -> None:
    """What cryptography's verifier does not do with nameConstraints (it applies DNS, IP and
    email subtrees to SANs only): directoryName subtrees on subjects, and SAN-less leaves."""
    leaf = path[0]
    try:
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        leaf_has_san = True
    except x509.ExtensionNotFound:
        leaf_has_san = False
    for index in range(1, len(path)):
        try:
            constraints = path[index].extensions.get_extension_for_class(x509.NameConstraints)
        except x509.ExtensionNotFound:
            continue
        subtrees = [
            *(constraints.value.permitted_subtrees or ()),
            *(constraints.value.excluded_subtrees or ()),
        ]
        ca = path[index].subject.rfc4514_string()
        if not leaf_has_san and any(not isinstance(s, x509.DirectoryName) for s in subtrees):
            raise CertificateRejected(
                RejectionReason.UNTRUSTED,
                f"leaf without subjectAltName under name-constrained CA {ca!r}: its names "
                "cannot be checked against the constraints",
            )
        permitted = [
            s.value
            for s in constraints.value.permitted_subtrees or ()
            if isinstance(s, x509.DirectoryName)
        ]
        excluded = [
            s.value
            for s in constraints.value.excluded_subtrees or ()
            if isinstance(s, x509.DirectoryName)
        ]
        if not permitted and not excluded:
            continue
        for position, certificate in enumerate(path[:index]):
            if position > 0 and certificate.subject == certificate.issuer:
                continue  # RFC 5280 §6.1.3 (b): self-issued intermediates are exempt
            names = [certificate.subject] if len(certificate.subject) else []
            try:
                san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                names += san.value.get_values_for_type(x509.DirectoryName)
            except x509.ExtensionNotFound:
                pass
            for name in names:
                if permitted and not any(_name_within(name, base) for base in permitted):
                    raise CertificateRejected(
                        RejectionReason.UNTRUSTED,
                        f"{name.rfc4514_string()!r} is outside the permitted directoryName "
                        f"subtrees of {ca!r}",
                    )
                if any(_name_within(name, base) for base in excluded):
                    raise CertificateRejected(
                        RejectionReason.UNTRUSTED,
                        f"{name.rfc4514_string()!r} is in an excluded directoryName subtree "
                        f"of {ca!r}",
                    )


def _seconds(value: float | dt.timedelta) -> dt.timedelta:
    return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=value)


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
        self._public_roots_warned = False
        self._source = TrustSource(
            trust_roots,
            intermediates=intermediates,
            allowed_issuers=allowed_issuers,
            pinned_certificates=pinned_certificates,
            pinned_keys=pinned_keys,
        )
        self._stamps = self._source.stamps()
        self._trust: TrustState
        self._adopt(self._load_trust())
        self.allow_missing_eku = allow_missing_eku
        self.max_chain_depth = max_chain_depth
        self.clock_skew = _seconds(clock_skew)
        if self.clock_skew < dt.timedelta(0):
            raise ValueError("clock_skew must not be negative")
        if reload_interval is not None and reload_interval <= 0:
            raise ValueError("reload_interval must be > 0")
        self.revocation = revocation
        self.reload_interval = reload_interval
        self._trust_generation = 0
        self._reload_lock = threading.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._ca_policy = ExtensionPolicy.webpki_defaults_ca()
        self._ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, _san_required_when_subject_empty
        )

    def __repr__(self) -> str:
        subjects = [root.subject.rfc4514_string() for root in self.trust_roots]
        return f"CertificateValidator(trust_roots={subjects!r})"

    @property
    def min_rsa_bits(self) -> int:
        return self.policy.min_rsa_bits

    @property
    def signature_algorithms(self) -> frozenset[x509.ObjectIdentifier] | None:
        return self.policy.signature_algorithms

    def _load_trust(self) -> TrustState:
        """Read the trust material and screen it: ``ValueError`` for a set that looks like a
        public bundle (unless allowed)."""
        state = self._source.load()
        warning = check_public_roots(
            state.roots,
            allow_public_roots=self.allow_public_roots,
            max_self_signed_roots=self.max_self_signed_roots,
        )
        if warning is not None and not self._public_roots_warned:
            self._public_roots_warned = True
            logger.warning("%s", warning)
        return state

    def _adopt(self, state: TrustState) -> None:
        """Make ``state`` the trust material.  CA certificates whose key the policy refuses
        are kept (a path through them is ``weak_key``) but logged: they can never be used."""
        self._trust = state
        unusable = []
        for certificate in (*state.roots, *state.intermediates):
            try:
                problem = self.policy.key_problem(certificate)
            except ValueError as exc:
                problem = f"undecodable key: {exc}"
            if problem is not None:
                unusable.append(f"{describe_certificate(certificate)}: {problem}")
        if unusable:
            logger.warning(
                "%d configured CA certificate(s) can never be part of an accepted path (key "
                "policy, weak_key): %s",
                len(unusable),
                "; ".join(unusable),
            )
        # Issue #11: a trust set that loads but can never accept a client is said once per
        # load, naming the option, rather than discovered as `untrusted` on every request.
        for option, certificates in (
            ("trust", state.roots),
            ("intermediates", state.intermediates),
        ):
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

    @property
    def trust(self) -> TrustState:
        """The current trust material (an immutable snapshot)."""
        return self._trust

    @property
    def trust_roots(self) -> tuple[x509.Certificate, ...]:
        return self._trust.roots

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return self._trust.intermediates

    @property
    def generation(self) -> int:
        """Increases whenever trust material (a reload) or revocation state changes in a way
        that can change an answer.  A cache of validation results compares it per request
        and drops its entries when it moved."""
        revocation = self.revocation.generation if self.revocation is not None else 0
        return self._trust_generation + revocation

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
        trust = self._trust  # one snapshot for the whole validation
        moment = _utc(at) if at is not None else dt.datetime.now(dt.UTC)
        presented = list(chain)
        if len(presented) > MAX_PRESENTED_CHAIN:
            raise CertificateRejected(
                RejectionReason.TOO_LARGE,
                f"{len(presented)} chain certificates presented, limit {MAX_PRESENTED_CHAIN}",
            )
        leaf_certificate = _parse(leaf)
        hints = distinct_hints([_parse(item) for item in presented], trust)
        verify_at = self._check_leaf(leaf_certificate, moment)
        depth = self.max_chain_depth if self.max_chain_depth is not None else DEFAULT_MAX_DEPTH
        graph = IssuerGraph(leaf_certificate, hints, trust)
        if graph.search_size(depth) > MAX_PATH_CANDIDATES:
            raise CertificateRejected(
                RejectionReason.UNTRUSTED,
                f"path building would try more than {MAX_PATH_CANDIDATES} candidate issuers "
                "(looping or repeated chain certificates)",
            )
        builder = PolicyBuilder().store(trust.store).time(verify_at)
        builder = builder.extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
        if self.max_chain_depth is not None:
            builder = builder.max_chain_depth(self.max_chain_depth)
        verifier = builder.build_client_verifier()
        try:
            verified = verifier.verify(leaf_certificate, [*trust.intermediates, *hints])
        except VerificationError as exc:
            # cryptography refuses DSA and small-curve issuers without saying which: name
            # the certificate when a weak key is on the way to a root.
            weak = graph.weak_issuer(self.policy, depth)
            if weak is not None:
                role, certificate, problem = weak
                raise CertificateRejected(
                    RejectionReason.WEAK_KEY,
                    f"{role} {describe_certificate(certificate)}: {problem} ({exc})",
                ) from None
            raise CertificateRejected(
                RejectionReason.UNTRUSTED,
                untrusted_detail(leaf_certificate, hints, trust, str(exc)),
            ) from None
        path = tuple(verified.chain)
        for index, certificate in enumerate(path[1:], start=1):
            self.policy.check_key(certificate, _role(index, len(path)))
        for index, certificate in enumerate(path[1:-1], start=1):
            # the anchor's self-signature is not relied upon
            self.policy.check_signature(certificate, _role(index, len(path)))
        _check_name_constraints(path)
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
        expires_at = min(c.not_valid_after_utc for c in path)
        status: Literal["good", "unknown", "not_checked"] = "not_checked"
        if self.revocation is not None:
            result = self.revocation.check(path, moment)
            status = result.status
            if result.valid_until is not None:
                expires_at = min(expires_at, result.valid_until)
        return VerifiedChain(
            leaf=leaf_certificate, chain=path, expires_at=expires_at, revocation=status
        )

    def _check_leaf(self, leaf: x509.Certificate, moment: dt.datetime) -> dt.datetime:
        """The leaf pre-checks; returns the time to run path validation at (``moment``,
        moved onto the leaf's validity period when it is outside by at most ``clock_skew``)."""
        try:
            leaf.extensions  # noqa: B018 - decoded once here, so that a bad one is `malformed`
            self.policy.check_key(leaf, "leaf")
        except (ValueError, x509.DuplicateExtension) as exc:  # bad extensions or public key
            raise CertificateRejected(RejectionReason.MALFORMED, str(exc)) from None
        self.policy.check_signature(leaf, "leaf")
        not_after, not_before = leaf.not_valid_after_utc, leaf.not_valid_before_utc
        if moment > not_after + self.clock_skew:
            raise CertificateRejected(RejectionReason.EXPIRED, f"notAfter {not_after.isoformat()}")
        if moment < not_before - self.clock_skew:
            raise CertificateRejected(
                RejectionReason.NOT_YET_VALID, f"notBefore {not_before.isoformat()}"
            )
        verify_at = min(max(moment, not_before), not_after)
        try:
            constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        except ValueError as exc:  # duplicate or undecodable extensions
            raise CertificateRejected(RejectionReason.MALFORMED, str(exc)) from None
        if constraints is not None and constraints.ca:
            raise CertificateRejected(
                RejectionReason.WRONG_USAGE, "a CA certificate was presented as a client"
            )
        try:
            usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            if not self.allow_missing_eku:
                raise CertificateRejected(
                    RejectionReason.WRONG_USAGE, "no extendedKeyUsage extension (clientAuth)"
                ) from None
            return verify_at
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            raise CertificateRejected(
                RejectionReason.WRONG_USAGE, "extendedKeyUsage does not include clientAuth"
            )
        return verify_at

    # --- hot reload and background work -----------------------------------------------

    def reload(self) -> bool:
        """Re-read the trust files (roots, intermediates, allowed issuers, pins) and the
        revocation checker's CRL files, and swap in the new material atomically.

        Returns whether anything changed (then :attr:`generation` has increased).  When a new
        file is bad (unreadable, no certificate, an invalid pin, public roots that are not
        allowed), the previous material is kept and the error logged, once per change of
        the files.
        """
        with self._reload_lock:
            stamps = self._source.stamps()
            try:
                state = self._load_trust()
            except Exception as exc:  # keep serving with the old set, whatever went wrong
                self._stamps = stamps  # try again when the files change again
                logger.error("trust material not reloaded, keeping the previous set: %r", exc)
                state = None
            else:
                self._stamps = stamps
            changed = False
            if state is not None and state.digest != self._trust.digest:
                self._adopt(state)
                self._trust_generation += 1
                changed = True
                logger.info(
                    "trust material reloaded: %d roots, %d intermediates",
                    len(state.roots),
                    len(state.intermediates),
                )
        if self.revocation is not None and self.revocation.reload_files(force=True):
            changed = True
        return changed

    def reload_if_changed(self) -> bool:
        """:meth:`reload` when a trust or CRL file's mtime or size changed since last read."""
        changed = False
        if self._source.stamps() != self._stamps:
            changed = self.reload()
        elif self.revocation is not None:
            changed = self.revocation.reload_files()
        return changed

    async def start(self) -> None:
        """Start background work on the running loop: polling the trust files every
        ``reload_interval`` seconds (when set) and the revocation checker's refresh loop.
        Idempotent."""
        if self.reload_interval is not None and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(self.reload_interval)
            )
        if self.revocation is not None:
            await self.revocation.start()

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.reload_if_changed)
            except Exception:
                logger.exception("trust file polling failed")

    async def aclose(self) -> None:
        """Stop the background work started by :meth:`start`."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            if watcher.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(watcher, return_exceptions=True)
        if self.revocation is not None:
            await self.revocation.aclose()


def _role(index: int, length: int) -> str:
    """What the certificate at ``index`` of a validated path of ``length`` is, for logs."""
    if index == 0:
        return "leaf"
    return "root" if index == length - 1 else "intermediate"


def _parse(certificate: x509.Certificate | bytes) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    try:
        return x509.load_der_x509_certificate(certificate)
    except ValueError as exc:
        raise CertificateRejected(
            RejectionReason.MALFORMED, f"not a DER certificate: {exc}"
        ) from None
