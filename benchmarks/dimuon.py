"""The offload-ratio series of the ``events`` part: the dimuon job, local vs offloaded.

The job is ``examples/dimuon`` on real CMS events: ``cms2010_zmumu_nano.root``
from ``../shared/data`` read 16 times over (8,000 events). Per stream count
(1 and 4 streams per side, as many threads) it runs:

- the single-process job (``dimuon.toml`` under ``python -m actors.run``), and
- the offloaded job (``offload.toml`` under ``python -m actors.launch``: the
  invariant mass is computed in a second process; five products go there per
  event, one comes back) over every available transport.

Variants: ``bound`` (each process on a CPU of its own) and ``threads0`` (every
process with ``threads = 0``: no worker threads, module code on the event
loop's thread); a variant's ratio is to the single process of that variant.

Rates come from whole commands with start-up cancelled out: each command runs
with ``SHORT`` and with ``LONG`` events and the rate is
``(LONG - SHORT) / (wall(LONG) - wall(SHORT))``. The ratio of an offloaded
series is its rate over the single-process rate of the same stream count,
measured in the same run (interleaved), so machine load affects both alike.
"""

from __future__ import annotations

import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.settings import CPUS
from actors.tomlfile import dump_toml

from .chains import scheme
from .harness import REPO, python, run_command

__all__ = ["DATA", "LONG", "SHORT", "TARGETS", "Offload", "data_missing", "measure"]

DATA = REPO.parent / "shared" / "data" / "cms2010_zmumu_nano.root"
REPEAT_FILE = 16  # 500 events x 16 = 8,000
LONG, SHORT = 8000, 1000
QUICK_LONG, QUICK_SHORT = 1500, 300
EXAMPLE = REPO / "examples" / "dimuon"
#: minimum offloaded / single-process rate, by streams per side (issue 12)
TARGETS = {1: 0.7, 4: 0.9}


@dataclass(frozen=True)
class Offload:
    """One series: ``transport`` None is the single-process job; ``bound``: every
    process on one CPU of its own (``ACTORS_CPUS`` for the single process, the
    launcher's ``--bind-to core`` for the offloaded job); ``threads0``: every
    process without worker threads (else as many threads as streams)."""

    transport: str | None
    streams: int
    bound: bool = False
    threads0: bool = False

    @property
    def label(self) -> str:
        """``dimuon single s1``, ``dimuon offload tcp s4 bound`` or ``dimuon
        offload mpi s1 threads0`` (for ``--select``)."""
        where = "single" if self.transport is None else f"offload {self.transport}"
        variant = (" bound" if self.bound else "") + (" threads0" if self.threads0 else "")
        return f"dimuon {where} s{self.streams}{variant}"

    @property
    def threads(self) -> int:
        """Worker threads of each process."""
        return 0 if self.threads0 else self.streams


def data_missing() -> str | None:
    """Why the series cannot run here (None when they can)."""
    if not DATA.exists():
        return f"{DATA} is absent (the real CMS Open Data of ../shared/data)"
    return None


def _config(name: str, series: Offload, workdir: Path) -> Path:
    """``examples/dimuon/<name>`` with 8,000 events of input, the series' streams
    and threads, and its output here."""
    doc: dict[str, Any] = tomllib.loads((EXAMPLE / name).read_text())
    doc.setdefault("options", {}).update(streams=series.streams, threads=series.threads)
    source = doc["source"]
    if source["type"].endswith(":RootSource"):
        source["file"] = [str(DATA)] * REPEAT_FILE
    out = doc.get("modules", {}).get("out")
    if out is not None:
        out["file"] = str(workdir / f"out-{name}.root")
    path = workdir / name
    path.write_text(dump_toml(doc))
    return path


def _topology(series: Offload, workdir: Path) -> Path:
    doc: dict[str, Any] = tomllib.loads((EXAMPLE / "offload.toml").read_text())
    assert series.transport is not None, "the single-process job has no topology"
    doc["run"] = {"transport": scheme(series.transport)}
    for name, proc in doc["process"].items():
        proc.update(
            config=_config(proc["config"], series, workdir).name,
            threads=series.threads,
            streams=series.streams,
        )
        proc["args"] = ["--quiet", "--report-json", str(workdir / f"report-{name}.json")]
    path = workdir / "offload.toml"
    path.write_text(dump_toml(doc))
    return path


def _command(series: Offload, workdir: Path, events: int, timeout: float) -> list[str]:
    if not (workdir / "modules.py").exists():
        (workdir / "modules.py").symlink_to(EXAMPLE / "modules.py")
    if series.transport is None:
        return [
            python(),
            "-m",
            "actors.run",
            str(_config("dimuon.toml", series, workdir)),
            "--quiet",
            "--events",
            str(events),
        ]
    return [
        python(),
        "-m",
        "actors.launch",
        str(_topology(series, workdir)),
        "--events",
        str(events),
        "--timeout",
        str(timeout),
        *(["--bind-to", "core"] if series.bound else []),
    ]


def _env(series: Offload) -> dict[str, str]:
    """The single process of a bound series runs on the first CPU it may use."""
    if series.transport is None and series.bound:
        return {CPUS.name: str(min(os.sched_getaffinity(0)))}
    return {}


def _timed(argv: list[str], timeout: float, env: dict[str, str]) -> tuple[float | None, str]:
    start = time.perf_counter()
    code, tail = run_command(argv, timeout=timeout + 15, tail_lines=20, env=env)
    wall = time.perf_counter() - start
    if code != 0:
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "rror" in ln or "failed" in ln]
        status = "timed out" if code in (None, 124) else f"exited with {code}"
        return None, f"{status}: " + " | ".join((errors or lines)[-3:])
    return wall, ""


def measure(series: Offload, workdir: Path, quick: bool, timeout: float) -> dict[str, Any]:
    """One series, short and long: ``events_per_s`` (start-up cancelled out) or ``error``."""
    long, short = (QUICK_LONG, QUICK_SHORT) if quick else (LONG, SHORT)
    walls = {}
    for events in (short, long):
        wall, error = _timed(_command(series, workdir, events, timeout), timeout, _env(series))
        if wall is None:
            return {"error": f"{events} events: {error}"}
        walls[events] = wall
    span = walls[long] - walls[short]
    if span <= 0:
        return {"error": f"the {long}-event run was not slower than the {short}-event one"}
    return {
        "events_per_s": (long - short) / span,
        "wall_short_s": walls[short],
        "wall_long_s": walls[long],
        "events_short": short,
        "events_long": long,
    }
