"""A bounded cache of verification outcomes.

The hot path of the middleware is one lookup here: a repeat client costs a dictionary probe,
not a signature check.  Entries carry an absolute expiry (wall-clock seconds) that the caller
sets no later than the certificate chain's earliest notAfter; an expired entry is never
returned.  Least recently used entries are evicted first when the cache is full.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["VerificationCache"]

V = TypeVar("V")


class VerificationCache(Generic[V]):
    """LRU mapping ``key -> value`` where each entry has its own expiry time."""

    def __init__(self, maxsize: int = 4096, *, clock: Callable[[], float] = time.time) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self.maxsize = maxsize
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        value, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: V, expires_at: float) -> None:
        if self.maxsize == 0 or expires_at <= self._clock():
            return
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
