"""The results of the dimuon series of the ``events`` part: entries, ratios, table rows.

:mod:`benchmarks.dimuon` runs a series (one round: one sample); :func:`entries`
turns every series' samples into one entry (median rate, whole-command rate,
ratio to the single process of the same streams and variant), :func:`rows`
into the rows of the offload-ratio table.
"""

from __future__ import annotations

import statistics
from typing import Any

from .dimuon import TARGETS, Offload

__all__ = ["entries", "rows", "variant_key", "variant_name"]


def entries(
    series: list[Offload], samples: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """One entry per series from its rounds' ``samples`` (by label): status, median
    rate, the whole-command rate and, for an offloaded series, its ratios to the
    single process of the same streams and variant."""
    entries = []
    for c in series:
        ok = [s["events_per_s"] for s in samples[c.label] if "events_per_s" in s]
        entry: dict[str, Any] = {
            "label": c.label,
            "transport": c.transport or "single process",
            "streams": c.streams,
            "bound": c.bound,
            "threads0": c.threads0,
            "rounds": len(samples[c.label]),
        }
        if not ok:
            entries.append(
                entry
                | {"status": "failed", "reason": samples[c.label][-1].get("error", "no result")}
            )
            continue
        whole = [
            s["events_long"] / s["wall_long_s"] for s in samples[c.label] if "events_per_s" in s
        ]
        entries.append(
            entry
            | {
                "status": "ok",
                "events_per_s": statistics.median(ok),
                "samples_events_per_s": ok,
                "round_events_per_s": [s.get("events_per_s") for s in samples[c.label]],
                "samples": samples[c.label],
                "whole_events_per_s": statistics.median(whole),
            }
        )
    for rate, ratio in (("events_per_s", "ratio"), ("whole_events_per_s", "whole_ratio")):
        singles = {
            variant_key(e): e.get(rate) for e in entries if e["transport"] == "single process"
        }
        for e in entries:
            base = singles.get(variant_key(e))
            if e["transport"] != "single process" and e.get(rate) and base:
                e[ratio] = e[rate] / base
    return entries


def variant_key(e: dict[str, Any]) -> tuple[Any, ...]:
    """Streams and variant of a dimuon entry (what its ratio's baseline shares)."""
    return (e["streams"], e.get("bound"), e.get("threads0", False))


def variant_name(e: dict[str, Any]) -> str:
    """``tcp``, ``tcp (bound)`` or ``tcp (threads = 0)``."""
    bound = " (bound)" if e.get("bound") else ""
    return str(e["transport"]) + bound + (" (threads = 0)" if e.get("threads0") else "")


def rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    """The offload-ratio table's rows (verdicts against :data:`TARGETS`)."""
    rows = []
    for e in entries:
        goal = TARGETS.get(e["streams"])
        if e["status"] != "ok":
            rows.append(
                [
                    variant_name(e),
                    str(e["streams"]),
                    "FAILED",
                    "-",
                    "-",
                    e.get("reason", "")[:60],
                    "-",
                    "-",
                ]
            )
            continue
        ratio, whole = e.get("ratio"), e.get("whole_ratio")
        verdict = "" if ratio is None or goal is None else ("met" if ratio >= goal else "MISSED")
        rows.append(
            [
                variant_name(e),
                str(e["streams"]),
                f"{e['events_per_s']:,.0f}",
                "-" if ratio is None else f"{ratio:.2f}x",
                "-" if ratio is None else f">= {goal}x",
                verdict,
                f"{e['whole_events_per_s']:,.0f}",
                "-" if whole is None else f"{whole:.2f}x",
            ]
        )
    return rows
