"""Start a whole topology from Python: a script, a test or a notebook.

What ``python -m actors.launch`` does, for code that already runs in an event
loop (Jupyter's included)::

    import actors.launch

    async with actors.launch.start("topology.toml", events=1000, transport="shm") as job:
        async for progress in job.watch():
            print(progress)                      # events done per process / total
        result = await job.wait()                # LaunchResult, or LaunchError
    result.reports["local"].print()              # trigger and timing tables

Contracts:

* :func:`start` reads and validates the topology and works out the launch plan
  (:func:`~actors.launch.cli.build_plan`, the launcher's own) at once: bad
  input raises :class:`~actors.errors.ConfigError` naming the file or option
  before anything starts. Nothing runs until the ``async with`` is entered.
* Entering starts every process with the launcher's engines: subprocesses or
  ``mpiexec`` (:func:`~actors.launch._process.supervise`) for tcp/shm/mpi/ucx,
  every process on this loop (:func:`~actors.launch._embedded.run_topology_async`)
  for ``inproc``. Output lines of subprocesses are echoed with their process
  prefix (``echo=False`` keeps them only in :attr:`Job.output`); embedded
  processes print straight to this process's stdout.
* Leaving the ``async with`` (normally, on an exception or on cancellation)
  stops every process still running - SIGTERM, then SIGKILL after a grace
  period, or cancellation of the embedded jobs - and removes the run
  directory. :meth:`Job.stop` does the same earlier. No process outlives it.
* :meth:`Job.wait` returns a :class:`LaunchResult` when every process
  succeeded; otherwise it raises :class:`~actors.errors.LaunchError` naming
  the processes that failed and their last output lines (timeout: status
  124), or, for embedded processes, the error itself (ModuleError, PeerLost...).
* Every method is called from the event loop that entered the job; none blocks it.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console

from ..errors import ActorsError, ConfigError, LaunchError
from ..framework.report import JobReport
from ._console import LaunchState
from ._embedded import run_topology_async
from ._process import supervise
from .plan import LaunchPlan, build_plan
from .topology import Topology, load_topology

__all__ = ["Job", "LaunchResult", "Progress", "run", "start"]

_TAIL_LINES = 20


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running job: events done per process, the source's total."""

    done: dict[str, int]
    total: int | None
    running: bool

    def __str__(self) -> str:
        counts = ", ".join(f"{name} {done}" for name, done in self.done.items()) or "starting"
        of = f" / {self.total}" if self.total is not None else ""
        return f"{counts}{of} events" + ("" if self.running else " (ended)")


@dataclass(frozen=True)
class LaunchResult:
    """What a successful job reports: one JobReport per process, exit codes, wall time.

    A subprocess's report is read from the JSON its ``actors.run`` wrote in the
    run directory; for a process on another host without a shared run
    directory only its event count and wall time are known.
    """

    engine: str
    reports: dict[str, JobReport]
    exit_codes: dict[str, int]
    wall_s: float

    def print(self, console: Any = None) -> None:
        """Each process's trigger and timing tables (``console``: a rich Console)."""
        console = console or Console()
        for name, report in self.reports.items():
            console.rule(f"[bold]{name}[/bold]  ({report.wall_time:.2f} s)")
            report.print(console)


def start(
    topology: str | Path | Topology,
    *,
    events: int | None = None,
    input: str | Path | None = None,
    output: str | Path | None = None,
    transport: str | None = None,
    timeout: float | None = None,
    echo: bool = True,
) -> Job:
    """A :class:`Job` for ``topology`` (a file or a loaded Topology, not modified).

    ``events``, ``input``, ``output`` and ``transport`` override the topology
    like the launcher's options; ``timeout`` (seconds) stops every process and
    makes :meth:`Job.wait` raise LaunchError with status 124. Raises
    ConfigError for a missing or invalid topology, a bad option value, an
    input file that does not exist or a transport this topology cannot use.
    """
    _check_options(events, input, timeout)
    topo = copy.deepcopy(topology) if isinstance(topology, Topology) else load_topology(topology)
    topo.override(
        events=events,
        input=None if input is None else str(input),
        output=None if output is None else str(output),
        transport=transport,
    )
    rundir = Path(tempfile.mkdtemp(prefix="hep-actors-api-"))
    try:
        for name, spec in topo.processes.items():
            spec.args = [*spec.args, "--quiet", "--report-json", str(_report_file(rundir, name))]
        plan = build_plan(topo, rundir)
    except BaseException:
        shutil.rmtree(rundir, ignore_errors=True)
        raise
    return Job(topo, plan, timeout=timeout, echo=echo)


async def run(topology: str | Path | Topology, **options: Any) -> LaunchResult:
    """Start ``topology`` (options as :func:`start`), wait for the end, return the result."""
    async with start(topology, **options) as job:
        return await job.wait()


def _check_options(events: Any, input: Any, timeout: Any) -> None:
    if events is not None and (isinstance(events, bool) or not isinstance(events, int)):
        raise ConfigError(f"events must be a whole number, not {events!r}", key="events")
    if events is not None and events < 1:
        raise ConfigError(f"events must be at least 1, not {events}", key="events")
    if input is not None and not Path(input).is_file():
        raise ConfigError(f"input file {str(input)!r} does not exist", key="input")
    if timeout is not None and not timeout > 0:
        raise ConfigError(
            f"timeout must be a positive number of seconds, not {timeout!r}", key="timeout"
        )


