"""actors.launch.start: whole topologies from Python, on a running loop, nothing left behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import actors.launch
from actors import ConfigError, LaunchError, ModuleError
from actors.framework import JobReport

REPO = Path(__file__).resolve().parents[2]
OFFLOAD = REPO / "examples" / "offload" / "topology.toml"

MODS = '''
import os, time
from pathlib import Path
from actors.framework import Analyzer, Concurrency

class Pid(Analyzer):
    """Writes its process id to DIR/<pid>.pid; fails at event `fail_at` (0: never)."""
    concurrency = Concurrency.LEGACY
    def __init__(self, *, dir: str, fail_at: int = 0):
        self.dir, self.fail_at, self.seen = dir, fail_at, 0
    def begin_job(self):
        Path(self.dir, f"{os.getpid()}.pid").write_text("")
    def analyze(self, event):
        self.seen += 1
        if self.seen == self.fail_at:
            raise RuntimeError(f"boom at event {self.seen}")
        time.sleep(0.002)
'''

LOCAL = """
[process]
name = "LOCAL"
[source]
type = "actors.framework.sources.synthetic:SyntheticSource"
lumis_per_run = 0
[modules.offload]
type = "actors.distributed:Controller"
link = "offload"
[modules.pid]
type = "pidmods:Pid"
dir = "{dir}"
[modules.done]
type = "actors.distributed:EventDone"
upstream = "offload"
[paths]
p = ["offload", "pid"]
[end_paths]
e = ["done"]
"""

REMOTE = """
[process]
name = "REMOTE"
[source]
type = "actors.distributed:FollowerSource"
link = "offload"
[modules.pid]
type = "pidmods:Pid"
dir = "{dir}"
fail_at = {fail_at}
[modules.done]
type = "actors.distributed:EventDone"
upstream = "source"
[paths]
p = ["pid"]
[end_paths]
e = ["done"]
"""

TOPOLOGY = """
[run]
transport = "tcp"
[process.local]
config = "local.toml"
[process.remote]
config = "remote.toml"
[[link]]
name = "offload"
client = "local"
server = "remote"
"""


def endless(tmp_path: Path, fail_at: int = 0) -> Path:
    """A two-process topology whose source never ends (unless ``events`` is given)."""
    (tmp_path / "pidmods.py").write_text(MODS)
    (tmp_path / "local.toml").write_text(LOCAL.format(dir=tmp_path))
    (tmp_path / "remote.toml").write_text(REMOTE.format(dir=tmp_path, fail_at=fail_at))
    (tmp_path / "topology.toml").write_text(TOPOLOGY)
    return tmp_path / "topology.toml"


def pids(tmp_path: Path) -> list[int]:
    return [int(p.stem) for p in tmp_path.glob("*.pid")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def until_events(job: actors.launch.Job, n: int) -> None:
    async with asyncio.timeout(60):
        async for progress in job.watch(0.05):
            if min(progress.done.values()) >= n:
                return
    raise AssertionError(f"job ended before {n} events: {job.output}")


async def test_embedded_topology_runs_on_this_loop() -> None:
    async with actors.launch.start(OFFLOAD, events=100, transport="inproc") as job:
        assert job.engine == "embedded" and job.processes == ["local", "remote"]
        result = await job.wait()
    assert {name: r.events for name, r in result.reports.items()} == {"local": 100, "remote": 100}
    assert result.exit_codes == {"local": 0, "remote": 0}
    assert job.progress.done == {"local": 100, "remote": 100} and not job.progress.running


@pytest.mark.parametrize("transport", ["tcp", "shm", pytest.param("mpi", marks=pytest.mark.mpi)])
async def test_subprocesses_report_progress_and_full_reports(transport: str) -> None:
    snapshots = []
    async with actors.launch.start(OFFLOAD, events=300, transport=transport, echo=False) as job:
        assert job.engine != "embedded"
        async for progress in job.watch(0.1):
            snapshots.append(progress)
        result = await job.wait()
    assert snapshots[-1].done == {"local": 300, "remote": 300} and not snapshots[-1].running
    assert {s.total for s in snapshots} == {300}  # known from the start
    assert all(isinstance(r, JobReport) for r in result.reports.values())
    local = result.reports["local"]
    assert local.events == 300 and local.process == "LOCAL"
    assert [p.name for p in local.paths] == ["offload", "done"]  # the full report, from JSON
    assert set(result.exit_codes.values()) == {0}
    assert "[local] offload summary: " in job.output
    assert not job.plan.rundir.exists()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"topology": "no/such/topology.toml"}, "no/such/topology.toml"),
        ({"transport": "pigeon"}, "--transport: unknown transport 'pigeon'"),
        ({"events": 0}, "events: events must be at least 1"),
        ({"events": "ten"}, "events: events must be a whole number"),
        ({"input": "missing.root"}, "input: input file 'missing.root' does not exist"),
        ({"timeout": -1}, "timeout: timeout must be a positive number"),
    ],
)
def test_bad_input_is_a_clear_error_before_anything_starts(
    kwargs: dict[str, object], words: str
) -> None:
    options = {"topology": OFFLOAD, **kwargs}
    topology = options.pop("topology")
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        actors.launch.start(topology, **options)  # type: ignore[arg-type]


async def test_wait_needs_a_started_job() -> None:
    job = actors.launch.start(OFFLOAD, events=10)
    with pytest.raises(Exception, match="async with start"):
        await job.wait()
    await job.__aexit__(None, None, None)  # removes the run directory of the unused plan
    assert not job.plan.rundir.exists()


async def test_leaving_the_block_stops_every_process(tmp_path: Path) -> None:
    async with actors.launch.start(endless(tmp_path), echo=False) as job:
        await until_events(job, 20)
        started = pids(tmp_path)
        assert len(started) == 2 and all(alive(p) for p in started)
    assert not any(alive(p) for p in started)
    with pytest.raises(LaunchError, match="stopped before it ended") as info:
        await job.wait()
    assert info.value.status == 130


async def test_cancelling_the_task_stops_every_process(tmp_path: Path) -> None:
    ready = asyncio.Event()

    async def notebook_cell() -> None:
        async with actors.launch.start(endless(tmp_path), transport="shm", echo=False) as job:
            await until_events(job, 20)
            ready.set()
            await job.wait()

    cell = asyncio.create_task(notebook_cell())
    async with asyncio.timeout(60):
        await ready.wait()
    started = pids(tmp_path)
    assert len(started) == 2
    cell.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cell
    assert not any(alive(p) for p in started)


async def test_failed_process_is_named_with_its_output(tmp_path: Path) -> None:
    async with actors.launch.start(endless(tmp_path, fail_at=5), echo=False) as job:
        with pytest.raises(LaunchError) as info:
            await job.wait()
    error = info.value
    assert "process 'remote' exited with status 1" in str(error)
    assert "boom at event 5" in str(error)  # its last output lines
    assert error.exit_codes["remote"] == 1
    assert not any(alive(p) for p in pids(tmp_path))


async def test_embedded_failure_raises_the_module_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match="boom at event 5"):
        await actors.launch.run(endless(tmp_path, fail_at=5), transport="inproc")


async def test_timeout_stops_everything(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"timed out after 2\.0 s") as info:
        await actors.launch.run(endless(tmp_path), timeout=2.0, echo=False)
    assert info.value.status == 124
    assert not any(alive(p) for p in pids(tmp_path))
