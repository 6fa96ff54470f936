from __future__ import annotations

import pytest

from asgi_mtls.cache import VerificationCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_at_their_own_time():
    clock = Clock()
    cache: VerificationCache[str] = VerificationCache(10, clock=clock)
    cache.put("short", "a", 1005.0)
    cache.put("long", "b", 2000.0)
    assert cache.get("short") == "a"
    clock.now = 1005.0
    assert cache.get("short") is None  # expiry is exclusive
    assert cache.get("long") == "b"
    assert len(cache) == 1
    assert (cache.hits, cache.misses) == (2, 1)


def test_already_expired_values_are_not_stored():
    clock = Clock()
    cache: VerificationCache[str] = VerificationCache(10, clock=clock)
    cache.put("k", "v", 999.0)
    assert len(cache) == 0 and cache.get("k") is None


def test_least_recently_used_is_evicted():
    cache: VerificationCache[int] = VerificationCache(2, clock=Clock())
    cache.put("a", 1, 5000)
    cache.put("b", 2, 5000)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, 5000)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_size_zero_disables_and_clear_empties():
    cache: VerificationCache[int] = VerificationCache(0, clock=Clock())
    cache.put("a", 1, 5000)
    assert cache.get("a") is None
    cache = VerificationCache(4, clock=Clock())
    cache.put("a", 1, 5000)
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        VerificationCache(-1)
