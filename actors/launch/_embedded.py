"""Run every process of a topology inside this Python process (``inproc://`` links).

Each logical process gets its own framework job on the one event loop, with its
own link table (a context variable, see :func:`actors.distributed.endpoints.use_links`),
its own worker threads and its own reports. This is also how a notebook runs
a topology. If one job fails, the others are cancelled and the launcher exits
non-zero after printing which process failed and why - unless it is a follower
whose controllers resend (``on_follower_loss = "resend"``, ``[run]
on_process_loss = "absorb"``): then its links are closed, its controllers
resend its events to a survivor, and the others go on (see ``docs/topology.md``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console

from .._cli import PROCESS_NAME, report_error
from ..distributed.endpoints import use_links
from ..errors import ActorsError
from ..framework import stall
from ._configs import config_roles, load_process_for
from ._loss import LossPolicy
from ._stall import watch_progress
from .plan import LaunchPlan, ProcessLaunch
from .topology import Topology

if TYPE_CHECKING:
    from ._console import LaunchState

__all__ = ["run_embedded", "run_topology_async"]


def run_embedded(
    plan: LaunchPlan,
    topology: Topology,
    state: LaunchState | None = None,
    *,
    timeout: float | None = None,
    stall_report: float | None = None,
) -> int:
    """Blocking entry point used by the launcher; returns the exit status.

    Errors are reported like every command line's (:func:`actors._cli.report_error`):
    2 for a configuration error or a missing extra, 1 for a failed job, 130 on
    Ctrl-C, 124 when ``timeout`` seconds pass first (every job cancelled).
    When no event completes for ``stall_report`` seconds (None: never), and
    shortly before ``timeout``, the stall report of every job goes to stderr.
    ``state``, when given, receives each process's report and exit code.
    """
    console = Console(stderr=True)
    try:
        done = state.done if state is not None else {}
        reports = asyncio.run(_run_watched(plan, topology, console, timeout, stall_report, done))
    except (ActorsError, KeyboardInterrupt) as exc:
        return _failed(plan, state, report_error(exc))
    if reports is None:
        console.print(f"[red]timeout after {timeout} s: stopping every process[/red]")
        return _failed(plan, state, 124)
    for name, (report, wall) in reports.items():
        Console(file=sys.stdout).rule(f"[bold]{name}[/bold]  ({wall:.2f} s)")
        report.print()
        if state is not None:
            info = {"events": report.events, "wall_s": wall, "report": report.to_dict()}
            state.reports[name] = info
            state.exit_codes[name] = 0
    return 0


def _failed(plan: LaunchPlan, state: LaunchState | None, status: int) -> int:
    if state is not None:
        state.exit_codes.update({p.name: status for p in plan.processes})
    return status


async def _run_watched(
    plan: LaunchPlan,
    topology: Topology,
    console: Console,
    timeout: float | None,
    stall_s: float | None,
    done: dict[str, int],
) -> dict[str, tuple[Any, float]] | None:
    """:func:`run_topology_async`'s result, or None when ``timeout`` passed first
    (its jobs cancelled); their stall report printed as :func:`run_embedded` says.
    ``done`` gets each process's events done while a stall can be reported
    (no call per event otherwise)."""

    def progress(name: str, events: int) -> None:
        done[name] = events

    def ask(why: str) -> None:
        console.print(f"[yellow]{why}: stall report of every process (embedded)[/yellow]")
        stall.emit()

    watch = None
    if stall_s is not None:  # else the watch would never report: no watch, no progress calls
        watch = asyncio.create_task(
            watch_progress(lambda: True, lambda: sum(done.values()), ask, stall_s, timeout),
            name="stall report watch",
        )
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await run_topology_async(plan, topology, progress if watch else None)
    except TimeoutError:
        if deadline.expired():
            return None
        raise
    finally:
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)


async def run_topology_async(
    plan: LaunchPlan,
    topology: Topology,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, tuple[Any, float]]:
    """Run all processes of ``plan`` concurrently on the running loop.

    Returns ``{process name: (JobReport, wall seconds)}``. Raises the first
    failure (ModuleError, ConfigError, PeerLost ...), naming the process.
    ``progress(process name, events done)`` is called on the loop after each
    event of each process.
    """
    results: dict[str, tuple[Any, float]] = {}
    policy = LossPolicy(plan)

    async def one(proc: ProcessLaunch) -> None:
        PROCESS_NAME.set(proc.name)  # this task's context: its log records get [name]
        start = time.perf_counter()
        try:
            try:
                report = await _run_one(proc, topology, progress)
            except ActorsError as exc:
                exc.add_note(f"in process {proc.name!r} ({proc.spec.config})")
                raise
            except Exception as exc:
                raise ActorsError(
                    f"process {proc.name!r} failed: {exc!r}\n{traceback.format_exc()}"
                ) from exc
        except ActorsError as exc:
            if not policy.absorbs(proc.name):
                raise
            await _absorb(proc, exc)
            return
        results[proc.name] = (report, time.perf_counter() - start)

    try:
        async with asyncio.TaskGroup() as group:
            for proc in plan.processes:
                with use_links(proc.links):
                    context = contextvars.copy_context()
                group.create_task(one(proc), context=context)
    except BaseExceptionGroup as group_error:
        first = group_error.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from first.__cause__  # keeps a ModuleError's cause, drops the group
    return results


async def _absorb(proc: ProcessLaunch, exc: ActorsError) -> None:
    """A follower failed and its controllers resend: close its links and let the rest go on."""
    from ..distributed import close_channels

    print(
        f"process {proc.name!r} failed: {exc}; its controllers go on without it "
        '(on_process_loss = "absorb")',
        file=sys.stderr,
        flush=True,
    )
    await close_channels()  # its controllers see the loss at once


async def _run_one(
    proc: ProcessLaunch, topology: Topology, progress: Callable[[str, int], None] | None
) -> Any:
    from ..framework import run_process

    process = load_process_for(proc.spec.config, topology, config_roles(proc.spec.config))
    return await run_process(
        process,
        threads=proc.spec.threads,
        streams=proc.spec.streams,
        progress=None if progress is None else functools.partial(progress, proc.name),
    )
