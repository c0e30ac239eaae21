"""``python -m actors.run CONFIG.toml``: run one process configuration (the analog of cmsRun).

Options override the configuration: ``--events N``, ``--threads T``,
``--streams S``; ``--input FILE`` sets the source's ``file`` parameter and
``--output FILE`` the ``file`` parameter of the output module (the
configuration must have exactly one). Shows a rich progress bar when stdout is
a terminal, prints the trigger and timing reports at the end, and writes them
as JSON with ``--report-json FILE``.

Exit status: 0 on success, 1 when a module fails (label, transition/event ID
and, for an error in user code, the traceback printed on stderr), 2 for a usage
or configuration error (file, line, key; a missing extra), 130 on Ctrl-C; the
error style is that of every command line (:mod:`actors._cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._cli import (
    CliParser,
    check_input,
    check_output,
    non_negative_int,
    positive_int,
    print_marker,
    run_main,
)
from ..errors import ConfigError
from ..settings import PROGRESS_LINES, REPORT_FILE
from . import JobReport, OutputModule, Process, run_process
from .loader import load_class

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = CliParser(
        "python -m actors.run",
        "Run one event-processing configuration (a process TOML), like cmsRun.\n"
        "Options override the configuration; the trigger and timing reports are\n"
        "printed at the end.",
        examples=[
            "python -m actors.run examples/dimuon/dimuon.toml --input nano.root "
            "--output dimuon.root",
            "python -m actors.run job.toml --events 1000 --threads 4 --streams 8 "
            "--report-json report.json",
        ],
        docs="docs/framework.md (configuration: docs/config-toml.md)",
    )
    parser.add_argument("config", help="process configuration (TOML)")
    parser.add_argument(
        "--events",
        type=non_negative_int,
        metavar="N",
        help="stop after N events (default: [options] events, else all)",
    )
    parser.add_argument(
        "--threads",
        type=non_negative_int,
        metavar="T",
        help="worker threads for module code, 0: none, all of it on the event loop's thread "
        "(default: [options] threads)",
    )
    parser.add_argument(
        "--streams",
        type=positive_int,
        metavar="S",
        help="events in flight at once (default: [options] streams)",
    )
    parser.add_argument("--input", metavar="FILE", help="sets the source's 'file' parameter")
    parser.add_argument(
        "--output", metavar="FILE", help="sets the output module's 'file' parameter"
    )
    parser.add_argument(
        "--report-json", metavar="FILE", help="write the reports as JSON to this file"
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the report tables")
    return parser


def configure(args: argparse.Namespace) -> Process:
    """Load the configuration and apply the command-line overrides (ConfigError if bad)."""
    check_input(args.input, "--input")
    check_output(args.output, "--output")
    check_output(args.report_json, "--report-json")
    process = Process.from_toml(args.config)
    if args.input is not None:
        if process.source is None:
            raise ConfigError("the configuration has no source", key="--input")
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
            process,
            events=args.events,
            threads=args.threads,
            streams=args.streams,
            progress=update,
        )
    finally:
        if progress is not None:
            progress.stop()


#: Set by ``python -m actors.launch``: progress and the final report go to stdout as
#: marker lines (one JSON object each) that the launcher consumes, also through mpiexec.
#: The report line holds ``events``, ``wall_s`` and ``report`` (``JobReport.to_dict()``).
PROGRESS_LINES_ENV = PROGRESS_LINES.name
PROGRESS_MARK = "@@actors-progress "
REPORT_MARK = "@@actors-report "
#: The last line of a process under the launcher: ``{"code": exit status}``. Under one
#: ``mpiexec`` for every process (MPMD) the launcher sees no exit of its own per process,
#: and a process that fails before MPI is initialised leaves the others waiting for it
#: in ``MPI_Init``: this line is how the launcher learns it and stops the job.
EXIT_MARK = "@@actors-exit "


def _marker_progress(total: int | None) -> Callable[[int], None]:
    last = [0.0]

    def update(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25 or done == total:
            last[0] = now
            print_marker(PROGRESS_MARK, json.dumps({"done": done, "total": total}))

    return update


def _progress(
    process: Process, args: argparse.Namespace
) -> tuple[Any, Callable[[int], None] | None]:
    total = args.events if args.events is not None else process.options.events
    if PROGRESS_LINES.get():
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
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        transient=True,
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
    """Entry point; returns the exit status (0, 1 job failed, 2 usage/configuration, 130)."""
    try:
        args = _parser().parse_args(argv)
        code = run_main(lambda: _main(args), args)
    except SystemExit as exc:  # a usage error (2) or --help (0)
        _tell_exit(exc.code if isinstance(exc.code, int) else int(exc.code is not None))
        raise
    _tell_exit(code)
    return code


def _tell_exit(code: int) -> None:
    """Under the launcher, print the :data:`EXIT_MARK` line with the exit status
    (nothing when its setting is malformed, already reported, or stdout is gone)."""
    with contextlib.suppress(ConfigError, OSError):
        if PROGRESS_LINES.get():
            print_marker(EXIT_MARK, json.dumps({"code": code}))


def _main(args: argparse.Namespace) -> int:
    process = configure(args)
    with _loop_runner() as runner:
        report = runner.run(_run(process, args))
    if not args.quiet:
        report.print()
    if PROGRESS_LINES.get():
        summary = {"events": report.events, "wall_s": report.wall_time, "report": report.to_dict()}
        line = json.dumps(summary)
        print_marker(REPORT_MARK, line)
        if REPORT_FILE.get():  # the launcher's copy: mpiexec may split a long line
            Path(REPORT_FILE.get()).write_text(line)
    if args.report_json:
        Path(args.report_json).write_text(report.to_json())
    return 0
