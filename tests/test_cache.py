"""The outcome cache: expiry, LRU, and budgets in entries and bytes (issue #8, item 5)."""

from __future__ import annotations

import pytest

from asgi_mtls.cache import ENTRY_OVERHEAD, OutcomeCache, key_size


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def put(cache, key, value, expires_at=5000.0, *, size=0, refusal=False):
    cache.put(key, value, expires_at, size=size, refusal=refusal)


def test_entries_expire_at_their_own_time():
    clock = Clock()
    cache: OutcomeCache[str] = OutcomeCache(10, clock=clock)
    put(cache, "short", "a", 1005.0)
    put(cache, "long", "b", 2000.0)
    assert cache.get("short") == "a"
    clock.now = 1005.0
    assert cache.get("short") is None  # expiry is exclusive
    assert cache.get("long") == "b"
    assert len(cache) == 1


def test_already_expired_values_are_not_stored():
    clock = Clock()
    cache: OutcomeCache[str] = OutcomeCache(10, clock=clock)
    put(cache, "k", "v", 999.0)
    assert len(cache) == 0 and cache.get("k") is None


def test_the_oldest_entry_is_evicted_first():
    cache: OutcomeCache[int] = OutcomeCache(3, clock=Clock())  # 3 accepted, 0 refusals
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        put(cache, key, value)
    assert cache.get("a") == 1  # a hit reorders nothing (one probe per hit)
    put(cache, "d", 4)
    assert cache.get("a") is None
    assert (cache.get("b"), cache.get("c"), cache.get("d")) == (2, 3, 4)
    put(cache, "b", 5)  # storing a key again makes it the newest
    put(cache, "e", 6)
    assert cache.get("c") is None and cache.get("b") == 5


def test_size_zero_disables_and_clear_empties():
    cache: OutcomeCache[int] = OutcomeCache(0, clock=Clock())
    put(cache, "a", 1)
    assert cache.get("a") is None
    cache = OutcomeCache(4, clock=Clock())
    put(cache, "a", 1)
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0
    with pytest.raises(ValueError):
        OutcomeCache(-1)


def test_keys_are_charged_their_bytes():
    cache: OutcomeCache[str] = OutcomeCache(1000, 100_000, clock=Clock())
    big = ("nginx", ("1", "0", "0", "x" * 60_000))
    assert key_size(big) == 60_008
    put(cache, big, "v", size=500)
    assert cache.bytes == 60_008 + 500 + ENTRY_OVERHEAD
    put(cache, ("nginx", ("1", "0", "0", "y" * 60_000)), "w", size=500)
    assert len(cache) == 1 and cache.bytes <= 87_500  # the first was evicted for the bytes


def test_an_entry_larger_than_the_budget_is_not_kept():
    cache: OutcomeCache[str] = OutcomeCache(1000, 10_000, clock=Clock())
    put(cache, "small", "v")
    put(cache, "x" * 20_000, "huge")
    assert cache.get("small") == "v" and len(cache) == 1


def test_a_flood_of_refusals_never_evicts_accepted_clients():
    cache: OutcomeCache[str] = OutcomeCache(800, 1_000_000, clock=Clock())
    for client in range(500):
        put(cache, f"client-{client}", "identity", size=4000)
    kept = [client for client in range(500) if cache.get(f"client-{client}") == "identity"]
    assert len(kept) > 150  # the byte budget, not the entry budget, bounds them
    for junk in range(20_000):
        put(cache, f"junk-{junk}-" + "z" * 30_000, "refused", refusal=True)
    assert [client for client in range(500) if cache.get(f"client-{client}")] == kept
    assert cache.bytes <= 1_000_000
    # refusals are remembered too, within their own share
    assert cache.get("junk-19999-" + "z" * 30_000) == "refused"
