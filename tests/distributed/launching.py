"""Running topologies through ``python -m actors.launch`` and comparing ROOT outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DIMUON = REPO / "examples" / "dimuon"


def launch(topology: Path, *args: str, timeout: float = 110) -> subprocess.CompletedProcess[str]:
    """Run the launcher to completion (bounded by ``timeout``); never raises on failure."""
    return subprocess.run(
        [sys.executable, "-m", "actors.launch", str(topology), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read(path: Path) -> dict[str, Any]:
    uproot = pytest.importorskip("uproot")
    return uproot.open(path)["Events"].arrays(library="np")  # type: ignore[no-any-return]


def assert_same_output(got_path: Path, want_path: Path) -> None:
    """Same branches, dtypes and values, bit for bit."""
    got, want = read(got_path), read(want_path)
    assert sorted(got) == sorted(want)
    assert len(want["event"]) > 0
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert np.array_equal(got[name], want[name]), name


def dimuon_grid(
    tmp: Path, nano: Path, transport: str, clients: int, servers: int, streams: int = 1
) -> tuple[Path, list[Path]]:
    """A topology of ``clients`` dimuon jobs, each spreading over ``servers`` followers.

    Every follower serves every client (one [[link]] per client/server pair,
    named after the server). Returns the topology and each client's output file.
    """
    (tmp / "modules.py").symlink_to(DIMUON / "modules.py")
    gpus = [f"gpu{k}" for k in range(1, servers + 1)]
    cpus = [f"cpu{k}" for k in range(1, clients + 1)]
    local = (DIMUON / "offload_local.toml").read_text()
    local = local.replace('link = "offload"', f"links = {gpus!r}".replace("'", '"'))
    local = local.replace('file = "nano.root"', f'file = "{nano}"')
    outputs = []
    for cpu in cpus:
        out = tmp / f"{cpu}.root"
        outputs.append(out)
        (tmp / f"{cpu}.toml").write_text(local.replace('file = "dimuon.root"', f'file = "{out}"'))
    remote = (DIMUON / "offload_remote.toml").read_text()
    for gpu in gpus:
        (tmp / f"{gpu}.toml").write_text(remote.replace('link = "offload"', f'link = "{gpu}"'))
    lines = [f'[run]\ntransport = "{transport}"\n']
    for name in cpus + gpus:
        lines.append(f'[process.{name}]\nconfig = "{name}.toml"\nstreams = {streams}\n')
    for gpu in gpus:
        for cpu in cpus:
            lines.append(f'[[link]]\nname = "{gpu}"\nclient = "{cpu}"\nserver = "{gpu}"\n')
    topology = tmp / "grid.toml"
    topology.write_text("\n".join(lines))
    return topology, outputs
