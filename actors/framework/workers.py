"""Module actors: each module instance gets its work through a bounded mailbox.

A :class:`ModuleActor` owns one module instance and a mailbox
(``asyncio.Queue`` with a fixed capacity) drained by worker tasks on the event
loop: one task for STREAM and LEGACY instances (calls never overlap), several
for a SHARED instance (calls overlap, up to the number of streams). A work
item is ``(callable, argument, on_done)``: sync callables run in the
process's thread pool, coroutine functions are awaited on the loop; the time
spent in the callable is measured where it runs (in the worker thread for
sync code) and added to the module's timing. ``on_done(result, error)`` is
called on the loop thread.

The mailbox never needs to block the sender: the scheduler sends at most one
event call per stream plus one transition per lumi/run in flight, and the
capacity is sized for that when the actor is created; overflowing it is a
framework bug and raises FrameworkError.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from ..errors import FrameworkError
from .report import ModuleTiming

__all__ = ["ModuleActor", "format_error"]

OnDone = Callable[[Any, BaseException | None], None]
_Item = tuple[Callable[[Any], Any], Any, OnDone, bool]


def _timed(fn: Callable[[Any], Any], arg: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(arg)
    return result, time.perf_counter() - start


def format_error(exc: BaseException) -> str:
    """The traceback of ``exc`` as text (what ModuleError carries)."""
    return "".join(traceback.format_exception(exc))


class ModuleActor:
    """Mailbox and worker task(s) of one module instance (loop thread only)."""

    def __init__(
        self, name: str, timing: ModuleTiming, pool: Executor, *, capacity: int, workers: int
    ) -> None:
        self.name = name
        self.timing = timing
        self._pool = pool
        self._mailbox: asyncio.Queue[_Item] = asyncio.Queue(maxsize=capacity)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, group: asyncio.TaskGroup) -> None:
        """Start the worker task(s) in ``group`` (stopped by :meth:`stop`)."""
        for i in range(self._workers):
            self._tasks.append(group.create_task(self._work(), name=f"module {self.name}#{i}"))

    def stop(self) -> None:
        """Cancel the worker tasks (work still in the mailbox is dropped)."""
        for task in self._tasks:
            task.cancel()

    def tell(
        self, fn: Callable[[Any], Any], arg: Any, on_done: OnDone, *, event: bool = True
    ) -> None:
        """Queue one call; ``on_done(result, error)`` runs on the loop when it ends."""
        try:
            self._mailbox.put_nowait((fn, arg, on_done, event))
        except asyncio.QueueFull:
            raise FrameworkError(
                f"mailbox of module {self.name!r} overflowed (capacity {self._mailbox.maxsize})"
            ) from None

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

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        mailbox = self._mailbox
        pool = self._pool
        timing = self.timing
        while True:
            fn, arg, on_done, is_event = await mailbox.get()
            try:
                if inspect.iscoroutinefunction(fn):
                    start = time.perf_counter()
                    result = await fn(arg)
                    elapsed = time.perf_counter() - start
                else:
                    result, elapsed = await loop.run_in_executor(pool, _timed, fn, arg)
                    if inspect.isawaitable(result):  # a sync wrapper returned a coroutine
                        start = time.perf_counter()
                        result = await result
                        elapsed += time.perf_counter() - start
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                on_done(None, exc)
                continue
            if is_event:
                timing.calls += 1
                timing.total += elapsed
            else:
                timing.transition_calls += 1
                timing.transition_total += elapsed
            on_done(result, None)

