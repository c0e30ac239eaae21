"""The events part's tables, from the part's results.json data: what the terminal
shows (:mod:`benchmarks.events`) and what ``python -m benchmarks.markdown`` renders."""

from __future__ import annotations

from typing import Any

from . import dimuon_report

__all__ = ["COLUMNS", "NOTE", "tables"]

Table = tuple[str, list[str], list[list[str]]]

NOTE = (
    "events/s = steady rate of event completions on the followers (local side for "
    "the offload example), median of rounds; launcher ev/s = controller events / "
    "its job wall time in the median round, as in the launcher's summary"
)
_VERDICT = {True: "met", False: "MISSED", None: "not measured"}
_DIMUON_COLUMNS = [
    "transport",
    "streams/side",
    "events/s",
    "ratio",
    "target",
    "verdict",
    "whole ev/s",
    "whole ratio",
]
_AGAINST_TCP_COLUMNS = [
    "series",
    "events/s",
    "tcp events/s",
    "ratio",
    "of medians",
    "within 10%",
    ">= tcp",
]


COLUMNS = [
    "transport",
    "scenario",
    "followers",
    "streams",
    "events/s",
    "best",
    "MB/s",
    "launcher ev/s",
    "note",
]


def _rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for e in entries:
        series = [e["transport"], e["scenario"], str(e["followers"]), str(e["streams"])]
        if e["status"] != "ok":
            rows.append([*series, e["status"], "-", "-", "-", e.get("reason", "")[:60]])
            continue
        launcher = e.get("launcher_events_per_s")
        rows.append(
            [
                *series,
                f"{e['events_per_s']:,.0f}",
                f"{e['best_events_per_s']:,.0f}",
                f"{e['MB_per_s']:,.0f}" if "MB_per_s" in e else "-",
                f"{launcher:,.0f}" if launcher else "-",
                "",
            ]
        )
    return rows


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _against_tcp_rows(loaded: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            r["series"],
            "failed" if r["events_per_s"] is None else f"{r['events_per_s']:,.0f}",
            f"{r['tcp_events_per_s']:,.0f}",
            _x(r["ratio"]),
            _x(r["ratio_of_medians"]),
            _VERDICT[r["met"]],
            _VERDICT[r["at_or_above"]],
        ]
        for r in loaded
    ]


def _count_rows(counts: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            c["transport"],
            str(c["series"]),
            str(c["within_10"]),
            str(c["at_or_above"]),
            _x(c.get("median_ratio")),
            _x(c.get("lowest_ratio")),
            _of_rounds(c, "rounds_within_10"),
            _of_rounds(c, "rounds_at_or_above"),
        ]
        for c in counts
    ]


def _of_rounds(counts: dict[str, Any], key: str) -> str:
    """``n of N`` single rounds (``-`` for results without per-round counts)."""
    rounds = counts.get("rounds")
    return f"{counts[key]} of {rounds}" if rounds else "-"


def tables(data: dict[str, Any]) -> list[Table]:
    """(title, columns, rows) of every table of the events part's ``data`` (the
    part's entry in results.json): the series, the targets, the dimuon offload
    ratios, each transport against tcp:// and the verdict counts (those with rows)."""
    under = f", under load {data['load']}" if data.get("load") else ""
    out: list[Table] = [
        (f"events: controller -> followers{under} ({NOTE})", COLUMNS, _rows(data["series"])),
        (
            "events targets (reported, not asserted)",
            ["series", "target", "verdict", "measured"],
            [
                [t["series"], t["target"], _VERDICT[t["met"]], t["measured"]]
                for t in data.get("targets", [])
            ],
        ),
    ]
    if data.get("offload_ratio"):
        out.append(
            (
                f"dimuon offload ratio{under} (8,000 real events; rate from whole "
                "commands, start-up cancelled; ratio to the single-process job of the "
                "same run and streams; whole = 8,000 events / whole command, start-up "
                "included, less sensitive to load swings)",
                _DIMUON_COLUMNS,
                dimuon_report.rows(data["offload_ratio"]),
            )
        )
    if data.get("loaded_vs_tcp"):
        out.append(
            (
                f"against tcp://{under} (reported, not asserted; ratio = median over the "
                "rounds of the ratio within a round, where the two ran back to back; "
                "ratio of medians beside it)",
                _AGAINST_TCP_COLUMNS,
                _against_tcp_rows(data["loaded_vs_tcp"]),
            )
        )
    if data.get("verdict_counts"):
        control = (
            " (tcp-again: tcp:// run again, the verdicts' noise floor)"
            if data.get("control")
            else ""
        )
        out.append(
            (
                f"against tcp://{under}: series per verdict{control}; single rounds "
                "(each series' ratio within every round) per verdict beside",
                [
                    "transport",
                    "series",
                    "within 10%",
                    ">= tcp",
                    "median ratio",
                    "lowest",
                    "rounds within 10%",
                    "rounds >= tcp",
                ],
                _count_rows(data["verdict_counts"]),
            )
        )
    return out
