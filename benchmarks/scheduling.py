"""The ``scheduling`` part: sleep-model efficiency (measured / theoretical) per threads x streams.

Runs :mod:`benchmarks.sleep_model` (written with the framework, issue 5) in a
subprocess and folds its JSON into results.json. ``--quick`` uses a small
model and grid.
"""

from __future__ import annotations

import json
from typing import Any

from .harness import python, run_command
from .parts import Context, PartResult, register

__all__ = ["run"]

QUICK_ARGS = [
    "--algorithms",
    "10",
    "--mean-time",
    "0.002",
    "--threads",
    "1",
    "2",
    "--streams",
    "1",
    "2",
    "--seconds",
    "0.3",
]


@register("scheduling")
def run(ctx: Context) -> PartResult:
    """Run the sleep model; skipped with the reason when it cannot start."""
    out = ctx.out / "sleep_model.json"
    argv = [python(), "-m", "benchmarks.sleep_model", "--json", str(out)]
    code, tail = run_command(
        argv + (QUICK_ARGS if ctx.quick else []), timeout=60 if ctx.quick else 1200
    )
    if code is None:
        return PartResult("failed", "sleep model timed out")
    if code != 0 or not out.exists():
        last = tail.splitlines()[-1] if tail else "no output"
        return PartResult("failed", f"sleep model exited with {code}: {last}")
    doc: dict[str, Any] = json.loads(out.read_text())
    rows = [
        [
            str(r["threads"]),
            str(r["streams"]),
            f"{r['measured']:.1f}",
            f"{r['theoretical']:.1f}",
            f"{r['ratio']:.0%}",
            f"{r['ratio_sim']:.0%}",
        ]
        for r in doc.get("results", [])
    ]
    return PartResult(
        "ok",
        data={"model": doc.get("model"), "results": doc.get("results", [])},
        tables=[
            (
                "scheduling: sleep model (events/s)",
                ["threads", "streams", "measured", "limit", "measured/limit", "vs ideal"],
                rows,
            )
        ],
    )
