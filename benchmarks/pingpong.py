"""Worker-side timing: warm-up, adaptive repetitions, one record per size.

Every measurement follows the same recipe (after mpi4py's ``bench pingpong``
and the OSU latency test):

1. ``start(size, reps)`` tells the peer what comes (raw echo servers need the
   size; self-describing links ignore it);
2. a warm-up batch, discarded, estimates the cost of one iteration (median);
3. the measured batch gets as many repetitions as fit in ``Budget.seconds``
   (clamped to ``[min_reps, max_reps]``), so big messages get fewer loops;
4. every iteration is timed on its own (``perf_counter_ns``); the record keeps
   the summary (min/median/mean/p99/stdev, in microseconds).

An iteration is a round trip (ping-pong) for every transport; for memcpy it is
one copy (``one_way: true``). Bandwidth is derived by the driver:
``size / (RTT / 2)`` for round trips, ``size / t`` for one-way records.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FULL",
    "QUICK",
    "QUICK_SIZES",
    "SIZES",
    "Budget",
    "emit",
    "measure_async",
    "measure_sync",
    "run_loop",
    "summarize",
]

#: 8 B, then powers of 4 from 16 B to 64 MiB.
SIZES: list[int] = [8] + [4**k for k in range(2, 14)]
#: --quick: the target points (8 B, 16 MiB) and two in between.
QUICK_SIZES: list[int] = [8, 4096, 1 << 20, 16 << 20]


@dataclass(frozen=True)
class Budget:
    """How long to measure one size: ``seconds`` of timed iterations after warm-up."""

    seconds: float
    min_reps: int
    max_reps: int
    warmup: int
    warmup_large: int  # for sizes >= 1 MiB

    def warmup_for(self, size: int) -> int:
        return self.warmup_large if size >= 1 << 20 else self.warmup

    def reps_for(self, seconds_per_iter: float) -> int:
        n = self.seconds / max(seconds_per_iter, 1e-9)
        return max(self.min_reps, min(self.max_reps, int(n)))

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Budget:
        return cls(**d)


FULL = Budget(seconds=0.4, min_reps=10, max_reps=5000, warmup=200, warmup_large=4)
QUICK = Budget(seconds=0.03, min_reps=3, max_reps=300, warmup=20, warmup_large=2)


def summarize(samples_ns: list[int]) -> dict[str, float]:
    """min/median/mean/p99/stdev of the samples, in microseconds."""
    us = sorted(s / 1e3 for s in samples_ns)
    p99 = us[min(len(us) - 1, math.ceil(0.99 * len(us)) - 1)]
    return {
        "min": us[0],
        "median": statistics.median(us),
        "mean": statistics.fmean(us),
        "p99": p99,
        "stdev": statistics.stdev(us) if len(us) > 1 else 0.0,
        "n": len(us),
    }


def _record(size: int, warm: int, samples: list[int], one_way: bool) -> dict[str, Any]:
    return {
        "size": size,
        "repetitions": len(samples),
        "warmup": warm,
        "one_way": one_way,
        "samples_us": summarize(samples),
    }


def measure_sync(
    sizes: list[int],
    budget: Budget,
    start: Callable[[int, int], None],
    iteration: Callable[[int], None],
    *,
    one_way: bool = False,
) -> list[dict[str, Any]]:
    """Time ``iteration(size)`` per size (blocking code); see the module doc."""
    out = []
    for size in sizes:
        warm = budget.warmup_for(size)
        start(size, warm)
        warm_times = []
        for _ in range(warm):
            t0 = time.perf_counter()
            iteration(size)
            warm_times.append(time.perf_counter() - t0)
        reps = budget.reps_for(statistics.median(warm_times))
        start(size, reps)
        samples = []
        for _ in range(reps):
            t = time.perf_counter_ns()
            iteration(size)
            samples.append(time.perf_counter_ns() - t)
        out.append(_record(size, warm, samples, one_way))
    return out


async def measure_async(
    sizes: list[int],
    budget: Budget,
    start: Callable[[int, int], Awaitable[None]],
    iteration: Callable[[int], Awaitable[None]],
    pause: Callable[[], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """Time ``await iteration(size)`` per size (asyncio code); see the module doc.
    ``pause()``, when given, is awaited before every iteration, untimed (e.g. an idle
    gap, so that every timed round trip starts from peers that sleep)."""
    out = []
    for size in sizes:
        warm = budget.warmup_for(size)
        await start(size, warm)
        warm_times = []
        for _ in range(warm):
            if pause is not None:
                await pause()
            t0 = time.perf_counter()
            await iteration(size)
            warm_times.append(time.perf_counter() - t0)
        reps = budget.reps_for(statistics.median(warm_times))
        await start(size, reps)
        samples = []
        for _ in range(reps):
            if pause is not None:
                await pause()
            t = time.perf_counter_ns()
            await iteration(size)
            samples.append(time.perf_counter_ns() - t)
        out.append(_record(size, warm, samples, False))
    return out


def run_loop(coro: Awaitable[Any], loop: str) -> Any:
    """Run ``coro`` on a fresh ``asyncio`` or ``uvloop`` event loop."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)  # type: ignore[arg-type]
    return asyncio.run(coro)  # type: ignore[arg-type]


def emit(**fields: Any) -> None:
    """Print one JSON line on stdout (the only way a worker reports)."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()
