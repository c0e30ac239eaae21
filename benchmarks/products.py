"""The ``products`` part: realistic products through encode -> send -> recv -> decode.

One fresh process pair per transport (worker :mod:`benchmarks.workers.products`);
for every product kind it reports the round trip with the codecs on both sides
and, from the same processes, the round trip of the same bytes as one bare
buffer: ``x bare`` = products RTT / bare RTT is what the codecs and the many
regions cost on top of the transport.
"""

from __future__ import annotations

from typing import Any

from .candidates import Candidate
from .parts import Context, PartResult, register
from .transports import measure_candidate

__all__ = ["COLUMNS", "PRODUCT_CANDIDATES", "run"]

#: Columns of the products table (terminal and Markdown).
COLUMNS = ["transport", "product", "KiB", "RTT us", "MB/s", "bare RTT us", "x bare"]

_W = "benchmarks.workers.products"
PRODUCT_CANDIDATES = [
    Candidate(
        "tcp://",
        "transport",
        "tcp",
        _W,
        "tcp",
        "pair",
        scheme="tcp",
        extra={"url": "tcp://127.0.0.1:0"},
    ),
    Candidate(
        "shm://", "transport", "shm", _W, "shm", "pair", scheme="shm", extra={"url": "shm://bench"}
    ),
    Candidate(
        "mpi:// rank", "transport", "mpi", _W, "mpi-rank", "mpi2", scheme="mpi", needs=("mpi4py",)
    ),
    Candidate(
        "ucx://",
        "transport",
        "ucx",
        _W,
        "ucx",
        "pair",
        scheme="ucx",
        needs=("ucxx",),
        extra={"url": "ucx://127.0.0.1:0", "loop": "asyncio"},
    ),
]


def _rows(records: list[dict[str, Any]]) -> list[list[str]]:
    bare = {(r["series"], r["product"]): r for r in records if r["mode"] == "bare"}
    rows = []
    for r in records:
        if r["mode"] != "products":
            continue
        b = bare.get((r["series"], r["product"]))
        ratio = f"{r['latency_us'] / b['latency_us']:.2f}x" if b else "-"
        rows.append(
            [
                r["series"],
                r["product"],
                f"{r['size'] / 1024:.0f}",
                f"{r['latency_us']:.1f}",
                f"{r['bandwidth_GBps'] * 1e3:.0f}",
                f"{b['latency_us']:.1f}" if b else "-",
                ratio,
            ]
        )
    return rows


@register("products")
def run(ctx: Context) -> PartResult:
    """Every selected transport with every product kind; skips what cannot run."""
    if ctx.device == "gpu":
        ctx.log("  products: host products only (device products come with the gpu codecs)")
    statuses, records = [], []
    for c in PRODUCT_CANDIDATES:
        if c.group not in ctx.transports:
            continue
        status, recs = measure_candidate(c, ctx)
        statuses.append(status)
        records.extend(recs)
    ok = any(s["status"] == "ok" for s in statuses)
    return PartResult(
        "ok" if ok else "skipped",
        None if ok else "no transport available for products",
        data={"series": statuses, "measurements": records},
        tables=[
            (
                "products: encode + send + recv + decode round trip (x bare = vs same bytes "
                "as one buffer)",
                COLUMNS,
                _rows(records),
            )
        ],
    )
