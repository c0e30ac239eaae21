"""Inputs of the sizing model: timing reports, link costs, and the calibration.

* :func:`load_reports` reads ``--report-json`` files: one ``JobReport.to_dict()``
  (``python -m actors.run``), a launch report (schema
  ``hep-actors-launch-report/1``, one report per process) or the records the
  sizing part writes; it returns process name -> report.
* :func:`link_costs` reads a ``python -m benchmarks`` results.json (part
  ``transports``) or a list of its measurement records: per transport the
  one-way latency (half the smallest median round trip of the sizes up to
  64 KiB), the bandwidth (``bandwidth_GBps`` of the largest size) and, from
  records with ``idle_gap_us`` (the sizing part's), the wake-ups of a round trip
  between ends that idled before it.
* :func:`calibrate` turns two single-process runs of one workload (1 stream,
  and ``S > 1`` streams) into a :class:`Profile`: the seconds per event that
  hold the GIL (``g``: the CPU per event the 1-stream run measured, and
  ``cpu_ratio`` = CPU at ``S`` streams / at 1; without a CPU measurement ``g``
  is fitted so that the model of that one process gives the ``S``-stream rate)
  and the GIL-free seconds on the event's critical path
  (``w = 1 / rate(1 stream) - g``).
  ``g`` is a per-event base ``b`` (the source and the event's own framework work,
  measured by the empty controller -> follower chain) plus an equal cost per
  module call; ``w`` is shared among the modules by their measured time.
* :meth:`Profile.stage` is the :class:`~benchmarks.sizing_model.Stage` of a
  process that runs some of the modules (plus, offloaded, its distributed
  modules, each one module call; a server's base is the empty chain's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sizing_model import LinkCost, Stage, predict

__all__ = ["Profile", "calibrate", "link_costs", "load_reports", "module_rates"]

LAUNCH_SCHEMA = "hep-actors-launch-report/1"
_DIST = "actors.distributed"


def load_reports(path: Path) -> dict[str, dict[str, Any]]:
    """Process name -> ``JobReport.to_dict()`` from a report file.

    Raises ValueError naming the file when it is not JSON or holds no report.
    """
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON report ({exc})") from exc
    if isinstance(doc, dict) and doc.get("schema") == LAUNCH_SCHEMA:
        out = {p["name"]: p["report"] for p in doc["processes"] if p.get("report")}
    elif isinstance(doc, dict) and "timing_report" in doc:
        out = {doc.get("process", path.stem): doc}
    elif isinstance(doc, dict) and isinstance(doc.get("reports"), dict):
        out = doc["reports"]
    else:
        out = {}
    if not out:
        raise ValueError(f"{path}: no timing report in it (expected --report-json output)")
    return out


def link_costs(doc: Any) -> dict[str, LinkCost]:
    """Transport scheme (``tcp``, ``shm``...) -> its :class:`LinkCost`.

    ``doc``: a results.json document (part ``transports``, or ``sizing``: the link
    records it measured) or its ``transports`` measurement records.
    Raises ValueError when no transport measurement is in it.
    """
    if isinstance(doc, dict):
        parts = doc.get("parts", {})
        doc = (
            parts.get("transports", {}).get("measurements")
            or parts.get("sizing", {}).get("link_records")  # the sizing part's own
            or []
        )
    by: dict[str, list[dict[str, Any]]] = {}
    idle: dict[str, list[dict[str, Any]]] = {}
    for rec in doc:
        if rec.get("role") == "transport" and rec.get("latency_us"):
            into = idle if rec.get("idle_gap_us") else by
            into.setdefault(rec["series"].split(":")[0], []).append(rec)
    out = {}
    for scheme, recs in by.items():
        small = [r["latency_us"] for r in recs if r["size"] <= 64 * 1024]
        big = max(recs, key=lambda r: r["size"])
        if small and big.get("bandwidth_GBps"):
            wake_s = _wake_s(recs, idle.get(scheme, []))
            out[scheme] = LinkCost(min(small) * 0.5e-6, big["bandwidth_GBps"] * 1e9, wake_s)
    if not out:
        raise ValueError("no transport measurement (run: python -m benchmarks transports)")
    return out


def _wake_s(recs: list[dict[str, Any]], idle: list[dict[str, Any]]) -> float:
    """The median round trip after an idle gap less the median round trip of the same
    size (the smallest size measured both ways), in seconds; 0 without a gap record."""
    rtt = {r["size"]: r["latency_us"] for r in recs}
    both = sorted((r["size"], r["latency_us"]) for r in idle if r["size"] in rtt)
    if not both:
        return 0.0
    size, after_idle = both[0]
    return max(0.0, float(after_idle) - float(rtt[size])) * 1e-6


def module_rates(report: dict[str, Any]) -> dict[str, tuple[float, float, str]]:
    """Label -> (calls per event, seconds per event, type) of one report (the sizing
    runs' own CPU clock left out: it is not part of the workload)."""
    events = max(1, int(report["events"]))
    return {
        m["label"]: (m["calls"] / events, m["total"] / events, m["type"])
        for m in report["timing_report"]
        if not m["type"].endswith(":CpuClock")
    }


@dataclass(frozen=True)
class Profile:
    """One workload calibrated on one process (see the module docstring)."""

    base_s: float  # GIL s/event of an event's own framework work (source, scheduling)
    per_call_s: float  # GIL s per module call
    wait_s: dict[str, float]  # label -> GIL-free s/event on the critical path
    calls: dict[str, float]  # label -> calls per event
    threads: int
    module_s: dict[str, float] | None = None  # label -> measured s/event (report)
    #: GIL s/event with ``streams`` events in flight / with one (measured CPU): above 1
    #: contention (GIL hand-offs), below 1 batching (one loop wake-up for several events)
    cpu_ratio: float = 1.0
    streams: int = 1  # the events in flight of the calibration run ``cpu_ratio`` is from
    #: GIL s/event of a process without the source (a server): the empty chain's base
    server_base_s: float | None = None

    def heaviest_first(self, labels: list[str]) -> list[str]:
        """``labels`` by decreasing GIL-free share, then measured time."""
        times = self.module_s or {}
        return sorted(labels, key=lambda lb: (-self.wait_s.get(lb, 0.0), -times.get(lb, 0.0)))

    @property
    def gil_s(self) -> float:
        return self.base_s + self.per_call_s * sum(self.calls.values())

    def scale(self, streams: int) -> float:
        """The factor on GIL seconds with ``streams`` events in flight: 1 for one, the
        measured ``cpu_ratio`` from the calibration's streams on, linear between."""
        if streams <= 1 or self.streams <= 1:
            return 1.0
        frac = min(1.0, (streams - 1) / (self.streams - 1))
        return 1.0 + (self.cpu_ratio - 1.0) * frac

    def stage(
        self,
        name: str,
        labels: list[str],
        extra_calls: float = 0.0,
        threads: int | None = None,
        *,
        serial: bool = False,
        streams: int = 1,
        server: bool = False,
    ) -> Stage:
        """The process running ``labels`` (+ ``extra_calls`` distributed module calls)
        with ``streams`` events in flight (see :meth:`scale`); a ``server`` (no source:
        its events come from a client) has ``server_base_s`` as its per-event base.
        Its threads are busy for the modules' measured time (``busy_s``).

        The GIL-free time is the modules' share of the single process's critical
        path: they overlap in the new process as they did in the calibration run.
        ``serial``: their whole measured time instead (one after the other; e.g. a
        server on a host without a free core for each of its threads).
        Raises KeyError naming a label the calibration does not know.
        """
        missing = [lb for lb in labels if lb not in self.calls]
        if missing:
            raise KeyError(f"modules not in the calibration run: {', '.join(missing[:5])}")
        calls = sum(self.calls[lb] for lb in labels) + extra_calls
        times = self.module_s if serial and self.module_s is not None else self.wait_s
        wait = sum(times[lb] for lb in labels)
        base = self.base_s
        if server and self.server_base_s is not None:
            base = min(base, self.server_base_s)
        busy = sum(self.module_s.get(lb, 0.0) for lb in labels) if self.module_s else 0.0
        return Stage(
            name,
            (base + self.per_call_s * calls) * self.scale(streams),
            wait_s=wait,
            threads=threads or self.threads,
            busy_s=busy,
        )


def _fit_gil(rate_one: float, rate_many: float, streams: int, threads: int) -> float:
    """The GIL seconds per event ``g`` for which the model of one process with
    ``w = 1 / rate_one - g`` GIL-free seconds gives ``rate_many`` at ``streams``
    (used when the runs have no CPU measurement)."""
    total = 1.0 / rate_one
    lo, hi = 0.0, total  # the rate falls as g grows (the GIL-free part shrinks)
    if streams <= 1 or rate_many <= rate_one:
        return total
    for _ in range(60):
        g = (lo + hi) / 2
        x = predict(Stage("p", g, wait_s=total - g, threads=threads), streams=streams)
        lo, hi = (g, hi) if x.events_per_s > rate_many else (lo, g)
    return (lo + hi) / 2


def calibrate(
    one: dict[str, Any],
    many: dict[str, Any],
    rate_one: float,
    rate_many: float,
    base_s: float,
    per_call_s: float | None = None,
    *,
    cpu_one: float | None = None,
    cpu_many: float | None = None,
) -> Profile:
    """A :class:`Profile` from a 1-stream and an ``S``-stream run of one process.

    ``one``/``many``: their ``JobReport.to_dict()``; ``rate_*``: their events/s;
    ``base_s``: the per-event framework base (1 / events/s of the empty chain).
    With ``per_call_s`` (the framework's cost per module call, measured on another
    workload) the base is what remains of ``g`` instead: a source that makes
    products costs more than the empty chain's.

    ``cpu_one``/``cpu_many``: the CPU seconds per event the two runs measured
    (user + system of the process): ``g`` is the 1-stream run's CPU (a Python
    process's CPU is held under the GIL, but for native code that releases it)
    and ``cpu_ratio`` = ``cpu_many / cpu_one`` (with more events in flight an
    event may cost more CPU - GIL hand-offs, thread wake-ups - or less - one
    loop wake-up serves several events). Without them ``g`` is fitted so
    that the model gives ``rate_many`` at ``S`` streams (threads taken as at
    least ``S``: modules that run on the event loop need no thread).
    Raises ValueError for rates that are not positive.
    """
    if rate_one <= 0 or rate_many <= 0:
        raise ValueError("calibration runs need positive events/s")
    streams = int(many["streams"])
    workers = max(1, int(many["threads"]))  # threads = 0: the loop's thread runs the modules
    ratio = 1.0
    if cpu_one is not None and cpu_one > 0:
        g = cpu_one
        if cpu_many is not None and cpu_many > 0:
            ratio = cpu_many / cpu_one
    else:
        g = _fit_gil(rate_one, rate_many, streams, max(streams, workers))
    w = max(0.0, 1.0 / rate_one - g)
    rates = module_rates(one)
    calls = {lb: c for lb, (c, _, _) in rates.items()}
    times = {lb: t for lb, (_, t, _) in rates.items()}
    total = sum(times.values()) or 1.0
    n_calls = sum(calls.values()) or 1.0
    if per_call_s is None:
        base = min(base_s, g)
        per_call = (g - base) / n_calls
    else:
        per_call = min(per_call_s, g / n_calls)
        base = g - per_call * n_calls
    wait = {lb: w * t / total for lb, t in times.items()}
    return Profile(
        base_s=base,
        per_call_s=per_call,
        wait_s=wait,
        calls=calls,
        threads=workers,
        module_s=times,
        cpu_ratio=ratio,
        streams=max(1, streams),
        server_base_s=base_s,
    )
