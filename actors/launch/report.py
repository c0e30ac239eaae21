"""The launcher's JSON report: ``python -m actors.launch ... --report-json FILE``.

One document per launch, for scripts that compare runs (schema
:data:`SCHEMA`, documented in ``docs/topology.md``)::

    {
      "schema": "hep-actors-launch-report/1",
      "topology": "/abs/topology.toml", "engine": "subprocess",
      "transports": ["tcp"], "started": "2026-12-03T20:31:31+00:00",
      "exit_status": 0, "wall_s": 3.2,
      "processes": [
        {"name": "local", "exit_status": 0, "events": 2000, "wall_s": 2.9,
         "events_per_s": 689.6, "report": {JobReport.to_dict(): trigger_report,
                                           timing_report, throughput, ...}},
        ...
      ],
      "summary": {"processes": 2, "succeeded": 2, "failed": [],
                  "events": 2000, "wall_s": 2.9, "events_per_s": 689.6}
    }

A process that did not finish has ``null`` report, events, wall time and
rate; one under a single MPMD ``mpiexec`` has ``mpiexec``'s exit status, one
of the embedded engine the launcher's; a negative exit status -N means the
process was killed by signal N. ``summary.events`` is the largest event count
of a process (the events through the application), ``summary.wall_s`` the
longest process wall time and ``summary.events_per_s`` their ratio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._console import LaunchState
    from .plan import LaunchPlan
    from .topology import Topology

__all__ = ["SCHEMA", "launch_report", "write_launch_report"]

SCHEMA = "hep-actors-launch-report/1"


def launch_report(
    plan: LaunchPlan,
    topology: Topology,
    state: LaunchState,
    status: int,
    *,
    started: str,
    wall_s: float,
) -> dict[str, Any]:
    """The JSON document (see the module docstring) of a launch that has ended.

    ``state`` is what the engine filled (report lines, exit codes), ``status``
    the launcher's exit status, ``started`` an ISO time and ``wall_s`` the
    launcher's wall time.
    """
    rows = [_process(state, proc.name) for proc in plan.processes]
    done = [r for r in rows if r["events"] is not None]
    events = max((r["events"] for r in done), default=None)
    wall = max((r["wall_s"] for r in done if r["wall_s"] is not None), default=None)
    return {
        "schema": SCHEMA,
        "topology": str(topology.path),
        "engine": plan.engine,
        "transports": sorted({topology.transport_of(link) for link in topology.links}),
        "started": started,
        "exit_status": status,
        "wall_s": round(wall_s, 6),
        "processes": rows,
        "summary": {
            "processes": len(rows),
            "succeeded": sum(1 for r in rows if r["exit_status"] == 0),
            "failed": [r["name"] for r in rows if r["exit_status"] not in (0, None)],
            "events": events,
            "wall_s": wall,
            "events_per_s": _rate(events, wall),
        },
    }


def write_launch_report(path: str | Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``path`` (OSError if it cannot)."""
    Path(path).write_text(json.dumps(report, indent=1) + "\n")


def _process(state: LaunchState, name: str) -> dict[str, Any]:
    line = state.reports.get(name, {})
    events, wall = line.get("events"), line.get("wall_s")
    return {
        "name": name,
        "exit_status": state.exit_codes.get(name, state.exit_codes.get("mpiexec")),
        "events": events,
        "wall_s": wall,
        "events_per_s": _rate(events, wall),
        "report": line.get("report"),
    }


def _rate(events: int | None, wall: float | None) -> float | None:
    if not events or not wall:
        return None
    return round(events / wall, 3)
