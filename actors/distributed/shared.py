"""A follower process shared by several controllers: one schedule per connection.

Two client jobs offloading to one server may both have run 1, event 1; their
transitions must never be merged into one stream. So a process whose
:class:`~actors.distributed.FollowerSource` serves ``N`` controllers (its
``controllers`` parameter, or ``N`` client processes linked to it in the
topology) runs ``N`` independent schedules of the same configuration, one per
accepted controller connection, each with its own runs, lumis, channel,
products and outputs, all on one shared pool of worker threads (the process's
``threads``; with ``threads = 0`` all of them on the loop's thread).
:func:`run_process <actors.framework.run_process>` starts this runner by
itself (through ``FollowerSource.job_runner``), so
``python -m actors.run``, the launcher and notebooks need nothing special.

How many controllers a follower serves is :func:`controller_count` (the
source's ``controllers``, else the clients of its link). Each schedule gets
its accepted link through :data:`handed_link` and its own link-table object
(:func:`~actors.distributed.endpoints.enter_links`), so channels keyed per
logical process stay apart.

Ending: the runner returns when every schedule ended. A schedule that fails
(its controller disappeared, a module raised) does not stop the others; once
all ended, the first failure is raised with a note naming the connection. A
controller that never connects within ``accept_timeout`` raises
DistributedError after the connected ones finished. Cancelling the runner
cancels every schedule. Loop rules: runs on the process's event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Unpack

from ..errors import ConfigError, DistributedError
from ..framework import JobReport, ModuleTiming, PathReport, Process
from ..framework.job import RunOverrides, shutdown_pool, worker_pool
from ..framework.report import PathModuleCounts
from ..transports import Link, Listener
from .endpoints import LinkTable, current_links, enter_links, listen_named
from .hub import close_channels

__all__ = ["controller_count", "handed_link", "merge_reports", "run_shared"]

RunSchedule = Callable[..., Coroutine[Any, Any, JobReport]]


#: The link of this schedule's controller, accepted by :func:`run_shared` (None: the
#: follower source accepts its one controller itself).
handed_link: contextvars.ContextVar[Link | None] = contextvars.ContextVar(
    "actors_handed_link", default=None
)


def controller_count(link: Any, controllers: Any) -> int:
    """How many controllers a follower on ``link`` serves; ConfigError if invalid.

    ``controllers`` when given, else the number of clients the link table
    gives the server end of ``link`` (1 when the link is not in the table).
    """
    if controllers is not None:
        if not isinstance(controllers, int) or isinstance(controllers, bool) or controllers < 1:
            raise ConfigError(
                f"controllers must be an integer >= 1, not {controllers!r}", key="controllers"
            )
        return controllers
    endpoint = current_links().endpoints.get(link) if isinstance(link, str) else None
    return endpoint.clients if endpoint is not None and endpoint.role == "server" else 1


async def run_shared(
    process: Process, run_schedule: RunSchedule, **overrides: Unpack[RunOverrides]
) -> JobReport:
    """Serve every controller of the follower source's link, one schedule each.

    The ``Source.job_runner`` contract (see :meth:`actors.framework.Source.job_runner`).
    Returns the merged report (:func:`merge_reports`); raises the first
    schedule's error, or DistributedError when a controller never connected.
    """
    assert process.source is not None
    params = process.source.params
    name = str(params["link"])
    count = controller_count(name, params.get("controllers"))
    timeout = float(params.get("accept_timeout", 300.0))
    progress = overrides.pop("progress", None)
    threads = overrides.pop("threads", None)
    threads = process.options.threads if threads is None else threads
    # events, streams, max_concurrent_lumis: each schedule's own; threads: the shared pool's
    options: dict[str, Any] = {**overrides, "threads": threads}
    done = [0] * count
    pool = worker_pool(threads, process.name)
    start = time.perf_counter()
    jobs: list[asyncio.Task[JobReport]] = []

    def spawn(index: int, link: Link) -> None:
        def update(n: int) -> None:
            done[index] = n
            if progress is not None:
                progress(sum(done))

        job = _schedule(run_schedule, process, index, count, name, pool, update, options)
        jobs.append(_start_in_own_scope(job, link, current_links(), f"{name} #{index + 1}"))

    try:
        try:
            accept_error = await _accept_all(name, count, timeout, spawn)
        except BaseException:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            raise
        results = await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        await shutdown_pool(pool)
    return _outcome(process.name, results, accept_error, time.perf_counter() - start)


async def _accept_all(
    name: str, count: int, timeout: float, spawn: Callable[[int, Link], None]
) -> DistributedError | None:
    """Accept ``count`` controllers on link ``name``, spawning a schedule for each.

    Returns (not raises) the error when some controller did not connect in
    time, so that the connected ones can finish first.
    """
    listener: Listener = await listen_named(name)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        for index in range(count):
            try:
                async with asyncio.timeout_at(deadline):
                    link = await listener.accept()
            except TimeoutError:
                return DistributedError(
                    f"follower on link {name!r} ({listener.address}): only {index} of {count} "
                    f"controllers connected within {timeout:.0f} s"
                )
            spawn(index, link)
    finally:
        await listener.close()
    return None


async def _schedule(
    run_schedule: RunSchedule,
    process: Process,
    index: int,
    count: int,
    name: str,
    pool: ThreadPoolExecutor | None,
    progress: Callable[[int], None],
    options: dict[str, Any],
) -> JobReport:
    """One schedule (inside its own context: handed link, own link table)."""
    try:
        report = await run_schedule(process, pool=pool, progress=progress, **options)
    except BaseException as exc:
        if isinstance(exc, Exception):
            exc.add_note(
                f"in the schedule serving controller {index + 1} of {count} on link {name!r}"
            )
        await close_channels()
        raise
    return report


def _start_in_own_scope(
    job: Coroutine[Any, Any, JobReport], link: Link, table: LinkTable, what: str
) -> asyncio.Task[JobReport]:
    context = contextvars.copy_context()
    own = LinkTable(dict(table.endpoints), table.rendezvous)  # own identity: own channels
    context.run(enter_links, own)
    context.run(handed_link.set, link)
    return asyncio.get_running_loop().create_task(
        job, name=f"follower schedule {what}", context=context
    )


def _outcome(
    process: str,
    results: list[JobReport | BaseException],
    accept_error: Exception | None,
    wall: float,
) -> JobReport:
    for result in results:
        if isinstance(result, BaseException):
            raise result
    if accept_error is not None:
        raise accept_error
    reports = [r for r in results if isinstance(r, JobReport)]
    return merge_reports(process, reports, wall)


def merge_reports(process: str, reports: list[JobReport], wall: float) -> JobReport:
    """One report for several schedules of one process.

    Counts and module times add up (paths and modules matched by name);
    ``event_loop_time`` is the longest schedule's, ``wall_time`` is ``wall``,
    ``streams`` the sum (events in flight at once in the process).
    """
    merged = JobReport(process, wall_time=wall)
    if not reports:
        return merged
    merged.threads = reports[0].threads
    merged.streams = 0
    paths: dict[str, PathReport] = {}
    modules: dict[str, ModuleTiming] = {}
    for report in reports:
        merged.events += report.events
        merged.accepted += report.accepted
        merged.streams += report.streams
        merged.event_loop_time = max(merged.event_loop_time, report.event_loop_time)
        for p in report.paths:
            _add_path(paths, p)
        for m in report.modules:
            total = modules.setdefault(m.label, ModuleTiming(m.label, m.type))
            total.calls += m.calls
            total.total += m.total
            total.transition_calls += m.transition_calls
            total.transition_total += m.transition_total
    merged.paths = list(paths.values())
    merged.modules = list(modules.values())
    return merged


def _add_path(paths: dict[str, PathReport], p: PathReport) -> None:
    total = paths.get(p.name)
    if total is None:
        total = paths[p.name] = PathReport(
            p.name, end=p.end, modules=[PathModuleCounts(m.label) for m in p.modules]
        )
    total.visited += p.visited
    total.passed += p.passed
    total.failed += p.failed
    for into, m in zip(total.modules, p.modules, strict=True):
        into.visited += m.visited
        into.passed += m.passed
        into.failed += m.failed
        into.skipped += m.skipped
