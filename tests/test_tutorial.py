"""docs/first-module.md runs as written: its files saved, its commands run in order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "docs" / "first-module.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
FILES = {
    code.splitlines()[0].removeprefix("# "): code
    for lang, code in BLOCKS
    if lang in ("python", "toml") and re.match(r"# [\w.]+\.(py|toml)\n", code)
}
COMMANDS = [line for lang, code in BLOCKS if lang == "bash" for line in code.splitlines()]
MPI = [c for c in COMMANDS if "--transport mpi" in c]
SUMMARY = re.compile(r"energy summary: 1000 events, mean energy (\d+\.\d)")


def shell(command: str, cwd: Path) -> str:
    """Run one command line as the reader would, with this interpreter's venv on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=100,
    )  # fmt: skip
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}"
    return proc.stdout  # with stderr, where the launcher echoes the processes' lines


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("first-module")
    for name, code in FILES.items():
        (work / name).write_text(code)
    return work


@pytest.fixture(scope="module")
def outputs(workdir: Path) -> dict[str, str]:
    """Every command but the MPI one, in the tutorial's order."""
    return {c: shell(c, workdir) for c in COMMANDS if c not in MPI}


def test_tutorial_has_its_parts() -> None:
    assert set(FILES) == {"mymods.py", "first.toml", "launch.py"}
    assert [c.split()[2] for c in COMMANDS if c.startswith("python -m")] == [
        "actors.run", "actors.split", "actors.launch", "actors.launch",
    ]  # fmt: skip
    assert len(MPI) == 1 and "python launch.py" in COMMANDS


def test_run_prints_one_summary_for_the_whole_job(outputs: dict[str, str]) -> None:
    out = outputs["python -m actors.run first.toml"]
    assert len(SUMMARY.findall(out)) == 1  # the analyzer runs once, not once per stream
    assert "Trigger report - process FIRST: 1000 events" in out
    documented = SUMMARY.search(TUTORIAL.read_text())
    assert documented is not None and SUMMARY.findall(out) == [documented.group(1)]


def test_split_writes_the_two_halves(outputs: dict[str, str], workdir: Path) -> None:
    assert "python -m actors.split first.toml --offload energy -o split" in outputs
    for name in ("local.toml", "remote.toml", "topology.toml", "mymods.py"):
        assert (workdir / "split" / name).exists()


def test_tcp_launch_summarises_on_the_local_side(outputs: dict[str, str]) -> None:
    out = outputs["python -m actors.launch split/topology.toml --transport tcp"]
    assert re.search(r"\[local\] " + SUMMARY.pattern, out)
    assert "launch summary" in out


def test_python_api_script_reports_both_processes(outputs: dict[str, str]) -> None:
    out = outputs["python launch.py"]
    assert re.search(r"^local: 1000 events in", out, flags=re.M)
    assert re.search(r"^remote: 1000 events in", out, flags=re.M)


@pytest.mark.mpi
def test_mpi_launch(outputs: dict[str, str], workdir: Path) -> None:
    out = shell(MPI[0], workdir)
    assert re.search(r"\[local\] " + SUMMARY.pattern, out)
