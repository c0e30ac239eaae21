"""From raw records to figures: latency, bandwidth, ratios to baselines, targets.

- latency = median round-trip time (one copy for memcpy), in microseconds;
- bandwidth = ``size / (median RTT / 2)`` for ping-pong records (each
  direction moves ``size`` bytes), ``size / median`` for one-way records
  (memcpy), in GB/s (1e9 bytes/s);
- ``latency_ratio`` = ours / baseline (1.0 = as fast as raw; 2.0 = twice the
  time), ``latency_added_us`` = ours - baseline;
- ``bandwidth_ratio`` = ours / best baseline at that size (1.0 = raw speed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .candidates import CANDIDATES, Candidate

__all__ = ["TARGETS", "add_ratios", "derive", "evaluate_targets"]

MiB = 1 << 20


def derive(rec: dict[str, Any]) -> dict[str, Any]:
    """Add ``latency_us`` and ``bandwidth_GBps`` to one size record."""
    median = rec["samples_us"]["median"]
    one_way_s = median * 1e-6 if rec.get("one_way") else median * 0.5e-6
    rec["latency_us"] = median
    rec["bandwidth_GBps"] = rec["size"] / one_way_s / 1e9 if one_way_s > 0 else None
    return rec


def _index(records: Iterable[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["series"], r["size"]): r for r in records}


def add_ratios(records: list[dict[str, Any]]) -> None:
    """Fill the ratio fields of every transport record from its baselines."""
    by = _index(records)
    cands = {c.name: c for c in CANDIDATES}
    for rec in records:
        c = cands.get(rec["series"])
        if c is None or c.role != "transport":
            continue
        base = by.get((c.lat_base, rec["size"])) if c.lat_base else None
        if base is not None:
            rec["baseline_latency"] = c.lat_base
            rec["latency_ratio"] = rec["latency_us"] / base["latency_us"]
            rec["latency_added_us"] = rec["latency_us"] - base["latency_us"]
        bests = [b for name in c.bw_base if (b := by.get((name, rec["size"]))) is not None]
        if bests:
            best = max(bests, key=lambda b: b["bandwidth_GBps"] or 0.0)
            rec["baseline_bandwidth"] = best["series"]
            rec["bandwidth_ratio"] = rec["bandwidth_GBps"] / best["bandwidth_GBps"]


# (series, kind, threshold, text); kind "bw" = min bandwidth ratio over sizes >= 16 MiB,
# "lat_x" = 8 B latency ratio <= threshold, "lat_add" = 8 B added latency <= threshold µs,
# "lat_below" = 8 B latency ratio < 1.
TARGETS: list[tuple[str, str, float, str]] = [
    ("mpi:// rank", "bw", 0.9, ">= 16 MiB: >= 90% of raw mpi4py bandwidth"),
    ("mpi:// port-file", "bw", 0.9, ">= 16 MiB: >= 90% of raw mpi4py connect/accept bandwidth"),
    ("ucx://", "bw", 0.9, ">= 16 MiB: >= 90% of raw ucxx bandwidth"),
    ("shm://", "bw", 0.6, ">= 16 MiB: >= 60% of single-thread memcpy"),
    ("tcp://", "bw", 0.9, ">= 16 MiB: >= 90% of the best raw socket"),
    ("mpi:// rank", "lat_x", 4.0, "8 B RTT within 4x raw asyncio-polling MPI"),
    ("mpi:// port-file", "lat_x", 4.0, "8 B RTT within 4x raw connect/accept asyncio-polling MPI"),
    ("shm://", "lat_below", 1.0, "8 B RTT below raw socketpair wake-up"),
    ("tcp://", "lat_add", 25.0, "8 B RTT <= 25 us over raw blocking socket"),
    ("ucx://", "lat_add", 25.0, "8 B RTT <= 25 us over raw ucxx"),
]


def _judge(kind: str, threshold: float, recs: list[dict[str, Any]]) -> tuple[bool, str] | None:
    if kind == "bw":
        big = [r for r in recs if r["size"] >= 16 * MiB and "bandwidth_ratio" in r]
        if not big:
            return None
        worst = min(big, key=lambda r: r["bandwidth_ratio"])
        base_bw = worst["bandwidth_GBps"] / worst["bandwidth_ratio"]
        text = (
            f"{worst['bandwidth_ratio']:.0%} at {worst['size'] // MiB} MiB "
            f"({worst['bandwidth_GBps']:.2f} vs {base_bw:.2f} GB/s)"
        )
        return worst["bandwidth_ratio"] >= threshold, text
    small = next((r for r in recs if r["size"] == 8 and "latency_ratio" in r), None)
    if small is None:
        return None
    base = small["latency_us"] - small["latency_added_us"]
    text = (
        f"{small['latency_us']:.1f} us vs {base:.1f} us "
        f"({small['latency_ratio']:.2f}x, +{small['latency_added_us']:.1f} us)"
    )
    if kind == "lat_x":
        return small["latency_ratio"] <= threshold, text
    if kind == "lat_below":
        return small["latency_ratio"] < threshold, text
    return small["latency_added_us"] <= threshold, text


def evaluate_targets(
    records: list[dict[str, Any]], statuses: dict[str, str]
) -> list[dict[str, Any]]:
    """One row per target: ``met`` True/False, or None with why it was not measured."""
    rows = []
    for series, kind, threshold, text in TARGETS:
        recs = [r for r in records if r["series"] == series]
        verdict = _judge(kind, threshold, recs)
        row: dict[str, Any] = {"series": series, "target": text}
        if verdict is None:
            row.update(met=None, measured=statuses.get(series, "no baseline measured"))
        else:
            row.update(met=verdict[0], measured=verdict[1])
        rows.append(row)
    return rows


def candidate(name: str) -> Candidate | None:
    return next((c for c in CANDIDATES if c.name == name), None)
