"""The ``actors`` part: remote actors across two processes, codec included.

The link-level ``transports`` part sends raw buffers; this part goes through
everything a user's message goes through (actor ref, envelope, codec, link,
decode, mailbox) with one fresh server process and one client process per
transport (worker :mod:`benchmarks.workers.actor_echo`): ask/echo round trips
of 8 B and of a 64 MiB float64 array, and one-way tells of both sizes. The
64 MiB echo is where received buffers that are not released at once (a
reference cycle per message) show: every round trip then allocates fresh
memory instead of reusing the receive cache or the shm segments.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .candidates import UCX_ENV
from .events import transport_unavailable
from .harness import Launch, mpiexec, python, run_launch
from .parts import Context, PartResult, register

__all__ = ["COLUMNS", "run"]

_W = "benchmarks.workers.actor_echo"
LISTEN = {"tcp": "tcp://127.0.0.1:0", "shm": "shm://bench-actors", "ucx": "ucx://127.0.0.1:0"}
FULL = {"small": 2000, "large": 12, "tells": 5000, "large_tells": 12}
QUICK = {"small": 200, "large": 3, "tells": 500, "large_tells": 3}
COLUMNS = [
    "transport",
    "ask 8 B us",
    "p99 us",
    "ask 64 MiB ms",
    "echo GB/s",
    "tell 8 B /s",
    "tell 64 MiB GB/s",
]


def _launch(scheme: str, ctx: Context, workdir: Path) -> Launch:
    config = json.dumps({"rounds": QUICK if ctx.quick else FULL})
    if scheme == "mpi":  # each side its own mpiexec -n 1, joined through a port file
        mpi = [mpiexec() or "mpiexec", "-n", "1"]
        url = f"mpi://port-file/{workdir / 'port'}"
        return Launch(
            client=[*mpi, python(), "-m", _W, "client", config],
            server=[*mpi, python(), "-m", _W, "serve", url],
            timeout=ctx.timeout,
        )
    return Launch(
        client=[python(), "-m", _W, "client", config],
        server=[python(), "-m", _W, "serve", LISTEN[scheme]],
        env=UCX_ENV if scheme == "ucx" else {},
        timeout=ctx.timeout,
    )


def _row(scheme: str, series: list[dict[str, Any]]) -> list[str]:
    by = {r["what"]: r for r in series}
    return [
        scheme,
        f"{by['ask 8 B']['median_us']:,.1f}",
        f"{by['ask 8 B']['p99_us']:,.1f}",
        f"{by['ask 64 MiB']['median_us'] / 1000:,.1f}",
        f"{by['ask 64 MiB']['GB_per_s']:.2f}",
        f"{by['tell 8 B']['per_s']:,.0f}",
        f"{by['tell 64 MiB']['GB_per_s']:.2f}",
    ]


@register("actors")
def run(ctx: Context) -> PartResult:
    """Every available transport of ``--transports``: one server + one client process."""
    entries: list[dict[str, Any]] = []
    rows = []
    for scheme in ctx.transports:
        why = transport_unavailable(scheme)
        if why:
            ctx.log(f"  actors over {scheme}: skipped: {why}")
            entries.append({"transport": scheme, "status": "skipped", "reason": why})
            continue
        with tempfile.TemporaryDirectory(prefix="hep-bench-actors-") as tmp:
            outcome = run_launch(_launch(scheme, ctx, Path(tmp)))
        if outcome.series is None:
            ctx.log(f"  actors over {scheme}: FAILED: {outcome.reason}")
            entries.append({"transport": scheme, "status": "failed", "reason": outcome.reason})
            rows.append([scheme, "FAILED", *["-"] * 5])
            continue
        entries.append({"transport": scheme, "status": "ok", "series": outcome.series})
        rows.append(_row(scheme, outcome.series))
        ctx.log(f"  actors over {scheme}: " + ", ".join(rows[-1][1:]))
    ok = any(e["status"] == "ok" for e in entries)
    note = (
        "two processes, remote ActorRef; echo GB/s = 64 MiB / median ask round trip "
        "(the array goes there and back); tells end with one ask"
    )
    return PartResult(
        "ok" if ok else "failed",
        None if ok else "no transport could run",
        data={"transports": entries, "note": note},
        tables=[(f"actors: remote ask/tell across two processes ({note})", COLUMNS, rows)],
    )
