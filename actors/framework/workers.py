"""Module actors: each module instance gets its work through a bounded mailbox.

A :class:`ModuleActor` owns one module instance and a bounded mailbox: one
call at a time for STREAM and LEGACY instances (calls never overlap),
several at once for a SHARED instance (up to the number of streams). A work
item is ``(callable, argument, on_done)``: sync callables run in the
process's thread pool, coroutine functions run as a task on the loop; the
time spent in the callable is measured where it runs (in the worker thread
for sync code) and added to the module's timing. ``on_done(result, error)``
is called on the loop thread.

The mailbox never needs to block the sender: the scheduler sends at most one
event call per stream plus one transition per lumi/run in flight, and the
capacity is sized for that when the actor is created; overflowing it is a
framework bug and raises FrameworkError.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any

from ..errors import FrameworkError
from .report import ModuleTiming

__all__ = ["ModuleActor", "format_error"]

OnDone = Callable[[Any, BaseException | None], None]
_Item = tuple[Callable[[Any], Any], Any, OnDone, bool]


def format_error(exc: BaseException) -> str:
    """The traceback of ``exc`` as text (what ModuleError carries)."""
    return "".join(traceback.format_exception(exc))


class ModuleActor:
    """Mailbox of one module instance; dispatches on completion (loop thread only).

    Up to ``workers`` calls run at once (1 for STREAM and LEGACY instances,
    the number of streams for a SHARED one); further calls wait in the mailbox,
    a deque of at most ``capacity`` items, and start in arrival order as
    running ones finish. No task sits idle per module: a sync call is a
    thread-pool job that hands its outcome back with one ``call_soon_threadsafe``,
    an async call one task.
    """

    def __init__(
        self, name: str, timing: ModuleTiming, pool: Executor, *, capacity: int, workers: int,
        on_loop: bool = False,
    ) -> None:
        self.name = name
        self._on_loop = on_loop  # sync calls run right here on the loop thread
        self.timing = timing
        self._pool = pool
        self._capacity = capacity
        self._limit = workers
        self._mailbox: deque[_Item] = deque()
        self._active = 0
        self._stopped = False
        self._running: set[asyncio.Task[Any]] = set()

    def stop(self) -> None:
        """Drop queued work and cancel running async calls.

        Sync code already running in a thread runs to its end; its outcome is
        ignored.
        """
        self._stopped = True
        self._mailbox.clear()
        for future in list(self._running):
            future.cancel()

    def tell(
        self, fn: Callable[[Any], Any], arg: Any, on_done: OnDone, *, event: bool = True
    ) -> None:
        """Queue one call; ``on_done(result, error)`` runs on the loop when it ends."""
        if self._stopped:
            raise FrameworkError(f"module {self.name!r} is stopped")
        item = (fn, arg, on_done, event)
        if self._active < self._limit:
            self._start(item)
        elif len(self._mailbox) >= self._capacity:
            raise FrameworkError(
                f"mailbox of module {self.name!r} overflowed (capacity {self._capacity})"
            )
        else:
            self._mailbox.append(item)

    def ask(self, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        """Queue a transition call; the future resolves to its result or error."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        self.tell(fn, arg, done, event=False)
        return future

    def _start(self, item: _Item) -> None:
        fn = item[0]
        self._active += 1
        loop = asyncio.get_running_loop()
        if inspect.iscoroutinefunction(fn):
            self._start_async(loop, item)
        elif self._on_loop:
            self._run_here(item)
        else:
            self._pool.submit(self._in_thread, loop, item)

    def _run_here(self, item: _Item) -> None:
        """A sync call of a ``run_on_loop`` module: run it now, on the loop thread."""
        start = time.perf_counter()
        try:
            result = item[0](item[1])
        except Exception as exc:
            self._finished(item, None, exc, 0.0)
            return
        self._finished(item, result, None, time.perf_counter() - start)

    def _start_async(self, loop: asyncio.AbstractEventLoop, item: _Item) -> None:
        """Run an async module call as its own task.

        The call must run inside its own task: code such as ``asyncio.timeout``,
        ``TaskGroup`` or locks relies on ``asyncio.current_task()``, so stepping the
        coroutine eagerly from whatever task happens to be current is not safe on
        Python 3.11 (there is no eager task factory before 3.12).
        """
        task = loop.create_task(_timed(item[0], item[1]), name=f"module {self.name}")
        self._running.add(task)
        task.add_done_callback(partial(self._task_done, item))

    def _in_thread(self, loop: asyncio.AbstractEventLoop, item: _Item) -> None:
        """Runs in a worker thread: call, time, and hand the outcome back with one wake-up."""
        start = time.perf_counter()
        try:
            result, error = item[0](item[1]), None
        except BaseException as exc:  # handed to the loop, which raises it as ModuleError
            result, error = None, exc
        elapsed = time.perf_counter() - start
        with contextlib.suppress(RuntimeError):  # a closed loop: the job was torn down
            loop.call_soon_threadsafe(self._finished, item, result, error, elapsed)

    def _task_done(self, item: _Item, task: asyncio.Task[tuple[Any, float]]) -> None:
        self._running.discard(task)
        if task.cancelled():  # stop(), or the module's own code let a CancelledError out
            error: BaseException | None = FrameworkError(
                f"a call of module {self.name!r} was cancelled"
            )
            self._finished(item, None, error, 0.0)
            return
        error = task.exception()
        result, elapsed = (None, 0.0) if error is not None else task.result()
        self._finished(item, result, error, elapsed)

    def _finished(
        self, item: _Item, result: Any, error: BaseException | None, elapsed: float
    ) -> None:
        self._active -= 1
        if self._stopped:
            return
        if self._mailbox:
            self._start(self._mailbox.popleft())
        if error is None:
            timing = self.timing
            if item[3]:
                timing.calls += 1
                timing.total += elapsed
            else:
                timing.transition_calls += 1
                timing.transition_total += elapsed
        item[2](result, error)


async def _timed(fn: Callable[[Any], Any], arg: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await fn(arg)
    return result, time.perf_counter() - start
