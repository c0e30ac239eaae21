"""Running a :class:`~actors.launch.LaunchPlan`: processes, their ends, their stop.

Subprocesses start in their own session so that a whole process tree can be
stopped; when one process fails the others get SIGTERM, then SIGKILL after a
grace period (after giving them ``_SETTLE_S`` to end on their own and
report what they lost), and nothing is left behind on Ctrl-C either. Every
line a process prints goes to :mod:`._console` (echoed with the process's
name, or consumed when it is a progress, report, stall or failover line).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from ..settings import REPORT_FILE
from ._console import LaunchState, handle_line, print_summary, progress_bar
from ._files import MpichSegments, stale_addresses
from ._loss import ABSORB, FAIL, LossPolicy
from ._stall import start_watch
from .plan import LaunchPlan
from .topology import Topology

__all__ = ["run_plan", "supervise"]

_GRACE_S = 5.0
# Longest output line read from a process: the report line carries a whole JobReport.
_LINE_LIMIT = 64 * 1024 * 1024
_SETTLE_S = 2.0


def run_plan(
    plan: LaunchPlan,
    topology: Topology,
    *,
    timeout: float | None = None,
    state: LaunchState | None = None,
    stall_report: float | None = None,
) -> int:
    """Run every process of ``plan``; returns the launcher's exit status.

    ``state``, when given, is filled as processes report and end (reports,
    exit codes), for ``--report-json``.
    """
    if plan.engine == "embedded":
        from ._embedded import run_embedded

        return run_embedded(plan, topology, state=state, timeout=timeout, stall_report=stall_report)
    console = Console(stderr=True)
    state = state if state is not None else LaunchState([p.name for p in plan.processes])
    try:
        return asyncio.run(
            _until_terminated(
                supervise(plan, state, console, timeout, stall_report=stall_report), console
            )
        )
    except KeyboardInterrupt:
        console.print("[red]interrupted: all processes stopped[/red]")
        return 130
    finally:
        print_summary(state, console)


async def _until_terminated(work: Coroutine[Any, Any, int], console: Console) -> int:
    """Await ``work`` (:func:`supervise`); SIGTERM (a batch system's stop, ``timeout``,
    ``kill``) cancels it, which stops every process, and makes the status 143.

    Without this, SIGTERM would end the launcher at once and leave its processes
    (an ``mpiexec`` in a session of its own included) running without it. Off the
    main thread (where no signal handler can be set) SIGTERM keeps its default."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    terminated: list[bool] = []

    def on_sigterm() -> None:
        if not terminated:  # a second SIGTERM must not cut the stop short
            terminated.append(True)
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (RuntimeError, ValueError):  # not the main thread: SIGTERM keeps its default
        return await work
    try:
        return await work
    except asyncio.CancelledError:
        if not terminated:
            raise
        task.uncancel()
        console.print("[red]terminated (SIGTERM): all processes stopped[/red]")
        return 128 + signal.SIGTERM
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def supervise(
    plan: LaunchPlan,
    state: LaunchState,
    console: Console,
    timeout: float | None = None,
    *,
    stall_report: float | None = None,
) -> int:
    """Start the processes of ``plan`` and watch them to the end; returns the exit status.

    ``stall_report``: seconds without a completed event after which every
    process prints a stall report (and once before ``timeout``; :mod:`._stall`).

    Output lines go to ``console`` with their process prefix; progress and
    report lines update ``state``. Runs on the caller's loop (a notebook's
    too). On timeout (status 124), failure of one process, or cancellation of
    the awaiting task, every process still running gets SIGTERM, then SIGKILL
    after a grace period, before this returns or re-raises CancelledError.
    """
    names = ["mpiexec"] if plan.engine == "mpiexec" else [p.name for p in plan.processes]
    children: list[asyncio.subprocess.Process] = []
    segments = MpichSegments() if plan.engine.startswith("mpiexec") else None
    with progress_bar(console) as progress, _watching_segments(segments, children):
        task_id = progress.add_task("events", total=None)
        try:
            for cmd, env in zip(plan.commands, _envs(plan), strict=True):
                children.append(await _spawn(cmd, env))
            watch = _Watch(plan, children, names, state, console, progress, task_id)
            start_watch(children, lambda: sum(state.done.values()), console, stall_report, timeout)
            async with asyncio.timeout(timeout):
                return await watch.run()
        except TimeoutError:
            console.print(f"[red]timeout after {timeout} s: stopping every process[/red]")
            return 124
        finally:
            await _stop_all(children)
            _read_report_files(plan, state)
            if segments is not None:
                _report_removed(segments.clean(), console)


def _read_report_files(plan: LaunchPlan, state: LaunchState) -> None:
    """Reports whose output line did not arrive whole (mpiexec splits long lines) are
    read from the file each process also writes (``ACTORS_REPORT_FILE``)."""
    for proc in plan.processes:
        path = proc.env.get(REPORT_FILE.name)
        if proc.name in state.reports or not path:
            continue
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(Path(path).read_text())
            if isinstance(info, dict):
                state.reports[proc.name] = info


async def _spawn(cmd: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        limit=_LINE_LIMIT,
    )


@contextlib.contextmanager
def _watching_segments(
    segments: MpichSegments | None, children: list[asyncio.subprocess.Process]
) -> Iterator[None]:
    """Note the MPICH segments the job's sessions map while the block runs."""
    if segments is None:
        yield
        return
    task = asyncio.get_running_loop().create_task(
        segments.watch(lambda: {p.pid for p in children}), name="mpich segments"
    )
    try:
        yield
    finally:
        task.cancel()


def _report_removed(removed: list[str], console: Console) -> None:
    if removed:
        console.print(
            f"removed {len(removed)} MPICH segment(s) the job left in /dev/shm: "
            f"{', '.join(removed)}",
            highlight=False,
        )


