"""The scale part launches both shapes for real and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.parts import Context
from benchmarks.scale import Shape, _measure


@pytest.mark.parametrize("shape", [Shape(1, 2, 40), Shape(2, 1, 40)], ids=lambda s: s.label)
def test_scale_shape_reports_startup_memory_and_rate(shape: Shape, tmp_path: Path) -> None:
    ctx = Context(quick=True, out=tmp_path, transports=["tcp"], device="host")
    record = _measure(shape, ctx)
    assert "error" not in record, record.get("error")
    assert record["events"] == 40
    assert record["processes"] == 3
    assert 0 < record["startup_s"] < record["wall_s"]
    assert record["rss_median_MiB"] > 10 and record["rss_max_MiB"] >= record["rss_median_MiB"]
    assert 0 < record["fraction_of_ideal"] <= 1.5
