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

This module holds the configuration, what to fetch and when, and the lifecycle; the data is
:mod:`~asgi_mtls.validation.revocation.state`, the decision
:mod:`~asgi_mtls.validation.revocation.decision`, the background fetches with their backoff
:mod:`~asgi_mtls.validation.revocation.scheduler`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from asgi_mtls.log import get_logger
from asgi_mtls.validation.revocation import ocsp
from asgi_mtls.validation.revocation.common import utcnow
from asgi_mtls.validation.revocation.crl import (
    CrlRecord,
    crl_distribution_urls,
    crl_signed_by,
    parse_crl_data,
)
from asgi_mtls.validation.revocation.decision import (
    RevocationPolicy,
    RevocationResult,
    Verdict,
    crl_unknown,
    crl_verdict,
    decide,
    ocsp_verdict,
)
from asgi_mtls.validation.revocation.fetch import FetchError, download
from asgi_mtls.validation.revocation.scheduler import FetchScheduler, Job
from asgi_mtls.validation.revocation.state import OcspKey, OcspTarget, RevocationState
from asgi_mtls.validation.trust import certificate_sha256

__all__ = ["RevocationChecker", "RevocationPolicy", "RevocationResult"]

logger = get_logger()


def _policy(value: RevocationPolicy | str) -> RevocationPolicy:
    try:
        return RevocationPolicy(value)
    except ValueError:
        choices = ", ".join(repr(p.value) for p in RevocationPolicy)
        raise ValueError(f"revocation policy must be one of {choices}, got {value!r}") from None


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
        self.refresh_interval = dt.timedelta(seconds=refresh_interval)
        self.poll_interval = poll_interval
        self._scheduler = FetchScheduler(retry_min=retry_min, retry_max=retry_max)
        self._state = RevocationState(
            crl_files=[Path(path) for path in crl_files],
            max_ocsp_entries=max_ocsp_entries,
            max_crl_sources=max_crl_sources,
        )
        self._runner: asyncio.Task[None] | None = None
        #: Told of revocation updates and failed fetches (``CertificateValidator.observe``).
        self.notices = self._scheduler.notices = self._state.notices

    def __repr__(self) -> str:
        return (
            f"RevocationChecker(crl={self.crl_policy.value!r}, ocsp={self.ocsp_policy.value!r}, "
            f"crl_files={len(self._state.crl_files)}, generation={self.generation})"
        )

    @property
    def fetch_attempts(self) -> int:
        """Fetches started (diagnostics and tests)."""
        return self._scheduler.attempts

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
        return self._scheduler.pending

    @property
    def generation(self) -> int:
        """Increases whenever revocation state changes in a way that can change an answer:
        a new or different CRL, an OCSP status that changed (or first arrived for a
        certificate that was refused as unknown)."""
        return self._state.generation

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
        verdicts: list[tuple[RevocationPolicy, str, Verdict]] = []
        if self.crl_policy is not RevocationPolicy.OFF:
            checked = path[:-1] if self.crl_scope == "chain" else path[:1]
            for index, certificate in enumerate(checked):
                verdict = self._crl_verdict(certificate, path[index + 1], index > 0, moment)
                verdicts.append((self.crl_policy, "CRL", verdict))
        if self.ocsp_policy is not RevocationPolicy.OFF:
            verdicts.append(
                (self.ocsp_policy, "OCSP", self._ocsp_verdict(path[0], path[1], moment))
            )
        return decide(verdicts, path[0], self._state)

    def _crl_verdict(
        self, certificate: x509.Certificate, issuer: x509.Certificate, is_ca: bool, at: dt.datetime
    ) -> Verdict:
        urls = crl_distribution_urls(certificate) if self.use_distribution_points else ()
        records = self._state.crls_for(issuer)
        verdict = crl_verdict(
            records,
            certificate,
            issuer,
            is_ca=is_ca,
            at=at,
            refresh_interval=self.refresh_interval,
            signed_by=self._state.signed_by,
        )
        if verdict.revoked is not None:
            return verdict
        for url in urls:
            self._want_crl(url, issuer)
        if verdict.good_until is None:
            errors = [self._scheduler.last_error(("crl", url)) for url in urls]
            known = [error for error in errors if error is not None]
            verdict.unknown = crl_unknown(certificate, urls, records, known)
        return verdict

    def _ocsp_verdict(
        self, leaf: x509.Certificate, issuer: x509.Certificate, at: dt.datetime
    ) -> Verdict:
        key = (certificate_sha256(issuer), leaf.serial_number)
        urls = (self.ocsp_url,) if self.ocsp_url else ocsp.ocsp_responder_urls(leaf)
        answer = self._state.ocsp.get(key)
        if urls:
            self._want_ocsp(key, OcspTarget(leaf, issuer, urls), answer)
        return ocsp_verdict(
            answer,
            leaf,
            key=key,
            has_responder=bool(urls),
            at=at,
            refresh_interval=self.refresh_interval,
            fetch_error=self._scheduler.last_error(("ocsp", key)),
        )

    # --- deciding what to fetch -------------------------------------------------------

    def _due(
        self, this_update: dt.datetime, fresh_until: dt.datetime, loaded_at: dt.datetime
    ) -> bool:
        """Three quarters of the data's thisUpdate -> nextUpdate window gone, or
        ``refresh_interval`` since it was loaded; never sooner than ``retry_min`` after."""
        now = utcnow()
        window = fresh_until - this_update
        due = min(this_update + window * 3 / 4, loaded_at + self.refresh_interval)
        return now >= max(due, loaded_at + dt.timedelta(seconds=self._scheduler.retry_min))

    def _crl_due(self, url: str) -> bool:
        record = self._state.url_crls.get(url)
        if record is None:
            return True
        return self._due(
            record.this_update, record.fresh_until(self.refresh_interval), record.loaded_at
        )

    def _want_crl(self, url: str, issuer: x509.Certificate) -> None:
        self._state.remember_url_issuer(url, issuer)
        if self._crl_due(url):
            self._scheduler.schedule(("crl", url), self._crl_job(url))

    def _want_ocsp(self, key: OcspKey, target: OcspTarget, answer: ocsp.OcspAnswer | None) -> None:
        self._state.remember_ocsp_target(key, target)
        if answer is None or self._due(
            answer.this_update, answer.fresh_until(self.refresh_interval), answer.loaded_at
        ):
            self._scheduler.schedule(("ocsp", key), self._ocsp_job(key, target))

    # --- fetching -----------------------------------------------------------------------

    def _crl_job(self, url: str) -> Job:
        return lambda: self._fetch_crl(url)

    def _ocsp_job(self, key: OcspKey, target: OcspTarget) -> Job:
        return lambda: self._fetch_ocsp(key, target)

    async def _fetch_crl(self, url: str) -> None:
        data = await download(url, body=None, max_bytes=self.max_crl_bytes, timeout=self.timeout)
        issuer = self._state.url_issuers.get(url)
        records = await asyncio.to_thread(self._parse_and_verify, data, url, issuer)
        self._state.install_url_crl(url, records[0])

    def _parse_and_verify(
        self, data: bytes, url: str, issuer: x509.Certificate | None
    ) -> list[CrlRecord]:
        records = parse_crl_data(data, url, utcnow())
        if len(records) != 1:
            raise ValueError(f"{url}: {len(records)} CRLs in one response, expected 1")
        if issuer is not None:
            if not crl_signed_by(records[0], issuer):
                raise ValueError(f"CRL from {url} is not validly signed by its issuer")
            self._state.verified_signature(records[0], issuer)
        return records

    async def _fetch_ocsp(self, key: OcspKey, target: OcspTarget) -> None:
        nonce = os.urandom(16) if self.ocsp_nonce else None
        request = ocsp.build_ocsp_request(target.leaf, target.issuer, nonce)
        body = request.public_bytes(serialization.Encoding.DER)
        errors = []
        for url in target.urls:
            try:
                data = await download(
                    url, body=body, max_bytes=self.max_ocsp_bytes, timeout=self.timeout
                )
                answer = ocsp.verify_ocsp_response(data, target.leaf, target.issuer, nonce=nonce)
            except (FetchError, ValueError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            self._state.install_ocsp(key, answer)
            return
        raise FetchError("; ".join(errors))

    # --- explicit and background work -------------------------------------------------

    def reload_files(self, *, force: bool = False) -> bool:
        """Re-read the CRL files if they changed (mtime or size; always with ``force``).
        Atomic: on any error the previous set is kept and the error logged.  Returns whether
        the set of CRLs changed (and :attr:`generation` was increased)."""
        return self._state.reload_files(force=force)

    def _crl_sources(self) -> list[str]:
        state = self._state
        return list(dict.fromkeys([*self.crl_urls, *state.url_crls, *state.url_issuers]))

    async def refresh(self) -> None:
        """Re-read changed CRL files and fetch every known CRL URL and OCSP answer now, waiting
        for all of them (backoff ignored).  For startup and tests; failures are logged."""
        await asyncio.to_thread(self.reload_files)
        jobs = []
        if self.crl_policy is not RevocationPolicy.OFF:
            jobs += [
                self._scheduler.run_now(("crl", url), self._crl_job(url))
                for url in self._crl_sources()
            ]
        if self.ocsp_policy is not RevocationPolicy.OFF:
            for key, target in list(self._state.ocsp_targets.items()):
                jobs.append(self._scheduler.run_now(("ocsp", key), self._ocsp_job(key, target)))
        await asyncio.gather(*jobs)

    async def prefetch(self, chain: Sequence[x509.Certificate]) -> None:
        """Fetch what validating ``chain`` (leaf first, each certificate followed by its
        issuer, e.g. ``VerifiedChain.chain``) needs, and wait for it."""
        path = list(chain)
        if len(path) < 2:
            raise ValueError("prefetch needs the leaf and at least its issuer")
        state, jobs = self._state, []
        if self.crl_policy is not RevocationPolicy.OFF and self.use_distribution_points:
            checked = path[:-1] if self.crl_scope == "chain" else path[:1]
            for index, certificate in enumerate(checked):
                for url in crl_distribution_urls(certificate):
                    with state.lock:
                        state.url_issuers.setdefault(url, path[index + 1])
                    jobs.append(self._scheduler.run_now(("crl", url), self._crl_job(url)))
        if self.ocsp_policy is not RevocationPolicy.OFF:
            leaf, issuer = path[0], path[1]
            urls = (self.ocsp_url,) if self.ocsp_url else ocsp.ocsp_responder_urls(leaf)
            if urls:
                key = (certificate_sha256(issuer), leaf.serial_number)
                target = OcspTarget(leaf, issuer, urls)
                with state.lock:
                    state.ocsp_targets[key] = target
                jobs.append(self._scheduler.run_now(("ocsp", key), self._ocsp_job(key, target)))
        await asyncio.gather(*jobs)

    async def start(self) -> None:
        """Start the background loop (CRL file polling, due refreshes, configured
        ``crl_urls``) on the running event loop.  Idempotent."""
        loop = asyncio.get_running_loop()
        if self._runner is not None and not self._runner.done():
            return
        self._scheduler.loop = loop
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
            for url in self._crl_sources():
                if self._crl_due(url):
                    self._scheduler.schedule(("crl", url), self._crl_job(url))
        if self.ocsp_policy is not RevocationPolicy.OFF:
            for key, target in list(self._state.ocsp_targets.items()):
                if target.leaf.not_valid_after_utc < now:
                    self._state.forget_ocsp(key)
                    continue
                self._want_ocsp(key, target, self._state.ocsp.get(key))

    async def aclose(self) -> None:
        """Stop the background loop and cancel fetches in flight."""
        runner, self._runner = self._runner, None
        tasks = [runner] if runner is not None else []
        if runner is not None:
            runner.cancel()
        tasks += self._scheduler.cancel()
        current = asyncio.get_running_loop()
        mine = [task for task in tasks if task.get_loop() is current]
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)
