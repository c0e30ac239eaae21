"""The ``sizing`` part: real runs on this machine, predicted by the sizing model, compared.

``python -m benchmarks sizing`` (by name only; ~2 minutes on 2 idle cores, ~6 with
``--repeat 3``):

1. link costs: the ``tcp://`` and ``shm://`` ping-pong of the ``transports`` part
   (quick sizes), and its 8-byte round trip after both ends idled 1 ms (the wake-ups
   of a crossing between sleeping loops, docs/sizing.md assumption 4);
2. calibration runs (their rates and CPU per event are inputs, never
   predicted): the empty controller -> follower chain over tcp (the per-event
   framework base), the offload example's modules in one process and the HLT
   menu in one process, each at 1 and 4 streams;
3. the predicted runs, offloaded: the offload example over tcp and shm at 1
   and 4 streams, the HLT menu with its GPU-like modules in 1 remote (tcp,
   shm; 1 and 4 streams) and in 2 remotes (tcp). Each is predicted from the
   calibration profile of its workload, the link costs and its process layout
   (which modules run where, the distributed modules the split added, the
   bytes crossing) - never from its own rate.

Every run has event loops that sleep between messages (``ACTORS_LOOP_SPIN_US=0``): the
model's processes, and the verdict. The predicted runs run a second time as the launcher
starts them by default (on a host with a CPU per process their loops stay awake 5 ms after
link traffic, docs/topology.md: "loops awake"), predicted from calibration runs taken
where the CPUs do not idle either (docs/sizing.md, assumption 7): the empty chain with
its loops awake, and the single-process runs beside one busy process per other CPU
("CPUs busy"). On this VM a wake-up on an idle CPU costs far more than on a busy one: the
offload example in one process ran 1.5-2.2x faster beside a busy process.

``--select REGEX`` picks the predicted runs (the calibration runs always run);
``--repeat N`` runs N interleaved rounds and keeps each run's median.
Printed: predicted vs measured events/s and latency, error %, within 15% or
not. The records are kept in results.json, so that
``python -m benchmarks.sizing validate results.json`` recomputes the table
(e.g. after changing the model) without running anything.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from actors.settings import LOOP_SPIN_US

from .candidates import CANDIDATES
from .events import transport_unavailable
from .hlt_config import Menu, make_menu
from .load import busy
from .parts import Context, PartResult, register
from .sizing_evaluate import (
    BUSY,
    CALIBRATION,
    COLUMNS,
    HLT_MODULES,
    PREDICTED,
    Shape,
    awake_label,
    evaluate,
    links_line,
    table_rows,
    verdict,
)
from .sizing_inputs import link_costs
from .sizing_runs import (
    run_empty,
    run_hlt_local,
    run_hlt_offloaded,
    run_offload_example,
    run_offload_single,
)
from .transports import measure_candidate

__all__ = ["CALIBRATION", "PREDICTED", "evaluate", "run"]  # the first three: sizing_evaluate

#: idle gap before the round trips that measure a crossing's wake-ups: about the work of
#: one event of the offload example (its processes idle that long between messages)
IDLE_GAP_US = 1000
#: events per run: each measured run spans ~1-4 s on an idle 2-core host
_EVENTS = {"empty": 80000, "offload-single": 4000, "offload": 3000, "hlt-local": 120, "hlt": 150}


@contextlib.contextmanager
def _loop_spin(value: str | None) -> Iterator[None]:
    """``ACTORS_LOOP_SPIN_US`` of the runs started within: ``value``, or the launcher's
    choice (None); the environment is restored afterwards."""
    saved = os.environ.pop(LOOP_SPIN_US.name, None)
    if value is not None:
        os.environ[LOOP_SPIN_US.name] = value
    try:
        yield
    finally:
        os.environ.pop(LOOP_SPIN_US.name, None)
        if saved is not None:
            os.environ[LOOP_SPIN_US.name] = saved


def _variants(shape: Shape) -> list[tuple[str, str | None, int]]:
    """``(label, ACTORS_LOOP_SPIN_US or None for the launcher's choice, busy processes)``
    of every measurement of ``shape``: loops asleep, then its awake counterpart."""
    asleep, awake = (shape[0], "0", 0), awake_label(shape)
    if awake.endswith(BUSY):
        return [asleep, (awake, "0", max(1, (os.cpu_count() or 2) - 1))]
    return [asleep, (awake, None, 0)]


def _measure(
    kind: str, transport: str, remotes: int, streams: int, menu: Menu, timeout: float
) -> dict[str, Any]:
    events = _EVENTS[kind]
    if kind == "empty":
        return run_empty(transport, streams, events, timeout)
    if kind == "offload-single":
        return run_offload_single(streams, events, timeout)
    if kind == "offload":
        return run_offload_example(transport, streams, events, timeout)
    if kind == "hlt-local":
        return run_hlt_local(menu, streams, events, timeout)
    return run_hlt_offloaded(menu, remotes, transport, streams, events, timeout)


def _link_records(ctx: Context) -> list[dict[str, Any]]:
    """The tcp:// and shm:// ping-pong, then its 8-byte round trip after both ends idled
    :data:`IDLE_GAP_US` (records with ``idle_gap_us``: the wake-ups of a crossing)."""
    records: list[dict[str, Any]] = []
    for c in CANDIDATES:
        if c.name in ("tcp://", "shm://"):
            records += measure_candidate(c, ctx)[1]
            after_idle = replace(
                c,
                name=f"{c.name} after {IDLE_GAP_US} µs idle",
                extra=c.extra | {"gap_us": IDLE_GAP_US},
                sizes=(8,),
            )
            idle = measure_candidate(after_idle, ctx)[1]
            records += [r | {"idle_gap_us": IDLE_GAP_US} for r in idle]
    return records


def _median_record(recs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = sorted((r for r in recs if "events_per_s" in r), key=lambda r: r["events_per_s"])
    if not ok:
        return recs[-1]
    return ok[len(ok) // 2] | {"samples_events_per_s": [r["events_per_s"] for r in ok]}


def _run_all(ctx: Context, menu: Menu, log: Callable[[str], None]) -> dict[str, Any]:
    """Every selected run, ``ctx.repeat`` interleaved rounds; the median-rate record kept."""
    shapes = [
        (name, kind, transport, remotes, streams)
        for name, kind, transport, remotes, streams in CALIBRATION + PREDICTED
        if (transport == "-" or transport_unavailable(transport) is None)
        and (ctx.selects(name) or (name, kind, transport, remotes, streams) in CALIBRATION)
    ]
    recs: dict[str, list[dict[str, Any]]] = {}
    for round_no in range(ctx.repeat):
        if ctx.repeat > 1:
            log(f" round {round_no + 1} of {ctx.repeat}")
        for shape in shapes:
            for label, spin, busy_processes in _variants(shape):
                with _loop_spin(spin), busy(busy_processes):
                    rec = _measure(*shape[1:], menu, ctx.timeout)
                recs.setdefault(label, []).append(rec)
                shown = (
                    f"{rec['events_per_s']:.1f} events/s"
                    if "events_per_s" in rec
                    else f"FAILED: {rec['error']}"
                )
                log(f"  sizing {label}: {shown}")
    return {name: _median_record(rs) for name, rs in recs.items()}


@register("sizing")
def run(ctx: Context) -> PartResult:
    """Measure, predict, compare; see the module docstring."""
    link_recs = _link_records(ctx)
    try:
        links = link_costs(link_recs)
    except ValueError as exc:
        return PartResult("failed", str(exc))
    records = _run_all(ctx, make_menu(HLT_MODULES), ctx.log)
    cores = float(os.cpu_count() or 1)
    try:
        rows = evaluate(records, links, cores)
    except KeyError as exc:
        return PartResult("failed", str(exc), data={"runs": records})
    within = sum(r["within"] for r in rows)
    slim = {
        n: {k: v for k, v in r.items() if k != "reports"} | {"reports": r.get("reports")}
        for n, r in records.items()
    }
    return PartResult(
        "ok",
        None,
        data={
            "cores": cores,
            "load_average": list(os.getloadavg()),
            "links": {t: vars(c) for t, c in links.items()},
            "link_records": link_recs,
            "runs": slim,
            "validation": rows,
            "within": within,
        },
        tables=[
            (
                f"sizing: predicted vs measured ({verdict(rows)}; "
                f"{cores:g} cores, load average {os.getloadavg()[0]:.1f}; {links_line(links)})",
                COLUMNS,
                table_rows(rows),
            )
        ],
    )
