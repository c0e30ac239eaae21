"""``python -m actors.launch TOPOLOGY.toml``: start a whole application.

Reads and validates a topology (:mod:`actors.launch.topology`), then starts every
process with the engine that fits:

- ``inproc`` links: every process embedded in this Python process (one event
  loop; the configuration of a notebook);
- one host, tcp/shm/ucx: plain subprocesses (``python -m actors.run ...``);
- ``mpi`` links, or processes on several hosts: one ``mpiexec`` in MPMD mode
  (``-n 1 ... : -n 1 ...``, with ``-hosts``/host file; inside a Slurm
  allocation Hydra places processes through Slurm), or, with
  ``mpi_mode = "port-file"``, one ``mpiexec -n 1`` per process.

Each process's output lines are prefixed with its name; one progress bar
counts events done; each process prints its own trigger and timing reports and
the launcher ends with a summary table; ``--report-json FILE`` writes all of
it as one JSON document (:mod:`actors.launch.report`). Exit status: 0 when
every process succeeded, 2 for a usage or configuration error found before
anything starts, otherwise that of the first process that failed (the others
are stopped; 1 for a failed job, 2 for a configuration error in a process).
Ctrl-C stops everything (exit 130), ``--timeout`` too (exit 124). When no event
completes for ``--stall-report`` seconds (default :data:`DEFAULT_STALL_REPORT_S`;
``off`` disables it) every process prints a stall report. ``--dry-run``
prints the commands. Errors follow the style of every command line
(:mod:`actors._cli`); ``--log-level``/``-v`` reaches every process through
``ACTORS_LOG_LEVEL``.

The plan (engine, commands, links, run directory) is
:func:`~actors.launch.plan.build_plan`, which validates everything it can
before it creates the run directory and raises the errors of
:mod:`actors.errors`; :func:`main` formats them. Neither calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import time

from .._cli import (
    EXIT_FAILED,
    CliParser,
    check_input,
    check_output,
    log_level,
    non_negative_int,
    run_main,
)
from ..framework.cli import PROGRESS_MARK, REPORT_MARK
from .plan import LaunchPlan, ProcessLaunch, build_plan
from .topology import Topology, load_topology

# the plan's names too: ``actors.launch.cli.build_plan`` and the rest keep working
__all__ = [
    "DEFAULT_STALL_REPORT_S",
    "PROGRESS_MARK",
    "REPORT_MARK",
    "LaunchPlan",
    "ProcessLaunch",
    "build_plan",
    "main",
]

#: ``--stall-report``'s default: a job in which no event completes for this long
#: prints what every process waits for (a hang is never silent); ``off`` disables it.
DEFAULT_STALL_REPORT_S = 120.0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CliParser(
        "python -m actors.launch",
        "Start every process of a topology (TOML), forward their output with a\n"
        "[process] prefix, show one progress bar and end with a summary table.\n"
        "Options override the topology's [run] table.",
        examples=[
            "python -m actors.launch examples/offload/topology.toml --events 2000",
            "python -m actors.launch examples/offload/topology.toml --transport shm "
            "--report-json run.json",
            "python -m actors.launch topology.toml --transport mpi --dry-run",
        ],
        exit_codes=(
            "exit status:\n"
            "  0    every process succeeded\n"
            "  1    a process failed (its own status is passed on: 1 job failed,\n"
            "       2 configuration error inside it; the others are stopped)\n"
            "  2    usage or configuration error found before anything started\n"
            "  124  --timeout expired (every process stopped)\n"
            "  130  interrupted (Ctrl-C; every process stopped)\n"
            "  143  terminated (SIGTERM; every process stopped)"
        ),
        docs="docs/topology.md",
    )
    parser.add_argument("topology", help="topology TOML file")
    parser.add_argument(
        "--events",
        type=non_negative_int,
        metavar="N",
        help="number of events (default: [run] events, else all)",
    )
    parser.add_argument(
        "--input",
        metavar="FILE",
        help="input file of the source, wherever it runs (default: [run] input)",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="output file of the output module, wherever it runs (default: [run] output)",
    )
    parser.add_argument(
        "--transport",
        metavar="SCHEME",
        help="transport of every link: inproc|tcp|shm|mpi|ucx (default: [run] transport, else tcp)",
    )
    parser.add_argument(
        "--bind-to",
        metavar="WHAT",
        help="core: each process on this host runs on one CPU of its own; none "
        "(default: [run] bind_to, else none)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="the first process lost ends the job, restarts none (default: [run] on_process_loss)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="stop everything after S seconds (exit 124)",
    )
    parser.add_argument(
        "--stall-report",
        type=_seconds_or_off,
        default=DEFAULT_STALL_REPORT_S,
        metavar="S",
        help="when no event completes for S seconds (default "
        f"{DEFAULT_STALL_REPORT_S:g}; 'off': never), and before --timeout "
        "stops them, every process prints what it waits for",
    )
    parser.add_argument(
        "--report-json",
        metavar="FILE",
        help="write every process's trigger "
        "and timing reports, exit status, events/s and the summary as one JSON "
        "file (schema: docs/topology.md)",
    )
    return parser.parse_args(argv)


def _seconds_or_off(text: str) -> float | None:
    """``--stall-report``'s value: seconds > 0, or ``off`` (None)."""
    if text.strip().lower() == "off":
        return None
    try:
        return _positive_seconds(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or 'off')") from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (see ``--help``)."""
    args = _parse_args(argv)
    return run_main(lambda: _main(args), args)


def _main(args: argparse.Namespace) -> int:
    check_input(args.input, "--input")
    check_output(args.output, "--output")
    check_output(args.report_json, "--report-json")
    topology = load_topology(args.topology)
    topology.override(
        events=args.events,
        input=args.input,
        output=args.output,
        transport=args.transport,
        bind_to=args.bind_to,
    )
    if args.strict:
        topology.run.on_process_loss = "fail"
    explicit = args.verbose or args.log_level  # else the processes inherit the environment
    plan = build_plan(topology, log_level=log_level(args) if explicit else None)
    try:
        if args.dry_run:
            print(plan.describe())
            return 0
        return _run(plan, topology, args)
    finally:
        shutil.rmtree(plan.rundir, ignore_errors=True)


def _run(plan: LaunchPlan, topology: Topology, args: argparse.Namespace) -> int:
    from ._console import LaunchState
    from ._process import run_plan
    from .report import launch_report, write_launch_report

    state = LaunchState([p.name for p in plan.processes])
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    start = time.monotonic()
    status = EXIT_FAILED  # if run_plan itself raises
    try:
        status = run_plan(
            plan, topology, timeout=args.timeout, state=state, stall_report=args.stall_report
        )
        return status
    finally:
        if args.report_json:
            report = launch_report(
                plan, topology, state, status, started=started, wall_s=time.monotonic() - start
            )
            write_launch_report(args.report_json, report)
