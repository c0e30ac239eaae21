"""A job's modules as actors of the process's :class:`~actors.ActorSystem`.

Each job is a :class:`JobActor`; its children are one :class:`ModuleActor`
per module instance, named by module label (``label#slot`` for the
per-stream instances of a STREAM module), plus a :class:`SourceActor` named by
the source's label. The scheduler sends work to them with
:meth:`LocalActorRef.post <actors.core.ref.LocalActorRef.post>`: a
:class:`Call` is both the message and its reply callback. How a module actor
runs its calls comes from the actor core's spawn options
(:meth:`ActorSystem.spawn <actors.ActorSystem.spawn>`):

* sync methods run in the job's worker threads (``executor=pool``), or
  inline on the loop for ``run_on_loop`` modules;
* ``async def`` methods (and the awaitable slow path of a ``run_on_loop``
  method) are awaited in the actor's worker tasks, which run in the job's
  context;
* ``concurrency`` is 1 for STREAM and LEGACY instances (calls never
  overlap) and the number of streams for a SHARED one.

The time spent in the callable is measured where it runs and added to the
module's :class:`~actors.framework.report.ModuleTiming` on the loop. The
mailbox never blocks the scheduler: it sends at most one event call per
stream plus one transition per lumi/run in flight, and the capacity is
sized for that plus ``mailbox_size`` for asks from users; overflowing it is
a framework bug (ActorError).

While a job runs, its actors answer asks from anywhere (a notebook, a remote
ref): the job actor ``"modules"`` (the module actors' names) and
``"timing"`` (every module's timing); a module actor ``"timing"`` (its
module's timing as a dict) and ``"state"`` (label, type, calls done).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
import traceback
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from types import CoroutineType
from typing import Any

from ..core.actor import Actor
from ..core.ref import ActorRef
from ..errors import FrameworkError
from .report import ModuleTiming
from .source import Source

__all__ = [
    "CLOSE_TRANSITIONS",
    "NEXT_TRANSITION",
    "AsyncModuleActor",
    "Call",
    "JobActor",
    "ModuleActor",
    "ModuleSpec",
    "SourceActor",
    "format_error",
]

OnDone = Callable[[Any, BaseException | None], None]

#: The message a SourceActor answers with the source's next transition (None at the end).
NEXT_TRANSITION = "next-transition"
#: The message that makes a SourceActor close its iterator (generator cleanup).
CLOSE_TRANSITIONS = "close-transitions"


def format_error(exc: BaseException) -> str:
    """The traceback of ``exc`` as text (what ModuleError carries)."""
    return "".join(traceback.format_exception(exc))


class Call:
    """One call of a module method: the message to a module actor and its own reply.

    ``fn(arg)`` runs where the actor runs it; the elapsed time is stored on
    the call (``elapsed``), and the reply, on the loop, adds it to ``timing``
    (event calls and transitions apart) and calls ``on_done(result, error)``.
    """

    __slots__ = ("arg", "elapsed", "event", "fn", "on_done", "timing")

    def __init__(
        self,
        fn: Callable[[Any], Any],
        arg: Any,
        on_done: OnDone,
        timing: ModuleTiming,
        event: bool = True,
    ) -> None:
        self.fn = fn
        self.arg = arg
        self.on_done = on_done
        self.timing = timing
        self.event = event
        self.elapsed = 0.0

    def __call__(self, result: Any, error: BaseException | None) -> None:
        if error is None:
            timing = self.timing
            if self.event:
                timing.calls += 1
                timing.total += self.elapsed
            else:
                timing.transition_calls += 1
                timing.transition_total += self.elapsed
        self.on_done(result, error)


class _Timed:
    """Awaits a call's awaitable result (its slow path) and sets the call's elapsed time.

    ``close()`` closes that awaitable when it is a coroutine, so that a call
    dropped before being awaited (the job torn down) leaves no warning.
    """

    __slots__ = ("awaitable", "call", "start")

    def __init__(self, call: Call, awaitable: Any, start: float) -> None:
        self.call = call
        self.awaitable = awaitable
        self.start = start

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            return (yield from self.awaitable.__await__())
        finally:
            self.call.elapsed = time.perf_counter() - self.start

    def close(self) -> None:
        if inspect.iscoroutine(self.awaitable):
            self.awaitable.close()


class ModuleActor(Actor):
    """One module instance: runs the :class:`Call` messages, answers queries.

    ``receive`` is a plain method: the spawn options decide whether it runs
    in a worker thread or inline on the loop; an ``async`` method's call
    returns its coroutine, which the actor core awaits on the loop.
    """

    def __init__(self, label: str, timing: ModuleTiming) -> None:
        self.label = label
        self.timing = timing

    def receive(self, message: Any) -> Any:
        if isinstance(message, Call):
            start = time.perf_counter()
            result = message.fn(message.arg)
            if result is not None and type(result) is not bool and inspect.isawaitable(result):
                return _Timed(message, result, start)
            message.elapsed = time.perf_counter() - start
            return result
        return self.query(message)

    def query(self, message: Any) -> Any:
        """Answer ``"timing"`` or ``"state"``; FrameworkError for anything else."""
        if message == "timing":
            return dataclasses.asdict(self.timing)
        if message == "state":
            return {"label": self.label, "type": self.timing.type, "calls": self.timing.calls}
        raise FrameworkError(
            f"module actor {self.name!r} answers 'timing' and 'state', not {message!r}"
        )


class AsyncModuleActor(ModuleActor):
    """A module whose event method is ``async def``: calls run in the actor's worker tasks."""

    async def receive(self, message: Any) -> Any:
        if not isinstance(message, Call):
            return self.query(message)
        start = time.perf_counter()
        result = message.fn(message.arg)
        if type(result) is CoroutineType or inspect.isawaitable(result):  # (or a hook's future)
            result = await result
        message.elapsed = time.perf_counter() - start
        return result


