"""Failover end to end: ``python -m actors.launch examples/dimuon/failover.toml``.

A follower SIGKILLs itself at a kill point chosen by a seeded RNG and fixed by
progress (its ``at``-th event, first or last on its path; see
``tests/launch/killers.py``), never by a timer. The job must end with status 0
and write exactly the single-process output (every accepted event once, in
input order, bit for bit); the summary names the lost process and the events
resent. Also: restarts (the replacement rejoins and gets events), ``--strict``
and ``on_process_loss = "fail"``, a loss nobody absorbs, a killed controller,
what MPMD mode refuses, a process failing before MPI starts in MPMD mode, Ctrl-C
and SIGTERM, and secrets kept off command lines.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from actors.launch import build_plan
from actors.launch._process import _until_terminated
from actors.launch.topology import load_topology

from ..distributed.launching import DIMUON, REPO, assert_same_output

SEED = 20261203
KILLER = "tests.launch.killers"
SHM = Path("/dev/shm")


def kill_points(count: int, seed: int) -> list[tuple[str, int, str]]:
    """``count`` kill points: (victim follower, its event number, place on its path)."""
    rng = random.Random(seed)
    return [
        (rng.choice(["gpu1", "gpu2"]), rng.randint(1, 220), rng.choice(["first", "last"]))
        for _ in range(count)
    ]


def _insert(text: str, path_line: str, label: str, params: str, position: str) -> str:
    """Add module ``label`` to a configuration, first or last on the path of ``path_line``."""
    text = text.replace("[paths]", f"[modules.{label}]\n{params}\n\n[paths]")
    head, _, rest = text.partition(path_line)
    if position == "first":
        return head + path_line + f'"{label}", ' + rest
    body, _, tail = rest.partition("]")
    return head + path_line + body + f', "{label}"]' + tail


def failover(
    tmp: Path,
    *,
    victim: str = "gpu1",
    at: int | None = None,
    position: str = "first",
    restarts: int = 0,
    followers: tuple[str, ...] = ("gpu1", "gpu2"),
    run: str = "",
    wait_for_replacement: int | None = None,
) -> Path:
    """examples/dimuon/failover.toml in ``tmp``, with a kill point and options; the topology.

    ``victim`` may be a follower or "local" (the controller).
    """
    marker = tmp / "killed"
    (tmp / "modules.py").symlink_to(DIMUON / "modules.py")
    texts = {"local": (DIMUON / "failover_local.toml").read_text()}
    texts.update({f: (DIMUON / f"failover_{f}.toml").read_text() for f in followers})
    texts["local"] = texts["local"].replace(
        'links = ["gpu1", "gpu2"]', f"links = {list(followers)!r}".replace("'", '"')
    )
    if at is not None:
        kill = f'type = "{KILLER}:KillOnce"\nat = {at}\nmarker = "{marker}"'
        path_line = "dimuon = [" if victim == "local" else "mass = ["
        texts[victim] = _insert(texts[victim], path_line, "kill", kill, position)
    if wait_for_replacement is not None:
        wait = (
            f'type = "{KILLER}:AwaitRejoin"\nat = {wait_for_replacement}\n'
            f'channel = "offload"\nlink = "{victim}"'
        )
        texts["local"] = _insert(texts["local"], "dimuon = [", "await", wait, "last")
    for name, text in texts.items():
        (tmp / f"failover_{name}.toml").write_text(text)
    lines = [
        '[run]\ntransport = "tcp"\nmpi_mode = "port-file"\n' + run,
        '[process.local]\nconfig = "failover_local.toml"\nstreams = 4\n',
    ]
    for name in followers:
        lines.append(f'[process.{name}]\nconfig = "failover_{name}.toml"\nrestarts = {restarts}\n')
        lines.append(f'[[link]]\nname = "{name}"\nclient = "local"\nserver = "{name}"\n')
    topology = tmp / "failover.toml"
    topology.write_text("\n".join(lines))
    return topology


def launch(topology: Path, nano: Path, out: Path, *args: str) -> tuple[int, str, float]:
    """Run the launcher; (status, stdout + stderr, seconds from the kill to the end or -1)."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors.launch",
            str(topology),
            "--input",
            str(nano),
            "--output",
            str(out),
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    end = time.time()
    marker = topology.parent / "killed"
    killed = float(marker.read_text()) if marker.is_file() and marker.read_text() else None
    assert_nothing_left(topology.parent)
    return run.returncode, run.stdout + run.stderr, end - killed if killed else -1.0


