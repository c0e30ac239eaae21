"""Unit tests of the benchmark plumbing: statistics, ratios, targets, process cleanup."""

from __future__ import annotations

import itertools
import json
import os
import sys
import time

import pytest

from benchmarks.candidates import CANDIDATES, Candidate, build_launch, unavailable
from benchmarks.figures import add_ratios, derive, evaluate_targets
from benchmarks.harness import Launch, mpiexec, run_launch
from benchmarks.parts import Context
from benchmarks.pingpong import QUICK, SIZES, Budget, summarize

MiB = 1 << 20


def test_sizes_span_8_bytes_to_64_mib_in_powers_of_4() -> None:
    assert SIZES[0] == 8 and SIZES[-1] == 64 * MiB
    assert all(b == 4 * a for a, b in itertools.pairwise(SIZES[1:]))
    assert 16 * MiB in SIZES


def test_summarize() -> None:
    s = summarize([1000 * i for i in range(1, 101)])  # 1..100 us
    assert s["min"] == 1 and s["median"] == 50.5 and s["p99"] == 99 and s["n"] == 100
    assert s["mean"] == 50.5 and s["stdev"] > 0
    assert summarize([5000])["stdev"] == 0.0


def test_budget_gives_fewer_repetitions_to_slower_iterations() -> None:
    b = Budget(seconds=1.0, min_reps=5, max_reps=1000, warmup=10, warmup_large=2)
    assert b.reps_for(1e-6) == 1000 and b.reps_for(0.01) == 100 and b.reps_for(10) == 5
    assert b.warmup_for(8) == 10 and b.warmup_for(4 * MiB) == 2
    assert Budget.from_json(QUICK.to_json()) == QUICK


def _rec(series: str, role: str, size: int, median_us: float, one_way: bool = False) -> dict:
    return derive(
        {
            "series": series,
            "role": role,
            "size": size,
            "one_way": one_way,
            "samples_us": {"median": median_us},
        }
    )


def test_bandwidth_from_round_trip_and_one_way() -> None:
    assert _rec("x", "baseline", MiB, 1000.0)["bandwidth_GBps"] == pytest.approx(2 * MiB / 1e6)
    assert _rec("m", "baseline", MiB, 1000.0, True)["bandwidth_GBps"] == pytest.approx(MiB / 1e6)


def test_ratios_and_targets() -> None:
    records = [
        _rec("socket blocking", "baseline", 8, 20.0),
        _rec("socket blocking", "baseline", 16 * MiB, 10_000.0),
        _rec("asyncio streams", "baseline", 16 * MiB, 20_000.0),
        _rec("tcp://", "transport", 8, 30.0),
        _rec("tcp://", "transport", 16 * MiB, 20_000.0),
    ]
    add_ratios(records)
    tcp8, tcp16 = records[3], records[4]
    assert tcp8["latency_ratio"] == 1.5 and tcp8["latency_added_us"] == 10.0
    assert tcp16["baseline_bandwidth"] == "socket blocking"  # the best raw socket
    assert tcp16["bandwidth_ratio"] == pytest.approx(0.5)
    rows = {
        (t["series"], t["target"]): t
        for t in evaluate_targets(records, {"shm://": "skipped: no backend"})
    }
    assert rows[("tcp://", "8 B RTT <= 25 us over raw blocking socket")]["met"] is True
    assert rows[("tcp://", ">= 16 MiB: >= 90% of the best raw socket")]["met"] is False
    shm = rows[("shm://", "8 B RTT below raw socketpair wake-up")]
    assert shm["met"] is None and "no backend" in shm["measured"]


def test_every_transport_names_existing_baselines() -> None:
    names = {c.name for c in CANDIDATES}
    for c in CANDIDATES:
        if c.role == "transport" and c.name != "inproc://":  # by reference: no baseline
            assert c.lat_base in names and set(c.bw_base) <= names
    inproc = next(c for c in CANDIDATES if c.name == "inproc://")
    assert inproc.lat_base is None and inproc.bw_base == ()


