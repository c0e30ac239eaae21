"""The deadlines of one link's pending asks, behind one timer of the event loop.

Internal. A remote ask with a timeout used to enter ``asyncio.timeout``: one
timer per ask in the loop's heap, scheduled and cancelled again for nearly
every ask (1,000 outstanding asks between two processes: ~9% of their rate,
2026-12-07). :class:`Deadlines` keeps the asks' deadlines in a heap of its own
and arms a single loop timer for the earliest one; when it fires, every ask
past its deadline that is still pending is expired (the caller's ``expire``),
and the timer is armed again for the next. Entries of asks that ended stay in
the heap until their deadline passes or the heap is compacted (when it holds
more than twice the pending asks), so the heap stays bounded by the pending
asks, not by the asks made.

Loop rules: one instance per link, used from its event loop's thread only.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Collection

__all__ = ["Deadlines"]

#: Heap entries tolerated beyond twice the pending asks before a compaction.
_SLACK = 64
#: A deadline this close counts as passed when the timer fires: uvloop's clock
#: moves in milliseconds, and a timer may fire before ``loop.time()`` reaches it.
_EARLY = 1e-3


class Deadlines:
    """Expires pending asks at their deadlines with one loop timer.

    ``pending`` answers whether a correlation id is still pending (the
    link's table of pending asks); ``expire(corr, timeout)`` is called on the
    loop for each one whose deadline passed (up to 1 ms early), once.
    """

    __slots__ = ("_expire", "_heap", "_pending", "_timer")

    def __init__(self, pending: Collection[int], expire: Callable[[int, float], None]) -> None:
        self._pending = pending
        self._expire = expire
        self._heap: list[tuple[float, int, float]] = []  # (deadline, corr, timeout)
        self._timer: asyncio.TimerHandle | None = None

    def add(self, loop: asyncio.AbstractEventLoop, corr: int, timeout: float) -> None:
        """Expire ``corr`` ``timeout`` seconds from now unless it ended before."""
        deadline = loop.time() + timeout
        heap = self._heap
        if len(heap) > 2 * len(self._pending) + _SLACK:
            self._compact()
        heapq.heappush(heap, (deadline, corr, timeout))
        timer = self._timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._fire, loop)

    def __len__(self) -> int:
        """Deadlines held, those of ended asks not yet dropped included."""
        return len(self._heap)

    def clear(self) -> None:
        """Forget every deadline and cancel the timer (the link is gone)."""
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _compact(self) -> None:
        pending = self._pending
        self._heap = [entry for entry in self._heap if entry[1] in pending]
        heapq.heapify(self._heap)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        heap, pending = self._heap, self._pending
        now = loop.time() + _EARLY
        while heap and heap[0][0] <= now:
            _deadline, corr, timeout = heapq.heappop(heap)
            if corr in pending:
                self._expire(corr, timeout)
        while heap and heap[0][1] not in pending:
            heapq.heappop(heap)
        if heap:
            self._timer = loop.call_at(heap[0][0], self._fire, loop)