class SourceActor(ModuleActor):
    """The job's source: also answers :data:`NEXT_TRANSITION`.

    The reply is the next transition; at the end None (a sync iterator) or
    StopAsyncIteration (an async one).

    Starts ``source.transitions()`` on the first request. A sync iterator is
    advanced where the actor runs (a worker thread for a ``blocking``
    source); an async one is awaited on the loop. :data:`CLOSE_TRANSITIONS`
    (and the actor's stop) closes the iterator, on the loop.
    """

    def __init__(self, label: str, timing: ModuleTiming, source: Source) -> None:
        super().__init__(label, timing)
        self.source = source
        self._iter: Any = None
        self._next: Callable[[], Any] = self._first

    def _first(self) -> Any:
        it = self._iter = self.source.transitions()
        if isinstance(it, AsyncIterator):
            self._next = it.__anext__  # its end: StopAsyncIteration (see SourceReader)
        else:
            self._next = partial(next, it, None)
        return self._next()

    def receive(self, message: Any) -> Any:
        if message is NEXT_TRANSITION:
            return self._next()
        if message is CLOSE_TRANSITIONS:
            return self.on_stop()
        return super().receive(message)

    async def on_stop(self) -> None:
        """Close the iterator (generator cleanup) if it was started."""
        it, self._iter = self._iter, None
        self._next = self._first
        if it is None:
            return
        aclose = getattr(it, "aclose", None)
        if aclose is not None and inspect.iscoroutinefunction(aclose):
            await aclose()
            return
        close = getattr(it, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class ModuleSpec:
    """How to spawn one module actor under a job."""

    name: str
    label: str
    timing: ModuleTiming
    concurrency: int
    executor: Executor | None
    source: Source | None = None
    is_async: bool = False  # an async def event method


class JobActor(Actor):
    """A running job; its children are the module actors (spawned in ``on_start``).

    Asks: ``"modules"`` -> the children's names; ``"timing"`` -> every
    module's timing as a dict, by label; :data:`REFS` (in-process) -> the
    children's refs in spec order.
    """

    REFS = object()

    def __init__(self, specs: list[ModuleSpec], mailbox_size: int) -> None:
        self.specs = specs
        self.mailbox_size = mailbox_size
        self.refs: list[ActorRef] = []

    async def on_start(self) -> None:
        for spec in self.specs:
            args: tuple[Any, ...] = (spec.label, spec.timing)
            cls: type[ModuleActor] = AsyncModuleActor if spec.is_async else ModuleActor
            if spec.source is not None:
                cls, args = SourceActor, (*args, spec.source)
            self.refs.append(self.spawn(
                cls, *args, name=spec.name, mailbox_size=self.mailbox_size,
                concurrency=spec.concurrency, executor=spec.executor,
            ))  # fmt: skip

    async def receive(self, message: Any) -> Any:
        if message is JobActor.REFS:
            return self.refs
        if message == "modules":
            return [ref.name for ref in self.refs]
        if message == "timing":
            return {spec.label: dataclasses.asdict(spec.timing) for spec in self.specs}
        raise FrameworkError(
            f"job actor {self.name!r} answers 'modules' and 'timing', not {message!r}"
        )
