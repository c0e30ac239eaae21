"""Running a process: ``run_process`` (async) and ``run`` (blocking)."""

from __future__ import annotations

from typing import Any

from .process import Process
from .report import JobReport

__all__ = ["run", "run_process"]


async def run_process(
    process: Process,
    *,
    events: int | None = None,
    threads: int | None = None,
    streams: int | None = None,
    progress: Any = None,
) -> JobReport:
    """Run ``process`` inside the running event loop and return its report.

    ``events``/``threads``/``streams`` override the process options. Raises
    ConfigError before any event for configuration problems and ModuleError
    (label, transition, traceback) when a module raises; in-flight events are
    cancelled and the worker threads joined before it returns or raises.
    ``progress`` is an optional callable ``progress(events_done)``.
    """
    raise NotImplementedError


def run(process: Process, **kwargs: Any) -> JobReport:
    """Blocking form of :func:`run_process` (starts its own event loop)."""
    import asyncio

    return asyncio.run(run_process(process, **kwargs))
