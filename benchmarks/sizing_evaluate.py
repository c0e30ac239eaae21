"""What the ``sizing`` part predicts and how a prediction meets its run.

The shapes of the calibration and predicted runs, the prediction of each predicted run
from the calibration records and the link costs (:func:`evaluate`: with loops asleep, and
as the launcher starts the job, docs/sizing.md), and the printed table. Pure: the runs
themselves are made by :mod:`benchmarks.sizing_validate`, and ``python -m
benchmarks.sizing validate`` evaluates saved ones.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from actors.framework import Process
from actors.settings import loops_stay_awake

from .hlt_config import Menu, make_menu, make_process, write_offloaded
from .sizing_inputs import Profile, calibrate
from .sizing_model import Crossing, LinkCost, Offload, Prediction, predict
from .sizing_runs import HLT_THREADS

__all__ = [
    "AWAKE",
    "BUSY",
    "CALIBRATION",
    "COLUMNS",
    "HLT_MODULES",
    "PREDICTED",
    "Shape",
    "awake_label",
    "evaluate",
    "links_line",
    "predict_hlt",
    "predict_offload",
    "table_rows",
    "verdict",
]

HLT_MODULES = 300
TOLERANCE = 0.15
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
#: products of the offload example: calib out (4096 float64), energy + peaks back
_OFFLOAD_OUT, _OFFLOAD_BACK = [4096 * 8], [8, 8 * 8]


def awake_label(shape: Shape) -> str:
    """The record name of ``shape``'s awake counterpart: a single-process calibration run
    beside busy processes (:data:`BUSY`: no link keeps one process awake), any other run
    as the launcher starts it (:data:`AWAKE`)."""
    name, kind = shape[0], shape[1]
    return name + (BUSY if shape in CALIBRATION and kind != "empty" else AWAKE)


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
    awake_labels = [awake_label(shape) for shape in CALIBRATION]
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
            guess = None
            if awake_profiles is not None:
                guess = prediction(awake_profiles, shape, True).events_per_s
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