def _envs(plan: LaunchPlan) -> list[dict[str, str]]:
    base = dict(os.environ)
    base["PYTHONUNBUFFERED"] = "1"
    if plan.engine == "subprocess":
        return [{**base, **proc.env} for proc in plan.processes]
    return [base for _ in plan.commands]


@dataclass
class _Watch:
    """Follows every child to its end; applies the loss policy (see :mod:`._loss`)."""

    plan: LaunchPlan
    children: list[asyncio.subprocess.Process]
    names: list[str]
    state: LaunchState
    console: Console
    progress: Progress
    task_id: Any
    failures: list[int] = field(default_factory=list)
    retired: set[str] = field(default_factory=set)
    _group: asyncio.TaskGroup | None = None  # the tasks of :meth:`run`

    async def run(self) -> int:
        """Wait for every child; the status of the first that failed the job, else 0."""
        policy = LossPolicy(self.plan)
        async with asyncio.TaskGroup() as self._group:
            for index in range(len(self.children)):
                self._group.create_task(self.follow(index, policy))
        return _status(self.failures[0]) if self.failures else 0

    async def follow(self, index: int, policy: LossPolicy) -> None:
        name = self.names[index]
        while True:
            proc = self.children[index]
            assert proc.stdout is not None
            async for raw in proc.stdout:
                handle_line(
                    raw.decode(errors="replace").rstrip("\n"), name, self.state, self.console
                )
                self.progress.update(
                    self.task_id, completed=sum(self.state.done.values()), total=self.state.total
                )
                if name == "mpiexec":
                    self.stop_on_announced_failure()
            code = await proc.wait()
            self.state.exit_codes[name] = code
            self.retire_replacements()
            if code == 0 or self.failures or name in self.retired:
                return
            verdict = FAIL if name == "mpiexec" else policy.decide(name)
            if verdict == FAIL:
                await self.fail(name, code)
                return
            if name in self.state.orphaned:  # not lost on its own: its controller decides
                self.console.print(
                    f"[yellow]process {name!r} failed with exit code {code} "
                    "after losing its controller[/yellow]"
                )
                return
            self.state.lost.setdefault(name, []).append(code)
            if verdict == ABSORB:
                self.console.print(
                    f"[yellow]process {name!r} failed with exit code {code}; its controllers "
                    'go on without it (on_process_loss = "absorb")[/yellow]'
                )
                return
            await self.restart(index, code)

    def stop_on_announced_failure(self) -> None:
        """MPMD: one mpiexec runs every process, so a process's failure shows only
        as its announced exit status (``EXIT_MARK``); the first non-zero one fails
        the job. mpiexec ends the others by itself only for a process that had
        initialised MPI: the others would wait in ``MPI_Init`` for one that failed
        before (a configuration error) for ever."""
        if self.failures or self._group is None:
            return
        failed = next(((n, c) for n, c in self.state.ended.items() if c != 0), None)
        if failed is not None:
            self.failures.append(failed[1])
            self._group.create_task(self._stop_others(*failed))

    async def fail(self, name: str, code: int) -> None:
        self.failures.append(code)
        await self._stop_others(name, code)

    async def _stop_others(self, name: str, code: int) -> None:
        self.console.print(
            f"[red]process {name!r} failed with exit code {code}; stopping the others[/red]"
        )
        await _settle(self.children)
        await _stop_all(self.children)

    async def restart(self, index: int, code: int) -> None:
        proc = self.plan.processes[index]
        count = self.state.restarts[proc.name] = self.state.restarts.get(proc.name, 0) + 1
        self.console.print(
            f"[yellow]process {proc.name!r} failed with exit code {code}; starting a "
            f"replacement ({count} of {proc.spec.restarts})[/yellow]"
        )
        for path in stale_addresses(proc):
            path.unlink(missing_ok=True)
        self.state.done.pop(proc.name, None)
        self.state.awaiting.add(proc.name)
        self.children[index] = await _spawn(self.plan.commands[index], _envs(self.plan)[index])

    def retire_replacements(self) -> None:
        """Stop replacements no controller joined whose controllers have all ended.

        A follower lost at the very end (after it reported its events) is not
        waited for by its controller: its replacement would wait for nobody.
        """
        for index, proc in enumerate(self.plan.processes):
            if proc.name not in self.state.awaiting or proc.name in self.retired:
                continue
            clients = {
                c
                for e in proc.links.endpoints.values()
                if e.role == "server"
                for c in e.peer.split(",")
            }
            if clients and clients <= set(self.state.exit_codes):
                self.retired.add(proc.name)
                self.console.print(
                    f"[yellow]process {proc.name!r}: its controllers ended "
                    "before its replacement joined; stopping it[/yellow]"
                )
                if self.children[index].returncode is None:
                    _signal_group(self.children[index].pid, signal.SIGTERM)


def _status(code: int) -> int:
    return 128 - code if code < 0 else code  # a signal -N becomes 128+N


async def _settle(children: list[asyncio.subprocess.Process]) -> None:
    """Give the others ``_SETTLE_S`` to end on their own after a failure.

    A controller whose follower died (or a follower whose controller died)
    notices at once and reports what it lost (link, peer, events in flight);
    stopping it first would lose that report.
    """
    alive = [asyncio.ensure_future(p.wait()) for p in children if p.returncode is None]
    if alive:
        _done, pending = await asyncio.wait(alive, timeout=_SETTLE_S)
        for waiter in pending:
            waiter.cancel()


async def _stop_all(children: list[asyncio.subprocess.Process]) -> None:
    alive = [p for p in children if p.returncode is None]
    for proc in alive:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_S
    for proc in alive:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), max(deadline - time.monotonic(), 0.01))
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
