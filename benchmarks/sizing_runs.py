"""The real runs behind the sizing validation: one function per shape, fresh processes.

Every run writes its processes' ``--report-json`` files and a Stamp file into
a scratch folder and returns a record: ``events_per_s`` (the steady rate of
:func:`benchmarks.launched.steady_rate`), ``latency`` (median/mean ms, from
the event's StartTime to its end), ``reports`` (process name -> the full
``JobReport.to_dict()``), or ``error`` when the run failed.

Shapes: the HLT demonstrator (:mod:`benchmarks.hlt_config`) in one process
or offloaded to 1 or 2 remotes; the offload example (``examples/offload``)
in one process (its four modules, no distributed ones) or as shipped (local +
remote); the empty controller -> follower chain (the per-event cost of the
distributed machinery).

The one-process (calibration) runs also carry a :class:`CpuClock` on an end
path: the process's CPU seconds (``os.times()``, user + system of all its
threads) when each event ends, so that the record has ``cpu`` (``cpu_per_event_s``),
the CPU per event in the steady window (start-up and drain excluded), beside
its rate.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from actors.framework import Analyzer, Concurrency, Event, Process

from .chains import Chain, Written
from .harness import REPO, python, run_command
from .hlt_config import Menu, make_process, write_offloaded
from .launched import latency_summary, run_written, steady_rate

__all__ = [
    "CpuClock",
    "cpu_per_event",
    "run_empty",
    "run_hlt_local",
    "run_hlt_offloaded",
    "run_offload_example",
    "run_offload_single",
]

_M = "benchmarks.bench_modules"
HLT_THREADS = 4
CPU_CLOCK = "benchmarks.sizing_runs:CpuClock"


class CpuClock(Analyzer):
    """Records the process's CPU seconds (user, system) when each event ends; ``end_job``
    writes ``{"user": [...], "system": [...]}`` to ``file`` (put it on an end path)."""

    concurrency = Concurrency.LEGACY
    run_on_loop = True

    def __init__(self, *, file: str) -> None:
        self.file = Path(file)
        self.user: list[float] = []
        self.system: list[float] = []

    def analyze(self, event: Event) -> None:
        t = os.times()
        self.user.append(t.user)
        self.system.append(t.system)

    def end_job(self) -> None:
        self.file.write_text(json.dumps({"user": self.user, "system": self.system}))


def cpu_per_event(doc: dict[str, list[float]]) -> dict[str, float]:
    """CPU seconds per event (user + system, and each) between the k-th and the
    (n-k)-th event, ``k = n // 10`` (the window of the steady rate); {} when too short."""
    n = len(doc.get("user", []))
    k = n // 10
    first, last = k, n - 1 - k
    if last - first < 4:
        return {}
    user = (doc["user"][last] - doc["user"][first]) / (last - first)
    system = (doc["system"][last] - doc["system"][first]) / (last - first)
    return {"cpu_per_event_s": user + system, "user_s": user, "system_s": system}


def _with_cpu_clock(config: Process, work: Path) -> Process:
    config.add_module("cpuclock", CPU_CLOCK, file=str(work / "cpu.json"))
    config.add_end_path("cpuclock", ["cpuclock"])
    return config


def _full_reports(written: Written) -> dict[str, Any]:
    return {name: json.loads(p.read_text()) for name, p in written.reports.items() if p.exists()}


def _launched(written: Written, timeout: float, streams: int) -> dict[str, Any]:
    rec = run_written(written, timeout, streams)
    if "error" not in rec:
        rec["reports"] = _full_reports(written)
        rec.pop("timing_report", None)
    return rec


