"""Running a process: ``run_process`` (async, inside a running loop) and ``run`` (blocking).

These entry points merge the per-call overrides into the process options,
build the schedule (:func:`~actors.framework.graph.build`, ConfigError before
any event), give a source class the chance to take the job over
(:meth:`Source.job_runner <actors.framework.source.Source.job_runner>`), and
hand the schedule to the driver (:mod:`actors.framework.driver`), which reads
the transitions and keeps events and lumis in flight. The worker threads are
joined before these return or raise.

A job runs as actors of the process's :class:`~actors.ActorSystem`: the one
already running on the loop (``ActorSystem.running()``, e.g. the system a
notebook or a program opened), else one made for the job (not shared with
other jobs on the loop) and shut down at its end. Each schedule is a
``job-<process name>`` actor whose children are the source and module
actors, named by label (see :mod:`actors.framework.workers`).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict, Unpack

from ..core.system import ActorSystem
from ..errors import ConfigError
from ..transports import receive_polls_off
from .driver import drive
from .graph import build
from .loader import load_class
from .process import Process
from .report import JobReport
from .source import Source

__all__ = ["RunOverrides", "run", "run_process", "shutdown_pool", "worker_pool"]

#: The system of the job being run in this context (set by run_process).
_job_system: contextvars.ContextVar[ActorSystem | None] = contextvars.ContextVar(
    "actors_job_system", default=None
)


class RunOverrides(TypedDict, total=False):
    """Per-call overrides of the process options (``None`` keeps the process's value).

    The keyword arguments of :func:`run_process`, passed on unchanged to a
    source's job runner and to each ``run_schedule`` call it makes.
    """

    events: int | None
    threads: int | None
    streams: int | None
    max_concurrent_lumis: int | None
    progress: Callable[[int], None] | None


async def run_process(
    process: Process,
    *,
    events: int | None = None,
    threads: int | None = None,
    streams: int | None = None,
    max_concurrent_lumis: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> JobReport:
    """Run ``process`` inside the running event loop and return its report.

    Keyword arguments override the process options (``None`` keeps them).
    Raises ConfigError before any event for configuration problems and
    ModuleError (label, transition, traceback) when a module raises; in-flight
    events are cancelled and the worker threads joined before it raises.
    ``progress(events_done)`` is called on the loop after each event.

    A source class may take the job over (:meth:`Source.job_runner`, e.g. a
    follower serving several controllers with one schedule each); the runner
    gets :func:`_run_schedule` to run each schedule.
    """
    overrides = RunOverrides(
        events=events, threads=threads, streams=streams,
        max_concurrent_lumis=max_concurrent_lumis, progress=progress,
    )  # fmt: skip
    system = ActorSystem.running()
    if system is not None:
        return await _run_job(process, overrides, system)
    async with ActorSystem(f"actors-{process.name}", shared=False) as system:
        return await _run_job(process, overrides, system)


async def _run_job(process: Process, overrides: RunOverrides, system: ActorSystem) -> JobReport:
    token = _job_system.set(system)
    try:
        return await _run_runner(process, overrides)
    finally:
        _job_system.reset(token)


async def _run_runner(process: Process, overrides: RunOverrides) -> JobReport:
    runner = _job_runner(process)
    if runner is not None:
        report: JobReport = await runner(process, _run_schedule, **overrides)
        return report
    return await _run_schedule(process, **overrides)


def _job_runner(process: Process) -> Any:
    """The source class's job runner, or None (load errors are left to ``build``)."""
    if process.source is None:
        return None
    try:
        cls = load_class(process.source.type, process.base_dir, Source, "source.type")
    except ConfigError:
        return None
    return cls.job_runner(process.source.params)


async def _run_schedule(
    process: Process,
    *,
    pool: ThreadPoolExecutor | None = None,
    **overrides: Unpack[RunOverrides],
) -> JobReport:
    """One schedule of ``process`` (run_process without the runner hook).

    With ``threads = 0`` the module code runs on the loop (``pool`` unused);
    else with ``pool`` on that executor (shared with other schedules; the
    caller shuts it down), otherwise on a pool of ``threads``.
    """
    progress = overrides.pop("progress", None)
    changes: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    options = dataclasses.replace(process.options, **changes)
    options.validate()
    schedule = build(process, options)
    system = _job_system.get() or ActorSystem.running()
    if system is None:  # called directly, not through run_process
        async with ActorSystem(f"actors-{process.name}", shared=False) as system:
            return await _drive(schedule, pool, progress, system)
    return await _drive(schedule, pool, progress, system)


async def _drive(
    schedule: Any,
    pool: ThreadPoolExecutor | None,
    progress: Callable[[int], None] | None,
    system: ActorSystem,
) -> JobReport:
    if schedule.options.threads == 0:  # module code on this loop: receives must not poll
        with receive_polls_off():
            return await drive(schedule, None, progress, system)
    if pool is not None:
        return await drive(schedule, pool, progress, system)
    pool = worker_pool(schedule.options.threads, schedule.process.name)
    try:
        return await drive(schedule, pool, progress, system)
    finally:
        await shutdown_pool(pool)


def worker_pool(threads: int, process_name: str) -> ThreadPoolExecutor | None:
    """The worker threads of a process's module code; None for ``threads = 0``
    (the code then runs on the event loop's thread)."""
    if threads == 0:
        return None
    return ThreadPoolExecutor(threads, thread_name_prefix=f"actors-{process_name}")


async def shutdown_pool(pool: ThreadPoolExecutor | None) -> None:
    """Cancel the work ``pool`` has not started and join its threads without
    blocking the loop (nothing for None)."""
    if pool is None:
        return
    pool.shutdown(wait=False, cancel_futures=True)
    await asyncio.to_thread(pool.shutdown, True)


def run(process: Process, **kwargs: Any) -> JobReport:
    """Blocking form of :func:`run_process` (starts its own event loop)."""
    return asyncio.run(run_process(process, **kwargs))
