"""Revocation checking (CRLs and OCSP) that never puts the network on the request path.

:meth:`RevocationChecker.check` is synchronous and reads in-memory state only: CRLs loaded
from files or fetched from the certificates' CRL distribution points (RFC 5280 §4.2.1.13,
§5, §6.3), and OCSP answers for the leaf (RFC 6960).  When the state a certificate needs is
missing, stale or due for refresh, ``check`` *schedules* a background fetch (an asyncio task
on the running loop) and answers at once, per policy:

- ``off``: the check is not made;
- ``soft-fail``: an unknown status is accepted and logged;
- ``hard-fail``: an unknown status is rejected as ``revocation_unknown``.

A certificate found revoked is always rejected as ``revoked``.  Fetches are bounded by a
total ``timeout`` and a size limit, deduplicated (one in flight per source) and, after a
failure, not retried before a backoff delay, so a dead endpoint costs nothing per request.

Every change of revocation state that can change an answer increments :attr:`generation`, so
a cache of earlier answers (the middleware's) knows to drop them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from asgi_mtls.errors import CertificateRejected, RejectionReason
from asgi_mtls.validation.revocation.common import THIS_UPDATE_TOLERANCE, utcnow
from asgi_mtls.validation.revocation.crl import (
    CrlRecord,
    crl_covers,
    crl_distribution_urls,
    crl_signed_by,
    distribution_point_names,
    parse_crl_data,
)
from asgi_mtls.validation.revocation.fetch import FetchError, download
from asgi_mtls.validation.revocation.ocsp import (
    OcspAnswer,
    build_ocsp_request,
    ocsp_responder_urls,
    verify_ocsp_response,
)
from asgi_mtls.validation.trust import FileStamp, certificate_sha256, file_stamps

__all__ = ["RevocationChecker", "RevocationPolicy", "RevocationResult"]

logger = logging.getLogger("asgi_mtls")


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
class _FetchState:
    failures: int = 0
    retry_at: float = 0.0  # time.monotonic()
    last_error: str = ""
    task: asyncio.Task[None] | concurrent.futures.Future[None] | None = None


@dataclass(frozen=True, slots=True)
class _OcspTarget:
    leaf: x509.Certificate
    issuer: x509.Certificate
    urls: tuple[str, ...]


@dataclass(slots=True)
class _Verdict:
    revoked: str | None = None
    unknown: str | None = None
    good_until: dt.datetime | None = None
    keys: list[Hashable] = field(default_factory=list)


def _in_flight(task: asyncio.Task[None] | concurrent.futures.Future[None] | None) -> bool:
    if task is None or task.done():
        return False
    # A task of an event loop that was closed without aclose() will never finish.
    return not (isinstance(task, asyncio.Task) and task.get_loop().is_closed())


def _describe(key: Hashable) -> str:
    """A fetch key for the log: ``("crl", url)`` or ``("ocsp", (issuer digest, serial))``."""
    match key:
        case ("crl", str(url)):
            return f"CRL {url}"
        case ("ocsp", (bytes(), int(serial))):
            return f"OCSP for serial {serial:x}"
    return repr(key)


def _policy(value: RevocationPolicy | str) -> RevocationPolicy:
    try:
        return RevocationPolicy(value)
    except ValueError:
        choices = ", ".join(repr(p.value) for p in RevocationPolicy)
        raise ValueError(f"revocation policy must be one of {choices}, got {value!r}") from None


def _seconds(value: float | dt.timedelta) -> dt.timedelta:
    return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=value)


class RevocationChecker:
    """In-memory revocation state with background refresh; see the module docstring.

    :param crl: policy for CRL checks (``"off"``, ``"soft-fail"``, ``"hard-fail"``).
    :param ocsp: policy for OCSP checks of the leaf.
    :param crl_files: CRL files (PEM, one or more CRLs, or DER) loaded now and re-read when
        they change.  A CRL applies to certificates of the CA that signed it.
    :param crl_urls: CRL URLs fetched at :meth:`start` / :meth:`refresh` and kept fresh,
        whether or not a certificate names them.
    :param use_distribution_points: fetch CRLs from the certificates' CRL distribution points.
    :param crl_scope: ``"chain"`` (default): the leaf and every intermediate need a CRL from
        their issuer; ``"leaf"``: only the leaf.
    :param ocsp_url: query this responder instead of the leaf's authorityInfoAccess URLs.
    :param ocsp_nonce: send a random nonce (RFC 8954); a response carrying a different nonce
        is refused (one without a nonce is accepted: many responders ignore nonces).
    :param timeout: total time budget of one fetch, seconds (no request ever waits for it).
    :param refresh_interval: seconds; re-fetch each source at least this often (and earlier,
        once three quarters of the data's thisUpdate→nextUpdate window has passed).  Data
        without nextUpdate is used for this long.
    :param retry_min, retry_max: backoff after a failed fetch, doubling from ``retry_min`` up
        to ``retry_max`` seconds; no fetch of that source is attempted meanwhile.
    :param poll_interval: seconds between runs of the background loop started by
        :meth:`start` (CRL file change detection, due refreshes).
    """

    def __init__(
        self,
        *,
        crl: RevocationPolicy | str = RevocationPolicy.OFF,
        ocsp: RevocationPolicy | str = RevocationPolicy.OFF,
        crl_files: Iterable[str | os.PathLike[str]] = (),
        crl_urls: Iterable[str] = (),
        use_distribution_points: bool = True,
        crl_scope: Literal["chain", "leaf"] = "chain",
        ocsp_url: str | None = None,
        ocsp_nonce: bool = False,
        timeout: float = 5.0,
        max_crl_bytes: int = 10 * 1024 * 1024,
        max_ocsp_bytes: int = 64 * 1024,
        refresh_interval: float = 3600.0,
        retry_min: float = 30.0,
        retry_max: float = 900.0,
        poll_interval: float = 30.0,
        max_ocsp_entries: int = 10_000,
        max_crl_sources: int = 256,
    ) -> None:
        self.crl_policy = _policy(crl)
        self.ocsp_policy = _policy(ocsp)
        if crl_scope not in ("chain", "leaf"):
            raise ValueError("crl_scope must be 'chain' or 'leaf'")
        if timeout <= 0 or refresh_interval <= 0 or retry_min <= 0 or poll_interval <= 0:
            raise ValueError("timeout, refresh_interval, retry_min and poll_interval must be > 0")
        self.crl_files = tuple(Path(path) for path in crl_files)
        self.crl_urls = tuple(crl_urls)
        for url in (*self.crl_urls, *([ocsp_url] if ocsp_url else [])):
            if not url.lower().startswith(("http://", "https://")):
                raise ValueError(f"only http(s) revocation URLs are supported: {url!r}")
        self.use_distribution_points = use_distribution_points
        self.crl_scope = crl_scope
        self.ocsp_url = ocsp_url
        self.ocsp_nonce = ocsp_nonce
        self.timeout = timeout
        self.max_crl_bytes = max_crl_bytes
        self.max_ocsp_bytes = max_ocsp_bytes
        self.refresh_interval = _seconds(refresh_interval)
        self.retry_min = retry_min
        self.retry_max = max(retry_max, retry_min)
        self.poll_interval = poll_interval
        self.max_ocsp_entries = max_ocsp_entries
        self.max_crl_sources = max_crl_sources
        #: Fetches started (diagnostics and tests).
        self.fetch_attempts = 0

        self._lock = threading.RLock()
        self._generation = 0
        self._url_crls: dict[str, CrlRecord] = {}
        self._url_issuers: dict[str, x509.Certificate] = {}
        self._file_crls: tuple[CrlRecord, ...] = ()
        self._file_stamps: tuple[FileStamp, ...] = ()
        self._crl_index: dict[bytes, tuple[CrlRecord, ...]] = {}
        self._verified: dict[tuple[bytes, bytes], bool] = {}
        self._ocsp: dict[tuple[bytes, int], OcspAnswer] = {}
        self._ocsp_targets: dict[tuple[bytes, int], _OcspTarget] = {}
        self._hard_unknown: set[tuple[bytes, int]] = set()
        self._fetches: dict[Hashable, _FetchState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task[None] | None = None
        if self.crl_files:
            stamps = file_stamps(self.crl_files)
            self._file_crls = self._read_crl_files()  # a bad file at startup is an error
            self._file_stamps = stamps
            self._reindex()

    def __repr__(self) -> str:
        return (
            f"RevocationChecker(crl={self.crl_policy.value!r}, ocsp={self.ocsp_policy.value!r}, "
            f"crl_files={len(self.crl_files)}, generation={self._generation})"
        )

    @property
    def enabled(self) -> bool:
        """Whether any check is on."""
        return (
            self.crl_policy is not RevocationPolicy.OFF
            or self.ocsp_policy is not RevocationPolicy.OFF
        )

    @property
    def pending_fetches(self) -> int:
        """Fetches in flight right now (diagnostics and tests)."""
        with self._lock:
            return sum(1 for state in self._fetches.values() if _in_flight(state.task))

    @property
    def generation(self) -> int:
        """Increases whenever revocation state changes in a way that can change an answer:
        a new or different CRL, an OCSP status that changed (or first arrived for a
        certificate that was refused as unknown)."""
        return self._generation

    # --- the synchronous check --------------------------------------------------------

    def check(
        self, path: Sequence[x509.Certificate], at: dt.datetime | None = None
    ) -> RevocationResult:
        """Check the validated ``path`` (leaf first, trust anchor last) against in-memory
        state; schedule background fetches for what is missing.  Never does I/O.

        Raises :class:`CertificateRejected` with ``revoked``, or ``revocation_unknown`` when
        a hard-fail check has no fresh answer.
        """
        if not self.enabled or len(path) < 2:
            return RevocationResult("not_checked", None)
        moment = at or utcnow()
        verdicts: list[tuple[RevocationPolicy, str, _Verdict]] = []
        if self.crl_policy is not RevocationPolicy.OFF:
            checked = path[:-1] if self.crl_scope == "chain" else path[:1]
            for index, certificate in enumerate(checked):
                verdict = self._crl_verdict(certificate, path[index + 1], index > 0, moment)
                verdicts.append((self.crl_policy, "CRL", verdict))
        if self.ocsp_policy is not RevocationPolicy.OFF:
            verdicts.append(
                (self.ocsp_policy, "OCSP", self._ocsp_verdict(path[0], path[1], moment))
            )
        for _, kind, verdict in verdicts:
            if verdict.revoked is not None:
                raise CertificateRejected(RejectionReason.REVOKED, f"{kind}: {verdict.revoked}")
        hard = [
            (kind, v)
            for policy, kind, v in verdicts
            if v.unknown and policy is RevocationPolicy.HARD_FAIL
        ]
        if hard:
            with self._lock:
                for _, verdict in hard:
                    self._hard_unknown.update(k for k in verdict.keys if isinstance(k, tuple))
            detail = "; ".join(f"{kind}: {verdict.unknown}" for kind, verdict in hard)
            raise CertificateRejected(RejectionReason.REVOCATION_UNKNOWN, detail)
        soft = [f"{kind}: {v.unknown}" for _, kind, v in verdicts if v.unknown]
        if soft:
            logger.warning(
                "revocation status unknown, accepted (soft-fail): serial=%x %s",
                path[0].serial_number,
                "; ".join(soft),
            )
        until = [v.good_until for _, _, v in verdicts if v.good_until is not None]
        return RevocationResult("unknown" if soft else "good", min(until) if until else None)

    def _crl_verdict(
        self, certificate: x509.Certificate, issuer: x509.Certificate, is_ca: bool, at: dt.datetime
    ) -> _Verdict:
        subject = certificate.subject.rfc4514_string()
        urls = crl_distribution_urls(certificate) if self.use_distribution_points else ()
        candidates = self._crl_index.get(issuer.subject.public_bytes(), ())
        names: frozenset[x509.GeneralName] | None = None

        def cert_names() -> frozenset[x509.GeneralName]:
            nonlocal names
            if names is None:
                names = distribution_point_names(certificate)
            return names

        verdict = _Verdict()
        for record in candidates:
            if not crl_covers(record, is_ca, cert_names) or not self._signed_by(record, issuer):
                continue
            if certificate.serial_number in record.serials:
                entry = record.crl.get_revoked_certificate_by_serial_number(
                    certificate.serial_number
                )
                when = entry.revocation_date_utc.isoformat() if entry is not None else "?"
                verdict.revoked = (
                    f"{subject!r} serial {certificate.serial_number:x} revoked at {when} "
                    f"({record.source})"
                )
                return verdict
            fresh_until = record.fresh_until(self.refresh_interval)
            fresh = record.this_update - THIS_UPDATE_TOLERANCE <= at <= fresh_until
            if fresh and (verdict.good_until is None or fresh_until > verdict.good_until):
                verdict.good_until = fresh_until
        for url in urls:
            self._want_crl(url, issuer)
        if verdict.good_until is None:
            if not urls and not candidates:
                verdict.unknown = f"{subject!r}: no CRL for its issuer and no distribution point"
            else:
                errors = [
                    self._fetches[("crl", u)].last_error
                    for u in urls
                    if ("crl", u) in self._fetches
                ]
                why = f" (last fetch: {errors[0]})" if any(errors) else ""
                verdict.unknown = f"{subject!r}: no fresh CRL from its issuer{why}"
        return verdict

    def _ocsp_verdict(
        self, leaf: x509.Certificate, issuer: x509.Certificate, at: dt.datetime
    ) -> _Verdict:
        key = (certificate_sha256(issuer), leaf.serial_number)
        verdict = _Verdict(keys=[key])
        urls = (self.ocsp_url,) if self.ocsp_url else ocsp_responder_urls(leaf)
        answer = self._ocsp.get(key)
        if urls:
            self._want_ocsp(key, _OcspTarget(leaf, issuer, urls), answer)
        if answer is not None and answer.status == ocsp.OCSPCertStatus.REVOKED:
            when = answer.revocation_time.isoformat() if answer.revocation_time else "?"
            verdict.revoked = f"serial {leaf.serial_number:x} revoked at {when}"
            return verdict
        if answer is not None:
            fresh_until = answer.fresh_until(self.refresh_interval)
            if answer.this_update - THIS_UPDATE_TOLERANCE <= at <= fresh_until:
                if answer.status == ocsp.OCSPCertStatus.GOOD:
                    verdict.good_until = fresh_until
                else:
                    verdict.unknown = "the responder does not know the certificate"
                return verdict
        if not urls:
            verdict.unknown = "no OCSP responder URL (authorityInfoAccess) in the certificate"
        else:
            state = self._fetches.get(("ocsp", key))
            why = f" (last fetch: {state.last_error})" if state and state.last_error else ""
            verdict.unknown = f"no fresh OCSP response{why}"
        return verdict

    def _signed_by(self, record: CrlRecord, issuer: x509.Certificate) -> bool:
        key = (record.fingerprint, certificate_sha256(issuer))
        verified = self._verified.get(key)
        if verified is None:
            verified = crl_signed_by(record, issuer)
            with self._lock:
                if len(self._verified) >= 4096:
                    self._verified.clear()
                self._verified[key] = verified
            if not verified:
                logger.error(
                    "CRL from %s is not validly signed by %r: ignored",
                    record.source,
                    issuer.subject.rfc4514_string(),
                )
        return verified

    # --- deciding what to fetch -------------------------------------------------------

    def _due(
        self, this_update: dt.datetime, fresh_until: dt.datetime, loaded_at: dt.datetime
    ) -> bool:
        now = utcnow()
        window = fresh_until - this_update
        due = min(this_update + window * 3 / 4, loaded_at + self.refresh_interval)
        return now >= max(due, loaded_at + dt.timedelta(seconds=self.retry_min))

    def _crl_due(self, url: str) -> bool:
        record = self._url_crls.get(url)
        if record is None:
            return True
        return self._due(
            record.this_update, record.fresh_until(self.refresh_interval), record.loaded_at
        )

    def _want_crl(self, url: str, issuer: x509.Certificate | None) -> None:
        if issuer is not None and url not in self._url_issuers:
            with self._lock:
                if len(self._url_issuers) < self.max_crl_sources:
                    self._url_issuers[url] = issuer
        if self._crl_due(url):
            self._schedule(("crl", url), lambda: self._fetch_crl(url))

    def _want_ocsp(
        self, key: tuple[bytes, int], target: _OcspTarget, answer: OcspAnswer | None
    ) -> None:
        if key not in self._ocsp_targets:
            with self._lock:
                if len(self._ocsp_targets) >= self.max_ocsp_entries:
                    oldest = next(iter(self._ocsp_targets))
                    self._ocsp_targets.pop(oldest, None)
                    self._ocsp.pop(oldest, None)
                self._ocsp_targets[key] = target
        if answer is None or self._due(
            answer.this_update, answer.fresh_until(self.refresh_interval), answer.loaded_at
        ):
            self._schedule(("ocsp", key), lambda: self._fetch_ocsp(key, target))

    def _schedule(
        self,
        key: Hashable,
        factory: Callable[[], Coroutine[Any, Any, None]],
        *,
        force: bool = False,
    ) -> asyncio.Task[None] | concurrent.futures.Future[None] | None:
        """Start ``factory()`` in the background unless it is in flight or backing off.
        Returns the task (``None`` when nothing was started or no event loop is available)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with self._lock:
            state = self._fetches.setdefault(key, _FetchState())
            if _in_flight(state.task):
                return None
            if not force and time.monotonic() < state.retry_at:
                return None
            task: asyncio.Task[None] | concurrent.futures.Future[None]
            if running is not None:
                if self._loop is None or self._loop.is_closed():
                    self._loop = running
                local = running.create_task(self._guarded(key, factory))
                self._tasks.add(local)
                local.add_done_callback(self._tasks.discard)
                task = local
            elif self._loop is not None and self._loop.is_running():
                task = asyncio.run_coroutine_threadsafe(self._guarded(key, factory), self._loop)
            else:
                return None
            state.task = task
            self.fetch_attempts += 1
            return task

    async def _guarded(
        self, key: Hashable, factory: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            with self._lock:
                state = self._fetches.setdefault(key, _FetchState())
                state.failures += 1
                delay = min(self.retry_max, self.retry_min * 2 ** min(state.failures - 1, 16))
                state.retry_at = time.monotonic() + delay
                state.last_error = (
                    f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                )
            logger.warning(
                "revocation fetch failed: %s: %s (next attempt in %.0f s)",
                _describe(key),
                state.last_error,
                delay,
            )
        else:
            with self._lock:
                state = self._fetches.setdefault(key, _FetchState())
                state.failures = 0
                state.retry_at = 0.0
                state.last_error = ""

    # --- fetching and installing ------------------------------------------------------

    async def _fetch_crl(self, url: str) -> None:
        data = await download(url, body=None, max_bytes=self.max_crl_bytes, timeout=self.timeout)
        issuer = self._url_issuers.get(url)
        records = await asyncio.to_thread(self._parse_and_verify, data, url, issuer)
        self._install_url_crl(url, records[0])

    def _parse_and_verify(
        self, data: bytes, url: str, issuer: x509.Certificate | None
    ) -> list[CrlRecord]:
        records = parse_crl_data(data, url, utcnow())
        if len(records) != 1:
            raise ValueError(f"{url}: {len(records)} CRLs in one response, expected 1")
        if issuer is not None:
            if not crl_signed_by(records[0], issuer):
                raise ValueError(f"CRL from {url} is not validly signed by its issuer")
            with self._lock:
                self._verified[(records[0].fingerprint, certificate_sha256(issuer))] = True
        return records

    def _install_url_crl(self, url: str, record: CrlRecord) -> None:
        with self._lock:
            current = self._url_crls.get(url)
            if current is not None and current.fingerprint == record.fingerprint:
                self._url_crls[url] = record  # same CRL: only loaded_at moves on
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
            if current is None and len(self._url_crls) >= self.max_crl_sources:
                raise ValueError(f"more than {self.max_crl_sources} CRL sources")
            self._url_crls[url] = record
            self._reindex()
            self._generation += 1
        logger.info(
            "CRL loaded from %s: %d entries, nextUpdate %s",
            url,
            len(record.serials),
            record.next_update.isoformat() if record.next_update else "none",
        )

    async def _fetch_ocsp(self, key: tuple[bytes, int], target: _OcspTarget) -> None:
        nonce = os.urandom(16) if self.ocsp_nonce else None
        request = build_ocsp_request(target.leaf, target.issuer, nonce)
        body = request.public_bytes(serialization.Encoding.DER)
        errors = []
        for url in target.urls:
            try:
                data = await download(
                    url, body=body, max_bytes=self.max_ocsp_bytes, timeout=self.timeout
                )
                answer = verify_ocsp_response(data, target.leaf, target.issuer, nonce=nonce)
            except (FetchError, ValueError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            self._install_ocsp(key, answer)
            return
        raise FetchError("; ".join(errors))

    def _install_ocsp(self, key: tuple[bytes, int], answer: OcspAnswer) -> None:
        with self._lock:
            previous = self._ocsp.pop(key, None)
            self._ocsp[key] = answer
            while len(self._ocsp) > self.max_ocsp_entries:
                self._ocsp.pop(next(iter(self._ocsp)))
            if previous is None:
                changed = answer.status != ocsp.OCSPCertStatus.GOOD or key in self._hard_unknown
            else:
                changed = previous.status != answer.status
            self._hard_unknown.discard(key)
            if changed:
                self._generation += 1

    def _reindex(self) -> None:
        index: dict[bytes, list[CrlRecord]] = {}
        for record in (*self._file_crls, *self._url_crls.values()):
            index.setdefault(record.issuer, []).append(record)
        self._crl_index = {issuer: tuple(records) for issuer, records in index.items()}

    # --- CRL files --------------------------------------------------------------------

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
            with self._lock:
                self._file_stamps = stamps  # retry when the files change again
            logger.error("CRL files not reloaded, keeping the previous set: %s", exc)
            return False
        with self._lock:
            self._file_stamps = stamps
            old = {record.fingerprint for record in self._file_crls}
            self._file_crls = records
            self._reindex()
            changed = old != {record.fingerprint for record in records}
            if changed:
                self._generation += 1
        if changed:
            logger.info("CRL files reloaded: %d CRLs", len(records))
        return changed

    # --- explicit and background work -------------------------------------------------

    async def _run_now(
        self, key: Hashable, factory: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        task = self._schedule(key, factory, force=True)
        if task is None:
            with self._lock:
                state = self._fetches.get(key)
                task = state.task if state is not None else None
        if isinstance(task, asyncio.Task) and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([task])
        elif isinstance(task, concurrent.futures.Future):
            await asyncio.wrap_future(task)

    async def refresh(self) -> None:
        """Re-read changed CRL files and fetch every known CRL URL and OCSP answer now, waiting
        for all of them (backoff ignored).  For startup and tests; failures are logged."""
        await asyncio.to_thread(self.reload_files)
        jobs = []
        if self.crl_policy is not RevocationPolicy.OFF:
            urls = dict.fromkeys([*self.crl_urls, *self._url_crls, *self._url_issuers])
            jobs += [self._run_now(("crl", url), self._crl_job(url)) for url in urls]
        if self.ocsp_policy is not RevocationPolicy.OFF:
            for key, target in list(self._ocsp_targets.items()):
                jobs.append(self._run_now(("ocsp", key), self._ocsp_job(key, target)))
        await asyncio.gather(*jobs)

    async def prefetch(self, chain: Sequence[x509.Certificate]) -> None:
        """Fetch what validating ``chain`` (leaf first, each certificate followed by its
        issuer, e.g. ``VerifiedChain.chain``) needs, and wait for it."""
        path = list(chain)
        if len(path) < 2:
            raise ValueError("prefetch needs the leaf and at least its issuer")
        jobs = []
        if self.crl_policy is not RevocationPolicy.OFF and self.use_distribution_points:
            checked = path[:-1] if self.crl_scope == "chain" else path[:1]
            for index, certificate in enumerate(checked):
                for url in crl_distribution_urls(certificate):
                    with self._lock:
                        self._url_issuers.setdefault(url, path[index + 1])
                    jobs.append(self._run_now(("crl", url), self._crl_job(url)))
        if self.ocsp_policy is not RevocationPolicy.OFF:
            leaf, issuer = path[0], path[1]
            urls = (self.ocsp_url,) if self.ocsp_url else ocsp_responder_urls(leaf)
            if urls:
                key = (certificate_sha256(issuer), leaf.serial_number)
                target = _OcspTarget(leaf, issuer, urls)
                with self._lock:
                    self._ocsp_targets[key] = target
                jobs.append(self._run_now(("ocsp", key), self._ocsp_job(key, target)))
        await asyncio.gather(*jobs)

    def _crl_job(self, url: str) -> Callable[[], Coroutine[Any, Any, None]]:
        return lambda: self._fetch_crl(url)

    def _ocsp_job(
        self, key: tuple[bytes, int], target: _OcspTarget
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        return lambda: self._fetch_ocsp(key, target)

    async def start(self) -> None:
        """Start the background loop (CRL file polling, due refreshes, configured
        ``crl_urls``) on the running event loop.  Idempotent."""
        loop = asyncio.get_running_loop()
        if self._runner is not None and not self._runner.done():
            return
        self._loop = loop
        self._runner = loop.create_task(self._run_forever())

    async def _run_forever(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("revocation background refresh failed")
            await asyncio.sleep(self.poll_interval)

    async def _tick(self) -> None:
        await asyncio.to_thread(self.reload_files)
        now = utcnow()
        if self.crl_policy is not RevocationPolicy.OFF:
            for url in dict.fromkeys([*self.crl_urls, *self._url_crls, *self._url_issuers]):
                if self._crl_due(url):
                    self._schedule(("crl", url), self._crl_job(url))
        if self.ocsp_policy is not RevocationPolicy.OFF:
            for key, target in list(self._ocsp_targets.items()):
                if target.leaf.not_valid_after_utc < now:
                    with self._lock:
                        self._ocsp_targets.pop(key, None)
                        self._ocsp.pop(key, None)
                    continue
                self._want_ocsp(key, target, self._ocsp.get(key))

    async def aclose(self) -> None:
        """Stop the background loop and cancel fetches in flight."""
        tasks: list[asyncio.Task[None]] = []
        if self._runner is not None:
            tasks.append(self._runner)
            self._runner = None
        with self._lock:
            tasks += list(self._tasks)
            for state in self._fetches.values():
                if isinstance(state.task, concurrent.futures.Future):
                    state.task.cancel()
        current = asyncio.get_running_loop()
        mine = [task for task in tasks if task.get_loop() is current]
        for task in tasks:
            task.cancel()
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)
