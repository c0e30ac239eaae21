"""examples/notebook.ipynb runs top to bottom in a real kernel: two processes via actors.launch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "notebook.ipynb"


def _texts(cell: Any) -> str:
    out = []
    for output in cell.get("outputs", []):
        out.append(output.get("text", ""))
        data = output.get("data", {})
        out += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(out)


def test_notebook_runs_and_shows_report_and_plot() -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=90, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()  # raises CellExecutionError (with the traceback) on any error
    outputs = [_texts(c) for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    joined = "\n".join(outputs)
    assert "exit codes {'local': 0, 'remote': 0}; 300 events done here" in joined
    assert "local 300, remote 300 / 300 events (ended)" in joined  # the updated progress line
    assert "energy" in joined and "offloaded" in joined  # timing and trigger tables
    assert re.search(r"stopped after \d{3,} events; running: False", joined)
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
