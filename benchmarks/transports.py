"""The ``transports`` part: ping-pong latency and bandwidth, ours beside raw baselines.

Every candidate of :mod:`benchmarks.candidates` that applies to
``--transports`` runs in fresh processes; a candidate that cannot run here is
recorded as skipped with the reason, one that fails as failed with the
worker's error. Figures and ratios: :mod:`benchmarks.figures`.
"""

from __future__ import annotations

from typing import Any

from .candidates import Candidate, build_launch, device_of, scratch, selected, unavailable
from .figures import MiB, add_ratios, derive, evaluate_targets
from .harness import run_launch
from .parts import Context, PartResult, register

__all__ = ["measure_candidate", "run"]


def measure_candidate(c: Candidate, ctx: Context) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run one candidate: its status entry and its size records (empty unless ok)."""
    reason = unavailable(c, ctx)
    status: dict[str, Any] = {"name": c.name, "role": c.role, "group": c.group}
    if reason is not None:
        ctx.log(f"  {c.name:<28} skipped: {reason}")
        return status | {"status": "skipped", "reason": reason}, []
    with scratch() as workdir:
        outcome = run_launch(build_launch(c, ctx, workdir))
    status["wall_s"] = round(outcome.wall_s, 2)
    if outcome.series is None:
        ctx.log(f"  {c.name:<28} FAILED: {outcome.reason}")
        return status | {"status": "failed", "reason": outcome.reason}, []
    ctx.log(f"  {c.name:<28} ok ({outcome.wall_s:.1f} s)")
    records = []
    for rec in outcome.series:
        rec.update(
            series=c.name,
            role=c.role,
            group=c.group,
            transport=c.scheme or c.group,
            variant=c.variant,
            device=device_of(c, ctx),
        )
        records.append(derive(rec))
    return status | {"status": "ok", "reason": None}, records


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _summary_rows(records: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> list[list[str]]:
    by = {(r["series"], r["size"]): r for r in records}
    rows = []
    for st in statuses:
        name = st["name"]
        if st["status"] != "ok":
            rows.append([name, st["status"], *["-"] * 8])
            continue
        small = by.get((name, 8), {})
        row = [
            name,
            "ours" if st["role"] == "transport" else "raw",
            _fmt(small.get("latency_us"), ".1f"),
            _fmt(small.get("samples_us", {}).get("p99"), ".1f"),
            _fmt(small.get("latency_ratio"), ".2f") + ("x" if "latency_ratio" in small else ""),
        ]
        for size in (MiB, 16 * MiB, 64 * MiB):
            rec = by.get((name, size), {})
            row.append(_fmt(rec.get("bandwidth_GBps"), ".2f"))
            if size >= 16 * MiB:
                row.append(_fmt(rec.get("bandwidth_ratio"), ".0%"))
        rows.append(row)
    return rows


SUMMARY_COLUMNS = [
    "series",
    "",
    "RTT 8 B us",
    "p99 us",
    "x raw",
    "1 MiB GB/s",
    "16 MiB GB/s",
    "% raw",
    "64 MiB GB/s",
    "% raw",
]


def _target_rows(targets: list[dict[str, Any]]) -> list[list[str]]:
    verdict = {True: "met", False: "MISSED", None: "not measured"}
    return [[t["series"], t["target"], verdict[t["met"]], t["measured"]] for t in targets]


@register("transports")
def run(ctx: Context) -> PartResult:
    """Measure every selected candidate ``ctx.repeat`` times (rounds interleave the
    series, so that a burst of load elsewhere hits one round, not one series);
    per series and size the round with the lowest median is kept. Ratios and
    targets come from this run only."""
    statuses: dict[str, dict[str, Any]] = {}
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for round_no in range(ctx.repeat):
        if ctx.repeat > 1:
            ctx.log(f" round {round_no + 1} of {ctx.repeat}")
        for c in selected(ctx):
            status, recs = measure_candidate(c, ctx)
            if statuses.get(c.name, {}).get("status") != "ok":
                statuses[c.name] = status
            for rec in recs:  # keep, per size, the round with the lowest median
                key = (rec["series"], rec["size"])
                if key not in best or rec["latency_us"] < best[key]["latency_us"]:
                    best[key] = rec | {"round": round_no}
    records = list(best.values())
    add_ratios(records)
    statuses_list = list(statuses.values())
    why = {s["name"]: f"{s['status']}: {s['reason']}" for s in statuses_list if s["status"] != "ok"}
    targets = evaluate_targets(records, why)
    ok = any(s["status"] == "ok" for s in statuses_list)
    return PartResult(
        "ok" if ok else "failed",
        None if ok else "no candidate could run",
        data={
            "sizes": ctx.sizes,
            "budget": ctx.budget.to_json(),
            "device": ctx.device,
            "rounds": ctx.repeat,
            "series": statuses_list,
            "measurements": records,
            "targets": targets,
        },
        tables=[
            (
                f"transports ({ctx.device} memory; ratios to the raw baseline of the same run)",
                SUMMARY_COLUMNS,
                _summary_rows(records, statuses_list),
            ),
            (
                "targets (reported, not asserted)",
                ["series", "target", "verdict", "measured"],
                _target_rows(targets),
            ),
        ],
    )