def assert_nothing_left(tmp: Path) -> None:
    """No process of this run lives on (its configurations are under ``tmp``)."""
    ours = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and str(tmp) in Path(f"/proc/{pid}/cmdline").read_text():
                ours.append(pid)
        except OSError:
            continue
    assert not ours, f"processes left behind: {ours}"


def summary_row(text: str, name: str) -> list[str]:
    """The cells of the launch summary's row for process ``name``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no summary row for {name!r}:\n{text[-3000:]}")


def check_absorbed(status: int, text: str, out: Path, single: Path, victim: str) -> int:
    """Status 0, the reference output, the loss in the summary; returns the events resent."""
    assert status == 0, text[-4000:]
    assert_same_output(out, single)
    assert f"lost the follower on link {victim!r}" in text, text[-4000:]
    found = re.search(r"lost \(exit -?9\), (\d+) event\(s\)", text)  # mpiexec: 9
    assert found, text[-4000:]
    assert summary_row(text, victim)[0] == victim
    return int(found.group(1))


@pytest.mark.parametrize(
    ("transport", "point"),
    [(t, p) for t, seed in (("tcp", SEED), ("shm", SEED + 1)) for p in kill_points(2, seed)],
)
def test_killed_follower_job_completes_exactly_once(
    transport: str, point: tuple[str, int, str], nano: Path, single: Path, tmp_path: Path
) -> None:
    victim, at, position = point
    topology = failover(tmp_path, victim=victim, at=at, position=position)
    out = tmp_path / "out.root"
    status, text, _ = launch(topology, nano, out, "--transport", transport)
    check_absorbed(status, text, out, single, victim)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("transport", "point"),
    [("tcp" if n % 2 else "shm", p) for n, p in enumerate(kill_points(24, SEED + 7))],
)
def test_many_kill_points(
    transport: str, point: tuple[str, int, str], nano: Path, single: Path, tmp_path: Path
) -> None:
    victim, at, position = point
    topology = failover(tmp_path, victim=victim, at=at, position=position)
    out = tmp_path / "out.root"
    status, text, kill_to_end = launch(topology, nano, out, "--transport", transport)
    resent = check_absorbed(status, text, out, single, victim)
    print(
        f"failover {transport} {victim}@{at}/{position}: {resent} resent, "
        f"kill to end {kill_to_end:.2f} s, output identical"
    )


def test_failed_follower_in_process_is_absorbed(nano: Path, single: Path, tmp_path: Path) -> None:
    """inproc (every process in the launcher): a follower whose job fails is left to resend."""
    topology = failover(tmp_path)
    remote = tmp_path / "failover_gpu2.toml"
    fail = f'type = "{KILLER}:FailAt"\nat = 50'
    remote.write_text(_insert(remote.read_text(), "mass = [", "fail", fail, "first"))
    out = tmp_path / "out.root"
    status, text, _ = launch(topology, nano, out, "--transport", "inproc")
    assert status == 0, text[-4000:]
    assert_same_output(out, single)
    assert "process 'gpu2' failed: module 'fail' failed in event" in text, text[-4000:]
    assert "lost the follower on link 'gpu2'" in text, text[-4000:]


@pytest.mark.mpi
def test_killed_follower_over_mpi_port_files(nano: Path, single: Path, tmp_path: Path) -> None:
    before = {p.name for p in SHM.glob("mpich_shm_*")}
    victim, at, position = kill_points(1, SEED + 3)[0]
    topology = failover(tmp_path, victim=victim, at=at, position=position)
    out = tmp_path / "out.root"
    status, text, _ = launch(topology, nano, out, "--transport", "mpi")
    check_absorbed(status, text, out, single, victim)
    left = {p.name for p in SHM.glob("mpich_shm_*")} - before
    mapped = "".join(_maps())
    assert not {n for n in left if f"/dev/shm/{n}" not in mapped}, left


@pytest.mark.mpi
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_of_mpi_job_leaves_no_segment(
    sig: signal.Signals, status: int, nano: Path, tmp_path: Path
) -> None:
    """SIGINT (Ctrl-C) or SIGTERM (a batch system's stop) to the launcher mid-run:
    status 130 or 143, no process and no mpich_shm segment left."""
    before = {p.name for p in SHM.glob("mpich_shm_*")}
    topology = failover(tmp_path)
    signal_file = tmp_path / "running"
    remote = tmp_path / "failover_gpu2.toml"
    # after its 20th event the follower slows down: SIGINT always lands mid-run
    touch = f'type = "{KILLER}:TouchAt"\nat = 20\npath = "{signal_file}"\nthen_sleep = 0.05'
    remote.write_text(_insert(remote.read_text(), "mass = [", "touch", touch, "last"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors.launch",
            str(topology),
            "--transport",
            "mpi",
            "--input",
            str(nano),
            "--output",
            str(tmp_path / "out.root"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not signal_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert signal_file.exists(), "the job made no progress"
        proc.send_signal(sig)
        text = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, text[-4000:]
    assert_nothing_left(tmp_path)
    left = {p.name for p in SHM.glob("mpich_shm_*")} - before
    mapped = "".join(_maps())
    assert not {n for n in left if f"/dev/shm/{n}" not in mapped}, (left, text[-3000:])


@pytest.mark.mpi
def test_mpmd_process_failing_before_mpi_starts_ends_the_job(tmp_path: Path) -> None:
    """One mpiexec for all: a process that fails before it initialises MPI (here its
    input file is missing) would leave the other waiting in MPI_Init for ever; the
    launcher learns the failure from its last line and ends the job with its status."""
    before = {p.name for p in SHM.glob("mpich_shm_*")}
    for name in ("offload.toml", "offload_local.toml", "offload_remote.toml"):
        (tmp_path / name).write_text((DIMUON / name).read_text())
    (tmp_path / "modules.py").symlink_to(DIMUON / "modules.py")
    start = time.monotonic()
    run = subprocess.run(
        [
            *(sys.executable, "-m", "actors.launch", str(tmp_path / "offload.toml")),
            *("--transport", "mpi", "--timeout", "80"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    text = run.stdout + run.stderr
    assert run.returncode == 2, text[-4000:]  # the failed process's status, not the timeout's
    assert "offload_local.toml:12: source: input file not found: nano.root" in text, text[-4000:]
    assert "process 'local' failed with exit code 2; stopping the others" in text, text[-4000:]
    assert time.monotonic() - start < 60, text[-4000:]
    assert_nothing_left(tmp_path)
    left = {p.name for p in SHM.glob("mpich_shm_*")} - before
    mapped = "".join(_maps())
    assert not {n for n in left if f"/dev/shm/{n}" not in mapped}, (left, text[-3000:])


def test_sigterm_guard_off_the_main_thread_just_runs_the_work() -> None:
    """No signal handler can be set off the main thread: the launcher's work runs as is."""

    async def work() -> int:
        return 7

    results: list[int] = []
    console = Console(file=io.StringIO())
    thread = threading.Thread(
        target=lambda: results.append(asyncio.run(_until_terminated(work(), console)))
    )
    thread.start()
    thread.join(10)
    assert results == [7]


def _maps() -> list[str]:
    out = []
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            out.append(maps.read_text())
        except OSError:
            continue
    return out


def test_restarted_follower_rejoins_and_gets_events(
    nano: Path, single: Path, tmp_path: Path
) -> None:
    topology = failover(tmp_path, victim="gpu1", at=20, restarts=1, wait_for_replacement=120)
    out = tmp_path / "out.root"
    status, text, _ = launch(topology, nano, out)
    check_absorbed(status, text, out, single, "gpu1")
    assert "starting a replacement (1 of 1)" in text, text[-4000:]
    assert "the replacement follower on link 'gpu1'" in text and "joined" in text, text[-4000:]
    row = summary_row(text, "gpu1")
    assert row[1] == "0" and int(row[2]) > 0, row  # the replacement ended well, with events
    assert "restarted 1x" in text, text[-4000:]


@pytest.mark.parametrize("transport", ["shm"])
def test_lone_follower_restarted_gets_its_events_back(
    transport: str, nano: Path, single: Path, tmp_path: Path
) -> None:
    """No survivor: the events in flight (and new ones) wait for the replacement."""
    topology = failover(tmp_path, victim="gpu1", at=30, restarts=1, followers=("gpu1",))
    out = tmp_path / "out.root"
    status, text, _ = launch(topology, nano, out, "--transport", transport)
    check_absorbed(status, text, out, single, "gpu1")
    assert "go again to its replacement" in text, text[-4000:]
    assert int(summary_row(text, "gpu1")[2]) > 400  # the replacement did most of the job


def test_follower_killed_at_its_end_job_with_restarts(
    nano: Path, single: Path, tmp_path: Path
) -> None:
    """Lost when every event is done: its replacement ends at once (rejoined or stopped)."""
    topology = failover(tmp_path, victim="gpu2", at=0, restarts=1)
    out = tmp_path / "out.root"
    status, text, kill_to_end = launch(topology, nano, out)
    assert status == 0, text[-4000:]
    assert_same_output(out, single)
    assert "starting a replacement (1 of 1)" in text, text[-4000:]
    assert kill_to_end > 0


@pytest.mark.parametrize("restarts", [1, 0])
def test_follower_killed_before_joining(
    restarts: int, nano: Path, single: Path, tmp_path: Path
) -> None:
    """Killed in begin_job: its replacement joins at the start, or the job goes on without it."""
    topology = failover(tmp_path, victim="gpu1", at=-1, restarts=restarts)
    local = tmp_path / "failover_local.toml"
    local.write_text(
        local.read_text().replace(
            'on_follower_loss = "resend"', 'on_follower_loss = "resend"\nconnect_timeout = 10'
        )
    )
    out = tmp_path / "out.root"
    status, text, _ = launch(topology, nano, out)
    assert status == 0, text[-4000:]
    assert_same_output(out, single)
    row = summary_row(text, "gpu1")
    if restarts:
        assert row[1] == "0" and int(row[2]) > 0, row
    else:
        # killed before or after its handshake, as module and source begin_job interleave
        assert (
            "the follower on link 'gpu1' did not join at the start" in text
            or "lost the follower on link 'gpu1'" in text
        ), text[-4000:]
        assert summary_row(text, "gpu2")[2] == "500", text[-4000:]


@pytest.mark.parametrize("how", ["--strict", "topology"])
def test_strict_keeps_fail_fast(how: str, nano: Path, tmp_path: Path) -> None:
    run = 'on_process_loss = "fail"\n' if how == "topology" else ""
    topology = failover(tmp_path, victim="gpu2", at=30, restarts=1, run=run)
    args = ["--strict"] if how == "--strict" else []
    status, text, _ = launch(topology, nano, tmp_path / "out.root", *args)
    assert status == 128 + 9, text[-4000:]
    assert "process 'gpu2' failed with exit code -9; stopping the others" in text, text[-4000:]
    assert "replacement" not in text


def test_loss_without_survivor_fails_naming_it(nano: Path, tmp_path: Path) -> None:
    topology = failover(tmp_path, victim="gpu1", at=30, followers=("gpu1",))
    status, text, kill_to_end = launch(topology, nano, tmp_path / "out.root")
    assert status != 0, text[-4000:]
    assert "lost the follower on link 'gpu1' (peer process 'DIMUONREMOTE' (gpu1)" in text
    assert "process 'local' failed with exit code 1" in text, text[-4000:]
    assert kill_to_end > 0


def test_killed_controller_stops_every_follower(nano: Path, tmp_path: Path) -> None:
    topology = failover(tmp_path, victim="local", at=100)
    status, text, _ = launch(topology, nano, tmp_path / "out.root")
    assert status == 128 + 9, text[-4000:]
    for follower in ("gpu1", "gpu2"):
        # exit 1 on its own, naming the controller, within the 2 s before the launcher's SIGTERM
        assert summary_row(text, follower)[1] == "1", text[-4000:]
        assert re.search(
            rf"\[{follower}\] error: .*the controller 'DIMUON' on link "
            rf"'{follower}'.* disappeared",
            text,
        ), text[-4000:]


@pytest.mark.parametrize("at", [0, 60])
def test_failed_controller_restarts_no_follower(at: int, nano: Path, tmp_path: Path) -> None:
    """Followers that end because their controller failed are neither restarted nor absorbed."""
    topology = failover(tmp_path, restarts=1)
    local = tmp_path / "failover_local.toml"
    fail = f'type = "{KILLER}:FailAt"\nat = {at}'
    local.write_text(_insert(local.read_text(), "dimuon = [", "fail", fail, "first"))
    status, text, _ = launch(topology, nano, tmp_path / "out.root")
    assert status == 1, text[-4000:]
    assert "process 'local' failed with exit code 1" in text, text[-4000:]
    assert "replacement" not in text and "lost (exit" not in text, text[-4000:]


def test_mpmd_refuses_resend_and_names_the_mode(tmp_path: Path) -> None:
    topology = failover(tmp_path)
    text = topology.read_text().replace('mpi_mode = "port-file"', 'mpi_mode = "mpmd"')
    topology.write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "actors.launch", str(topology), "--transport", "mpi", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "modules.offload.on_follower_loss" in run.stderr
    assert 'mpi_mode = "port-file"' in run.stderr, run.stderr


def test_restarts_only_for_followers(tmp_path: Path) -> None:
    topology = failover(tmp_path)
    text = topology.read_text().replace("streams = 4\n", "streams = 4\nrestarts = 2\n")
    topology.write_text(text)
    with pytest.raises(
        Exception,
        match=r"failover.toml:\d+: process.local.restarts: only a "
        "follower",
    ):
        build_plan(load_topology(topology), tmp_path / "run")


@pytest.mark.mpi
def test_secrets_stay_off_command_lines(tmp_path: Path) -> None:
    """mpiexec engines: the link table goes by a 0600 file; --dry-run shows no secret."""
    topology = failover(tmp_path)
    text = topology.read_text().replace('transport = "tcp"', 'transport = "mpi"')
    text += '\n[[link]]\nname = "side"\nclient = "gpu2"\nserver = "gpu1"\ntransport = "tcp"\n'
    topology.write_text(text)
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    plan = build_plan(load_topology(topology), rundir)
    secret = next(p.links.endpoints["side"].secret for p in plan.processes if p.name == "gpu1")
    assert secret
    commands = " ".join(" ".join(cmd) for cmd in plan.commands)
    assert secret not in commands and secret not in plan.describe()
    for proc in plan.processes:
        links = rundir / f"{proc.name}.links.json"
        assert stat.S_IMODE(links.stat().st_mode) == 0o600
        assert str(links) in commands
    assert secret in (rundir / "gpu1.links.json").read_text()
