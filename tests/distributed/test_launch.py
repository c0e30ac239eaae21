"""Across processes through ``python -m actors.launch``: dimuon offload and the offload example.

Every dimuon test compares the output file, bit for bit, with the
single-process run of ``examples/dimuon/dimuon.toml`` on the same input.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .launching import DIMUON, REPO, assert_same_output, dimuon_grid, launch


def topology(tmp: Path, transport: str, streams: int) -> Path:
    """examples/dimuon/offload.toml with ``transport`` and ``streams`` on both sides."""
    text = (DIMUON / "offload.toml").read_text()
    text = text.replace('config = "offload_', f'config = "{DIMUON}/offload_')
    text = text.replace("streams = 1", f"streams = {streams}")
    text = text.replace('transport = "tcp"', f'transport = "{transport}"')
    path = tmp / "offload.toml"
    path.write_text(text)
    return path


def check_output(run: object, out: Path, single: Path) -> None:
    assert getattr(run, "returncode", None) == 0, (
        getattr(run, "stdout", "")[-3000:] + getattr(run, "stderr", "")[-3000:]
    )
    assert_same_output(out, single)


@pytest.mark.parametrize(("transport", "streams"), [("tcp", 1), ("shm", 4)])
def test_dimuon_offload_output_equals_single_process(
    transport: str, streams: int, single: Path, nano: Path, tmp_path: Path
) -> None:
    out = tmp_path / "offload.root"
    run = launch(topology(tmp_path, transport, streams), "--input", str(nano), "--output", str(out))
    check_output(run, out, single)


@pytest.mark.mpi
@pytest.mark.parametrize("streams", [1, 4])
def test_dimuon_offload_over_mpi(streams: int, single: Path, nano: Path, tmp_path: Path) -> None:
    out = tmp_path / "offload.root"
    run = (
        launch(
            DIMUON / "offload.toml",
            "--transport",
            "mpi",
            "--input",
            str(nano),
            "--output",
            str(out),
        )
        if streams == 1
        else launch(topology(tmp_path, "mpi", streams), "--input", str(nano), "--output", str(out))
    )
    check_output(run, out, single)


@pytest.mark.parametrize(("transport", "streams"), [("shm", 2)])
def test_dimuon_over_two_followers(
    transport: str, streams: int, single: Path, nano: Path, tmp_path: Path
) -> None:
    grid, outputs = dimuon_grid(tmp_path, nano, transport, clients=1, servers=2, streams=streams)
    check_output(launch(grid), outputs[0], single)


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_two_dimuon_jobs_share_two_followers(
    transport: str, single: Path, nano: Path, tmp_path: Path
) -> None:
    """2 controllers x 2 followers: both jobs have the same runs; nothing mixes."""
    grid, outputs = dimuon_grid(tmp_path, nano, transport, clients=2, servers=2, streams=2)
    run = launch(grid)
    for out in outputs:
        check_output(run, out, single)


def test_killed_follower_is_reported_and_launcher_fails(nano: Path, tmp_path: Path) -> None:
    grid, _ = dimuon_grid(tmp_path, nano, "tcp", clients=1, servers=1, streams=4)
    remote = tmp_path / "gpu1.toml"
    text = (
        remote.read_text()
        .replace(
            "[paths]",
            '[modules.kill]\ntype = "tests.distributed.mods:SelfKill"\nat = 40\n\n[paths]',
        )
        .replace('mass = ["opposite",', 'mass = ["kill", "opposite",')
    )
    remote.write_text(text)
    run = launch(grid, timeout=100)
    text = run.stdout + run.stderr
    assert run.returncode != 0, text[-3000:]
    assert "process 'gpu1' failed with exit code -9" in text, text[-3000:]
    assert (
        "lost the follower on link 'gpu1' (peer process 'DIMUONREMOTE' (gpu1) at tcp://" in text
    ), text[-3000:]
    assert re.search(r"\d+ event\(s\) in flight on it: \d+:\d+:\d+", text), text[-3000:]
    assert "[cpu1]" in text
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _is_ours(p, tmp_path)]
    assert not leftovers, leftovers


def _is_ours(pid: str, tmp: Path) -> bool:
    try:
        return str(tmp) in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def test_offload_example_runs() -> None:
    run = launch(REPO / "examples" / "offload" / "topology.toml", "--events", "300")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "offload summary:" in run.stdout + run.stderr


def test_shared_server_example_runs() -> None:
    run = launch(REPO / "examples" / "offload" / "shared.toml", "--events", "200")
    text = run.stdout + run.stderr
    assert run.returncode == 0, text[-3000:]
    assert text.count("offload summary:") == 2  # one per client job
