"""Transition hooks on every module instance: begin/end of the job, runs and lumis.

:class:`TransitionHooks` runs one hook (``begin_run``, ``end_lumi``, ...) on every
module instance of a schedule, each through the mailbox of the instance's actor
(so a hook never overlaps an event call of the same instance), and waits for
all of them; :meth:`TransitionHooks.run_job` runs a job hook on the source first.
An instance whose class keeps the no-op hook of :class:`~actors.framework.module.Module`
gets no call. Where a hook runs: a sync hook of a module whose event code runs in
the job's threads runs there too (through the actor), an ``async def`` hook on the
loop, and every hook on the loop in a job without threads (``pool`` None).

Errors: the first failing instance's exception is raised as a ModuleError naming
the module label and the transition. Loop rules: the loop thread only.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.ref import ActorRef
from ..errors import ModuleError
from .graph import Schedule
from .module import Module
from .report import ModuleTiming
from .workers import Call, format_error

__all__ = ["TransitionHooks"]


class TransitionHooks:
    """Runs transition hooks on the instances of ``schedule`` (module doc).

    ``actors[i][slot]`` is the actor of instance ``slot`` of node ``i``,
    ``timings[i]`` that node's timing; the source's actor and timing are given
    apart. ``pool`` holds the job's threads (None: none).
    """

    def __init__(
        self,
        schedule: Schedule,
        pool: ThreadPoolExecutor | None,
        timings: list[ModuleTiming],
        source_timing: ModuleTiming,
        source_actor: ActorRef,
        actors: list[list[ActorRef]],
    ) -> None:
        self._schedule = schedule
        self._pool = pool
        self._timings = timings
        self._source_timing = source_timing
        self._source_actor = source_actor
        self._actors = actors

    async def run(self, name: str, make_arg: Callable[[int], Any], what: str) -> None:
        """Run hook ``name`` on every instance with ``make_arg(slot)``; wait for all.

        Raises ModuleError (the module's label and ``what``) for the first
        instance, in schedule order, whose hook raised.
        """
        pending: list[tuple[str, asyncio.Future[Any]]] = []
        for node in self._schedule.nodes:
            in_pool = node.is_async and not type(node.instances[0]).run_on_loop
            for slot, instance in enumerate(node.instances):
                if getattr(type(instance), name) is getattr(Module, name):
                    continue  # the default no-op hook
                hook = getattr(instance, name)
                if name.endswith("_job"):
                    hook = _no_arg(hook)
                if in_pool and not inspect.iscoroutinefunction(hook):
                    hook = self._in_pool(hook)  # a sync hook of an async module: not on the loop
                arg = make_arg(node.infos[slot].slot)
                actor = self._actors[node.index][slot]
                pending.append((node.label, _ask(actor, hook, arg, self._timings[node.index])))
        for label, future in pending:
            try:
                await future
            except Exception as exc:
                raise ModuleError(label, what, exc, format_error(exc)) from exc

    async def run_job(self, name: str) -> None:
        """Run job hook ``name`` (``begin_job``/``end_job``) on the source, then on
        every module instance. Raises ModuleError naming the source or the module."""
        source = self._schedule.source
        hook = _no_arg(getattr(source.instance, name))
        if not source.instance.blocking and not inspect.iscoroutinefunction(hook):
            hook = self._in_pool(hook)
        try:
            await _ask(self._source_actor, hook, None, self._source_timing)
        except Exception as exc:
            raise ModuleError(source.config.label, name, exc, format_error(exc)) from exc
        await self.run(name, lambda slot: None, name)

    def _in_pool(self, hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """A sync hook run in the job's threads by an actor that runs on the loop
        (the hook itself without threads)."""
        pool = self._pool
        if pool is None:
            return hook

        def call(arg: Any) -> Any:
            return asyncio.get_running_loop().run_in_executor(pool, hook, arg)

        return call


def _ask(
    actor: ActorRef, fn: Callable[[Any], Any], arg: Any, timing: ModuleTiming
) -> asyncio.Future[Any]:
    """Post a transition call; the future resolves to its result or error."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    call = Call(fn, arg, done, timing, event=False)
    actor.post(call, call)  # type: ignore[attr-defined]
    return future


def _no_arg(hook: Callable[[], Any]) -> Callable[[Any], Any]:
    """Adapt a job hook (no argument) to the one-argument mailbox calls."""
    if inspect.iscoroutinefunction(hook):

        async def call_async(_: Any) -> Any:
            return await hook()

        return call_async

    def call(_: Any) -> Any:
        return hook()

    return call
