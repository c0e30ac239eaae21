"""The driver of one schedule: transitions in, events and lumis in flight.

:func:`drive` reads the source's transitions in order and keeps up to
``streams`` events and ``max_concurrent_lumis`` lumis in flight:

* ``BeginRun``/``BeginLumi``: the matching hook runs on every module instance
  (through its mailbox, :mod:`.hooks`) before any event of that run/lumi
  starts; a new lumi first waits for a free lumi slot.
* ``EventTransition``: waits for a free stream, then the event runs in its own
  task (:class:`~actors.framework.eventrun.EventRun`) while the driver reads on,
  so events of lumi N+1 start while lumi N still has events in flight.
* ``EndLumi``/``EndRun``: a task waits for that lumi's events (that run's
  lumis), runs ``end_lumi`` (``end_run``) on every instance, and frees the slot.
* At the end, whatever the outcome, ``close()`` runs on every instance and the
  source (:func:`~actors.framework.hooks.close_instances`).

Everything runs in one ``asyncio.TaskGroup``: the first error (a module
raising, a malformed transition sequence) cancels the rest, and the error is
raised alone (not as an ExceptionGroup). The source and every module instance
run as actors, children of one :class:`~actors.framework.workers.JobActor`
in the given :class:`~actors.ActorSystem` (see :mod:`.workers`); they are
stopped before :func:`drive` returns or raises. Loop rules: the loop thread
only; module code runs on the given thread pool (or on the loop for
``run_on_loop`` and ``async def`` methods, and all of it without a pool).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from ..core.ref import ActorRef
from ..core.system import ActorSystem
from ..errors import ActorsError, ModuleError
from . import stall
from .event import EventData, LumiID, ProcessEntry
from .eventrun import EventRun, Runtime
from .graph import Schedule
from .hooks import TransitionHooks, close_instances
from .module import Concurrency, Module
from .report import JobReport, ModuleTiming, PathModuleCounts, PathReport
from .runlumi import Lumi, LumiContext, Run, RunContext
from .source import BeginLumi, BeginRun, EndLumi, EndRun, EventTransition
from .source_reader import SourceReader, fill_products
from .workers import JobActor, ModuleSpec

__all__ = ["drive"]


async def drive(
    schedule: Schedule,
    pool: ThreadPoolExecutor | None,
    progress: Callable[[int], None] | None,
    system: ActorSystem,
) -> JobReport:
    """Run ``schedule`` to its end on ``pool`` (None: on the loop's thread) as
    actors of ``system``; return its report.

    Raises the job's error alone: a ModuleError (or other ActorsError) when
    one is among the failures, else the single failure, else the group; then
    (any outcome) runs ``close()`` on every instance, whose errors fail a
    successful job or are noted on the error (:func:`.hooks.close_instances`).
    ``progress(events_done)`` is called on the loop after each event.
    """
    driver = _Driver(schedule, pool, progress)
    stall.track(driver)
    failure: BaseException | None = None
    try:
        return await driver.run(system)
    except BaseExceptionGroup as group:
        failure = _pick_error(group)
        raise failure from failure.__cause__  # keep the module's exception as the cause
    except BaseException as exc:
        failure = exc
        raise
    finally:
        stall.untrack(driver)
        await close_instances(schedule, pool, failure)


def _pick_error(group: BaseExceptionGroup[Any]) -> BaseException:
    flat: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                walk(sub)
        elif all(exc is not seen for seen in flat):  # the job's task may raise what a callback did
            flat.append(exc)

    walk(group)
    for kind in (ModuleError, ActorsError):
        for exc in flat:
            if isinstance(exc, kind):
                return exc
    return flat[0] if len(flat) == 1 else group


@dataclasses.dataclass
class _LumiState:
    ctx: LumiContext
    pending: int = 0  # events of the lumi in flight
    drained: asyncio.Future[None] | None = None  # its end waits on it for pending to be 0
    end_task: asyncio.Task[None] | None = None


@dataclasses.dataclass
class _RunState:
    ctx: RunContext
    lumi_tasks: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)


class _Driver:
    """Reads transitions and keeps events/lumis in flight (loop thread only)."""

    def __init__(
        self,
        schedule: Schedule,
        pool: ThreadPoolExecutor | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.schedule = schedule
        self.options = schedule.options
        self.pool = pool
        self.progress = progress
        self.timings = [ModuleTiming(n.label, n.config.type) for n in schedule.nodes]
        self.capacity = (
            self.options.mailbox_size
            + self.options.streams
            + 2 * (self.options.max_concurrent_lumis + 2)
        )
        self.source_timing = ModuleTiming(schedule.source.config.label, schedule.source.config.type)
        self.reports = [
            PathReport(
                p.name,
                modules=[PathModuleCounts(schedule.nodes[i].label) for i in p.nodes],
                end=p.end,
            )
            for p in (*schedule.trigger_paths, *schedule.end_paths)
        ]
        self.actors: list[list[ActorRef]] = []
        self.source_actor: ActorRef | None = None
        self.closed = False
        process = schedule.process
        self.history_entry = ProcessEntry(process.name, process.config_hash())
        self.free_streams: deque[int] = deque(range(self.options.streams))  # FIFO
        self.inflight: dict[int, EventRun] = {}  # stream -> its event (stall report)
        self._stream_waiter: asyncio.Future[None] | None = None
        self.lumi_slots = asyncio.Semaphore(self.options.max_concurrent_lumis)
        self.events_done = 0
        self.tails: list[asyncio.Task[None]] = []
        self.error: BaseException | None = None
        self.first_start = 0.0
        self.last_end = 0.0

    def _specs(self) -> list[ModuleSpec]:
        """The source's actor, then one per module instance."""
        source = self.schedule.source
        specs = [ModuleSpec(
            source.config.label, source.config.label, self.source_timing, 1,
            self.pool if source.instance.blocking else None, source.instance,
        )]  # fmt: skip
        for n in self.schedule.nodes:
            first = n.instances[0]
            on_loop = type(first).run_on_loop or n.is_async
            for slot in range(len(n.instances)):
                specs.append(ModuleSpec(
                    f"{n.label}#{slot}" if len(n.instances) > 1 else n.label, n.label,
                    self.timings[n.index],
                    self.options.streams if _shared(first) else 1,
                    None if on_loop else self.pool,
                    is_async=n.is_async and not type(first).run_on_loop,
                ))  # fmt: skip
        return specs

    async def run(self, system: ActorSystem) -> JobReport:
        start = time.perf_counter()
        job = system.spawn(
            JobActor, self._specs(), self.capacity, name=_job_name(system, self.schedule)
        )
        try:
            refs: list[ActorRef] = await job.ask(JobActor.REFS)
            self.source_actor, rest = refs[0], iter(refs[1:])
            self.actors = [[next(rest) for _ in n.instances] for n in self.schedule.nodes]
            self.hooks = TransitionHooks(
                self.schedule, self.pool, self.timings, self.source_timing,
                self.source_actor, self.actors,
            )  # fmt: skip
            self.rt = Runtime(
                self.schedule.nodes,
                [[r.poster() for r in a] for a in self.actors],  # type: ignore[attr-defined]
                self.timings,
                self.schedule.trigger_paths,
                self.schedule.end_paths,
                self.reports,
            )
            await self._run_group()
        finally:
            self.closed = True
            for ref in refs if "refs" in locals() else ():
                ref.cancel()  # type: ignore[attr-defined]
            await job.stop()
        options = self.options
        return JobReport(
            self.schedule.process.name,
            self.events_done,
            self.rt.accepted,
            options.streams,
            options.threads,
            max(0.0, self.last_end - self.first_start),
            time.perf_counter() - start,
            self.rt.path_reports,
            self.timings,
        )

    async def _run_group(self) -> None:
        async with asyncio.TaskGroup() as group:
            self.group = group
            # The job runs in a task of its own: its loop is resumed about once per event, and
            # a resume passes through every coroutine of its task (in the caller's task: the
            # whole chain of run_process, the job runner and the driver above the loop).
            name = f"job of process {self.schedule.process.name}"
            await group.create_task(self._run_job(group), name=name)

    async def _run_job(self, group: asyncio.TaskGroup) -> None:
        try:
            await self.hooks.run_job("begin_job")
            await self._loop(group)
            await self.hooks.run_job("end_job")
        finally:
            self.closed = True

    # -- the transition loop
    async def _loop(self, group: asyncio.TaskGroup) -> None:
        source = self.schedule.source
        assert self.source_actor is not None
        reader = SourceReader(source.instance, self.source_actor)  # closed when the actor stops
        runs: dict[int, _RunState] = {}
        lumis: dict[LumiID, _LumiState] = {}
        limit = self.options.events
        dispatched = 0
        try:
            while limit is None or dispatched < limit:
                tr = await reader.next()
                if tr is None:
                    break
                if isinstance(tr, EventTransition):
                    # a plain tuple hashes and compares like the LumiID NamedTuple, cheaper
                    lumi = lumis.get((tr.id.run, tr.id.lumi))  # type: ignore[call-overload]
                    if lumi is None:
                        raise reader.error(f"event {tr.id} outside an open luminosity block")
                    stream = (
                        self.free_streams.popleft()
                        if self.free_streams
                        else await self._free_stream()
                    )
                    self._dispatch(tr, dispatched, lumi, stream)
                    dispatched += 1
                    if self.error is not None:  # an event failed without the loop turning
                        raise self.error
                    if dispatched % 64 == 0:  # events may complete synchronously: let others run
                        await asyncio.sleep(0)
                elif isinstance(tr, BeginLumi):
                    await self._begin_lumi(reader, tr, runs, lumis)
                elif isinstance(tr, EndLumi):
                    self._end_lumi(group, reader, LumiID(tr.run, tr.lumi), runs, lumis)
                elif isinstance(tr, BeginRun):
                    await self._begin_run(reader, tr, runs)
                elif isinstance(tr, EndRun):
                    self._end_run(group, reader, tr.run, runs, lumis)
                else:
                    raise reader.error(f"unknown transition {tr!r}")
        finally:
            await reader.close()
        for lumi_id in list(lumis):
            self._end_lumi(group, reader, lumi_id, runs, lumis)
        self.tails += [group.create_task(self._finish_run(r)) for r in runs.values()]
        for task in self.tails:  # every end_lumi/end_run is done before end_job
            await task

    async def _free_stream(self) -> int:
        """Wait until an event ends and frees its stream; take it."""
        while not self.free_streams:
            waiter = self._stream_waiter = asyncio.get_running_loop().create_future()
            await waiter
        return self.free_streams.popleft()

    def describe_stall(self) -> list[str]:
        """The job's events in flight and their modules (:mod:`.stall`; loop thread)."""
        last = time.perf_counter() - self.last_end if self.last_end else None
        since = f"last {last:.1f} s ago" if last is not None else "none yet"
        lines = [
            f"job of process {self.schedule.process.name!r}: {self.events_done} event(s) "
            f"done ({since}), {len(self.inflight)} in flight on "
            f"{self.options.streams} stream(s)"
        ]
        lines += ["  " + self.inflight[s].describe() for s in sorted(self.inflight)]
        waiting = [f"{ref.name} {ref.queued}" for refs in self.actors for ref in refs if ref.queued]
        lines.append("  mailboxes: " + (", ".join(waiting) if waiting else "all empty"))
        return lines

    def _dispatch(self, tr: EventTransition, index: int, lumi: _LumiState, stream: int) -> None:
        data = EventData(tr.id, index, lumi.ctx)
        fill_products(self.schedule.source, data, tr.products)
        lumi.pending += 1
        if index == 0:
            self.first_start = time.perf_counter()
        run = self.inflight[stream] = EventRun(
            self.rt, data, stream, partial(self._event_done, stream, lumi)
        )
        run.start()

    def _event_done(
        self, stream: int, lumi: _LumiState, run: EventRun, error: BaseException | None
    ) -> None:
        if self.closed:  # a call that ended after the job was torn down
            return
        self.inflight.pop(stream, None)
        self.free_streams.append(stream)
        waiter, self._stream_waiter = self._stream_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if error is not None:
            self._fail(error, f"event {run.data.id} failed")
            return
        lumi.pending -= 1
        if lumi.pending == 0 and lumi.drained is not None and not lumi.drained.done():
            lumi.drained.set_result(None)
        self.events_done += 1
        self.last_end = time.perf_counter()
        if self.progress is not None:
            try:
                self.progress(self.events_done)
            except Exception as exc:  # called from a callback: make the job fail, not hang
                self._fail(exc, "progress callback failed")

    def _fail(self, error: BaseException, what: str) -> None:
        """Fail the job from a callback: a task that raises makes the TaskGroup cancel the rest.

        Only the first error is raised (the group is already stopping after it).
        """
        if self.error is not None:
            return
        self.error = error
        coro = _reraise(error)
        try:
            self.group.create_task(coro, name=what)
        except RuntimeError:  # the group is already stopping for another reason
            coro.close()

    async def _begin_run(
        self, reader: SourceReader, tr: BeginRun, runs: dict[int, _RunState]
    ) -> None:
        if tr.run in runs:
            raise reader.error(f"run {tr.run} begun twice")
        ctx = RunContext(tr.run, (*tr.process_history, self.history_entry))
        runs[tr.run] = _RunState(ctx)
        await self.hooks.run("begin_run", lambda slot: Run(ctx, slot), f"begin_run {tr.run}")

    async def _begin_lumi(
        self,
        reader: SourceReader,
        tr: BeginLumi,
        runs: dict[int, _RunState],
        lumis: dict[LumiID, _LumiState],
    ) -> None:
        lumi_id = LumiID(tr.run, tr.lumi)
        run = runs.get(tr.run)
        if run is None or lumi_id in lumis:
            raise reader.error(f"lumi {lumi_id} begun outside run {tr.run} or twice")
        await self.lumi_slots.acquire()
        ctx = LumiContext(lumi_id, run.ctx)
        state = _LumiState(ctx)
        lumis[lumi_id] = state
        try:
            what = f"begin_lumi {lumi_id}"
            await self.hooks.run("begin_lumi", lambda slot: Lumi(ctx, slot), what)
        except BaseException:
            self.lumi_slots.release()
            raise

    def _end_lumi(
        self,
        group: asyncio.TaskGroup,
        reader: SourceReader,
        lumi_id: LumiID,
        runs: dict[int, _RunState],
        lumis: dict[LumiID, _LumiState],
    ) -> None:
        state = lumis.pop(lumi_id, None)
        if state is None:
            raise reader.error(f"end of lumi {lumi_id}, which is not open")
        task = group.create_task(self._finish_lumi(state), name=f"end_lumi {lumi_id}")
        runs[lumi_id.run].lumi_tasks.append(task)

    async def _finish_lumi(self, state: _LumiState) -> None:
        try:
            while state.pending:
                state.drained = asyncio.get_running_loop().create_future()
                await state.drained
            ctx = state.ctx
            await self.hooks.run("end_lumi", lambda slot: Lumi(ctx, slot), f"end_lumi {ctx.id}")
        finally:
            self.lumi_slots.release()

    def _end_run(
        self,
        group: asyncio.TaskGroup,
        reader: SourceReader,
        run: int,
        runs: dict[int, _RunState],
        lumis: dict[LumiID, _LumiState],
    ) -> None:
        if any(lumi_id.run == run for lumi_id in lumis):
            raise reader.error(f"end of run {run} while one of its lumis is open")
        state = runs.pop(run, None)
        if state is None:
            raise reader.error(f"end of run {run}, which is not open")
        self.tails.append(group.create_task(self._finish_run(state), name=f"end_run {run}"))

    async def _finish_run(self, state: _RunState) -> None:
        for task in state.lumi_tasks:
            await task
        ctx = state.ctx
        await self.hooks.run("end_run", lambda slot: Run(ctx, slot), f"end_run {ctx.number}")


async def _reraise(error: BaseException) -> None:
    raise error


def _shared(instance: Module) -> bool:
    return type(instance).concurrency is Concurrency.SHARED


def _job_name(system: ActorSystem, schedule: Schedule) -> str:
    """``job-<process name>``, with ``-2``, ``-3``... while taken in ``system``."""
    base = f"job-{schedule.process.name}".replace("/", "_")
    taken = set(system.actor_names)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name
