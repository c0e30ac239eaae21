"""Module actors: each module instance gets its work through a bounded mailbox.

A :class:`ModuleActor` owns one module instance and a bounded mailbox: one
call at a time for STREAM and LEGACY instances (calls never overlap),
several at once for a SHARED instance (up to the number of streams). A work
item is ``(callable, argument, on_done, is_event)``: sync callables run in the
process's thread pool (or right on the loop thread for ``run_on_loop``
modules), coroutine functions run on the loop in one of the actor's worker
tasks; the time spent in the callable is measured where it runs and added to
the module's timing. ``on_done(result, error)`` is called on the loop thread.

Async calls: an actor keeps at most ``workers`` long-lived worker tasks (created
on demand, parked between calls), and each async call runs *inside* one of
them - so ``asyncio.current_task()`` is a task that belongs to the module
while its code runs (``asyncio.timeout``, ``TaskGroup`` and locks work), but
no task is created per call. A worker that finishes a call takes the next
queued one at once, without a turn of the loop. Worker tasks run in the
context (``contextvars``) in which the actor was created, i.e. the job's.

A ``run_on_loop`` sync method may return an awaitable (its slow path): the
call then finishes when that awaitable does, awaited in a worker task.

The mailbox never needs to block the sender: the scheduler sends at most one
event call per stream plus one transition per lumi/run in flight, and the
capacity is sized for that when the actor is created; overflowing it is a
framework bug and raises FrameworkError.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
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
    running ones finish. A sync call is a thread-pool job that hands its
    outcome back to the loop (one ``call_soon_threadsafe`` per batch of
    outcomes that arrive together), or a plain call on the loop for
    ``on_loop``; an async call runs in one of at most ``workers`` long-lived
    worker tasks (see the module docstring).
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
        self._workers: set[asyncio.Task[None]] = set()
        self._parked: list[asyncio.Future[_Item]] = []  # idle workers wait on these
        self._is_async: dict[Callable[[Any], Any], bool] = {}
        self._context = contextvars.copy_context()

    def stop(self) -> None:
        """Drop queued work and cancel running async calls and idle workers.

        Sync code already running in a thread runs to its end; its outcome is
        ignored.
        """
        self._stopped = True
        self._mailbox.clear()
        for parked in self._parked:
            parked.cancel()
        self._parked.clear()
        for task in list(self._workers):
            task.cancel()

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
        is_async = self._is_async.get(fn)
        if is_async is None:
            is_async = inspect.iscoroutinefunction(fn)
            if item[3]:  # event methods are the same few callables: remember them
                self._is_async[fn] = is_async
        if is_async:
            self._start_async(item)
        elif self._on_loop:
            self._run_here(item)
        else:
            self._pool.submit(self._in_thread, _completions(), item)

    def _run_here(self, item: _Item) -> None:
        """A sync call of a ``run_on_loop`` module: run it now, on the loop thread.

        An awaitable result is the call's slow path: a worker task awaits it
        and the call finishes then.
        """
        start = time.perf_counter()
        try:
            result = item[0](item[1])
        except Exception as exc:
            self._finished(item, None, exc, 0.0)
            return
        if result is not None and inspect.isawaitable(result):
            self._start_async((_resume, result, item[2], item[3]))
            return
        self._finished(item, result, None, time.perf_counter() - start)

    def _start_async(self, item: _Item) -> None:
        """Hand an async call to an idle worker task, or start a new worker.

        The call must run inside a task of its own module: code such as
        ``asyncio.timeout``, ``TaskGroup`` or locks relies on
        ``asyncio.current_task()``, so stepping the coroutine eagerly from
        whatever task happens to be current is not safe on Python 3.11.
        """
        while self._parked:
            parked = self._parked.pop()
            if not parked.done():
                parked.set_result(item)
                return
        task = asyncio.get_running_loop().create_task(
            self._work(item), name=f"module {self.name}", context=self._context
        )
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _work(self, item: _Item) -> None:
        """A worker task: run async calls one after the other; park in between."""
        loop = asyncio.get_running_loop()
        while True:
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                result = await item[0](item[1])
            except asyncio.CancelledError:
                if self._stopped or _cancelling():
                    raise  # stop(): the job is being torn down
                result = None  # the module's own code let a CancelledError out
                error = FrameworkError(f"a call of module {self.name!r} was cancelled")
            except Exception as exc:  # handed on, raised as ModuleError by the scheduler
                result, error = None, exc
            elapsed = time.perf_counter() - start
            parked: asyncio.Future[_Item] = loop.create_future()
            self._parked.append(parked)  # before _finished: it may hand us the next call
            try:
                self._finished(item, result, error, elapsed)
            except Exception as exc:  # a completion callback failed: report, keep serving
                loop.call_exception_handler({
                    "message": f"completion callback of module {self.name!r} failed",
                    "exception": exc,
                })
            item = await parked

    def _in_thread(self, completions: _Completions, item: _Item) -> None:
        """Runs in a worker thread: call, time, and hand the outcome back to the loop."""
        start = time.perf_counter()
        try:
            result, error = item[0](item[1]), None
        except BaseException as exc:  # handed to the loop, which raises it as ModuleError
            result, error = None, exc
        completions.post(self, item, result, error, time.perf_counter() - start)

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


class _Completions:
    """Outcomes of sync calls on their way from worker threads to the loop, coalesced.

    A worker thread appends an outcome and wakes the loop only when no wake-up
    is pending yet, so completions that arrive together (several streams,
    several threads) cost one ``call_soon_threadsafe`` (one write to the loop's
    self-pipe) instead of one each. Outcomes are handed on in arrival order.
    """

    __slots__ = ("_loop", "_outcomes", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # weak: this object is the loop's value in _per_loop
        self._outcomes: deque[tuple[ModuleActor, _Item, Any, BaseException | None, float]] = (
            deque()
        )
        self._scheduled = False

    def post(
        self, actor: ModuleActor, item: _Item, result: Any, error: BaseException | None,
        elapsed: float,
    ) -> None:
        """Any thread: queue an outcome for ``actor._finished`` on the loop."""
        self._outcomes.append((actor, item, result, error, elapsed))
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop()
            if loop is None:  # the job's loop is gone
                return
            with contextlib.suppress(RuntimeError):  # a closed loop: the job was torn down
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        # reset first: an outcome appended from now on schedules another drain
        self._scheduled = False
        outcomes = self._outcomes
        while outcomes:
            actor, item, result, error, elapsed = outcomes.popleft()
            try:
                actor._finished(item, result, error, elapsed)
            except Exception as exc:  # one failing callback must not strand the others
                asyncio.get_running_loop().call_exception_handler({
                    "message": f"completion callback of module {actor.name!r} failed",
                    "exception": exc,
                })


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Completions] = (
    weakref.WeakKeyDictionary()
)


def _completions() -> _Completions:
    """The running loop's completion queue (loop thread only)."""
    loop = asyncio.get_running_loop()
    completions = _per_loop.get(loop)
    if completions is None:
        completions = _per_loop[loop] = _Completions(loop)
    return completions


def _cancelling() -> bool:
    """True when the current task has a cancellation request pending (not just an error)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _resume(awaitable: Any) -> Any:
    """Await the slow path a ``run_on_loop`` method returned."""
    return await awaitable
