"""The sender's copy into a segment: every byte in place, split or not, errors raised."""

from __future__ import annotations

import os

import numpy as np
import pytest

from actors.buffers import as_host_view
from actors.transports.stream import _copy
from actors.transports.stream._copy import PARALLEL_MIN, copy_into


@pytest.mark.parametrize(
    "size", [0, 1, 4095, PARALLEL_MIN - 1, PARALLEL_MIN, PARALLEL_MIN * 3 + 12345]
)
def test_every_byte_lands_in_place(size: int) -> None:
    src = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    dst = np.zeros(size, np.uint8)
    copy_into(dst, as_host_view(src))
    np.testing.assert_array_equal(dst, src)


def test_a_large_copy_uses_the_workers_when_several_cpus_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    calls: list[tuple[int, int]] = []
    real = _copy._copy

    def spy(dst: np.ndarray, src: memoryview, lo: int, hi: int) -> None:
        calls.append((lo, hi))
        real(dst, src, lo, hi)

    monkeypatch.setattr(_copy, "_copy", spy)
    size = PARALLEL_MIN + 3
    src = np.arange(size, dtype=np.uint64).astype(np.uint8)
    dst = np.zeros(size, np.uint8)
    copy_into(dst, as_host_view(src))
    np.testing.assert_array_equal(dst, src)
    assert len(calls) == 4
    assert sorted(calls)[0][0] == 0 and max(hi for _, hi in calls) == size
    assert all(lo % 4096 == 0 for lo, _ in calls)


def test_one_allowed_cpu_copies_in_the_caller_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(_copy, "_workers", lambda: pytest.fail("no worker for one CPU"))
    src = np.ones(PARALLEL_MIN, np.uint8)
    dst = np.zeros(PARALLEL_MIN, np.uint8)
    copy_into(dst, as_host_view(src))
    assert dst.all()


def test_a_worker_error_is_raised_after_every_piece_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    src = np.ones(PARALLEL_MIN // 2, np.uint8)  # too short: the worker's piece fails
    dst = np.zeros(PARALLEL_MIN, np.uint8)
    with pytest.raises(ValueError):
        copy_into(dst, as_host_view(src))
    assert dst[: PARALLEL_MIN // 2].all()  # the caller's piece was copied before the raise
