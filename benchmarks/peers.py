"""The ``peers`` part: the same actor workloads through hep-actors and peer frameworks.

Each peer runs in a fresh process (:mod:`benchmarks.workers.peers`): ours over
``tcp://`` and ``shm://``, each with the defaults and with ``ACTORS_LOOP_SPIN_US=100``
("loop spin"), Ray, Dask distributed, xoscar and Thespian, each
with its recommended API and the actor in a second process. Peers that are not
installed are reported as skipped (``pip install 'hep-actors[peers]'``).

Ratios: each workload compares our better series with the best peer. Targets
(issue 12): at least 2x on the message rates (small asks, 1,000 outstanding
asks, tells), at least 1.2x on the 64 MiB echo (``shm://`` against Ray's
shared-memory object store), and a start-up no slower than the fastest peer.
The peers part is not in ``all``: run it by name (``python -m benchmarks
peers``); it takes about 5 minutes with every peer installed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from typing import Any

from .harness import python
from .parts import Context, PartResult, register
from .workers.peers import PEERS

__all__ = ["WORKLOADS", "run"]

OURS = (
    "hep-actors tcp",
    "hep-actors shm",
    "hep-actors tcp, loop spin",
    "hep-actors shm, loop spin",
)
#: workload key, column title, higher is better, target ratio (ours / best peer)
WORKLOADS: list[tuple[str, str, bool, float]] = [
    ("small_ask_per_s", "small asks/s", True, 2.0),
    ("outstanding_ask_per_s", "1,000 outstanding asks/s", True, 2.0),
    ("tell_per_s", "10,000 tells/s", True, 2.0),
    ("echo_64MiB_GBps", "64 MiB echo GB/s", True, 1.2),
    ("sum_back_64MiB_GBps", "64 MiB there, sum back GB/s", True, 1.0),
    ("startup_s", "start-up s", False, 1.0),
]


#: start-up figure: the median of this many fresh processes (the full run is one of them)
STARTUP_SAMPLES = 5


def _measure(peer: str, ctx: Context) -> dict[str, Any]:
    """One peer's figures; its start-up is the median of several fresh processes
    (one sample swings by tens of ms), the samples kept in ``startup_samples_s``."""
    worker = [python(), "-m", "benchmarks.workers.peers", peer, *(["--quick"] if ctx.quick else [])]
    result = _run_worker([*worker, "--repeat", "2" if ctx.quick else "5"], peer, ctx)
    if "results" not in result:
        return result
    samples = [result["results"]["startup_s"]]
    for _ in range(1 if ctx.quick else STARTUP_SAMPLES - 1):
        more = _run_worker([*worker, "--startup-only"], peer, ctx)
        if "results" not in more:
            return more
        samples.append(more["results"]["startup_s"])
    result["results"]["startup_s"] = statistics.median(samples)
    result["startup_samples_s"] = samples
    return result


def _run_worker(argv: list[str], peer: str, ctx: Context) -> dict[str, Any]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=ctx.timeout * 2)
    except subprocess.TimeoutExpired:
        return {"peer": peer, "failed": f"no result within {ctx.timeout * 2:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"peer": peer, "failed": f"exit {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _best(entries: list[dict[str, Any]], key: str, higher: bool) -> tuple[str, float] | None:
    values = [(e["peer"], e["results"][key]) for e in entries if key in e.get("results", {})]
    if not values:
        return None
    return (max if higher else min)(values, key=lambda v: v[1])


def compare(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per workload: our best series, the best peer, the ratio and whether the target is met.

    The ratio is always "how many times better we are" (for start-up: peer / ours).
    """
    ours = [e for e in entries if e["peer"] in OURS]
    peers = [e for e in entries if e["peer"] not in OURS]
    rows = []
    for key, title, higher, target in WORKLOADS:
        mine, theirs = _best(ours, key, higher), _best(peers, key, higher)
        if key == "echo_64MiB_GBps":  # the target compares shm:// with Ray's object store
            shm = [e for e in ours if e["peer"].startswith("hep-actors shm")]
            mine = _best(shm, key, higher)
            theirs = _best([e for e in peers if e["peer"] == "ray"], key, higher) or theirs
        if mine is None or theirs is None:
            rows.append(
                {
                    "workload": title,
                    "ours": mine,
                    "peer": theirs,
                    "ratio": None,
                    "target": target,
                    "met": None,
                }
            )
            continue
        ratio = mine[1] / theirs[1] if higher else theirs[1] / mine[1]
        rows.append(
            {
                "workload": title,
                "ours": mine,
                "peer": theirs,
                "ratio": ratio,
                "target": target,
                "met": ratio >= target,
            }
        )
    return rows


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if key.endswith(("_s", "GBps")) else f"{value:,.0f}"


def _table(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for e in entries:
        if "results" not in e:
            rows.append([e["peer"], e.get("skipped") or e.get("failed", "?"), *[""] * 5])
            continue
        rows.append([e["peer"], *[_fmt(k, e["results"].get(k)) for k, *_ in WORKLOADS]])
    return rows


def _ratio_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        met = {None: "n/a", True: "met", False: "MISSED"}[r["met"]]
        ours = f"{r['ours'][0]}" if r["ours"] else "-"
        peer = f"{r['peer'][0]}" if r["peer"] else "-"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        out.append([r["workload"], ours, peer, ratio, f">= {r['target']}x", met])
    return out


@register("peers")
def run(ctx: Context) -> PartResult:
    entries = []
    for peer in PEERS:
        ctx.log(f"peers: {peer}")
        entries.append(_measure(peer, ctx))
    rows = compare(entries)
    columns = ["peer", *[title for _, title, _, _ in WORKLOADS]]
    return PartResult(
        "ok",
        data={"peers": entries, "comparison": rows},
        tables=[
            ("peers: medians after warm-up (two processes each)", columns, _table(entries)),
            (
                "peers: ours against the best peer",
                ["workload", "ours", "best peer", "ratio", "target", ""],
                _ratio_rows(rows),
            ),
        ],
    )
