"""The revocation data held in memory, which ``check`` reads and background fetches replace.

CRLs come from files (re-read when they change, atomically: on any error the previous set is
kept) and from URLs (a newer CRL replaces the one held; an older one is a rollback and is
refused).  OCSP answers are kept per certificate (issuer digest, serial), bounded.  Every
change that can change an answer increments :attr:`RevocationState.generation`: a new or
different CRL, an OCSP status that changed, or one that first arrived for a certificate
refused as unknown (hard-fail).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509 import ocsp

from asgi_mtls.log import get_logger
from asgi_mtls.validation import notices
from asgi_mtls.validation.revocation.common import utcnow
from asgi_mtls.validation.revocation.crl import CrlRecord, crl_signed_by, parse_crl_data
from asgi_mtls.validation.revocation.ocsp import OcspAnswer
from asgi_mtls.validation.trust import FileStamp, certificate_sha256, file_stamps

__all__ = ["OcspKey", "OcspTarget", "RevocationState"]

logger = get_logger()

#: An OCSP answer's key: SHA-256 of the issuer certificate, and the serial number.
OcspKey = tuple[bytes, int]
#: How many CRL signature verdicts are memoised (per CRL and issuer) before starting over.
_MAX_SIGNATURE_VERDICTS = 4096


@dataclass(frozen=True, slots=True)
class OcspTarget:
    """What to ask a responder about: a leaf, its issuer, the responder URLs."""

    leaf: x509.Certificate
    issuer: x509.Certificate
    urls: tuple[str, ...]


class RevocationState:
    """CRLs and OCSP answers; see the module docstring.  Thread-safe: writers hold
    :attr:`lock`; readers take one reference (``crls_for``, ``ocsp``) and never see a
    half-made change."""

    def __init__(
        self,
        *,
        crl_files: Iterable[Path] = (),
        max_ocsp_entries: int = 10_000,
        max_crl_sources: int = 256,
    ) -> None:
        self.crl_files = tuple(crl_files)
        self.max_ocsp_entries = max_ocsp_entries
        self.max_crl_sources = max_crl_sources
        self.lock = threading.RLock()
        self.generation = 0
        #: Told of every change that can change an answer, and of CRL files that failed.
        self.notices: notices.Notices[notices.ValidationNotice] = notices.Notices()
        #: URL -> the CRL fetched from it; URL -> the CA whose CRL it serves (for its signature).
        self.url_crls: dict[str, CrlRecord] = {}
        self.url_issuers: dict[str, x509.Certificate] = {}
        #: OCSP answers and what to ask about, per (issuer digest, serial).
        self.ocsp: dict[OcspKey, OcspAnswer] = {}
        self.ocsp_targets: dict[OcspKey, OcspTarget] = {}
        self._file_crls: tuple[CrlRecord, ...] = ()
        self._file_stamps: tuple[FileStamp, ...] = ()
        self._crl_index: dict[bytes, tuple[CrlRecord, ...]] = {}
        self._verified: dict[tuple[bytes, bytes], bool] = {}
        self._hard_unknown: set[OcspKey] = set()
        if self.crl_files:
            stamps = file_stamps(self.crl_files)
            self._file_crls = self._read_crl_files()  # a bad file at startup is an error
            self._file_stamps = stamps
            self._reindex()

    # --- reading ------------------------------------------------------------------------

    def crls_for(self, issuer: x509.Certificate) -> tuple[CrlRecord, ...]:
        """The CRLs (files and URLs) issued under ``issuer``'s name."""
        return self._crl_index.get(issuer.subject.public_bytes(), ())

    def signed_by(self, record: CrlRecord, issuer: x509.Certificate) -> bool:
        """Whether ``record`` is validly signed by ``issuer`` (memoised; a CRL that is not is
        logged, once per memo)."""
        key = (record.fingerprint, certificate_sha256(issuer))
        verified = self._verified.get(key)
        if verified is None:
            verified = crl_signed_by(record, issuer)
            self._remember(key, verified)
            if not verified:
                logger.error(
                    "CRL from %s is not validly signed by %r: ignored",
                    record.source,
                    issuer.subject.rfc4514_string(),
                )
        return verified

    def verified_signature(self, record: CrlRecord, issuer: x509.Certificate) -> None:
        """Note that ``record`` was found validly signed by ``issuer`` (when it was fetched)."""
        self._remember((record.fingerprint, certificate_sha256(issuer)), True)

    def _remember(self, key: tuple[bytes, bytes], verified: bool) -> None:
        with self.lock:
            if len(self._verified) >= _MAX_SIGNATURE_VERDICTS:
                self._verified.clear()
            self._verified[key] = verified

    # --- what to keep fresh -------------------------------------------------------------

    def remember_url_issuer(self, url: str, issuer: x509.Certificate) -> None:
        """Note that ``url`` serves ``issuer``'s CRL (the first one named wins; bounded)."""
        if url not in self.url_issuers:
            with self.lock:
                if len(self.url_issuers) < self.max_crl_sources:
                    self.url_issuers.setdefault(url, issuer)

    def remember_ocsp_target(self, key: OcspKey, target: OcspTarget) -> None:
        """Keep asking about ``target`` (bounded: the oldest is forgotten first)."""
        if key not in self.ocsp_targets:
            with self.lock:
                if len(self.ocsp_targets) >= self.max_ocsp_entries:
                    oldest = next(iter(self.ocsp_targets))
                    self.ocsp_targets.pop(oldest, None)
                    self.ocsp.pop(oldest, None)
                self.ocsp_targets[key] = target

    def forget_ocsp(self, key: OcspKey) -> None:
        with self.lock:
            self.ocsp_targets.pop(key, None)
            self.ocsp.pop(key, None)

    def mark_hard_unknown(self, keys: Iterable[OcspKey]) -> None:
        """These certificates were refused for want of an answer: the first answer for one
        of them changes the generation, even a good one."""
        with self.lock:
            self._hard_unknown.update(keys)

    # --- installing what fetches bring ---------------------------------------------------

    def install_url_crl(self, url: str, record: CrlRecord) -> None:
        """Install the CRL fetched from ``url``; ``ValueError`` for a rollback (an older CRL
        of the same issuer than the one held) or one source too many."""
        with self.lock:
            current = self.url_crls.get(url)
            if current is not None and current.fingerprint == record.fingerprint:
                self.url_crls[url] = record  # same CRL: only loaded_at moves on
                self._reindex()
                return
            if (
                current is not None
                and current.issuer == record.issuer
                and (
                    (
                        record.number is not None
                        and current.number is not None
                        and record.number < current.number
                    )
                    or record.this_update < current.this_update
                )
            ):
                raise ValueError(f"{url}: older CRL than the one held (rollback refused)")
            if current is None and len(self.url_crls) >= self.max_crl_sources:
                raise ValueError(f"more than {self.max_crl_sources} CRL sources")
            self.url_crls[url] = record
            self._reindex()
            self.generation += 1
        logger.info(
            "CRL loaded from %s: %d entries, nextUpdate %s",
            url,
            len(record.serials),
            record.next_update.isoformat() if record.next_update else "none",
        )
        self.notices(notices.RevocationUpdated("crl", url))

    def install_ocsp(self, key: OcspKey, answer: OcspAnswer) -> None:
        with self.lock:
            previous = self.ocsp.pop(key, None)
            self.ocsp[key] = answer
            while len(self.ocsp) > self.max_ocsp_entries:
                self.ocsp.pop(next(iter(self.ocsp)))
            if previous is None:
                changed = answer.status != ocsp.OCSPCertStatus.GOOD or key in self._hard_unknown
            else:
                changed = previous.status != answer.status
            self._hard_unknown.discard(key)
            if changed:
                self.generation += 1
        if changed:
            self.notices(notices.RevocationUpdated("ocsp", f"serial {key[1]:x}"))

    def _reindex(self) -> None:
        index: dict[bytes, list[CrlRecord]] = {}
        for record in (*self._file_crls, *self.url_crls.values()):
            index.setdefault(record.issuer, []).append(record)
        self._crl_index = {issuer: tuple(records) for issuer, records in index.items()}

    # --- CRL files ----------------------------------------------------------------------

    def _read_crl_files(self) -> tuple[CrlRecord, ...]:
        loaded_at = utcnow()
        records: list[CrlRecord] = []
        for path in self.crl_files:
            records += parse_crl_data(path.read_bytes(), str(path), loaded_at)
        return tuple(records)

    def reload_files(self, *, force: bool = False) -> bool:
        """Re-read the CRL files if they changed (mtime or size; always with ``force``).
        Atomic: on any error the previous set is kept and the error logged.  Returns whether
        the set of CRLs changed (and :attr:`generation` was increased)."""
        if not self.crl_files:
            return False
        stamps = file_stamps(self.crl_files)
        if not force and stamps == self._file_stamps:
            return False
        try:
            records = self._read_crl_files()
        except (OSError, ValueError) as exc:
            with self.lock:
                self._file_stamps = stamps  # retry when the files change again
            logger.error("CRL files not reloaded, keeping the previous set: %s", exc)
            self.notices(notices.RevocationFetchFailed("CRL files", str(exc), 0.0))
            return False
        with self.lock:
            self._file_stamps = stamps
            old = {record.fingerprint for record in self._file_crls}
            self._file_crls = records
            self._reindex()
            changed = old != {record.fingerprint for record in records}
            if changed:
                self.generation += 1
        if changed:
            logger.info("CRL files reloaded: %d CRLs", len(records))
            self.notices(
                notices.RevocationUpdated("crl_files", ", ".join(map(str, self.crl_files)))
            )
        return changed
