"""Background fetches of revocation data: at most one in flight per source, none while a
failed source backs off, never on the request path.

:meth:`FetchScheduler.schedule` starts a job as a task on the running event loop, or, called
from another thread (a validation in a worker thread), hands it to the loop the checker was
started on; with neither, it starts nothing (the next validation on a loop will).  After a
failure the source is not tried again for ``retry_min`` seconds, doubling up to
``retry_max``, so a dead endpoint costs nothing per request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

from asgi_mtls.log import get_logger
from asgi_mtls.validation.notices import Notices, RevocationFetchFailed, ValidationNotice

__all__ = ["FetchScheduler", "Job"]

logger = get_logger()

#: A fetch: a coroutine factory, called once per attempt.
Job = Callable[[], Coroutine[Any, Any, None]]
Task = asyncio.Task[None] | concurrent.futures.Future[None]


@dataclass(slots=True)
class _FetchState:
    failures: int = 0
    retry_at: float = 0.0  # time.monotonic()
    last_error: str = ""
    task: Task | None = None


def _in_flight(task: Task | None) -> bool:
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


class FetchScheduler:
    """Starts fetch jobs in the background, one per key at a time, with backoff."""

    def __init__(self, *, retry_min: float, retry_max: float) -> None:
        self.retry_min = retry_min
        self.retry_max = max(retry_max, retry_min)
        #: Fetches started (diagnostics and tests).
        self.attempts = 0
        #: The loop jobs are handed to from other threads (set by the checker's start()).
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.RLock()  # a task factory may run a job's start eagerly
        self._fetches: dict[Hashable, _FetchState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Told of every failed fetch (the checker shares its own).
        self.notices: Notices[ValidationNotice] = Notices()

    @property
    def pending(self) -> int:
        """Fetches in flight right now."""
        with self._lock:
            return sum(1 for state in self._fetches.values() if _in_flight(state.task))

    def last_error(self, key: Hashable) -> str | None:
        """The error of ``key``'s last attempt (``""`` after a success), ``None`` when it was
        never scheduled."""
        state = self._fetches.get(key)
        return None if state is None else state.last_error

    def task(self, key: Hashable) -> Task | None:
        state = self._fetches.get(key)
        return None if state is None else state.task

    def schedule(self, key: Hashable, job: Job, *, force: bool = False) -> Task | None:
        """Start ``job()`` in the background unless it is in flight or (without ``force``)
        backing off.  Returns the task (``None`` when nothing was started or no event loop
        is available)."""
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
            task: Task
            if running is not None:
                if self.loop is None or self.loop.is_closed():
                    self.loop = running
                local = running.create_task(self._guarded(key, job))
                self._tasks.add(local)
                local.add_done_callback(self._tasks.discard)
                task = local
            elif self.loop is not None and self.loop.is_running():
                task = asyncio.run_coroutine_threadsafe(self._guarded(key, job), self.loop)
            else:
                return None
            state.task = task
            self.attempts += 1
            return task

    async def _guarded(self, key: Hashable, job: Job) -> None:
        try:
            await job()
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
            self.notices(RevocationFetchFailed(_describe(key), state.last_error, delay))
        else:
            with self._lock:
                state = self._fetches.setdefault(key, _FetchState())
                state.failures = 0
                state.retry_at = 0.0
                state.last_error = ""

    async def run_now(self, key: Hashable, job: Job) -> None:
        """Run ``job`` now (backoff ignored; joining the one in flight) and wait for it."""
        task = self.schedule(key, job, force=True) or self.task(key)
        if isinstance(task, asyncio.Task) and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([task])
        elif isinstance(task, concurrent.futures.Future):
            await asyncio.wrap_future(task)

    def cancel(self) -> list[asyncio.Task[None]]:
        """Cancel every fetch in flight; returns the asyncio tasks (for the caller to await
        those of its own loop)."""
        with self._lock:
            tasks = list(self._tasks)
            for state in self._fetches.values():
                if isinstance(state.task, concurrent.futures.Future):
                    state.task.cancel()
        for task in tasks:
            task.cancel()
        return tasks
