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
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from actors.framework import Process
from actors.launch.plan import loops_stay_awake
from actors.settings import LOOP_SPIN_US

from .candidates import CANDIDATES
from .events import transport_unavailable
from .hlt_config import Menu, make_menu, make_process, write_offloaded
from .load import busy
from .parts import Context, PartResult, register
from .sizing_inputs import Profile, calibrate, link_costs
from .sizing_model import Crossing, LinkCost, Offload, Prediction, predict
from .sizing_runs import (
    HLT_THREADS,
    run_empty,
    run_hlt_local,
    run_hlt_offloaded,
    run_offload_example,
    run_offload_single,
)
from .transports import measure_candidate

__all__ = ["CALIBRATION", "PREDICTED", "evaluate", "links_line", "run"]

HLT_MODULES = 300
TOLERANCE = 0.15
#: idle gap before the round trips that measure a crossing's wake-ups: about the work of
#: one event of the offload example (its processes idle that long between messages)
IDLE_GAP_US = 1000
#: a run's (name, kind, transport, remotes, streams)
Shape = tuple[str, str, str, int, int]
#: (name, kind, transport, remotes, streams): calibration runs
CALIBRATION = [
    ("empty tcp s1", "empty", "tcp", 1, 1),
    ("offload single s1", "offload-single", "-", 0, 1),
    ("offload single s4", "offload-single", "-", 0, 4),
    ("hlt local s1", "hlt-local", "-", 0, 1),
    ("hlt local s4", "hlt-local", "-", 0, 4),
]
#: the runs predicted
PREDICTED = [
    ("offload tcp s1", "offload", "tcp", 1, 1),
    ("offload tcp s4", "offload", "tcp", 1, 4),
    ("offload shm s1", "offload", "shm", 1, 1),
    ("offload shm s4", "offload", "shm", 1, 4),
    ("hlt 1 remote tcp s1", "hlt", "tcp", 1, 1),
    ("hlt 1 remote tcp s4", "hlt", "tcp", 1, 4),
    ("hlt 1 remote shm s4", "hlt", "shm", 1, 4),
    ("hlt 2 remotes tcp s4", "hlt", "tcp", 2, 4),
]
#: suffix of a run's record measured with the launcher's default loop spin
AWAKE = " (loops awake)"
#: suffix of a single-process calibration run measured beside one busy process per other CPU
BUSY = " (CPUs busy)"
#: events per run: each measured run spans ~1-4 s on an idle 2-core host
_EVENTS = {"empty": 80000, "offload-single": 4000, "offload": 3000, "hlt-local": 120, "hlt": 150}
#: products of the offload example: calib out (4096 float64), energy + peaks back
_OFFLOAD_OUT, _OFFLOAD_BACK = [4096 * 8], [8, 8 * 8]


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
    name, kind = shape[0], shape[1]
    asleep = (name, "0", 0)
    if shape in CALIBRATION and kind != "empty":  # one process: no link keeps it awake
        return [asleep, (name + BUSY, "0", max(1, (os.cpu_count() or 2) - 1))]
    return [asleep, (name + AWAKE, None, 0)]


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


def _distributed_calls(menu: Menu, remotes: int) -> tuple[list[int], list[int]]:
    """Distributed modules per process of the split menu: [local, remote0, ...], and the
    products each remote receives (Senders of the local process towards it)."""
    with tempfile.TemporaryDirectory(prefix="hep-sizing-") as tmp:
        work = Path(tmp)
        write_offloaded(
            make_process(menu, work / "s.json"),
            menu.gpu_labels,
            remotes,
            "tcp",
            HLT_THREADS,
            1,
            1,
            work,
        )
        names = ["local", *(f"gpu{i}" for i in range(remotes))]
        procs = [Process.from_toml(work / f"{n}.toml") for n in names]
    calls = [
        sum(1 for m in p.modules.values() if m.type.startswith("actors.distributed")) for p in procs
    ]
    local = procs[0]
    sent = [
        sum(
            1
            for m in local.modules.values()
            if m.type.endswith(":Sender") and m.params.get("upstream") == f"gpu{i}"
        )
        for i in range(remotes)
    ]
    return calls, sent


