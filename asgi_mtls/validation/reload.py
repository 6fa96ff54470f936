"""Trust hot reload: a validator's current trust, re-read from its files on demand or by a
background task, swapped whole.

:class:`TrustKeeper` holds one prepared snapshot (a :class:`~asgi_mtls.validation.trust.TrustState`
plus what the validator derives from it once, see ``prepare``) behind one reference.
:meth:`TrustKeeper.reload` builds a complete new snapshot from the configured sources and
replaces that reference, so a validation, which reads it once, sees the old material or the
new, never a mix.  A source that fails to load (unreadable, no certificate, an invalid pin,
a public CA bundle that is not allowed) leaves the old snapshot in place, logged once per
change of the files.  Every change increments :attr:`TrustKeeper.generation`.

The revocation checker's CRL files reload with the trust files, and its background loop
starts and stops with the trust-file polling, so that a validator is started and stopped
as one thing.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from asgi_mtls.log import get_logger
from asgi_mtls.validation.notices import (
    Notices,
    TrustReloaded,
    TrustReloadFailed,
    ValidationNotice,
)
from asgi_mtls.validation.public_roots import check_public_roots
from asgi_mtls.validation.revocation import RevocationChecker
from asgi_mtls.validation.trust import TrustSource, TrustState

__all__ = ["TrustKeeper"]

logger = get_logger()

Snapshot = TypeVar("Snapshot")


class TrustKeeper(Generic[Snapshot]):
    """The current trust snapshot of one validator and the reloading of its files.

    :param source: the configured trust inputs (files are re-read on reload).
    :param prepare: turns a loaded :class:`TrustState` into the snapshot the validator reads
        (it may precompute per-snapshot facts; it runs once per snapshot, never per request).
    :param allow_public_roots, max_self_signed_roots: the public CA bundle screen
        (:func:`~asgi_mtls.validation.public_roots.check_public_roots`), applied at
        construction (a ``ValueError``) and on every reload (the old set is kept).
    :param revocation: whose CRL files reload with the trust files, and whose background
        loop :meth:`start` and :meth:`aclose` drive.
    :param reload_interval: seconds between checks of the files by :meth:`start`'s task.
    """

    def __init__(
        self,
        source: TrustSource,
        prepare: Callable[[TrustState], Snapshot],
        *,
        allow_public_roots: bool,
        max_self_signed_roots: int,
        revocation: RevocationChecker | None = None,
        reload_interval: float | None = None,
    ) -> None:
        if reload_interval is not None and reload_interval <= 0:
            raise ValueError("reload_interval must be > 0")
        self.source = source
        self.revocation = revocation
        self.reload_interval = reload_interval
        self._screen = functools.partial(
            check_public_roots,
            allow_public_roots=allow_public_roots,
            max_self_signed_roots=max_self_signed_roots,
        )
        self._public_roots_warned = False
        self._prepare = prepare
        self._stamps = source.stamps()
        self._state = self._load()
        #: The snapshot validations read: one reference, replaced whole.
        self.current: Snapshot = prepare(self._state)
        #: Increases with every trust reload that changed the material.
        self.generation = 0
        self._lock = threading.Lock()
        self._watcher: asyncio.Task[None] | None = None
        #: Told of every reload that changed the material or failed (issue #13).
        self.notices: Notices[ValidationNotice] = Notices()

    @property
    def state(self) -> TrustState:
        """The trust material of :attr:`current`."""
        return self._state

    def _load(self) -> TrustState:
        """Read the trust material and screen it: ``ValueError`` for a set that looks like a
        public bundle (unless allowed)."""
        state = self.source.load()
        warning = self._screen(state.roots)
        if warning is not None and not self._public_roots_warned:
            self._public_roots_warned = True
            logger.warning("%s", warning)
        return state

    def reload(self) -> bool:
        """Re-read the trust files and the revocation checker's CRL files; swap in what
        changed.  Returns whether anything changed (see the module docstring)."""
        notice: ValidationNotice | None = None
        with self._lock:
            stamps = self.source.stamps()
            try:
                state = self._load()
            except Exception as exc:  # keep serving with the old set, whatever went wrong
                self._stamps = stamps  # try again when the files change again
                logger.error("trust material not reloaded, keeping the previous set: %r", exc)
                notice = TrustReloadFailed(repr(exc))
                state = None
            else:
                self._stamps = stamps
            changed = False
            if state is not None and state.digest != self._state.digest:
                self.current = self._prepare(state)
                self._state = state
                self.generation += 1
                changed = True
                logger.info(
                    "trust material reloaded: %d roots, %d intermediates",
                    len(state.roots),
                    len(state.intermediates),
                )
                notice = TrustReloaded(len(state.roots), len(state.intermediates))
        if notice is not None:
            self.notices(notice)
        if self.revocation is not None and self.revocation.reload_files(force=True):
            changed = True
        return changed

    def reload_if_changed(self) -> bool:
        """:meth:`reload` when a trust or CRL file's mtime or size changed since last read."""
        if self.source.stamps() != self._stamps:
            return self.reload()
        if self.revocation is not None:
            return self.revocation.reload_files()
        return False

    async def start(self, poll: Callable[[], bool] | None = None) -> None:
        """Start polling the files every ``reload_interval`` seconds (when set) and the
        revocation checker's loop, on the running event loop.  Idempotent.

        ``poll``: what each tick runs (in a worker thread); :meth:`reload_if_changed` by
        default (the validator passes its own, so that it is the one place to hook)."""
        if self.reload_interval is not None and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(self.reload_interval, poll or self.reload_if_changed)
            )
        if self.revocation is not None:
            await self.revocation.start()

    async def _watch(self, interval: float, poll: Callable[[], bool]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(poll)
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
