"""The mailbox of an actor that runs several messages at once, in threads or inline.

Internal; chosen by :meth:`ActorSystem.spawn <actors.ActorSystem.spawn>` when an
actor asks for ``concurrency`` > 1, for an ``executor``, or has a plain
(``def``) ``receive``. A :class:`Dispatcher` replaces the cell's
``asyncio.Queue`` and starts messages itself, from the sender's call, instead
of a task taking them one by one:

* up to ``concurrency`` messages are processed at once; the others wait in a
  deque of at most ``capacity`` items and start in arrival order as running
  ones finish;
* a plain ``receive`` runs in the executor (a thread) when there is one, else
  right on the loop, inside the sender's ``tell``/``post`` when a slot is free
  (the fast path: no task switch, no turn of the loop). If it returns an
  awaitable, that awaitable is awaited on the loop (its slow path);
* an ``async def receive`` runs in one of at most ``concurrency`` long-lived
  worker tasks (created on demand, parked between messages), so that
  ``asyncio.current_task()`` belongs to the actor while its code runs.
  Worker tasks run in the context (``contextvars``) the actor was created in.

A reply is ``None`` (a tell), an ``asyncio.Future`` (an ask; skipped when
already done, i.e. the asker gave up) or a callable ``reply(result, error)``
(a post), called on the loop. An ask to an idle actor (a free slot, nobody
waiting) skips the mailbox: :meth:`Dispatcher.run_here` processes it in the
asker's task, with no task switch (the reply of a source, say, costs no
turn of the loop when it is ready). All methods run on the loop thread; a
plain ``receive`` run in the executor hands its outcome back to the loop
through :mod:`actors.core._threads`, which calls :meth:`Dispatcher.finished`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from typing import Any

from ..errors import ActorDead, ActorError
from ._threads import loop_completions, run_in_thread

__all__ = ["NOT_HERE", "Dispatcher", "Reply"]

Reply = Callable[[Any, BaseException | None], None]
_Item = tuple[Any, Any]  # (message, None | Future | Reply)
#: What :meth:`Dispatcher.call_here` returns when it did not process the message.
NOT_HERE: Any = object()
#: type -> whether its instances are awaitable, learnt as results go by (the check is an ABC one)
_AWAITABLE: dict[type, bool] = {
    t: False for t in (type(None), bool, int, float, str, bytes, tuple, list, dict)
}


def _awaitable(value: Any) -> bool:
    known = _AWAITABLE.get(type(value))
    if known is not None:
        return known
    if inspect.isgenerator(value):  # a generator's awaitability depends on the object
        return inspect.isawaitable(value)
    known = _AWAITABLE[type(value)] = inspect.isawaitable(value)
    return known


class Dispatcher:
    """Bounded mailbox + concurrency limit of one actor (loop thread only).

    Offers the part of ``asyncio.Queue`` the cell and refs use (``full``,
    ``empty``, ``qsize``, ``put_nowait``, ``put``, ``get_nowait``), where
    ``put_nowait`` may start the message at once. Nothing starts while
    paused (before the instance exists, during a restart, once stopping).
    """

    def __init__(
        self,
        name: str,
        *,
        capacity: int,
        concurrency: int,
        executor: Executor | None,
        context: contextvars.Context,
        on_tell_failed: Callable[[Any, Exception], None],
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency of actor {name!r} must be >= 1, got {concurrency}")
        self.name = name
        self._capacity = capacity
        self._limit = concurrency
        self._executor = executor
        self._context = context
        self._on_tell_failed = on_tell_failed
        self._queue: deque[_Item] = deque()
        self._space: deque[asyncio.Future[None]] = deque()  # puts waiting for room
        self._idle: asyncio.Future[None] | None = None
        self._receive: Callable[[Any], Any] | None = None  # None: paused
        self._is_async = False
        #: a plain ``receive`` run on the loop (no executor): :meth:`call_here` applies
        self.inline = False
        self.active = 0
        self.closed: str | None = None
        self._workers: dict[asyncio.Task[None], tuple[_Item, Any] | None] = {}  # -> its call
        # idle workers wait on these futures
        self._parked: list[tuple[asyncio.Future[Any], asyncio.Task[None]]] = []
        #: askers' tasks awaiting a message run in them (the fast path), and those of
        #: them that :meth:`cancel_running` cancelled
        self._here: set[asyncio.Task[Any]] = set()
        self._cancelled_here: set[asyncio.Task[Any]] = set()

    # -- the asyncio.Queue subset ---------------------------------------------------

    def full(self) -> bool:
        return len(self._queue) >= self._capacity

    def empty(self) -> bool:
        return not self._queue

    def qsize(self) -> int:
        return len(self._queue)

    def put_nowait(self, item: _Item) -> None:
        """Start ``item`` now if a slot is free, else queue it; ActorError when full.

        ActorDead once :meth:`close` was called.
        """
        message, reply = item
        if self.active < self._limit and self._receive is not None and not self._queue:
            self._start(message, reply)
        else:
            self._wait(message, reply)

    def post(self, message: Any, reply: Reply) -> None:
        """``put_nowait((message, reply))`` for a callable ``reply`` (no future, no None)."""
        if self.active < self._limit and not self._queue:
            if self.inline:
                self._run_inline(message, reply)  # the fast path: no check of the reply's kind
                return
            if self._receive is not None:
                self._start(message, reply)
                return
        self._wait(message, reply)

    def _wait(self, message: Any, reply: Any) -> None:
        """Queue a message that cannot start now; ActorDead or ActorError when it cannot wait."""
        if self.closed is not None:
            raise ActorDead(self.closed)
        elif len(self._queue) >= self._capacity:
            raise ActorError(
                f"mailbox of actor {self.name!r} is full ({self._capacity} messages waiting)"
            )
        else:
            self._queue.append((message, reply))

    async def put(self, item: _Item) -> None:
        """``put_nowait`` once there is room (waits while the mailbox is full)."""
        while self.full():
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._space.append(room)
            try:
                await room
            except asyncio.CancelledError:
                if room.done() and not room.cancelled():
                    self._wake_putter()  # we were given the room: pass it on
                raise
        self.put_nowait(item)

    def get_nowait(self) -> _Item:
        """Take the oldest waiting item (the cell's final drain); QueueEmpty if none."""
        if not self._queue:
            raise asyncio.QueueEmpty
        item = self._queue.popleft()
        self._wake_putter()
        return item

    def _wake_putter(self) -> None:
        while self._space:
            room = self._space.popleft()
            if not room.done():
                room.set_result(None)
                return

    # -- control (the cell) ---------------------------------------------------------

    def resume(self, receive: Callable[[Any], Any]) -> None:
        """Process messages with ``receive`` (a new instance's) from now on."""
        self._receive = receive
        self._is_async = inspect.iscoroutinefunction(receive)
        self.inline = not self._is_async and self._executor is None
        self._pump()

    def pause(self) -> None:
        """Start nothing more (running messages go on)."""
        self._receive = None
        self.inline = False

    def close(self, why: str) -> None:
        """The actor is dead: pause for good; :meth:`post` raises ActorDead(why) from now on."""
        self.pause()
        self.closed = why

    async def wait_idle(self) -> None:
        """Wait until no message is running."""
        while self.active:
            if self._idle is None or self._idle.done():
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)

    def cancel_running(self) -> None:
        """Pause and cancel the async messages running and the parked workers.

        An ask awaited in its asker's task (the fast path) ends there with
        ActorError, except in the calling task itself (an actor stopping
        itself from such a message: it runs to its end). Sync code already
        running in a thread runs to its end (its reply is still delivered).
        """
        self.pause()
        for parked, _task in self._parked:
            parked.cancel()
        self._parked.clear()
        for task in list(self._workers):
            task.cancel()  # _worker_done answers the call it had
        me = asyncio.current_task()
        for task in self._here - self._cancelled_here:
            if task is not me:
                self._cancelled_here.add(task)
                task.cancel()  # _awaited_here turns it into ActorError

    # -- the ask fast path --------------------------------------------------------------

    def idle_now(self) -> bool:
        """True when a message sent now would start at once (a free slot, nobody waiting)."""
        return self.active < self._limit and self._receive is not None and not self._queue

    def run_here(self, message: Any) -> Coroutine[Any, Any, Any]:
        """Process ``message`` in the calling task (an ask to an idle actor): a
        coroutine to await at once (as :meth:`call_here`'s), whose result is the reply.

        Call only when :meth:`idle_now`. The message holds one of the actor's
        slots as any other, freed when the coroutine ends, whatever the
        outcome; a plain ``receive`` still runs in the executor when there is
        one. Cancelling the caller cancels the message; :meth:`cancel_running`
        ends an awaited message with ActorError (a plain ``receive`` running in
        the executor runs to its end). Raises what ``receive`` raised.
        """
        receive = self._receive
        assert receive is not None
        self.active += 1
        if not self._is_async:
            return self._plain_here(receive, message)
        try:
            coroutine = receive(message)  # every async module's call: one frame, no more
        except BaseException:
            self._release()
            raise
        return self._awaited_here(coroutine)

    async def _plain_here(self, receive: Callable[[Any], Any], message: Any) -> Any:
        """:meth:`run_here` for a plain ``receive`` (in the executor when there is one)."""
        try:
            if self._executor is None:
                result = receive(message)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._executor, receive, message)
        except BaseException:
            self._release()
            raise
        known = _AWAITABLE.get(type(result))  # the type cache first: no call when known
        if known or (known is None and _awaitable(result)):
            return await self._awaited_here(result)
        self._release()
        return result

    async def _awaited_here(self, awaitable: Awaitable[Any]) -> Any:
        """Await a message's ``awaitable`` in the asker's task, where
        :meth:`cancel_running` can cancel it (ActorError then, unless the task
        was cancelled by someone else too: CancelledError), then free the
        message's slot. Loop thread only."""
        task: Any = _current()  # (awaited: always inside a task)
        here = self._here
        outer = task not in here  # (an ask of this actor from its own message)
        here.add(task)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._stopped_here(task):
                raise self._stopped_error() from None
            raise
        finally:
            if outer:
                here.discard(task)
            if self._cancelled_here:  # cancel_running cancelled it, the message swallowed it
                self._stopped_here(task)
            if self._queue or self._idle is not None:
                self._release()
            else:
                self.active -= 1  # the common end: nobody waits, no call

    def _stopped_here(self, task: asyncio.Task[Any]) -> bool:
        """True when :meth:`cancel_running` cancelled ``task`` and nobody else did
        (its cancellation is then withdrawn: the caller raises ActorError)."""
        if task not in self._cancelled_here:
            return False
        self._cancelled_here.discard(task)
        return not task.uncancel()

    def call_here(self, message: Any) -> Any:
        """:meth:`run_here` without a coroutine, when the actor is :attr:`inline` and idle.

        Returns :data:`NOT_HERE` (nothing done) unless the actor runs a plain
        ``receive`` on the loop and a message sent now would start at once.
        Else processes ``message`` now and returns the reply, or, when
        ``receive`` returned an awaitable, a coroutine (``types.CoroutineType``;
        a reply is never one) that the caller must await at once: it awaits
        that awaitable and frees the slot when it ends, whatever the outcome
        (cancelling the awaiting task cancels the message). Raises what
        ``receive`` raised. Loop thread only.
        """
        receive = self._receive
        if receive is None or not self.inline or self.active >= self._limit or self._queue:
            return NOT_HERE
        self.active += 1
        try:
            result = receive(message)
        except BaseException:
            self._release()
            raise
        known = _AWAITABLE.get(type(result))
        if known or (known is None and _awaitable(result)):
            return self._awaited_here(result)
        if self._queue or self._idle is not None:
            self._release()
        else:
            self.active -= 1  # the common end: nobody waits, no call
        return result

    def _release(self) -> None:
        """A message processed in its caller is done: free its slot, start the next."""
        self.active -= 1
        if self._queue:
            self._pump()
        if not self.active and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    # -- running messages -----------------------------------------------------------

    def _pump(self) -> None:
        queue = self._queue
        while queue and self.active < self._limit and self._receive is not None:
            message, reply = queue.popleft()
            self._wake_putter()
            self._start(message, reply)

    def _start(self, message: Any, reply: Any) -> None:
        if isinstance(reply, asyncio.Future) and reply.done():
            return  # the asker gave up before the message started: skip it
        if self.inline:
            self._run_inline(message, reply)
            return
        self.active += 1
        if self._is_async:
            self._to_worker((message, reply), None)
            return
        receive, executor = self._receive, self._executor  # neither async nor inline: a thread
        assert receive is not None and executor is not None
        executor.submit(run_in_thread, loop_completions(), self, receive, message, reply)

    def _run_inline(self, message: Any, reply: Any) -> None:
        """Run a plain ``receive`` now, on the loop (:attr:`inline`, a slot free)."""
        self.active += 1
        try:
            result = self._receive(message)  # type: ignore[misc]  # (inline: set)
        except Exception as exc:
            self.finished(message, reply, None, exc)
            return
        if _AWAITABLE.get(type(result)) is False and callable(reply):  # not None/a Future
            # the fast path's common end (a post done at once): finished() inlined
            if self._queue or self._idle is not None:
                self._release()
            else:
                self.active -= 1
            reply(result, None)
            return
        self.finished(message, reply, result, None)

    def finished(self, message: Any, reply: Any, result: Any, error: BaseException | None) -> None:
        """One message is done (a sync receive's outcome): free its slot, reply."""
        known = _AWAITABLE.get(type(result))
        if error is None and (known or (known is None and _awaitable(result))):
            self._to_worker((message, reply), result)  # the slow path: await it on the loop
            return
        if self._queue or self._idle is not None:
            self._release()
        else:
            self.active -= 1  # every async or threaded message ends here: no call when nobody waits
        if reply is None:
            if error is not None:
                self._on_tell_failed(message, _as_exception(self.name, error))
        elif isinstance(reply, asyncio.Future):
            if not reply.done():
                if error is None:
                    reply.set_result(result)
                else:
                    reply.set_exception(error)
        else:
            reply(result, error)

    def _to_worker(self, item: _Item, awaitable: Any) -> None:
        """Hand a call to an idle worker task, or start a new worker (never more than the limit)."""
        while self._parked:
            parked, task = self._parked.pop()
            if not parked.done():
                call = (item, awaitable)
                parked.set_result(call)
                self._workers[task] = call  # answered by _worker_done if cancelled
                return
        task = asyncio.get_running_loop().create_task(
            self._work(item, awaitable), name=f"actor {self.name}", context=self._context
        )
        self._workers[task] = (item, awaitable)
        task.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """A worker ended (cancelled): answer the call it had, even if it never started it."""
        call = self._workers.pop(task, None)
        if call is None:
            return
        (_message, reply), awaitable = call
        close = getattr(awaitable, "close", None)
        if close is not None:  # maybe never awaited: no "coroutine was never awaited" warning
            close()  # (a coroutine that was awaited is already closed: a no-op)
        self._cancelled(reply)

    async def _work(self, item: _Item, awaitable: Any) -> None:
        """A worker task: run async messages one after the other; park in between."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        while True:  # (_to_worker recorded the call in self._workers)
            message, reply = item
            error: BaseException | None = None
            result: Any = None
            try:
                if awaitable is None:
                    receive = self._receive
                    if receive is None:  # paused meanwhile (restart or stop): not processed
                        raise ActorError(f"actor {self.name!r} stopped before processing it")
                    result = await receive(message)
                else:
                    result = await awaitable
            except asyncio.CancelledError:
                if task.cancelling():
                    raise  # cancel_running() or shutdown: _worker_done answers the call
                error = ActorError(f"a call of actor {self.name!r} was cancelled by its own code")
            except Exception as exc:
                error = exc
            self._workers[task] = None
            parked: asyncio.Future[Any] = loop.create_future()
            self._parked.append((parked, task))  # before finished(): it may hand us the next call
            try:
                self.finished(message, reply, result, error)
            except Exception as exc:  # a reply callback failed: report it, keep serving
                loop.call_exception_handler(
                    {
                        "message": f"reply callback of actor {self.name!r} failed",
                        "exception": exc,
                    }
                )
            # Parked, the frame keeps no reference to the call it answered: a worker cancelled
            # while parked (cancel_running, shutdown) keeps its frame in the traceback of the
            # CancelledError that its task stores, a cycle (task -> error -> frame -> task)
            # that would otherwise hold the last message (an event's products) until collected.
            del item, awaitable, message, reply, result, error
            item, awaitable = await parked

    def _stopped_error(self) -> ActorError:
        return ActorError(f"actor {self.name!r} was stopped while processing the message")

    def _cancelled(self, reply: Any) -> None:
        self.active -= 1
        if not self.active and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)
        error = self._stopped_error()
        if isinstance(reply, asyncio.Future):
            if not reply.done():
                reply.set_exception(error)
        elif reply is not None:
            with contextlib.suppress(Exception):
                reply(None, error)


_current = asyncio.current_task


def _as_exception(name: str, error: BaseException) -> Exception:
    if isinstance(error, Exception):
        return error
    wrapped = ActorError(f"actor {name!r}: receive raised {error!r}")
    wrapped.__cause__ = error
    return wrapped
