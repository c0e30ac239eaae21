"""Trigger and timing reports: counts, timing fields, JSON and tables."""

from __future__ import annotations

import io
import json

from rich.console import Console

from actors.framework import Process, run
from tests.framework.mods import M


def _report():  # type: ignore[no-untyped-def]
    p = Process("TEST")
    p.set_source(f"{M}:CountingSource", lumis=2, events=5)  # events 1..10
    p.options.streams = 2
    p.add_module("even", f"{M}:Even")
    p.add_module("odd", f"{M}:Even", odd=True)
    p.add_module("a", f"{M}:Add")
    p.add_module("col", f"{M}:Collect", input="a")
    p.add_path("evens", ["even", "a", "col"])
    p.add_path("odds", ["odd", "col"])
    p.add_module("out", f"{M}:Memory", select_events=["evens"])
    p.add_end_path("e", ["out"])
    return run(p)


def test_trigger_report_counts() -> None:
    report = _report()
    assert report.events == 10
    assert report.accepted == 10  # every event passes one of the two paths
    paths = {p.name: p for p in report.paths}
    evens, odds = paths["evens"], paths["odds"]
    assert (evens.visited, evens.passed, evens.failed) == (10, 5, 5)
    assert (odds.visited, odds.passed, odds.failed) == (10, 5, 5)
    even, a, col = evens.modules
    assert (even.label, even.visited, even.passed, even.failed, even.skipped) == (
        "even",
        10,
        5,
        5,
        0,
    )
    assert (a.label, a.visited, a.passed, a.skipped) == ("a", 5, 5, 5)
    assert (col.visited, col.skipped) == (5, 5)
    assert paths["e"].end and paths["e"].visited == 10
    (out,) = paths["e"].modules
    assert (out.visited, out.passed, out.skipped) == (5, 5, 5)  # written only if "evens" passed


def test_timing_report_counts_calls_per_module() -> None:
    report = _report()
    timing = {m.label: m for m in report.modules}
    assert timing["even"].calls == 10 and timing["odd"].calls == 10
    assert timing["a"].calls == 10  # path "evens" on even events, on demand for "col" on odd
    assert timing["col"].calls == 10
    assert timing["out"].calls == 5  # selected events only
    assert timing["col"].transition_calls == 1 + 2 + 2  # begin_job, begin/end lumi x2
    for m in report.modules:
        assert m.total >= 0 and m.mean == (m.total / m.calls if m.calls else 0.0)
    assert report.event_loop_time > 0 and report.throughput > 0
    assert 0.0 <= report.overhead <= 1.0


def test_report_json_and_tables() -> None:
    report = _report()
    data = json.loads(report.to_json())
    assert data["events"] == 10
    assert {p["name"] for p in data["trigger_report"]} == {"evens", "odds", "e"}
    assert {m["label"] for m in data["timing_report"]} == {"even", "odd", "a", "col", "out"}
    assert {"calls", "total", "mean", "fraction"} <= set(data["timing_report"][0])
    assert {"throughput", "overhead", "event_loop_time"} <= set(data)
    buffer = io.StringIO()
    report.print(Console(file=buffer, width=160))
    text = buffer.getvalue()
    assert "Trigger report" in text and "Timing report" in text and "evens" in text


def test_timing_report_without_worker_threads_counts_the_loop_as_the_worker() -> None:
    from actors.framework.report import JobReport, ModuleTiming

    timing = ModuleTiming("m", "T")
    timing.total, timing.calls = 0.25, 10
    report = JobReport("P", 10, 10, 1, 0, 1.0, 1.2, [], [timing])
    assert report.workers == 1 and report.overhead == 0.75 and report.fraction(timing) == 0.25
    buffer = io.StringIO()
    report.print(Console(file=buffer, width=160))
    text = " ".join(buffer.getvalue().split())  # the caption wraps at the table's width
    assert "1 streams, no worker threads" in text and "the loop's thread idle 75.0%" in text
