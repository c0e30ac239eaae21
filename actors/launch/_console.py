"""What the launcher shows: the processes' lines, their marker lines, progress, summary.

Every line a process prints comes to :func:`handle_line`, which echoes it with
the process's name as prefix (under ``mpiexec``, the rank prefix names the
process) or consumes it when it is a marker line: progress and report lines
fill :class:`LaunchState`, a stall report or a controller's failover step is
printed in its own form. :func:`progress_bar` and :func:`print_summary` show
the state. Loop rules: one loop fills and reads a LaunchState.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..distributed.controller import FAILOVER_MARK
from ..framework.cli import EXIT_MARK, PROGRESS_MARK, REPORT_MARK
from ._stall import STALL_MARK, print_report

__all__ = ["LaunchState", "handle_line", "print_summary", "progress_bar"]

_RANK_PREFIX = re.compile(r"^\[(\d+)\] ?")
# Hydra's -prepend-rank writes the next chunk's prefix before a lone newline
# (unbuffered output: text and newline arrive as two writes): drop it.
_RANK_SUFFIX = re.compile(r"\[\d+\] ?$")
# A rank's marker line glued to the end of another write (an error line of the same or
# another rank, whose newline came in a later chunk): split the line before the marker.
_GLUED_MARKER = re.compile(r"(?<=.)(?=\[\d+\] @@actors-)")


@dataclass
class LaunchState:
    """What the launcher learns from the processes' marker lines.

    Filled on the loop by :func:`supervise`: ``done`` events per process,
    ``total`` (the source's), ``reports`` (``{"events", "wall_s"}`` per
    process) and ``exit_codes`` as processes end; read it from the same loop.
    """

    names: list[str]
    done: dict[str, int] = field(default_factory=dict)
    total: int | None = None
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    #: exit statuses the processes announced on their last line (``EXIT_MARK``): under one
    #: mpiexec for all (MPMD) the only word of one process's end
    ended: dict[str, int] = field(default_factory=dict)
    lost: dict[str, list[int]] = field(default_factory=dict)  # exit codes of lost instances
    restarts: dict[str, int] = field(default_factory=dict)  # replacements started
    resent: dict[str, int] = field(default_factory=dict)  # events resent after losing it
    orphaned: set[str] = field(default_factory=set)  # followers that lost their controller
    awaiting: set[str] = field(default_factory=set)  # replacements no controller joined yet
    started: float = field(default_factory=time.monotonic)


def handle_line(line: str, name: str, state: LaunchState, console: Console) -> None:
    """Echo one output line with its process prefix, or consume a marker line.

    Under one mpiexec (MPMD), a line may hold a rank's marker line glued to
    another rank's text: each part is handled on its own."""
    parts = _GLUED_MARKER.split(line) if name == "mpiexec" else [line]
    if len(parts) > 1:
        for part in parts:
            handle_line(part, name, state, console)
        return
    match = _RANK_PREFIX.match(line) if name == "mpiexec" else None
    if match:
        name = state.names[int(match.group(1))] if int(match.group(1)) < len(state.names) else name
        line = _RANK_SUFFIX.sub("", line[match.end() :])
    if line.startswith(STALL_MARK) and print_report(line, name, console):
        return
    if line.startswith((PROGRESS_MARK, REPORT_MARK)) and _consume_marker(line, name, state):
        return
    if line.startswith(FAILOVER_MARK) and _consume_failover(line, name, state, console):
        return
    if line.startswith(EXIT_MARK) and _consume_exit(line, name, state):
        return
    prefix = Text(f"[{name}] ", style="bold cyan")
    console.print(prefix + Text(line), highlight=False, soft_wrap=True)


def _marked_object(line: str, mark: str) -> dict[str, Any] | None:
    """The JSON object after ``mark`` on a marker line; None when it is not one."""
    try:
        info = json.loads(line[len(mark) :])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _consume_marker(line: str, name: str, state: LaunchState) -> bool:
    """Record a progress/report line; False (echo it instead) when it is not valid JSON."""
    mark = PROGRESS_MARK if line.startswith(PROGRESS_MARK) else REPORT_MARK
    info = _marked_object(line, mark)
    if info is None:
        return False
    if mark == REPORT_MARK:
        state.reports[name] = info
        return True
    state.done[name] = int(info.get("done", 0))
    if info.get("total") is not None and info.get("source", True):
        state.total = int(info["total"])
    return True


def _consume_exit(line: str, name: str, state: LaunchState) -> bool:
    """Record the exit status a process announced; False (echo it) when malformed."""
    info = _marked_object(line, EXIT_MARK)
    if info is None or not isinstance(info.get("code"), int):
        return False
    state.ended[name] = info["code"]
    return True


def _consume_failover(line: str, name: str, state: LaunchState, console: Console) -> bool:
    """A controller's failover step: print its message, count resent events per lost process."""
    info = _marked_object(line, FAILOVER_MARK)
    if info is None:
        return False
    if info.get("what") == "controller-lost":  # its own error line says it
        state.orphaned.add(name)
        return True
    if info.get("what") == "rejoined":
        state.awaiting.discard(str(info.get("process", "?")))
    if info.get("what") == "lost":  # counted once: a rejoin hands on the same events
        lost = str(info.get("process", "?"))
        state.resent[lost] = state.resent.get(lost, 0) + int(info.get("resent", 0))
    prefix = Text(f"[{name}] ", style="bold cyan")
    console.print(
        prefix + Text(str(info.get("message", "")), style="yellow"), highlight=False, soft_wrap=True
    )
    return True


@contextlib.contextmanager
def progress_bar(console: Console) -> Any:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        yield progress


def print_summary(state: LaunchState, console: Console) -> None:
    table = Table(title="launch summary")
    columns = ["process", "exit", "events", "wall (s)", "events/s"]
    failover = bool(state.lost)
    if failover:
        columns.append("failover")
    for column in columns:
        table.add_column(column, justify="left" if column in ("process", "failover") else "right")
    for name in state.names:
        report = state.reports.get(name, {})
        events = report.get("events")
        wall = report.get("wall_s")
        rate = f"{events / wall:,.0f}" if events and wall else "-"
        code = state.exit_codes.get(name, state.ended.get(name, state.exit_codes.get("mpiexec")))
        row = [
            name,
            "-" if code is None else str(code),
            "-" if events is None else str(events),
            "-" if wall is None else f"{wall:.2f}",
            rate,
        ]
        if failover:
            row.append(_failover_note(state, name))
        table.add_row(*row)
    Console(file=sys.stdout).print(table)


def _failover_note(state: LaunchState, name: str) -> str:
    """'lost (exit -9), 3 event(s) resent, restarted 1x' for a process lost during the job."""
    lost = state.lost.get(name)
    if not lost:
        return ""
    note = (
        f"lost (exit {', '.join(str(c) for c in lost)}), {state.resent.get(name, 0)} "
        "event(s) resent"
    )
    restarts = state.restarts.get(name, 0)
    return note + (f", restarted {restarts}x" if restarts else "")
