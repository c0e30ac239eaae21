"""End-of-job reports: trigger report and timing report, as rich tables and JSON.

Figures (all times in seconds, wall clock):

* trigger report, per trigger path: events visited, passed (accepted),
  failed (a filter rejected); per module in each path: visited, passed,
  failed (filters only can fail), skipped (not run because an earlier filter
  of the path rejected, or, for an output module, because none of its
  ``select_events`` paths accepted the event).
* timing report, per module: event calls, total time in the module's code
  (for ``async def`` methods the wall time from start to end, awaits
  included), mean per call, transitions apart, and fraction of the event-loop time
  (``total / (event_loop_time * threads)`` - the share of worker capacity; with
  ``threads = 0`` the loop's thread counts as the one worker).
  Plus event-loop time (first event start to last event end), throughput
  (events / event-loop time) and framework overhead: the fraction of the
  event loop during which the worker threads were idle although events were
  in flight, estimated as ``1 - sum(module event time) / (threads *
  event_loop_time)`` for a job that keeps every thread busy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["JobReport", "ModuleTiming", "PathModuleCounts", "PathReport"]


@dataclass
class PathModuleCounts:
    """Counts for one module in one path."""

    label: str
    visited: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class PathReport:
    """Counts for one trigger path (``end=True`` for end paths)."""

    name: str
    visited: int = 0
    passed: int = 0
    failed: int = 0
    modules: list[PathModuleCounts] = field(default_factory=list)
    end: bool = False


@dataclass
class ModuleTiming:
    """Time spent in one module (all instances), events and transitions apart."""

    label: str
    type: str
    calls: int = 0
    total: float = 0.0
    transition_calls: int = 0
    transition_total: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.calls if self.calls else 0.0


@dataclass
class JobReport:
    """Everything a job reports at its end (``to_json`` for machines, ``print`` for people)."""

    process: str
    events: int = 0
    accepted: int = 0
    streams: int = 1
    threads: int = 1
    event_loop_time: float = 0.0
    wall_time: float = 0.0
    paths: list[PathReport] = field(default_factory=list)
    modules: list[ModuleTiming] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Events per second over the event loop."""
        return self.events / self.event_loop_time if self.event_loop_time > 0 else 0.0

    @property
    def module_time(self) -> float:
        return sum(m.total for m in self.modules)

    @property
    def workers(self) -> int:
        """Threads that run module code: ``threads``, or the loop's thread for 0."""
        return max(self.threads, 1)

    @property
    def overhead(self) -> float:
        """Fraction of worker capacity not spent in module code during the event loop."""
        capacity = self.event_loop_time * self.workers
        return max(0.0, 1.0 - self.module_time / capacity) if capacity > 0 else 0.0

    def fraction(self, timing: ModuleTiming) -> float:
        """A module's share of the event-loop worker capacity."""
        capacity = self.event_loop_time * self.workers
        return timing.total / capacity if capacity > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "events": self.events,
            "accepted": self.accepted,
            "streams": self.streams,
            "threads": self.threads,
            "event_loop_time": self.event_loop_time,
            "wall_time": self.wall_time,
            "throughput": self.throughput,
            "overhead": self.overhead,
            "trigger_report": [asdict(p) for p in self.paths],
            "timing_report": [
                {**asdict(m), "mean": m.mean, "fraction": self.fraction(m)} for m in self.modules
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobReport:
        """The report :meth:`to_dict` described (derived figures are recomputed)."""
        paths = [
            PathReport(**{**p, "modules": [PathModuleCounts(**m) for m in p["modules"]]})
            for p in data["trigger_report"]
        ]
        timing_keys = set(ModuleTiming.__dataclass_fields__)
        modules = [
            ModuleTiming(**{k: v for k, v in m.items() if k in timing_keys})
            for m in data["timing_report"]
        ]
        keys = ("process", "events", "accepted", "streams", "threads")
        return cls(
            **{k: data[k] for k in keys},
            event_loop_time=data["event_loop_time"],
            wall_time=data["wall_time"],
            paths=paths,
            modules=modules,
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def tables(self) -> list[Any]:
        """The trigger and timing reports as rich Tables."""
        from ._report_tables import timing_table, trigger_table

        return [trigger_table(self), timing_table(self)]

    def print(self, console: Any = None) -> None:
        """Print both tables to ``console`` (a rich Console; default stdout)."""
        from rich.console import Console

        console = console or Console()
        for table in self.tables():
            console.print(table)
