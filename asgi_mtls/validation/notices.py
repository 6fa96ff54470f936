"""What the validator's background work tells listeners: trust reloads and revocation updates.

Trust files are re-read and CRLs and OCSP answers fetched off the request path
(:mod:`~asgi_mtls.validation.reload`, :mod:`~asgi_mtls.validation.revocation`), so no request
sees them happen; an operator needs to (issue #13: "trust reloaded, revocation state refreshed
or failed").  Each change is a small frozen value handed to the callables registered with
:meth:`CertificateValidator.observe <asgi_mtls.validation.CertificateValidator.observe>` (the
middleware registers its listeners there).  The validation modules keep logging these changes
themselves, as they do without any middleware; the values are for metrics and alerts.

This module sits at the bottom of the validation package and knows nothing of identities or
requests, so that the import order of the pipeline holds (``asgi_mtls.events`` re-exports
these types).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

from asgi_mtls.log import get_logger

__all__ = [
    "Notices",
    "RevocationFetchFailed",
    "RevocationUpdated",
    "TrustReloadFailed",
    "TrustReloaded",
    "ValidationNotice",
]

#: Where a failing listener is reported (never through the listeners themselves).
listener_logger = get_logger("listeners")

#: A failing listener is reported with its traceback once, then at most this often (seconds).
FAILURE_REPORT_INTERVAL: Final = 60.0


class ValidationNotice:
    """Base of the values the validation layer reports (see the module docstring)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TrustReloaded(ValidationNotice):
    """The trust files changed and the new material is in use (earlier outcomes dropped)."""

    roots: int
    intermediates: int


@dataclass(frozen=True, slots=True)
class TrustReloadFailed(ValidationNotice):
    """The trust files changed but could not be used: the previous material stays."""

    error: str


@dataclass(frozen=True, slots=True)
class RevocationUpdated(ValidationNotice):
    """Revocation data changed: a CRL fetched from ``source`` (``kind="crl"``), the CRL files
    re-read (``"crl_files"``), or an OCSP answer that changes a verdict (``"ocsp"``)."""

    kind: Literal["crl", "crl_files", "ocsp"]
    source: str


@dataclass(frozen=True, slots=True)
class RevocationFetchFailed(ValidationNotice):
    """A background CRL or OCSP fetch failed (or the CRL files could not be re-read); the
    data held so far stays in use, and the source is tried again after ``retry_in`` seconds
    (``0``: when the files change again)."""

    source: str
    error: str
    retry_in: float


N = TypeVar("N")


class Notices(Generic[N]):
    """A list of listeners, each called with every notice; a listener that raises is
    reported on the ``asgi_mtls.listeners`` logger (its traceback once, then a count at most
    once a minute) and never stops the others or the caller: a listener never changes a
    decision (issue #13).  Thread-safe: the validator notifies from worker threads."""

    __slots__ = ("_failures", "_lock", "listeners")

    def __init__(self, listeners: tuple[Callable[[N], object], ...] = ()) -> None:
        self.listeners = listeners
        self._lock = threading.Lock()
        self._failures: dict[int, tuple[int, float]] = {}

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def add(self, listener: Callable[[N], object]) -> None:
        """Call ``listener`` with every later notice too (once, however often added)."""
        with self._lock:
            if listener not in self.listeners:
                self.listeners = (*self.listeners, listener)

    def __call__(self, notice: N) -> None:
        self.call(self.listeners, notice)

    def call(self, listeners: tuple[Callable[[N], object], ...], notice: N) -> None:
        """Call ``listeners`` (some of this object's) with ``notice``, failures reported as
        any other of this object's."""
        for listener in listeners:
            try:
                listener(notice)
            except Exception:
                self._report(listener, notice)

    def _report(self, listener: Callable[[N], object], notice: N) -> None:
        now = time.monotonic()
        with self._lock:
            count, last = self._failures.get(id(listener), (0, -FAILURE_REPORT_INTERVAL))
            self._failures[id(listener)] = (count + 1, last)
            if count and now - last < FAILURE_REPORT_INTERVAL:
                return
            self._failures[id(listener)] = (count + 1, now)
        listener_logger.error(
            "event listener %r failed on %s (%d failures so far); the decision stands",
            listener,
            type(notice).__name__,
            count + 1,
            exc_info=count == 0,
        )
