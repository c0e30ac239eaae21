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
    lines = ["| " + " | ".join(c or " " for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render(doc: dict[str, Any]) -> str:
    """The machine line, the transports summary and the targets, as Markdown."""
    m, v = doc["machine"], doc["versions"]
    part = doc["parts"]["transports"]
    head = (f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}"
            + (f", GPU {m['gpu']}" if m.get("gpu") else "") + f"; load average at start "
            f"{', '.join(f'{x:.1f}' for x in m.get('load_average') or [])}. "
            f"Python {v['python']}, numpy {v['numpy']}, mpi4py {v['mpi4py']} "
            f"({v['mpi_library']}), ucxx {v['ucxx']}, uvloop {v['uvloop']}. "
            f"Command: `{' '.join(doc['command'])}` ({doc['started']}, "
            f"{part.get('rounds', 1)} round(s), {part['device']} memory).")
    return "\n\n".join([
        head,
        _table(SUMMARY_COLUMNS, _summary_rows(part["measurements"], part["series"])),
        _table(["series", "target", "verdict", "measured"], _target_rows(part["targets"])),
    ])


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text())))
