"""The mpi:// poller's backoff, driven by stand-in requests (no MPI library needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.transports.mpi._runtime import Poller


class _NeverDone:
    """A request that never completes; counts how often it was tested."""

    def __init__(self) -> None:
        self.tests = 0

    def Test(self, status: Any = None) -> bool:
        self.tests += 1
        return False


class _StandInMPI:
    Exception = RuntimeError

    def Status(self) -> None:
        return None


async def _tests_in(seconds: float) -> int:
    request = _NeverDone()
    waiting = Poller(_StandInMPI(), asyncio.get_running_loop()).submit(
        [request], None, passive=True
    )
    await asyncio.sleep(seconds)
    waiting.cancel()
    await asyncio.sleep(0.02)  # the poller forgets the cancelled wait
    return request.tests


@pytest.mark.parametrize("short_naps", ["0", "0.02"])
def test_a_passive_wait_naps_between_polls(
    monkeypatch: pytest.MonkeyPatch, short_naps: str
) -> None:
    """Naps of 1 ms, then doubling to ACTORS_MPI_MAX_SLEEP_S (10 ms): about 30 polls in
    0.2 s. Without short naps the naps grew from 0 and stayed 0: ~30,000 polls, a core."""
    monkeypatch.setenv("ACTORS_MPI_SHORT_NAPS_S", short_naps)
    tests = asyncio.run(_tests_in(0.2))
    assert 1 <= tests <= 60, tests
