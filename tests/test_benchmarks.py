"""Smoke test of the benchmark suite: ``python -m benchmarks all --quick``.

Checks that the run completes and that results.json and the plots are
produced and well-formed. No timing assertions: figures are only checked for
being present, finite and positive.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PARTS = {"transports", "products", "actors", "events", "scheduling", "overhead", "hlt"}
SUMMARY = {"min", "median", "mean", "p99", "stdev", "n"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "all", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    results = out / "results.json"
    assert results.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(results.read_text())
    failed = {
        name: part["reason"] for name, part in doc["parts"].items() if part["status"] == "failed"
    }
    assert proc.returncode == 0 and not failed, (failed, proc.stderr[-2000:])
    return out, doc, proc.stdout


def _check_summary(summary: dict[str, float]) -> None:
    assert set(summary) == SUMMARY
    assert summary["n"] >= 1
    assert 0 < summary["min"] <= summary["median"] <= summary["p99"]
    assert all(math.isfinite(v) for v in summary.values())


@pytest.mark.timeout(180)
def test_results_json_is_well_formed(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, doc, _ = quick_run
    assert doc["schema"] == "hep-actors-benchmarks/1"
    assert doc["quick"] is True and doc["device"] == "host"
    assert {"cpu", "cores", "memory_gib", "os"} <= set(doc["machine"])
    assert doc["versions"]["python"] == sys.version.split()[0]
    assert {"numpy", "mpi4py", "mpi_library", "ucxx", "uvloop"} <= set(doc["versions"])
    assert doc["bytecode"] == {"compiled": ["actors", "benchmarks"], "ok": True}
    assert set(doc["parts"]) == PARTS
    for name, part in doc["parts"].items():
        assert part["status"] in ("ok", "skipped"), (name, part)
        if part["status"] == "skipped":
            assert part["reason"], name


@pytest.mark.timeout(180)
def test_transport_measurements(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, doc, _ = quick_run
    part = doc["parts"]["transports"]
    statuses = {s["name"]: s for s in part["series"]}
    assert statuses["memcpy"]["status"] == "ok"
    for st in statuses.values():
        assert st["status"] in ("ok", "skipped", "failed")
        assert st["status"] == "ok" or st["reason"], st
    measured = {r["series"] for r in part["measurements"]}
    assert measured == {n for n, s in statuses.items() if s["status"] == "ok"}
    for rec in part["measurements"]:
        assert rec["size"] in part["sizes"]
        assert rec["repetitions"] == rec["samples_us"]["n"] >= 1
        _check_summary(rec["samples_us"])
        assert rec["latency_us"] > 0 and rec["bandwidth_GBps"] > 0
        if rec["role"] == "transport" and "bandwidth_ratio" in rec:
            assert rec["bandwidth_ratio"] > 0 and rec["baseline_bandwidth"] in measured
    for target in part["targets"]:
        assert target["met"] in (True, False, None) and target["measured"]


@pytest.mark.timeout(180)
def test_products(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, doc, _ = quick_run
    products = doc["parts"]["products"]
    if products["status"] == "ok":
        kinds = {r["product"] for r in products["measurements"]}
        assert {"numpy", "soa", "objects", "many"} <= kinds
        assert {r["mode"] for r in products["measurements"]} == {"products", "bare"}


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


@pytest.mark.timeout(180)
def test_events_part(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, doc, stdout = quick_run
    part = doc["parts"]["events"]
    assert part["status"] == "ok" and part["rounds"] == 1
    series = part["series"]
    assert {(e["transport"], e["streams"]) for e in series} == {
        (t, s) for t in ("inproc", "tcp") for s in (1, 2)
    }
    for e in series:
        assert e["status"] == "ok", e
        assert e["scenario"] == "empty" and e["followers"] == 1 and e["payload_bytes"] == 0
        assert _positive(e["events_per_s"]) and e["best_events_per_s"] >= e["events_per_s"]
        assert len(e["samples_events_per_s"]) == 1 and e["window_events"] > 0
    tcp = [e for e in series if e["transport"] == "tcp"]
    for e in tcp:  # subprocess engine: every process wrote its framework report
        assert set(e["reports"]) == {"local", "f0"}
        assert all(r["events"] == 300 for r in e["reports"].values())
        assert _positive(e["launcher_events_per_s"])
    assert "events/s" in stdout


@pytest.mark.timeout(180)
def test_hlt_part(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, doc, _ = quick_run
    part = doc["parts"]["hlt"]
    assert part["status"] == "ok"
    assert part["menu"]["modules"] == 30 and part["menu"]["gpu_like"] == 2
    configs = {c["name"]: c for c in part["configurations"]}
    assert set(configs) == {"local only", "offloaded, 1 remote (tcp)"}
    for c in configs.values():
        assert c["status"] == "ok", c
        assert _positive(c["events_per_s"])
        lat = c["latency"]
        assert lat["n"] == 40 and 0 < lat["median_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    groups = {(g["process"], g["category"]) for g in configs["local only"]["timing_groups"]}
    assert {("local", "GPU-like modules"), ("local", "other modules")} <= groups
    off = {
        (g["process"], g["category"]) for g in configs["offloaded, 1 remote (tcp)"]["timing_groups"]
    }
    # the GPU-like modules ran in the remote process only, the rest stayed local
    assert ("gpu0", "GPU-like modules") in off and ("local", "GPU-like modules") not in off
    assert ("local", "other modules") in off
    assert ("local", "distributed (controller/senders/receivers)") in off


@pytest.mark.timeout(180)
def test_plots_written(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    out, doc, _ = quick_run
    pytest.importorskip("matplotlib", reason="plots need the 'plots' extra")
    assert sorted(doc["plots"]) == ["bandwidth.png", "events.png", "latency.png"]
    for name in doc["plots"]:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.timeout(180)
def test_markdown_renders_every_part(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    from benchmarks.markdown import render

    _, doc, _ = quick_run
    text = render(doc)
    assert "| memcpy | raw |" in text
    assert "| tcp:// | numpy | 1024 |" in text  # products
    assert "| inproc | empty | 1 | 1 |" in text and "| tcp | empty | 1 | 2 |" in text
    assert "Menu: 30 modules (2 GPU-like" in text and "| local only |" in text
