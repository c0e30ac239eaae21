"""Topology TOML -> running processes (``python -m actors.launch``).

:mod:`.topology` reads and validates a topology, :mod:`.cli` is the command
line and the launch plan, :mod:`._process` and :mod:`._embedded` are the two
engines (subprocesses / ``mpiexec``, and every process on one event loop),
:mod:`.api` the same from Python: ``async with start("topology.toml") as job``.
"""

from __future__ import annotations

from .api import Job, LaunchResult, Progress, run, start
from .cli import PROGRESS_MARK, REPORT_MARK, LaunchPlan, ProcessLaunch, build_plan, main

__all__ = [
    "PROGRESS_MARK",
    "REPORT_MARK",
    "Job",
    "LaunchPlan",
    "LaunchResult",
    "ProcessLaunch",
    "Progress",
    "build_plan",
    "main",
    "run",
    "start",
]
