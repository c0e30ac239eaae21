"""The receive-allocation cache never hands out memory that is still referenced."""

from __future__ import annotations

import gc

import numpy as np

from actors.transports.stream._recvcache import RecvCache


def test_reused_only_after_every_reference_is_gone() -> None:
    cache = RecvCache(max_bytes=64 << 20)
    first = cache.get(3 << 20)
    derived = np.frombuffer(first, np.float64)[10:]  # keeps the allocation alive
    del first
    gc.collect()
    second = cache.get(3 << 20)
    assert not np.shares_memory(derived, np.frombuffer(second, np.uint8))
    address = derived.__array_interface__["data"][0] - 80
    del derived
    gc.collect()
    third = cache.get(4 << 20)  # same size class (4 MiB)
    assert np.frombuffer(third, np.uint8).__array_interface__["data"][0] == address
    assert len(third) == 4 << 20 and not third.readonly


def test_idle_bytes_are_bounded() -> None:
    cache = RecvCache(max_bytes=2 << 20)
    views = [cache.get(2 << 20) for _ in range(3)]
    del views
    gc.collect()
    assert cache._idle == 2 << 20
    cache.clear()
    assert cache._idle == 0
