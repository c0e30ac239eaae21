"""The README's examples and commands run as written (in a scratch copy of the layout)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
SHELL = [
    line
    for block in re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)
    for line in block.replace("\\\n", " ").splitlines()
]
COMMANDS = [line for line in SHELL if line.startswith("python -m actors.")]


def scratch(tmp_path: Path) -> Path:
    """A directory laid out like the repository root: examples/ and ../shared/ reachable.

    Outputs the commands write into the current directory land here, not in the repository.
    """
    root = tmp_path / "repo"
    root.mkdir()
    (root / "examples").symlink_to(REPO / "examples")
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")
    return root


@pytest.mark.parametrize("code", [b for b in BLOCKS if "asyncio.run(" in b])
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=90,
        cwd=scratch(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_readme_has_runnable_examples() -> None:
    assert sum("asyncio.run(" in b for b in BLOCKS) >= 3
    assert any("actors.launch.start(" in b for b in BLOCKS)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(c, marks=[pytest.mark.mpi] * ("--transport mpi" in c), id=c.split()[2])
        for c in COMMANDS
    ],
)
def test_readme_command_runs_and_writes_where_it_says(command: str, tmp_path: Path) -> None:
    pytest.importorskip("uproot")
    data = REPO.parent / "shared" / "data"
    if not data.is_dir():
        pytest.skip(f"shared test data not found at {data}")
    argv = shlex.split(command)
    assert argv[0] == "python"  # the venv's python once activated: this interpreter here
    root = scratch(tmp_path)
    proc = subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, text=True, timeout=110, cwd=root
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (root / "dimuon.root").stat().st_size > 0  # "writes dimuon.root" (README)


def test_readme_commands_cover_the_examples_and_setup_activates_the_venv() -> None:
    assert len(COMMANDS) == 2
    assert SHELL[:2] == [
        "python3 tasks.py demo          # creates .venv, installs hep-actors[hep,mpi,plots], "
        "runs the offload example",
        "source .venv/bin/activate      # every command below runs in this environment",
    ]
    tasks = (REPO / "tasks.py").read_text()
    assert '"demo": "[hep,mpi,plots]"' in tasks  # what the commands need is installed
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/dimuon.root" in ignored and "benchmark-results/" in ignored
