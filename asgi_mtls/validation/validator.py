"""CertificateValidator: is this client certificate trusted, now?

Path validation is cryptography's ``x509.verification`` (RFC 5280 as the CA/B Forum profile
reads it), with the client-side choices a service needs:

- trust roots come only from configuration (a PEM file, PEM/DER bytes, certificates); there is
  no system trust store;
- certificates sent with the request are path-building hints only, appended to the configured
  intermediates;
- the clientAuth extended key usage is required (a leaf without an EKU extension is refused
  unless ``allow_missing_eku=True``);
- RSA keys shorter than ``min_rsa_bits`` (2048) anywhere in the path are refused
  (``weak_key``); MD5 and SHA-1 signatures are refused (``weak_signature``), and
  ``signature_algorithms`` can narrow the accepted set further;
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
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    VerificationError,
)

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.validation.revocation import RevocationChecker
from asgi_mtls.validation.trust import (
    CertificateInput,
    PinInput,
    TrustSource,
    TrustState,
    load_certificates,
)

__all__ = ["CertificateInput", "CertificateValidator", "VerifiedChain", "load_certificates"]

logger = logging.getLogger("asgi_mtls")

#: Upper bound on certificates accepted as path-building hints from one request.
MAX_PRESENTED_CHAIN = 8
#: Upper bound on the candidate issuers path building may try (see :func:`_search_size`).
MAX_PATH_CANDIDATES = 256
#: cryptography's default maximum number of intermediates.
DEFAULT_MAX_DEPTH = 8

#: Signature algorithms refused whatever the configuration (cryptography's webpki policy
#: refuses them too; this check gives them a precise reason code).
WEAK_SIGNATURE_ALGORITHMS = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_MD5,
        SignatureAlgorithmOID.RSA_WITH_SHA1,
        SignatureAlgorithmOID._RSA_WITH_SHA1,
        SignatureAlgorithmOID.ECDSA_WITH_SHA1,
        SignatureAlgorithmOID.DSA_WITH_SHA1,
    }
)


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


def _distinct_hints(hints: list[x509.Certificate], trust: TrustState) -> list[x509.Certificate]:
    """The presented certificates minus repeats and minus configured ones: a repeated
    candidate only multiplies the work of path building."""
    seen = set(trust.known_ders)
    distinct = []
    for hint in hints:
        der = hint.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            distinct.append(hint)
    return distinct


def _search_size(
    leaf: x509.Certificate, hints: list[x509.Certificate], trust: TrustState, max_depth: int
) -> int:
    """An upper bound on the candidate issuers cryptography's depth-first path building will
    try (each costs a signature check), stopped once past :data:`MAX_PATH_CANDIDATES`.

    cryptography 48 neither detects loops nor bounds the number of signature checks: eight
    presented certificates forming a cross-signed loop keep it busy for minutes, holding the
    GIL (the event loop stops).  Such inputs are refused before they reach it.

    The first count assumes every same-name candidate verifies (names only, cheap); only
    when it is too large is it redone with real signature checks (memoised, so at most one
    per pair of certificates), which is how the path builder itself prunes.
    """
    intermediates: dict[bytes, list[x509.Certificate]] = {
        subject: list(group) for subject, group in trust.intermediates_by_subject.items()
    }
    for hint in hints:
        intermediates.setdefault(hint.subject.public_bytes(), []).append(hint)
    estimate = _count_candidates(leaf, intermediates, trust, max_depth, None)
    if estimate <= MAX_PATH_CANDIDATES:
        return estimate
    return _count_candidates(leaf, intermediates, trust, max_depth, {})


def _count_candidates(
    leaf: x509.Certificate,
    intermediates: dict[bytes, list[x509.Certificate]],
    trust: TrustState,
    max_depth: int,
    signed: dict[tuple[int, int], bool] | None,
) -> int:
    def signs(issuer: x509.Certificate, child: x509.Certificate) -> bool:
        if signed is None:
            return True
        key = (id(issuer), id(child))
        if key not in signed:
            try:
                child.verify_directly_issued_by(issuer)
                signed[key] = True
            except Exception:  # any failure: the builder would not recurse either
                signed[key] = False
        return signed[key]

    count = 0
    stack = [(leaf, 0)]
    while stack:
        working, depth = stack.pop()
        issuer = working.issuer.public_bytes()
        count += len(trust.roots_by_subject.get(issuer, ()))
        for candidate in intermediates.get(issuer, ()):
            count += 1
            if count > MAX_PATH_CANDIDATES:
                return count
            if depth + 1 <= max_depth and signs(candidate, working):
                stack.append((candidate, depth + 1))
    return count


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
    :param signature_algorithms: signature algorithm OIDs accepted on the leaf and the
        intermediates (cryptography's webpki set still applies).  ``None``: that set.
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
        min_rsa_bits: int = 2048,
        allowed_issuers: CertificateInput | None = None,
        pinned_certificates: PinInput | None = None,
        pinned_keys: PinInput | None = None,
        signature_algorithms: Iterable[x509.ObjectIdentifier] | None = None,
        clock_skew: float | dt.timedelta = 0,
        revocation: RevocationChecker | None = None,
        reload_interval: float | None = None,
    ) -> None:
        self._source = TrustSource(
            trust_roots,
            intermediates=intermediates,
            allowed_issuers=allowed_issuers,
            pinned_certificates=pinned_certificates,
            pinned_keys=pinned_keys,
        )
        self._stamps = self._source.stamps()
        self._trust: TrustState = self._source.load()
        self.allow_missing_eku = allow_missing_eku
        self.max_chain_depth = max_chain_depth
        self.min_rsa_bits = min_rsa_bits
        self.signature_algorithms = (
            None if signature_algorithms is None else frozenset(signature_algorithms)
        )
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
        hints = _distinct_hints([_parse(item) for item in presented], trust)
        verify_at = self._check_leaf(leaf_certificate, moment)
        depth = self.max_chain_depth if self.max_chain_depth is not None else DEFAULT_MAX_DEPTH
        size = _search_size(leaf_certificate, hints, trust, depth)
        if size > MAX_PATH_CANDIDATES:
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
            raise CertificateRejected(RejectionReason.UNTRUSTED, str(exc)) from None
        path = tuple(verified.chain)
        for certificate in path[1:]:
            self._check_key(certificate)
        for certificate in path[1:-1]:  # the anchor's self-signature is not relied upon
            self._check_signature(certificate)
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

    def _check_key(self, certificate: x509.Certificate) -> None:
        # cryptography checks the RSA size of keys that verify signatures (issuers), not the
        # leaf's own key: the floor applies to every certificate in the path.
        key = certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < self.min_rsa_bits:
            raise CertificateRejected(
                RejectionReason.WEAK_KEY,
                f"{key.key_size}-bit RSA key in {certificate.subject.rfc4514_string()!r}, "
                f"minimum {self.min_rsa_bits}",
            )

    def _check_signature(self, certificate: x509.Certificate) -> None:
        oid = certificate.signature_algorithm_oid
        weak = oid in WEAK_SIGNATURE_ALGORITHMS
        if not weak and oid == SignatureAlgorithmOID.RSASSA_PSS:
            try:
                weak = isinstance(certificate.signature_hash_algorithm, hashes.SHA1 | hashes.MD5)
            except UnsupportedAlgorithm:
                weak = True
        if weak or (self.signature_algorithms is not None and oid not in self.signature_algorithms):
            raise CertificateRejected(
                RejectionReason.WEAK_SIGNATURE,
                f"{certificate.subject.rfc4514_string()!r} is signed with "
                f"{getattr(oid, '_name', None) or oid.dotted_string}",
            )

    def _check_leaf(self, leaf: x509.Certificate, moment: dt.datetime) -> dt.datetime:
        """The leaf pre-checks; returns the time to run path validation at (``moment``,
        moved onto the leaf's validity period when it is outside by at most ``clock_skew``)."""
        try:
            leaf.extensions  # noqa: B018 - decoded once here, so that a bad one is `malformed`
            self._check_key(leaf)
        except (ValueError, x509.DuplicateExtension) as exc:  # bad extensions or public key
            raise CertificateRejected(RejectionReason.MALFORMED, str(exc)) from None
        self._check_signature(leaf)
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
        file is bad (unreadable, no certificate, an invalid pin), the previous material is
        kept and the error logged.
        """
        with self._reload_lock:
            stamps = self._source.stamps()
            try:
                state = self._source.load()
            except Exception as exc:  # keep serving with the old set, whatever went wrong
                self._stamps = stamps  # try again when the files change again
                logger.error("trust material not reloaded, keeping the previous set: %r", exc)
                state = None
            else:
                self._stamps = stamps
            changed = False
            if state is not None and state.digest != self._trust.digest:
                self._trust = state
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


def _parse(certificate: x509.Certificate | bytes) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    try:
        return x509.load_der_x509_certificate(certificate)
    except ValueError as exc:
        raise CertificateRejected(
            RejectionReason.MALFORMED, f"not a DER certificate: {exc}"
        ) from None
