"""The ``cpu`` part: CPU time per event through each transport, start-up and waiting apart.

A farm node runs with every core busy, and there the job's processes get a fair share
of the CPUs: a transport that costs more CPU per event falls behind by about that much
(``events --load N``), whatever its latency on an idle machine. This part measures that
cost. Every series is launched twice, with few and many events (:data:`EVENTS`); the
CPU the job used (user and system time of the launcher and every process it waited
for, ``RUSAGE_CHILDREN``) in the first launch is taken from the second's, and divided
by the difference in events: the marginal CPU per event, summed over the job's
processes, without start-up and end. The voluntary context switches per event count
the wake-ups. The event loops and receives do not spin (``ACTORS_LOOP_SPIN_US``,
``ACTORS_ASK_SPIN_US``, ``ACTORS_STREAM_SPIN_US``, ``ACTORS_UCX_SPIN_US`` and
``ACTORS_MPI_SPIN_S`` set to 0), so that waiting costs nothing and the figure is the
work a transport does per event.

Series, for tcp and every available transport of ``--transports``: the offload example
with 1 stream per side, the empty chain with 1 follower and 1 stream. ``--repeat N``:
N rounds, transports alternating within a round; medians, and the ratio to tcp's
median. ``--quick``: fewer events (:data:`QUICK_EVENTS`), one round: a smoke run.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

from .chains import Chain
from .events import transport_unavailable
from .launched import run_written
from .parts import Context, PartResult, register

__all__ = ["EVENTS", "NO_SPIN", "QUICK_EVENTS", "marginal", "run"]

#: events of the two launches of a series, full and ``--quick``: the difference must
#: outlast the spread of a start-up (tens of ms) many times over
EVENTS = {"offload example s1": (1000, 5000), "empty f1 s1": (10000, 60000)}
QUICK_EVENTS = {"offload example s1": (100, 400), "empty f1 s1": (2000, 10000)}
#: the settings that make the job's event loops sleep as soon as they wait (tcp:// and
#: shm:// receives included: without ``ACTORS_STREAM_SPIN_US`` they polled for up to
#: 100 µs, the other transports' receives not; the offload example's CPU per event over
#: tcp:// was the same either way, 988 against 981 µs, 3 rounds, 2026-12-07)
NO_SPIN = {
    "ACTORS_LOOP_SPIN_US": "0",
    "ACTORS_ASK_SPIN_US": "0",
    "ACTORS_STREAM_SPIN_US": "0",
    "ACTORS_UCX_SPIN_US": "0",
    "ACTORS_MPI_SPIN_S": "0",
}


def _launch(chain: Chain, ctx: Context) -> tuple[resource.struct_rusage, dict[str, Any]]:
    """One launch of ``chain``: the children's resource usage after it, and its record."""
    with tempfile.TemporaryDirectory(prefix="hep-bench-cpu-") as tmp:
        record = run_written(chain.write(Path(tmp)), timeout=ctx.timeout, env=NO_SPIN)
    return resource.getrusage(resource.RUSAGE_CHILDREN), record


def marginal(transport: str, example: bool, few: int, many: int, ctx: Context) -> dict[str, Any]:
    """The marginal CPU per event of one series: launches with ``few`` and ``many``
    events; a record in µs per event, or with ``error``."""
    usages = [resource.getrusage(resource.RUSAGE_CHILDREN)]
    for events in (few, many):
        usage, record = _launch(Chain(transport, 1, 0, 1, events, example=example), ctx)
        if "error" in record:
            return {"error": record["error"]}
        usages.append(usage)
    start, after_few, after_many = usages

    def per_event(field: str) -> float:
        first = getattr(after_few, field) - getattr(start, field)
        second = getattr(after_many, field) - getattr(after_few, field)
        return float(second - first) / (many - few)

    user, system = per_event("ru_utime") * 1e6, per_event("ru_stime") * 1e6
    return {
        "user_us": user,
        "system_us": system,
        "cpu_us": user + system,
        "voluntary_switches": per_event("ru_nvcsw"),
        "events_per_s": record["events_per_s"],
    }


def _summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [s for s in samples if "error" not in s]
    if not ok:
        return {"error": samples[-1]["error"], "rounds": samples}
    keys = ("user_us", "system_us", "cpu_us", "voluntary_switches", "events_per_s")
    return {**{k: statistics.median(s[k] for s in ok) for k in keys}, "rounds": samples}


def _rows(results: dict[str, dict[str, dict[str, Any]]]) -> list[list[str]]:
    rows = []
    for series, by_transport in results.items():
        tcp = by_transport.get("tcp", {}).get("cpu_us")
        for transport, r in by_transport.items():
            if "error" in r:
                rows.append([series, transport, r["error"], "", "", "", "", ""])
                continue
            ratio = f"{r['cpu_us'] / tcp:.2f}x" if tcp else "-"
            rows.append(
                [
                    series,
                    transport,
                    f"{r['user_us']:,.0f}",
                    f"{r['system_us']:,.0f}",
                    f"{r['cpu_us']:,.0f}",
                    ratio,
                    f"{r['voluntary_switches']:.1f}",
                    f"{r['events_per_s']:,.0f}",
                ]
            )
    return rows


@register("cpu")
def run(ctx: Context) -> PartResult:
    counts = QUICK_EVENTS if ctx.quick else EVENTS
    transports = ["tcp", *[t for t in ctx.transports if t != "tcp"]]
    skipped = {t: why for t in transports if (why := transport_unavailable(t)) is not None}
    usable = [t for t in transports if t not in skipped]
    series = [name for name in counts if ctx.selects(name)]
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {t: [] for t in usable} for s in series
    }
    for round_ in range(1 if ctx.quick else ctx.repeat):
        for name in series:
            example = name.startswith("offload example")
            for t in usable:
                ctx.log(f"cpu: {name} over {t}, round {round_ + 1}")
                samples[name][t].append(marginal(t, example, *counts[name], ctx))
    results = {s: {t: _summarise(v) for t, v in by_t.items()} for s, by_t in samples.items()}
    failed = [
        f"{s} {t}: {r['error']}"
        for s, by_t in results.items()
        for t, r in by_t.items()
        if "error" in r
    ]
    columns = [
        "series",
        "transport",
        "user µs",
        "system µs",
        "CPU µs",
        "of tcp",
        "wake-ups",
        "events/s",
    ]
    return PartResult(
        "failed" if failed else "ok",
        reason="; ".join(failed) or None,
        data={"events": counts, "settings": NO_SPIN, "skipped": skipped, "series": results},
        tables=[
            (
                "cpu: marginal CPU per event, the job's processes together (launches of "
                + ", ".join(f"{a:,} and {b:,} events ({n})" for n, (a, b) in counts.items())
                + "; loops not spinning; wake-ups: voluntary context switches per event)",
                columns,
                _rows(results),
            )
        ],
    )
