"""One timer per link for the deadlines of its pending asks (actors.core._deadlines)."""

from __future__ import annotations

import asyncio

from actors.core._deadlines import Deadlines


class Expired:
    """The pending table of a link and the expiries it saw, in order."""

    def __init__(self) -> None:
        self.pending: dict[int, str] = {}
        self.expired: list[tuple[int, float]] = []
        self.all_done = asyncio.Event()
        self.some_done = asyncio.Event()

    def expire(self, corr: int, timeout: float) -> None:
        self.expired.append((corr, timeout))
        del self.pending[corr]
        self.some_done.set()
        if not self.pending:
            self.all_done.set()


def _watched() -> tuple[asyncio.AbstractEventLoop, Expired, Deadlines]:
    """The running loop, a link's pending table, and its deadlines."""
    seen = Expired()
    return asyncio.get_running_loop(), seen, Deadlines(seen.pending, seen.expire)


async def test_pending_asks_expire_in_deadline_order_once_each() -> None:
    loop, seen, deadlines = _watched()
    for corr, timeout in ((1, 0.06), (2, 0.02), (3, 0.04), (4, 0.03)):
        seen.pending[corr] = "ask"
        deadlines.add(loop, corr, timeout)
    del seen.pending[4]  # answered before its deadline: never expired
    start = loop.time()
    async with asyncio.timeout(5):
        await seen.all_done.wait()
    assert seen.expired == [(2, 0.02), (3, 0.04), (1, 0.06)]
    assert loop.time() - start >= 0.05
    await asyncio.sleep(0.05)
    assert len(seen.expired) == 3


async def test_an_earlier_deadline_rearms_the_timer() -> None:
    loop, seen, deadlines = _watched()
    seen.pending[1] = seen.pending[2] = "ask"
    deadlines.add(loop, 1, 30.0)
    deadlines.add(loop, 2, 0.01)
    async with asyncio.timeout(5):
        await seen.some_done.wait()
    assert seen.expired == [(2, 0.01)] and 1 in seen.pending
    deadlines.clear()


async def test_entries_of_answered_asks_do_not_pile_up() -> None:
    loop, seen, deadlines = _watched()
    seen.pending[0] = "ask that stays"
    deadlines.add(loop, 0, 60.0)
    for corr in range(1, 100_001):  # one ask after another, each answered at once
        seen.pending[corr] = "ask"
        deadlines.add(loop, corr, 60.0)
        del seen.pending[corr]
        assert len(deadlines) <= 2 * (len(seen.pending) + 1) + 65  # the pending at the add
    deadlines.clear()
    assert len(deadlines) == 0 and not seen.expired


async def test_clear_cancels_every_expiry() -> None:
    loop, seen, deadlines = _watched()
    seen.pending[1] = "ask"
    deadlines.add(loop, 1, 0.01)
    deadlines.clear()
    await asyncio.sleep(0.05)
    assert not seen.expired
