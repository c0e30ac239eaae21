#!/usr/bin/env python3
"""Set up a local virtual environment and run the project's main jobs.

Needs only Python >= 3.11 with pip/venv:

    python3 tasks.py demo     # install hep-actors[hep,mpi,plots] into .venv, run the example job
    python3 tasks.py test     # test extras, lint, the suite but its slow tests (-m slow: those)
    python3 tasks.py bench    # run the benchmark suite (python -m benchmarks --quick)

The virtual environment (``.venv``, or ``$VENV``) is created once and reused;
an install is redone when pyproject.toml changes. ``demo`` installs the extras
that every command of the README needs; ``source .venv/bin/activate`` then
gives them to the shell's plain ``python``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
PY = VENV / "bin" / "python"

EXTRAS = {
    "demo": "[hep,mpi,plots]",  # what the README's commands need
    "test": "[dev,mpi,ucx,hep]",
    "bench": "[dev,mpi,ucx,hep,plots]",
}


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)
    if code:
        sys.exit(code)


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".hep-actors-installed{extras or '[]'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    # setuptools' notice that an editable install is one (a screenful) is no news here
    quiet = {**os.environ, "PYTHONWARNINGS": "ignore:Editable installation"}
    run(PY, "-m", "pip", "install", "--quiet", "-e", f".{extras}", env=quiet)
    # as pip does for a package it installs: every process then loads bytecode, even
    # where PYTHONDONTWRITEBYTECODE stops Python from writing it on first import
    run(PY, "-m", "compileall", "-q", "actors")
    stamp.write_text(digest)


def demo(args: list[str]) -> None:
    ensure_venv(EXTRAS["demo"])
    run(PY, "-m", "actors.launch", "examples/offload/topology.toml", *args)
    print(f"\nnext: source {_shown(VENV)}/bin/activate   # then the README's commands", flush=True)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (as the README writes it)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def test(args: list[str]) -> None:
    ensure_venv(EXTRAS["test"])
    run(PY, "-m", "ruff", "check", "actors", "benchmarks", "tests")
    run(PY, "-m", "ruff", "format", "--check", "actors", "benchmarks", "tests")
    run(PY, "-m", "mypy", "actors", "benchmarks")
    # the slow tests (10,000-example fuzz runs, the 24 kill points, the benchmark smoke run:
    # about 4 minutes on 2 cores) run with `python3 tasks.py test -m slow`
    run(PY, "-m", "pytest", *(args or ["-m", "not slow"]))


def bench(args: list[str]) -> None:
    ensure_venv(EXTRAS["bench"])
    run(PY, "-m", "benchmarks", *(args or ["--quick"]))


COMMANDS = {"demo": demo, "test": test, "bench": bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(COMMANDS)}}} [args...]")
    COMMANDS[sys.argv[1]](sys.argv[2:])
