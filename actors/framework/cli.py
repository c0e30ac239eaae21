"""``python -m actors.run CONFIG.toml``: run one process configuration (the analog of cmsRun).

Options override the configuration: ``--events N``, ``--threads T``,
``--streams S``; ``--input FILE`` sets the source's ``file`` parameter and
``--output FILE`` the ``file`` parameter of the output module (the
configuration must have exactly one). Shows a rich progress bar when stdout is
a terminal, prints the trigger and timing reports at the end, and writes them
as JSON with ``--report-json FILE``.

Exit status: 0 on success, 1 when a module fails (label, transition/event ID
and traceback printed on stderr), 2 for a configuration error (file, line,
key), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ActorsError, ConfigError, ModuleError
from . import JobReport, OutputModule, Process, run_process
from .loader import load_class

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m actors.run", description="Run one event-processing configuration."
    )
    parser.add_argument("config", help="process configuration (TOML)")
    parser.add_argument("--events", type=int, help="stop after N events")
    parser.add_argument("--threads", type=int, help="worker threads for module code")
    parser.add_argument("--streams", type=int, help="events in flight at once")
    parser.add_argument("--input", help="sets the source's 'file' parameter")
    parser.add_argument("--output", help="sets the output module's 'file' parameter")
    parser.add_argument("--report-json", help="write the reports as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="do not print the report tables")
    return parser


def configure(args: argparse.Namespace) -> Process:
    """Load the configuration and apply the command-line overrides (ConfigError if bad)."""
    process = Process.from_toml(args.config)
    if args.input is not None:
        assert process.source is not None
        process.source.params["file"] = args.input
    if args.output is not None:
        outputs = [c for c in process.modules.values() if _is_output(process, c.label, c.type)]
        if len(outputs) != 1:
            names = [c.label for c in outputs]
            raise ConfigError(
                f"--output needs exactly one output module in the configuration, found {names}",
                file=args.config,
            )
        outputs[0].params["file"] = args.output
    return process


def _is_output(process: Process, label: str, type_path: str) -> bool:
    try:
        cls = load_class(type_path, process.base_dir, object, f"modules.{label}.type")
    except ConfigError as exc:
        raise process.error(exc.message, "modules", label, "type") from exc
    return issubclass(cls, OutputModule)


async def _run(process: Process, args: argparse.Namespace) -> JobReport:
    progress, update = _progress(process, args)
    try:
        return await run_process(
            process, events=args.events, threads=args.threads, streams=args.streams,
            progress=update,
        )
    finally:
        if progress is not None:
            progress.stop()


#: Set by ``python -m actors.launch``: progress and the final report go to stdout as
#: marker lines (one JSON object each) that the launcher consumes, also through mpiexec.
PROGRESS_LINES_ENV = "ACTORS_PROGRESS_LINES"
PROGRESS_MARK = "@@actors-progress "
REPORT_MARK = "@@actors-report "


def _marker_progress(total: int | None) -> Callable[[int], None]:
    last = [0.0]

    def update(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25 or done == total:
            last[0] = now
            print(PROGRESS_MARK + json.dumps({"done": done, "total": total}), flush=True)

    return update


def _progress(
    process: Process, args: argparse.Namespace
) -> tuple[Any, Callable[[int], None] | None]:
    total = args.events if args.events is not None else process.options.events
    if os.environ.get(PROGRESS_LINES_ENV) == "1":
        return None, _marker_progress(total)
    if not sys.stdout.isatty():
        return None, None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("events"), TimeElapsedColumn(), transient=True,
    )
    task = progress.add_task(f"process {process.name}", total=total)
    progress.start()

    def update(done: int) -> None:
        if done % 16 == 0 or done == total:
            progress.update(task, completed=done)

    return progress, update


def _loop_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        process = configure(args)
        with _loop_runner() as runner:
            report = runner.run(_run(process, args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except ModuleError as exc:
        print(
            f"module {exc.label!r} failed in {exc.transition}:\n{exc.module_traceback}",
            file=sys.stderr,
        )
        return 1
    except ActorsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if not args.quiet:
        report.print()
    if os.environ.get(PROGRESS_LINES_ENV) == "1":
        summary = {"events": report.events, "wall_s": report.wall_time}
        print(REPORT_MARK + json.dumps(summary), flush=True)
    if args.report_json:
        Path(args.report_json).write_text(report.to_json())
    return 0