def predict_offload(profile: Profile, link: LinkCost, streams: int, cores: float) -> Prediction:
    """The offload example as shipped: calib/threshold/summary local, spectrum remote.

    Its layout: the Controller and the EventDone of each side see every event (the
    remote's Receiver of ``calib`` too); the Sender/Receiver pairs of the products only
    the events that reach ``spectrum`` (after the threshold: its calls per event in the
    calibration run), and only those events' products cross.
    """
    sent = profile.calls["spectrum"]
    client = profile.stage(
        "local",
        ["calib", "threshold", "summary", "stamp"],
        extra_calls=2 + 2 * sent,
        threads=1,
        streams=streams,
    )
    server = profile.stage(
        "remote", ["spectrum"], extra_calls=2 + sent, threads=2, streams=streams, server=True
    )
    crossing = Crossing(
        link, products_out=_OFFLOAD_OUT, products_back=_OFFLOAD_BACK, share=min(1.0, sent)
    )
    return predict(client, streams=streams, offloads=[Offload(server, crossing)], cores=cores)


def predict_hlt(
    profile: Profile, menu: Menu, link: LinkCost, remotes: int, streams: int, cores: float
) -> Prediction:
    """The HLT menu with its GPU-like modules dealt over ``remotes`` remote processes."""
    calls, sent = _distributed_calls(menu, remotes)
    gpu = set(menu.gpu_labels)
    local = [lb for lb in profile.calls if lb not in gpu]
    client = profile.stage("local", local, extra_calls=calls[0], streams=streams)
    offloads = []
    for i in range(remotes):
        group = menu.gpu_labels[i::remotes]
        server = profile.stage(
            f"gpu{i}", group, extra_calls=calls[i + 1], streams=streams, server=True
        )
        crossing = Crossing(
            link, products_out=[64] * sent[i], products_back=[menu.gpu_bytes] * len(group)
        )
        offloads.append(Offload(server, crossing))
    return predict(client, streams=streams, offloads=offloads, cores=cores)


def _profiles(
    cal: dict[str, dict[str, Any]], *, empty: str = "", single: str = ""
) -> dict[str, Profile]:
    """The HLT menu (synthetic source without products: the empty chain's base) gives
    the framework's cost per module call; the offload example's base is what remains.
    ``empty`` / ``single``: the suffix of the empty chain's / the single-process runs'
    records to calibrate from (:data:`AWAKE`, :data:`BUSY` for the awake model)."""
    base = 1.0 / cal["empty tcp s1" + empty]["events_per_s"]

    def fit(prefix: str, per_call: float | None) -> Profile:
        one, many = cal[f"{prefix} s1{single}"], cal[f"{prefix} s4{single}"]
        return calibrate(
            one["reports"]["local"],
            many["reports"]["local"],
            one["events_per_s"],
            many["events_per_s"],
            base,
            per_call,
            cpu_one=one.get("cpu", {}).get("cpu_per_event_s"),
            cpu_many=many.get("cpu", {}).get("cpu_per_event_s"),
        )

    hlt = fit("hlt local", None)
    return {"hlt": hlt, "offload": fit("offload single", hlt.per_call_s)}


