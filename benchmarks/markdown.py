"""Render a results.json as Markdown tables (for docs/benchmarks.md)::

python -m benchmarks.markdown benchmark-results/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .transports import SUMMARY_COLUMNS, _summary_rows, _target_rows

__all__ = ["render"]


def _table(columns: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(c or " " for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _head(doc: dict[str, Any], part: dict[str, Any]) -> str:
    m, v = doc["machine"], doc["versions"]
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + f"; load average at start "
        f"{', '.join(f'{x:.1f}' for x in m.get('load_average') or [])}. "
        f"Python {v['python']}, numpy {v['numpy']}, mpi4py {v['mpi4py']} "
        f"({v['mpi_library']}), ucxx {v['ucxx']}, uvloop {v['uvloop']}. "
        f"Command: `{' '.join(doc['command'])}` ({doc['started']}, "
        f"{part.get('rounds', 1)} round(s), {doc.get('device', 'host')} memory"
        + (", bytecode compiled" if doc.get("bytecode", {}).get("ok") else "")
        + ")."
    )


def _transports(part: dict[str, Any]) -> list[str]:
    return [
        _table(SUMMARY_COLUMNS, _summary_rows(part["measurements"], part["series"])),
        _table(["series", "target", "verdict", "measured"], _target_rows(part["targets"])),
    ]


def _events(part: dict[str, Any]) -> list[str]:
    from .events_tables import tables

    skipped = "".join(
        f"\n- {s['transport']}: skipped: {s['reason']}" for s in part.get("skipped", [])
    )
    out = [f"{title}\n\n{_table(columns, rows)}" for title, columns, rows in tables(part)]
    if skipped:
        out[0] += "\n" + skipped
    return out


def _products(part: dict[str, Any]) -> list[str]:
    from .products import COLUMNS as product_columns
    from .products import _rows as product_rows

    return [_table(product_columns, product_rows(part["measurements"]))]


def _hlt(part: dict[str, Any]) -> list[str]:
    from .hlt import _summary_rows as hlt_rows

    menu = part["menu"]
    text = (
        f"Menu: {menu['modules']} modules ({menu['gpu_like']} GPU-like, "
        f"{menu['gpu_like_fraction']:.0%} of the nominal {menu['work_per_event_ms']:.1f} ms "
        f"per event; module median {menu['median_us']:.0f} us, p90 {menu['p90_us']:.0f} us, "
        f"max {menu['max_ms']:.1f} ms); {part['settings']['threads']} threads x "
        f"{part['settings']['streams']} streams per process, {part['settings']['events']} "
        f"events."
    )
    out = [
        text,
        _table(
            [
                "configuration",
                "events/s",
                "vs local",
                "latency median ms",
                "p90 ms",
                "p99 ms",
                "note",
            ],
            hlt_rows(part["configurations"]),
        ),
    ]
    for c in part["configurations"]:
        if c["status"] == "ok" and c["remotes"] <= 1:
            out.append(
                f"Timing, {c['name']}:\n\n"
                + _table(
                    ["process", "category", "ms/event", "fraction"],
                    [
                        [
                            g["process"],
                            g["category"],
                            f"{g['ms_per_event']:.2f}",
                            f"{g['fraction']:.1%}",
                        ]
                        for g in c["timing_groups"]
                    ],
                )
            )
    return out


def render(doc: dict[str, Any]) -> str:
    """The machine line and the tables of every part present (transports, products,
    events, hlt)."""
    parts = doc["parts"]
    sections = []
    for name, fn in (
        ("transports", _transports),
        ("products", _products),
        ("events", _events),
        ("hlt", _hlt),
    ):
        part = parts.get(name)
        if part and part["status"] == "ok":
            sections += [_head(doc, part), *fn(part)]
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text())))
