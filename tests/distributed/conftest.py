"""Fixtures for the distributed tests: the single-process dimuon reference output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .launching import DIMUON, REPO


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = REPO.parent / "shared" / "data"
    if not (path / "cms2010_zmumu_nano.root").is_file():
        pytest.skip(f"shared test data not found at {path}")
    return path


@pytest.fixture(scope="session")
def nano(shared_data_dir: Path) -> Path:
    return shared_data_dir / "cms2010_zmumu_nano.root"


@pytest.fixture(scope="session")
def single(tmp_path_factory: pytest.TempPathFactory, nano: Path) -> Path:
    """Output of ``python -m actors.run examples/dimuon/dimuon.toml`` (the reference)."""
    out = tmp_path_factory.mktemp("single") / "single.root"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors.run",
            str(DIMUON / "dimuon.toml"),
            "--input",
            str(nano),
            "--output",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out
