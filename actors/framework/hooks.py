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

:func:`close_instances` runs ``close()`` at the end of every job, whatever its outcome
(its own contract below).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.ref import ActorRef
from ..errors import ModuleError
from .graph import Schedule
from .module import Module
from .report import ModuleTiming
from .source import Source
from .workers import Call, format_error

__all__ = ["CLOSE_TIMEOUT_S", "TransitionHooks", "close_instances"]

_log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 30.0  # the most one instance's close() may take (sync or async)


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


async def close_instances(
    schedule: Schedule, pool: ThreadPoolExecutor | None, failure: BaseException | None
) -> None:
    """Run ``close()`` on every module instance (last node first), then on the source.

    Called once at the end of every job (every :func:`~.driver.drive`), after
    a success (then after ``end_job``), a failure or a cancel. A close runs directly,
    not through the instance's mailbox (the job's calls are over on the loop;
    after a failure a sync call already running in a worker thread may still
    be running there: threads cannot be stopped). A sync close runs in
    ``pool`` (on the loop without one), an ``async def`` close on the loop;
    each must return within ``CLOSE_TIMEOUT_S`` (else a TimeoutError is its
    error). Every instance's close runs, also after another one raised.

    Errors: after a successful job (``failure`` None) the first failing close
    is raised as ModuleError (its label, ``"close"``); after a failed job each
    one is logged and noted on ``failure``, which the caller raises.
    CancelledError propagates. Loop rules: the loop thread only.
    """
    first: ModuleError | None = None
    for label, close in _closes(schedule):
        try:
            await _call_close(close, pool)
        except Exception as exc:
            error = ModuleError(label, "close", exc, format_error(exc))
            if failure is not None:
                _log.warning("%s (after the job had failed)", error)
                failure.add_note(f"and then: {error}")
            elif first is None:
                first = error
    if first is not None:
        raise first


def _closes(schedule: Schedule) -> list[tuple[str, Callable[[], Any]]]:
    """(label, bound close) of every instance that overrides ``close``, in close order."""
    closes = [
        (node.label, instance.close)
        for node in reversed(schedule.nodes)
        for instance in node.instances
        if type(instance).close is not Module.close
    ]
    source = schedule.source
    if type(source.instance).close is not Source.close:
        closes.append((source.config.label, source.instance.close))
    return closes


async def _call_close(close: Callable[[], Any], pool: ThreadPoolExecutor | None) -> None:
    deadline = asyncio.timeout(CLOSE_TIMEOUT_S)
    try:
        async with deadline:
            if inspect.iscoroutinefunction(close):
                await close()
            elif pool is None:
                close()
            else:
                await asyncio.get_running_loop().run_in_executor(pool, close)
    except TimeoutError:
        if deadline.expired():
            raise TimeoutError(f"close() did not return within {CLOSE_TIMEOUT_S:g} s") from None
        raise
