"""A cache of verification outcomes, bounded in entries *and* bytes.

The hot path of the middleware is one lookup here: a repeat client costs a dictionary probe,
not a signature check.  Rules (issue #8, items 4 and 5):

- what is stored is an *outcome* (an identity, a :class:`~asgi_mtls.errors.Rejection`
  value, or "no certificate"), never a live exception: an exception carries a traceback,
  and the traceback the frames, scope and headers of the request that raised it;
- every entry is charged the size of its key (the raw header or extension values, which a
  trusted proxy may forward at up to tens of KiB each) plus the size the caller declares for
  its value; the cache evicts least-recently-used entries until both the entry and the byte
  budget hold;
- accepted outcomes and refusals live in separate budgets (refusals get
  :data:`REFUSAL_SHARE` of each), so a flood of junk certificates, however varied, can only
  evict other junk, never the clients that are known to be good;
- eviction is first-in, first-out: a hit costs one dictionary probe and one comparison with
  the clock, nothing is reordered (issue #10); a client evicted under churn is validated
  again on its next request;
- each entry has an absolute expiry that the caller sets no later than the certificate
  chain's earliest notAfter (or the revocation data's nextUpdate); an expired entry is never
  returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import Final, Generic, TypeVar

__all__ = ["REFUSAL_SHARE", "OutcomeCache", "key_size"]

V = TypeVar("V")

#: The part of the entry and byte budgets refusals may use.
REFUSAL_SHARE: Final = 0.125
#: What an entry costs beyond its key and value: the dict slot, the tuple, the key tuple.
ENTRY_OVERHEAD: Final = 200


def key_size(key: Hashable) -> int:
    """The bytes a key holds: the characters of the strings in it (tuples walked)."""
    if isinstance(key, str | bytes):
        return len(key)
    if isinstance(key, tuple):
        return sum(key_size(part) for part in key)
    return 8


class _Segment(Generic[V]):
    """One LRU mapping with its own entry and byte budget."""

    __slots__ = ("bytes", "entries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: dict[Hashable, tuple[V, float, int]] = {}
        self.bytes = 0

    def put(self, key: Hashable, value: V, expires_at: float, size: int) -> None:
        if size > self.max_bytes or self.max_entries == 0:
            return  # larger than the whole budget: not worth evicting everything for
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= old[2]
        self.entries[key] = (value, expires_at, size)
        self.bytes += size
        entries = self.entries
        while len(entries) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(entries))  # dicts keep insertion order: first in, first out
            self.bytes -= entries.pop(oldest)[2]

    def discard(self, key: Hashable) -> None:
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= old[2]

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0


class OutcomeCache(Generic[V]):
    """``key -> outcome`` with per-entry expiry, bounded in entries and bytes.

    :param max_entries: entries in all (refusals may hold :data:`REFUSAL_SHARE` of them).
    :param max_bytes: bytes in all, keys and declared value sizes together.
    """

    def __init__(
        self,
        max_entries: int = 4096,
        max_bytes: int = 32 * 1024 * 1024,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("cache sizes must not be negative")
        refusals = int(max_entries * REFUSAL_SHARE), int(max_bytes * REFUSAL_SHARE)
        self._accepted: _Segment[V] = _Segment(max_entries - refusals[0], max_bytes - refusals[1])
        self._refused: _Segment[V] = _Segment(*refusals)
        self._clock = clock

    @property
    def accepted(self) -> Mapping[Hashable, tuple[V, float, int]]:
        """The accepted entries, ``key -> (outcome, expires_at, size)``, for a caller's own
        one-probe hit path (:mod:`asgi_mtls.resolver`); read-only.  The same object for the
        cache's lifetime."""
        return self._accepted.entries

    def __len__(self) -> int:
        return len(self._accepted.entries) + len(self._refused.entries)

    @property
    def bytes(self) -> int:
        """The bytes charged to the entries held now."""
        return self._accepted.bytes + self._refused.bytes

    def get(self, key: Hashable) -> V | None:
        entry = self._accepted.entries.get(key)
        segment = self._accepted
        if entry is None:
            entry = self._refused.entries.get(key)
            if entry is None:
                return None
            segment = self._refused
        if self._clock() >= entry[1]:
            segment.discard(key)
            return None
        return entry[0]

    def put(self, key: Hashable, value: V, expires_at: float, *, size: int, refusal: bool) -> None:
        """Store ``value`` until ``expires_at``; ``size`` is what it holds beyond its key."""
        if expires_at <= self._clock():
            return
        charged = key_size(key) + size + ENTRY_OVERHEAD
        (self._refused if refusal else self._accepted).put(key, value, expires_at, charged)

    def clear(self) -> None:
        self._accepted.clear()
        self._refused.clear()