def _run_single(
    config: Process, work: Path, streams: int, threads: int, events: int, timeout: float
) -> dict[str, Any]:
    """``config`` (with a Stamp writing ``work/stamps.json``) through ``actors.run``."""
    stamp, report = work / "stamps.json", work / "report.json"
    (work / "single.toml").write_text(_with_cpu_clock(config, work).to_toml())
    argv = [
        python(),
        "-m",
        "actors.run",
        str(work / "single.toml"),
        "--quiet",
        "--threads",
        str(threads),
        "--streams",
        str(streams),
        "--events",
        str(events),
        "--report-json",
        str(report),
    ]
    code, tail = run_command(argv, timeout=timeout)
    if code != 0 or not stamp.exists() or not report.exists():
        last = " | ".join(tail.splitlines()[-3:])
        return {"error": f"actors.run exited with {code}: {last}"}
    stamps = json.loads(stamp.read_text())
    rate, window = steady_rate(stamps["done"], streams)
    cpu_file = work / "cpu.json"
    cpu = cpu_per_event(json.loads(cpu_file.read_text())) if cpu_file.exists() else {}
    return {
        "events": len(stamps["done"]),
        "window": window,
        "events_per_s": rate,
        "latency": latency_summary(stamps["latency"]),
        "cpu": cpu,
        "reports": {"local": json.loads(report.read_text())},
    }


def run_hlt_local(menu: Menu, streams: int, events: int, timeout: float) -> dict[str, Any]:
    """The whole HLT menu in one process (``HLT_THREADS`` threads)."""
    with tempfile.TemporaryDirectory(prefix="hep-sizing-") as tmp:
        work = Path(tmp)
        process = make_process(menu, work / "stamps.json")
        return _run_single(process, work, streams, HLT_THREADS, events, timeout)


def run_hlt_offloaded(
    menu: Menu, remotes: int, transport: str, streams: int, events: int, timeout: float
) -> dict[str, Any]:
    """The HLT menu, its GPU-like modules in ``remotes`` remote processes."""
    with tempfile.TemporaryDirectory(prefix="hep-sizing-") as tmp:
        work = Path(tmp)
        stamp = work / "stamps.json"
        topology, reports = write_offloaded(
            make_process(menu, stamp),
            menu.gpu_labels,
            remotes,
            transport,
            HLT_THREADS,
            streams,
            events,
            work,
        )
        return _launched(Written(topology, [stamp], reports), timeout, streams)


def run_offload_single(streams: int, events: int, timeout: float) -> dict[str, Any]:
    """The offload example's four modules in one process (1 thread, like its local side)."""
    example = REPO / "examples" / "offload"
    local = Process.from_toml(example / "local.toml")
    with tempfile.TemporaryDirectory(prefix="hep-sizing-") as tmp:
        work = Path(tmp)
        (work / "modules.py").symlink_to(example / "modules.py")
        single = Process("OFFSINGLE")
        assert local.source is not None
        single.set_source(local.source.type, **local.source.params)
        single.add_module("t0", f"{_M}:StartTime")
        for label in ("calib", "threshold"):
            m = local.modules[label]
            single.add_module(label, m.type, **m.params)
        single.add_module("spectrum", "modules:Spectrum", k=8)
        single.add_module("summary", "modules:Summary")
        single.add_path("offload", ["t0", "calib", "threshold", "spectrum", "summary"])
        single.add_module("stamp", f"{_M}:Stamp", file=str(work / "stamps.json"), start="t0")
        single.add_end_path("timing", ["stamp"])
        return _run_single(single, work, streams, 1, events, timeout)


def run_offload_example(
    transport: str, streams: int, events: int, timeout: float
) -> dict[str, Any]:
    """``examples/offload`` as shipped (local 1 thread, remote 2), ``streams`` per side."""
    with tempfile.TemporaryDirectory(prefix="hep-sizing-") as tmp:
        written = Chain(transport, 1, 0, streams, events, example=True).write(Path(tmp))
        return _launched(written, timeout, streams)


def run_empty(transport: str, streams: int, events: int, timeout: float) -> dict[str, Any]:
    """The empty controller -> 1 follower chain (no products)."""
    with tempfile.TemporaryDirectory(prefix="hep-sizing-") as tmp:
        written = Chain(transport, 1, 0, streams, events).write(Path(tmp))
        return _launched(written, timeout, streams)
