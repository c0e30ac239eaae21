"""Across processes through ``python -m actors.launch``: dimuon offload and the offload example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DIMUON = REPO / "examples" / "dimuon"


def launch(topology: Path, *args: str, timeout: float = 110) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors.launch", str(topology), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )


def topology(tmp: Path, transport: str, streams: int) -> Path:
    text = (DIMUON / "offload.toml").read_text()
    text = text.replace('config = "offload_', f'config = "{DIMUON}/offload_')
    text = text.replace("streams = 1", f"streams = {streams}")
    text = text.replace('transport = "tcp"', f'transport = "{transport}"')
    path = tmp / "offload.toml"
    path.write_text(text)
    return path


def read(path: Path) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    uproot = pytest.importorskip("uproot")
    return uproot.open(path)["Events"].arrays(library="np")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("single") / "single.root"
    run = subprocess.run(
        [sys.executable, "-m", "actors.run", str(DIMUON / "dimuon.toml"),
         "--input", str(shared_data_dir / "cms2010_zmumu_nano.root"), "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=110, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


@pytest.fixture(scope="module")
def shared_data_dir() -> Path:
    path = REPO.parent / "shared" / "data"
    if not (path / "cms2010_zmumu_nano.root").is_file():
        pytest.skip(f"shared test data not found at {path}")
    return path


@pytest.mark.parametrize(("transport", "streams"), [("tcp", 1), ("shm", 4)])
def test_dimuon_offload_output_equals_single_process(
    transport: str, streams: int, single: Path, shared_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "offload.root"
    run = launch(topology(tmp_path, transport, streams),
                 "--input", str(shared_data_dir / "cms2010_zmumu_nano.root"),
                 "--output", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    got, want = read(out), read(single)
    assert sorted(got) == sorted(want)
    assert len(want["event"]) > 0
    for name in want:
        assert got[name].dtype == want[name].dtype
        assert np.array_equal(got[name], want[name]), name


def test_offload_example_runs() -> None:
    run = launch(REPO / "examples" / "offload" / "topology.toml", "--events", "300")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "offload summary:" in run.stdout + run.stderr
