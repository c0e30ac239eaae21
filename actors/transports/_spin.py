"""Adaptive, bounded polling before a receive waits in the event loop.

Waking a sleeping event loop (epoll wake-up, scheduler, loop iteration) costs
about as much as the rest of a small-message round trip together. When a
reply is due within microseconds - a request/reply exchange between two
processes - polling for it without yielding is faster. :class:`AdaptivePoll`
decides when that is worth it:

- only *shortly after activity*: the link's last message arrived at most
  :data:`SPIN_AFTER_SECONDS` ago (a quiet link never polls, so an idle process
  uses no CPU);
- for at most ``seconds`` per receive (the event loop is blocked that long at
  most);
- a poll that comes back empty (slow peer, or a peer on this very event loop
  that cannot run while we poll) makes the next 1, 2, 4 ... :data:`BACKOFF_MAX`
  receives skip polling, so a pattern that polling does not help costs next to
  nothing.

Loop rules: one instance per link, used from the link's event loop thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..settings import STREAM_SPIN_US

__all__ = ["BACKOFF_MAX", "SPIN_AFTER_SECONDS", "AdaptivePoll"]

#: A receive polls only when the link's previous message arrived at most this long ago.
SPIN_AFTER_SECONDS = 2e-3
#: Most receives skipped (without polling) after repeated empty polls.
BACKOFF_MAX = 64


class AdaptivePoll:
    """Decides whether and how long a receive polls; see the module docstring."""

    __slots__ = ("_backoff", "_skip", "last_activity", "seconds")

    def __init__(self, seconds: float | None = None) -> None:
        #: Longest poll per receive (0: never poll); default: the
        #: ``ACTORS_STREAM_SPIN_US`` setting, read now.
        self.seconds = STREAM_SPIN_US.get() * 1e-6 if seconds is None else seconds
        #: ``time.perf_counter()`` of the last message received.
        self.last_activity = 0.0
        self._skip = 0
        self._backoff = 1

    def activity(self) -> None:
        """Note that a message arrived now."""
        self.last_activity = time.perf_counter()

    def run(self, attempt: Callable[[], bool]) -> bool:
        """Call ``attempt()`` (non-blocking) until it returns True or the budget is spent.

        Returns True when an attempt succeeded, False when polling was skipped
        or came back empty (the caller then waits in the event loop).
        """
        if self.seconds <= 0:
            return False
        clock = time.perf_counter
        now = clock()
        if now - self.last_activity >= SPIN_AFTER_SECONDS:
            return False
        if self._skip:
            self._skip -= 1
            return False
        deadline = now + self.seconds
        while True:
            if attempt():
                self._backoff = 1
                return True
            if clock() >= deadline:
                break
        self._skip = self._backoff
        self._backoff = min(2 * self._backoff, BACKOFF_MAX)
        return False
