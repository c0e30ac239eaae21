"""The thread hand-off of dispatching actors: a plain ``receive`` run in an executor.

Internal. :class:`~actors.core._dispatch.Dispatcher` submits
:func:`run_in_thread` to the actor's executor; the worker thread runs
``receive`` and posts the outcome to the loop's :class:`Completions`, which
hands it to ``dispatcher.finished`` on the loop thread (that frees the
message's slot and replies). Outcomes that arrive together cost one wake-up
of the loop. Only :meth:`Completions.post` (and :func:`run_in_thread`) run in
worker threads; everything else runs on the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Completions", "Finishing", "loop_completions", "run_in_thread"]


class Finishing(Protocol):
    """What a thread's outcome is handed to (a :class:`~actors.core._dispatch.Dispatcher`)."""

    name: str

    def finished(
        self, message: Any, reply: Any, result: Any, error: BaseException | None
    ) -> None: ...


def run_in_thread(
    completions: Completions,
    dispatcher: Finishing,
    receive: Callable[[Any], Any],
    message: Any,
    reply: Any,
) -> None:
    """Runs in a worker thread: process one message and hand the outcome to the loop."""
    try:
        result, error = receive(message), None
    except BaseException as exc:  # handed to the loop, which replies with it
        result, error = None, exc
    completions.post(dispatcher, message, reply, result, error)


_Outcome = tuple[Finishing, Any, Any, Any, BaseException | None]


class Completions:
    """Outcomes of thread calls on their way to the loop, coalesced.

    A worker thread appends an outcome and wakes the loop only when no wake-up
    is pending yet, so outcomes that arrive together cost one
    ``call_soon_threadsafe`` instead of one each. They are handed on in
    arrival order.
    """

    __slots__ = ("_loop", "_outcomes", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # weak: this object is the loop's value in _per_loop
        self._outcomes: deque[_Outcome] = deque()
        self._scheduled = False

    def post(
        self,
        dispatcher: Finishing,
        message: Any,
        reply: Any,
        result: Any,
        error: BaseException | None,
    ) -> None:
        """Any thread: queue an outcome for ``dispatcher.finished`` on the loop."""
        self._outcomes.append((dispatcher, message, reply, result, error))
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop()
            if loop is None:  # the loop is gone
                return
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False  # first: an outcome appended from now on schedules a drain
        outcomes = self._outcomes
        while outcomes:
            dispatcher, message, reply, result, error = outcomes.popleft()
            try:
                dispatcher.finished(message, reply, result, error)
            except Exception as exc:  # one failing callback must not strand the others
                asyncio.get_running_loop().call_exception_handler(
                    {
                        "message": f"reply callback of actor {dispatcher.name!r} failed",
                        "exception": exc,
                    }
                )


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Completions] = (
    weakref.WeakKeyDictionary()
)


def loop_completions() -> Completions:
    """The running loop's completion queue (loop thread only)."""
    loop = asyncio.get_running_loop()
    completions = _per_loop.get(loop)
    if completions is None:
        completions = _per_loop[loop] = Completions(loop)
    return completions
