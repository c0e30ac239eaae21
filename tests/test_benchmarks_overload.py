"""The overload part runs for real and reports the memory of both processes over the run."""

from __future__ import annotations

from pathlib import Path

from benchmarks.overload import _measure
from benchmarks.parts import Context


def test_overload_reports_rate_and_memory_of_both_processes(tmp_path: Path) -> None:
    ctx = Context(quick=True, out=tmp_path, transports=["tcp"], device="host")
    rec = _measure(3.0, ctx)
    assert "error" not in rec, rec.get("error")
    assert rec["events"] == 300 and rec["events_per_s"] > 0
    for name in ("fast", "slow"):
        assert rec[name]["samples"] >= 2
        assert 10 < rec[name]["first_quarter_MiB"] <= rec[name]["peak_MiB"]