def test_each_mpi_mode_is_compared_with_raw_mpi_launched_the_same_way(
    tmp_path: os.PathLike[str],
) -> None:
    by = {c.name: c for c in CANDIDATES}
    for ours in ("mpi:// rank", "mpi:// port-file"):
        c = by[ours]
        for base in (c.lat_base, *c.bw_base):
            assert by[base].launch == c.launch, (ours, base)  # mpi2 / mpi-pair alike
    raw = by["mpi4py connect/accept"]
    ctx = Context(quick=True, out=tmp_path, transports=["mpi"], device="host")  # type: ignore[arg-type]
    launch = build_launch(raw, ctx, str(tmp_path))
    assert launch.server is not None and launch.server[1:3] == ["-n", "1"]
    assert launch.client[1:3] == ["-n", "1"] and launch.server[-2] == "server"
    assert json.loads(launch.server[-1])["extra"]["portfile"] == f"{tmp_path}/port"


def test_missing_dependency_is_reported_not_run(tmp_path: os.PathLike[str]) -> None:
    ctx = Context(quick=True, out=tmp_path, transports=["tcp"], device="host")  # type: ignore[arg-type]
    c = Candidate("x", "baseline", "memcpy", "m", "v", "local", needs=("no_such_module_4711",))
    assert unavailable(c, ctx) == "no_such_module_4711 is not installed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_hanging_worker_is_killed_with_its_children(tmp_path: os.PathLike[str]) -> None:
    pidfile = f"{tmp_path}/child.pid"
    code = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({pidfile!r}, 'w').write(str(c.pid)); time.sleep(60)"
    )
    start = time.monotonic()
    outcome = run_launch(Launch([sys.executable, "-c", code], timeout=2.0))
    assert outcome.series is None and "timed out" in (outcome.reason or "")
    assert time.monotonic() - start < 15
    with open(pidfile) as f:
        child = int(f.read())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_server_that_never_gets_ready_is_reported(tmp_path: os.PathLike[str]) -> None:
    bad = [sys.executable, "-c", "import sys; print('not json'); sys.exit(3)"]
    outcome = run_launch(Launch([sys.executable, "-c", "pass"], server=bad, timeout=10))
    assert outcome.series is None and outcome.reason.startswith("server exited with status 3")


def test_worker_error_is_passed_on() -> None:
    code = 'print(\'{"error": "ValueError: boom"}\')'
    outcome = run_launch(Launch([sys.executable, "-c", code], timeout=10))
    assert outcome.reason == "client: ValueError: boom"


@pytest.mark.mpi
def test_mpiexec_job_is_killed_on_timeout() -> None:
    pytest.importorskip("mpi4py")
    psutil = pytest.importorskip("psutil")
    launcher = mpiexec()
    if launcher is None:
        pytest.skip("no mpiexec")
    argv = [launcher, "-n", "2", sys.executable, "-c", "import time; time.sleep(60)"]
    outcome = run_launch(Launch(argv, timeout=3.0))
    assert outcome.series is None
    time.sleep(0.5)
    leftovers = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert not leftovers


def test_load_processes_run_during_the_block_and_are_gone_after() -> None:
    import os

    from benchmarks.load import busy

    with busy(2) as pids:
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, 0)  # alive
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize("quick", [False, True])
def test_a_quick_run_says_its_verdicts_judge_nothing(quick: bool) -> None:
    """A ``--quick`` smoke run printed MISSED in red for targets it cannot measure
    (few repetitions): every table now says so under it, and nothing is red."""
    from rich.console import Console

    from benchmarks.cli import QUICK_NOTE, _print_tables
    from benchmarks.parts import PartResult

    console = Console(record=True, width=200, color_system="truecolor")
    table = ("targets", ["series", "target", "verdict"], [["shm://", ">= 60%", "MISSED"]])
    _print_tables(console, PartResult("ok", tables=[table]), quick)
    styled = console.export_text(styles=True, clear=False)
    words = " ".join(console.export_text().split())  # the note wraps to the table's width
    assert "MISSED" in words
    assert (QUICK_NOTE in words) is quick
    assert ("\x1b[31m" in styled) is not quick  # red