def evaluate(
    records: dict[str, dict[str, Any]], links: dict[str, LinkCost], cores: float
) -> list[dict[str, Any]]:
    """Predicted vs measured for every predicted run in ``records`` (name -> run record),
    loops asleep (the verdict) and as the launcher starts it: with loops awake where the
    host has a CPU per process (the launcher's :func:`loops_stay_awake`), from the awake
    calibration records when all are there (``predicted_awake_events_per_s`` None
    otherwise), and with loops asleep where it has not (the asleep prediction).

    Raises KeyError when a calibration run is missing or failed.
    """
    missing = [n for n, *_ in CALIBRATION if "events_per_s" not in records.get(n, {})]
    if missing:
        raise KeyError(f"calibration runs missing or failed: {', '.join(missing)}")
    profiles = _profiles(records)
    awake_labels = [label for shape in CALIBRATION for label, *_ in _variants(shape)[1:]]
    awake_profiles = None
    if all("events_per_s" in records.get(label, {}) for label in awake_labels):
        awake_profiles = _profiles(records, empty=AWAKE, single=BUSY)
    menu = make_menu(HLT_MODULES)

    def prediction(profile: dict[str, Profile], shape: Shape, awake: bool = False) -> Prediction:
        _, kind, transport, remotes, streams = shape
        link = replace(links[transport], wake_s=0.0) if awake else links[transport]
        if kind == "offload":
            return predict_offload(profile["offload"], link, streams, cores)
        return predict_hlt(profile["hlt"], menu, link, remotes, streams, cores)

    rows = []
    for shape in PREDICTED:
        name, transport = shape[0], shape[2]
        rec = records.get(name, {})
        if transport not in links or "events_per_s" not in rec:
            continue
        p = prediction(profiles, shape)
        measured = rec["events_per_s"]
        err = p.events_per_s / measured - 1.0
        awake = records.get(name + AWAKE, {}).get("events_per_s")
        guess: float | None = p.events_per_s  # as launched: asleep unless the launcher spins
        if loops_stay_awake(1 + shape[3], int(cores)):
            awake_p = None if awake_profiles is None else prediction(awake_profiles, shape, True)
            guess = None if awake_p is None else awake_p.events_per_s
        err_awake = None if awake is None or guess is None else guess / awake - 1.0
        rows.append(
            {
                "name": name,
                "predicted_events_per_s": p.events_per_s,
                "measured_events_per_s": measured,
                "error": err,
                "within": abs(err) <= TOLERANCE,
                "measured_awake_events_per_s": awake,
                "predicted_awake_events_per_s": guess,
                "error_awake": err_awake,
                "within_awake": None if err_awake is None else abs(err_awake) <= TOLERANCE,
                "predicted_latency_ms": p.latency_s * 1e3,
                "measured_latency_ms": rec.get("latency", {}).get("mean_ms"),
                "bottleneck": p.bottleneck,
            }
        )
    return rows


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The printed table of :func:`evaluate`'s rows."""

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:+.0%}"

    return [
        [
            r["name"],
            f"{r['predicted_events_per_s']:.1f}",
            f"{r['measured_events_per_s']:.1f}",
            f"{r['error']:+.0%}",
            "yes" if r["within"] else "NO",
            ms(r["predicted_latency_ms"]),
            ms(r["measured_latency_ms"]),
            r["bottleneck"],
            ms(r.get("predicted_awake_events_per_s")),
            ms(r.get("measured_awake_events_per_s")),
            pct(r.get("error_awake")),
        ]
        for r in rows
    ]


COLUMNS = [
    "run",
    "predicted ev/s",
    "measured ev/s",
    "error",
    "within 15%",
    "pred. latency ms",
    "meas. latency ms",
    "model bottleneck",
    "pred. awake ev/s",
    "loops awake ev/s",
    "error awake",
]


def links_line(links: dict[str, LinkCost]) -> str:
    """The link costs the predictions used: one-way latency and the wake-ups of a round
    trip between ends that idled (``LinkCost.wake_s``), per transport."""
    costs = ", ".join(
        f"{t} {c.latency_s * 1e6:.1f} / {c.wake_s * 1e6:.0f} µs" for t, c in sorted(links.items())
    )
    return f"links (one way / wake-ups of an idle round trip): {costs}"


def verdict(rows: list[dict[str, Any]]) -> str:
    """``"N of M within 15% with loops asleep"``, plus the awake runs' count when predicted."""
    text = f"{sum(r['within'] for r in rows)} of {len(rows)} within 15% with loops asleep"
    awake = [r["within_awake"] for r in rows if r.get("within_awake") is not None]
    if awake:
        text += f", {sum(awake)} of {len(awake)} with loops awake"
    return text


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
