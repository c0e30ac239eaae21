"""Run a generated topology through ``python -m actors.launch`` and read back its figures.

The launcher runs as a subprocess in its own process group (killed afterwards
whatever happens, :func:`benchmarks.harness.run_command`). Figures come from
files the processes write at their end, not from parsing the terminal:

- Stamp files (:class:`benchmarks.bench_modules.Stamp`): the wall-clock time
  at which every event finished in each stamping process. The *steady*
  throughput is taken between the completions of the ``k``-th and the
  ``(n-k)``-th event of all stamps merged, ``k = max(lead, n // 10)``: start-up
  (imports, connecting, the first events filling the pipeline) and the drain
  are excluded.
- ``--report-json`` files (when the engine honours per-process arguments):
  events, event-loop and wall time per process, the launcher summary's
  figures (``events / wall``), and the timing report.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from .chains import Written
from .harness import python, run_command

__all__ = ["latency_summary", "run_written", "steady_rate"]


def steady_rate(done: list[float], lead: int = 1) -> tuple[float, int]:
    """Events/s between the k-th and (n-k)-th completion; (rate, events in the window)."""
    done = sorted(done)
    n = len(done)
    k = max(lead, n // 10)
    first, last = k, n - 1 - k
    if last - first < 4:
        first, last = 0, n - 1
    span = done[last] - done[first] if last > first else 0.0
    return ((last - first) / span if span > 0 else 0.0), last - first


def latency_summary(latency: list[float]) -> dict[str, float]:
    """Median, p90, p99 and mean of per-event latencies, in milliseconds."""
    if not latency:
        return {}
    ms = sorted(x * 1e3 for x in latency)

    def q(f: float) -> float:
        return ms[min(len(ms) - 1, int(f * len(ms)))]

    return {
        "median_ms": statistics.median(ms),
        "p90_ms": q(0.9),
        "p99_ms": q(0.99),
        "mean_ms": statistics.fmean(ms),
        "n": len(ms),
    }


def _reports(written: Written) -> dict[str, dict[str, Any]]:
    out = {}
    for name, path in written.reports.items():
        if path.exists():
            out[name] = json.loads(path.read_text())
    return out


def _stamps(written: Written) -> tuple[list[float], list[float]]:
    done: list[float] = []
    latency: list[float] = []
    for path in written.stamps:
        if path.exists():
            doc = json.loads(path.read_text())
            done += doc["done"]
            latency += doc.get("latency", [])
    return done, latency


def run_written(
    written: Written, timeout: float, lead: int = 1, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Launch ``written.topology`` (``env`` added to the launcher's environment); a
    record with ``events_per_s`` or with ``error``."""
    argv = [python(), "-m", "actors.launch", str(written.topology), "--timeout", str(timeout)]
    code, tail = run_command(argv, timeout=timeout + 15, tail_lines=60, env=env)
    if code != 0:
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "rror" in ln or "failed" in ln]
        last = (errors or lines)[-3:]
        status = "timed out" if code in (None, 124) else f"exited with {code}"
        return {"error": f"launcher {status}: " + " | ".join(last)}
    done, latency = _stamps(written)
    if len(done) < 2:
        return {"error": f"only {len(done)} event completions recorded"}
    rate, window = steady_rate(done, lead)
    rec: dict[str, Any] = {
        "events": len(done),
        "window": window,
        "events_per_s": rate,
        "span_s": max(done) - min(done),
    }
    if latency:
        rec["latency"] = latency_summary(latency)
    reports = _reports(written)
    if reports:
        rec["reports"] = {
            name: {
                "events": r["events"],
                "event_loop_time": r["event_loop_time"],
                "wall_time": r["wall_time"],
                "throughput": r["throughput"],
                "overhead": r["overhead"],
            }
            for name, r in reports.items()
        }
        rec["timing_report"] = {name: r["timing_report"] for name, r in reports.items()}
    return rec