def _report_file(rundir: Path, name: str) -> Path:
    return rundir / f"{name}.report.json"


class Job:
    """A topology started by :func:`start`; use it as ``async with start(...) as job``."""

    def __init__(
        self, topology: Topology, plan: LaunchPlan, *, timeout: float | None, echo: bool
    ) -> None:
        self.topology = topology
        self.plan = plan
        self._timeout = timeout
        self._console = Console(record=True) if echo else Console(record=True, file=io.StringIO())
        self._state = LaunchState([p.name for p in plan.processes])
        self._state.total = topology.run.events  # until the source says otherwise
        self._reports: dict[str, JobReport] = {}
        self._task: asyncio.Task[int] | None = None
        self._wall = 0.0

    @property
    def engine(self) -> str:
        """``embedded``, ``subprocess``, ``mpiexec`` or ``mpiexec-per-process``."""
        return self.plan.engine

    @property
    def processes(self) -> list[str]:
        return [p.name for p in self.plan.processes]

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def progress(self) -> Progress:
        """The latest snapshot (updated several times a second while running)."""
        done = {name: self._state.done.get(name, 0) for name in self.processes}
        return Progress(done, self._state.total, self.running)

    @property
    def output(self) -> str:
        """Every output line of the subprocesses so far, each prefixed with its process."""
        return self._console.export_text(clear=False)

    async def __aenter__(self) -> Job:
        if self._task is not None:
            raise ActorsError("this job was already started; call start() again for a new one")
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"launch {self.topology.path.name}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stop()
        finally:
            shutil.rmtree(self.plan.rundir, ignore_errors=True)
            if self._task is not None and self._task.done() and not self._task.cancelled():
                self._task.exception()  # retrieved: wait() is where it is raised

    async def watch(self, interval: float = 0.5) -> AsyncIterator[Progress]:
        """Yield a :class:`Progress` every ``interval`` seconds, and a last one at the end."""
        task = self._started()
        while not task.done():
            yield self.progress
            await asyncio.wait({task}, timeout=interval)
        yield self.progress

    async def wait(self, timeout: float | None = None) -> LaunchResult:
        """Wait for every process to end; see the module docstring for what it raises.

        ``timeout`` bounds this wait only (TimeoutError; the job keeps running).
        """
        task = self._started()
        async with asyncio.timeout(timeout):
            await asyncio.wait({task})
        return self._result(task)

    async def stop(self) -> None:
        """Stop every process still running and wait until they are gone."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def _started(self) -> asyncio.Task[int]:
        if self._task is None:
            raise ActorsError("the job has not started: use 'async with start(...) as job'")
        return self._task

    async def _run(self) -> int:
        started = time.perf_counter()
        try:
            if self.plan.engine == "embedded":
                return await self._run_embedded()
            status = await supervise(self.plan, self._state, self._console, self._timeout)
            self._read_reports()
            return status
        finally:
            self._wall = time.perf_counter() - started

    async def _run_embedded(self) -> int:
        def progress(name: str, done: int) -> None:
            self._state.done[name] = done

        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                results = await run_topology_async(self.plan, self.topology, progress)
        except TimeoutError:
            if deadline.expired():
                return 124
            raise
        for name, (report, _wall) in results.items():
            self._reports[name] = report
            self._state.exit_codes[name] = 0
        return 0

    def _read_reports(self) -> None:
        for name in self.processes:
            path = _report_file(self.plan.rundir, name)
            if path.is_file():
                self._reports[name] = JobReport.from_dict(json.loads(path.read_text()))
                self._state.done[name] = self._reports[name].events  # progress lines are sampled
            elif name in self._state.reports:
                summary = self._state.reports[name]
                self._reports[name] = JobReport(
                    name, events=int(summary.get("events", 0)),
                    wall_time=float(summary.get("wall_s", 0.0)),
                )  # fmt: skip

    def _result(self, task: asyncio.Task[int]) -> LaunchResult:
        known = self._state.exit_codes  # in the order processes ended: show the topology's
        codes = {name: known[name] for name in [*self.processes, *known] if name in known}
        if task.cancelled():
            raise LaunchError("the job was stopped before it ended", status=130, exit_codes=codes)
        error = task.exception()
        if error is not None:
            raise error
        status = task.result()
        if status == 124:
            raise LaunchError(
                f"{self.topology.path}: timed out after {self._timeout} s; every process "
                "was stopped", status=status, exit_codes=codes,
            )  # fmt: skip
        if status != 0:
            raise LaunchError(self._failure_text(codes), status=status, exit_codes=codes)
        return LaunchResult(self.plan.engine, dict(self._reports), codes, self._wall)

    def _failure_text(self, codes: dict[str, int]) -> str:
        failed = {name: code for name, code in codes.items() if code != 0}
        lines = [f"{self.topology.path}: " + ", ".join(
            f"process {name!r} exited with status {code}" for name, code in failed.items()
        )]  # fmt: skip
        output = self.output.splitlines()
        for name in failed:
            mine = [line for line in output if line.startswith(f"[{name}] ")]
            source = mine or output
            if source:
                lines.append(f"last output of {name!r}:")
                lines += ["  " + line for line in source[-_TAIL_LINES:]]
        return "\n".join(lines)
