"""The cpu part: marginal CPU per event from two launches, start-up taken out."""

from __future__ import annotations

import math
import resource
from pathlib import Path
from typing import Any

import pytest

from benchmarks import cpu
from benchmarks.chains import Chain
from benchmarks.parts import Context


def _usage(user: float, system: float, switches: int) -> Any:
    fields = [0.0] * 16
    fields[0], fields[1], fields[14] = user, system, switches
    return resource.struct_rusage(fields)


def test_marginal_takes_the_first_launch_from_the_second(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # start-up 1.0 s user, 0.5 s system, 100 switches; 2 ms user, 1 ms system and
    # 3 switches per event: 100 events then 300
    usages = iter([_usage(10.0, 5.0, 1000), _usage(11.2, 5.6, 1400), _usage(12.8, 6.4, 2000)])
    launched: list[Chain] = []

    def fake_launch(chain: Chain, ctx: Context) -> tuple[Any, dict[str, Any]]:
        launched.append(chain)
        return next(usages), {"events_per_s": 123.0}

    monkeypatch.setattr(cpu.resource, "getrusage", lambda who: next(usages))
    monkeypatch.setattr(cpu, "_launch", fake_launch)
    ctx = Context(quick=True, out=tmp_path, transports=["tcp"], device="host")
    record = cpu.marginal("tcp", True, 100, 300, ctx)
    assert [c.events for c in launched] == [100, 300]
    assert all(c.example and c.streams == 1 for c in launched)
    assert record["user_us"] == pytest.approx(2000.0)
    assert record["system_us"] == pytest.approx(1000.0)
    assert record["cpu_us"] == pytest.approx(3000.0)
    assert record["voluntary_switches"] == pytest.approx(1.0)
    assert record["events_per_s"] == 123.0


def test_marginal_reports_a_failed_launch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(
        cpu, "_launch", lambda chain, ctx: (_usage(0, 0, 0), {"error": "launcher exited with 1"})
    )
    ctx = Context(quick=True, out=tmp_path, transports=["tcp"], device="host")
    assert cpu.marginal("tcp", False, 10, 20, ctx) == {"error": "launcher exited with 1"}


def test_marginal_launches_the_job_without_spinning_loops(tmp_path: Path) -> None:
    ctx = Context(quick=True, out=tmp_path, transports=["tcp"], device="host")
    record = cpu.marginal("tcp", True, 40, 120, ctx)
    assert "error" not in record, record.get("error")
    assert record["events_per_s"] > 0
    for key in ("user_us", "system_us", "cpu_us", "voluntary_switches"):
        assert math.isfinite(record[key])
    assert record["cpu_us"] == pytest.approx(record["user_us"] + record["system_us"])
