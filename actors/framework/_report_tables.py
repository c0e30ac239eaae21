"""rich tables for :class:`~actors.framework.report.JobReport` (imported on demand)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from .report import JobReport


def trigger_table(report: JobReport) -> Table:
    """Per path: visited/passed/failed, then one indented row per module."""
    table = Table(
        title=f"Trigger report - process {report.process}: "
        f"{report.events} events, {report.accepted} accepted"
    )
    table.add_column("path / module", no_wrap=True)
    for column in ("visited", "passed", "failed", "skipped"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for path in report.paths:
        kind = "end path" if path.end else "path"
        table.add_row(
            f"[bold]{kind} {path.name}[/bold]",
            str(path.visited),
            str(path.passed),
            str(path.failed),
            "",
        )
        for m in path.modules:
            table.add_row(
                f"  {m.label}", str(m.visited), str(m.passed), str(m.failed), str(m.skipped)
            )
    return table


def timing_table(report: JobReport) -> Table:
    """Per module: calls, total, mean, fraction; the caption has throughput and overhead."""
    threads = f"{report.threads} threads" if report.threads else "no worker threads"
    workers = "worker threads" if report.threads else "the loop's thread"
    table = Table(
        title=f"Timing report - {report.streams} streams, {threads}",
        caption=(
            f"event loop {report.event_loop_time:.3f} s, {report.throughput:.1f} events/s; "
            f"{workers} idle {100 * report.overhead:.1f}% (framework overhead when "
            "modules could keep them busy); "
            f"wall {report.wall_time:.3f} s"
        ),
    )
    table.add_column("module", no_wrap=True)
    table.add_column("type", overflow="ellipsis", max_width=40)
    for column in ("calls", "total (s)", "mean (ms)", "fraction"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for m in sorted(report.modules, key=lambda m: -m.total):
        table.add_row(
            m.label,
            m.type,
            str(m.calls),
            f"{m.total:.4f}",
            f"{1e3 * m.mean:.3f}",
            f"{100 * report.fraction(m):.1f}%",
        )
    return table
