"""The farm-sizing model (benchmarks/sizing*.py): formulas on small inputs with known
answers, the command line on synthetic reports, and the farm projection of a stated case.
No timing is measured here."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.sizing import main
from benchmarks.sizing_farm import Farm, project
from benchmarks.sizing_inputs import calibrate, link_costs, load_reports
from benchmarks.sizing_model import (
    Crossing,
    LinkCost,
    Offload,
    Stage,
    Station,
    mva,
    predict,
)


def test_mva_single_queue_and_queue_plus_delay() -> None:
    assert mva([Station("q", 1.0)], 1) == (1.0, 1.0)
    assert mva([Station("q", 1.0)], 5) == pytest.approx((1.0, 5.0))
    # n=1: R = 1 + 1, X = 0.5, Q = 0.5; n=2: R = 1.5 + 1, X = 2 / 2.5
    x, latency = mva([Station("q", 1.0), Station("d", 1.0, "delay")], 2)
    assert x == pytest.approx(0.8)
    assert latency == pytest.approx(2.5)


def test_mva_refuses_empty_population_and_network() -> None:
    with pytest.raises(ValueError, match="population"):
        mva([Station("q", 1.0)], 0)
    with pytest.raises(ValueError, match="no time"):
        mva([Station("q", 0.0)], 1)


def test_threads_do_not_wait_until_streams_exceed_them() -> None:
    stage = Stage("p", 0.0, wait_s=0.05, threads=4)
    p = predict(stage, streams=4)
    assert p.events_per_s == pytest.approx(80.0)  # 4 events in flight / 50 ms
    assert p.latency_s == pytest.approx(0.05)
    many = predict(stage, streams=16)
    assert many.events_per_s == pytest.approx(80.0)  # 4 threads / 50 ms
    assert many.latency_s == pytest.approx(0.2)  # Little: 16 / 80
    assert many.bottleneck == "p threads"


def test_busy_threads_bound_the_rate() -> None:
    # 10 ms on the critical path, its modules keep threads busy 32 ms per event
    stage = Stage("p", 0.0, wait_s=0.01, threads=4, busy_s=0.032)
    assert predict(stage, streams=1).events_per_s == pytest.approx(100.0)
    p = predict(stage, streams=4)
    assert p.events_per_s == pytest.approx(125.0)  # 4 threads / 32 ms, not 4 / 10 ms
    assert p.bottleneck == "p threads"


def test_gil_bounds_one_process_and_copies_share_it() -> None:
    stage = Stage("p", 0.01, wait_s=0.03, threads=64)
    assert predict(stage, streams=1).events_per_s == pytest.approx(25.0)
    assert predict(stage, streams=64).events_per_s == pytest.approx(100.0)
    assert 195.0 < predict(stage, clients=2, streams=64).events_per_s <= 200.0


def test_host_cores_bound_every_process_together() -> None:
    stage = Stage("p", 0.0, cpu_s=0.01, threads=64)
    p = predict(stage, clients=4, streams=16, cores=2)
    assert p.events_per_s == pytest.approx(200.0)  # 2 cores / 10 ms
    assert p.bottleneck == "host cores"


def test_offload_latency_is_the_sum_along_the_event() -> None:
    link = LinkCost(latency_s=1e-4, bandwidth_Bps=1e9)
    assert link.time(1000) == pytest.approx(1e-4 + 1e-6)
    crossing = Crossing(link, cpu_s=0.0, delay_s=0.002, products_out=[1000], products_back=[2000])
    assert crossing.transfer_s() == pytest.approx(4e-4 + 3e-6)
    # products of a quarter of the events only (a filter before the Sender)
    quarter = Crossing(link, products_out=[1000], products_back=[2000], share=0.25)
    assert quarter.transfer_s() == pytest.approx(2e-4 + 0.25 * (2e-4 + 3e-6))
    # ends that idled before the round trip wake up: once per round trip
    woken = Crossing(LinkCost(1e-4, 1e9, wake_s=1.5e-4), products_out=[1000])
    assert woken.transfer_s() == pytest.approx(2e-4 + 1.5e-4 + 1e-4 + 1e-6)
    client = Stage("c", 0.001)
    server = Stage("s", 0.0, wait_s=0.01, threads=1)
    p = predict(client, streams=1, offloads=[Offload(server, crossing)])
    assert p.latency_s == pytest.approx(0.001 + 0.01 + 0.002 + 4e-4 + 3e-6)
    # M servers share the events: towards 2 single-thread servers / 10 ms
    two = predict(client, streams=64, offloads=[Offload(server, crossing, copies=2)])
    assert 195.0 < two.events_per_s <= 200.0


def _report(
    process: str,
    streams: int,
    throughput: float,
    modules: dict[str, tuple[int, float]],
    events: int = 100,
) -> dict[str, Any]:
    return {
        "process": process,
        "events": events,
        "accepted": events,
        "streams": streams,
        "threads": 4,
        "event_loop_time": events / throughput,
        "wall_time": 1.0,
        "throughput": throughput,
        "overhead": 0.0,
        "trigger_report": [],
        "timing_report": [
            {
                "label": lb,
                "type": "m:M",
                "calls": c,
                "total": t,
                "transition_calls": 0,
                "transition_total": 0.0,
                "mean": t / c,
                "fraction": 0.0,
            }
            for lb, (c, t) in modules.items()
        ],
    }


MODULES = {"a": (100, 0.1), "b": (100, 0.3)}  # 1 ms and 3 ms per event


def test_calibrate_splits_gil_and_wait() -> None:
    one = _report("P", 1, 50.0, MODULES)  # 20 ms per event alone
    many = _report("P", 4, 100.0, MODULES)  # GIL-bound: 10 ms per event
    prof = calibrate(one, many, 50.0, 100.0, base_s=0.002)
    g = prof.gil_s  # a bit below 10 ms: 4 streams do not quite saturate the GIL
    assert 0.008 < g < 0.010
    assert prof.base_s == pytest.approx(0.002)
    assert prof.per_call_s == pytest.approx((g - 0.002) / 2)  # the rest over 2 calls
    w = 0.020 - g  # the GIL-free rest of 20 ms, shared 1:3 by module time
    assert prof.wait_s["a"] == pytest.approx(w / 4)
    assert prof.wait_s["b"] == pytest.approx(3 * w / 4)
    alone = prof.stage("p", ["a", "b"])
    assert predict(alone, streams=1).events_per_s == pytest.approx(50.0)
    assert predict(alone, streams=4).events_per_s == pytest.approx(100.0, rel=1e-6)
    # the cost per call measured elsewhere: the base is what remains of g
    other = calibrate(one, many, 50.0, 100.0, base_s=0.002, per_call_s=0.001)
    assert other.per_call_s == pytest.approx(0.001)
    assert other.base_s == pytest.approx(g - 0.002)
    # a server runs its modules after the client's products came: their whole time
    assert prof.stage("s", ["b"], serial=True).wait_s == pytest.approx(0.003)
    with pytest.raises(KeyError, match="zzz"):
        prof.stage("p", ["zzz"])


def test_calibrate_counts_a_process_without_worker_threads_as_one_worker() -> None:
    one = _report("P", 1, 50.0, MODULES)
    many = dict(_report("P", 4, 100.0, MODULES), threads=0)  # module code on the loop
    for prof in (
        calibrate(one, many, 50.0, 100.0, base_s=0.002),
        calibrate(one, many, 50.0, 100.0, base_s=0.002, cpu_one=0.008),
    ):
        assert prof.threads == 1
        rate = predict(prof.stage("p", ["a", "b"]), streams=4).events_per_s
        assert 0 < rate < float("inf")


def test_calibrate_from_measured_cpu() -> None:
    one = _report("P", 1, 50.0, MODULES)  # 20 ms per event alone
    many = _report("P", 4, 100.0, MODULES)
    prof = calibrate(one, many, 50.0, 100.0, base_s=0.002, cpu_one=0.008, cpu_many=0.010)
    assert prof.gil_s == pytest.approx(0.008)  # the 1-stream CPU, not a fit
    assert prof.per_call_s == pytest.approx((0.008 - 0.002) / 2)
    assert sum(prof.wait_s.values()) == pytest.approx(0.012)  # 20 ms - 8 ms
    assert prof.cpu_ratio == pytest.approx(1.25)
    assert [prof.scale(s) for s in (1, 4, 16)] == pytest.approx([1.0, 1.25, 1.25])
    assert prof.scale(2) == pytest.approx(1.0 + 0.25 / 3)  # linear between 1 and 4 streams
    alone = prof.stage("p", ["a", "b"])
    assert alone.gil_s == pytest.approx(0.008)
    assert alone.busy_s == pytest.approx(0.004)  # the modules' measured time, 1 + 3 ms
    assert predict(alone, streams=1).events_per_s == pytest.approx(50.0)
    assert prof.stage("p", ["a", "b"], streams=4).gil_s == pytest.approx(0.010)
    # a server (no source) has the empty chain's base; its modules overlap as measured
    srv = prof.stage("s", ["b"], extra_calls=1, server=True)
    assert srv.gil_s == pytest.approx(0.002 + 2 * 0.003)
    assert srv.wait_s == pytest.approx(0.012 * 3 / 4)
    assert prof.stage("s", ["b"], serial=True).wait_s == pytest.approx(0.003)
    # with the offload example's own base above the empty chain's
    other = calibrate(one, many, 50.0, 100.0, base_s=0.001, per_call_s=0.001, cpu_one=0.008)
    assert other.base_s == pytest.approx(0.006)
    assert other.stage("s", ["b"], server=True).gil_s == pytest.approx(0.001 + 0.001)
    # fewer CPU seconds per event with more events in flight: a ratio below 1
    batched = calibrate(one, many, 50.0, 100.0, base_s=0.002, cpu_one=0.008, cpu_many=0.006)
    assert batched.stage("p", ["a", "b"], streams=4).gil_s == pytest.approx(0.006)


def test_one_thread_process_waits_once_behind_the_gil() -> None:
    # all of it under the GIL in one worker thread: 4 events in flight wait in one queue
    p = predict(Stage("p", 0.01, threads=1), streams=4)
    assert p.events_per_s == pytest.approx(100.0)
    assert p.latency_s == pytest.approx(0.04)
    assert p.bottleneck == "p gil"


def test_cpu_clock_and_cpu_per_event(tmp_path: Path) -> None:
    from benchmarks.sizing_inputs import module_rates
    from benchmarks.sizing_runs import CpuClock, cpu_per_event

    doc = {"user": [0.1 * i for i in range(20)], "system": [0.05 * i for i in range(20)]}
    cpu = cpu_per_event(doc)  # events 2..17 of 20: 0.1 + 0.05 s each
    assert cpu["cpu_per_event_s"] == pytest.approx(0.15)
    assert cpu["user_s"] == pytest.approx(0.1)
    assert cpu_per_event({"user": [0.0] * 4, "system": [0.0] * 4}) == {}  # too short
    clock = CpuClock(file=str(tmp_path / "cpu.json"))
    for _ in range(3):
        clock.analyze(None)  # type: ignore[arg-type]  # the event is not read
    clock.end_job()
    written = json.loads((tmp_path / "cpu.json").read_text())
    assert len(written["user"]) == 3
    assert written["user"] == sorted(written["user"])
    report = _report("P", 1, 50.0, MODULES)
    report["timing_report"].append(
        report["timing_report"][0] | {"label": "cpuclock", "type": "x:CpuClock"}
    )
    assert set(module_rates(report)) == {"a", "b"}  # the clock is not part of the workload


def _links() -> list[dict[str, Any]]:
    recs = []
    for size, rtt, bw in ((8, 60.0, 0.0001), (4096, 40.0, 0.2), (1 << 24, 9000.0, 2.0)):
        recs.append(
            {
                "series": "tcp://",
                "role": "transport",
                "size": size,
                "latency_us": rtt,
                "bandwidth_GBps": bw,
            }
        )
    return recs


def test_link_costs_from_transport_records() -> None:
    links = link_costs({"parts": {"transports": {"measurements": _links()}}})
    assert links["tcp"].latency_s == pytest.approx(20e-6)  # half the smallest small RTT
    assert links["tcp"].bandwidth_Bps == pytest.approx(2e9)
    # the sizing part's results.json holds the link records it measured
    own = link_costs({"parts": {"sizing": {"link_records": _links()}}})
    assert own["tcp"] == links["tcp"] and own["tcp"].wake_s == 0.0  # no idle-gap record
    # the sizing part's round trip after an idle gap: its excess over the same size's
    # median round trip is the crossing's wake-ups; it leaves the latency alone
    idle = {"series": "tcp:// after 1000 µs idle", "role": "transport", "size": 8}
    woken = link_costs([*_links(), idle | {"latency_us": 210.0, "idle_gap_us": 1000}])
    assert woken["tcp"].wake_s == pytest.approx(150e-6)
    assert woken["tcp"].latency_s == links["tcp"].latency_s
    faster = link_costs([*_links(), idle | {"latency_us": 50.0, "idle_gap_us": 1000}])
    assert faster["tcp"].wake_s == 0.0  # never negative
    with pytest.raises(ValueError, match="no transport"):
        link_costs([])
    with pytest.raises(ValueError, match="no transport"):
        link_costs({"parts": {}})


def test_load_reports_of_every_kind(tmp_path: Path) -> None:
    rep = _report("P", 1, 50.0, MODULES)
    (tmp_path / "one.json").write_text(json.dumps(rep))
    assert list(load_reports(tmp_path / "one.json")) == ["P"]
    launch = {
        "schema": "hep-actors-launch-report/1",
        "processes": [{"name": "local", "report": rep}, {"name": "dead", "report": None}],
    }
    (tmp_path / "launch.json").write_text(json.dumps(launch))
    assert list(load_reports(tmp_path / "launch.json")) == ["local"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"bad\.json"):
        load_reports(tmp_path / "bad.json")


def _cli_inputs(tmp_path: Path) -> list[str]:
    (tmp_path / "one.json").write_text(json.dumps(_report("P", 1, 50.0, MODULES)))
    (tmp_path / "many.json").write_text(json.dumps(_report("P", 4, 100.0, MODULES)))
    (tmp_path / "links.json").write_text(
        json.dumps({"parts": {"transports": {"measurements": _links()}}})
    )
    return [
        "--one",
        str(tmp_path / "one.json"),
        "--many",
        str(tmp_path / "many.json"),
        "--links",
        str(tmp_path / "links.json"),
        "--base-us",
        "2000",
    ]


def test_cli_predict_and_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _cli_inputs(tmp_path)
    assert main(["predict", *args, "--streams", "4"]) == 0
    assert "100.00 events/s" in capsys.readouterr().out  # the calibration run's own shape
    assert main(["split", *args, "--candidates", "^b$", "--speedup", "10", "--streams", "8"]) == 0
    out = capsys.readouterr().out
    assert "best split at speed-up 10: offload the" in out
    assert main(["predict", "--one", str(tmp_path / "nope.json"), *args[2:]]) == 2
    assert "nope.json" in capsys.readouterr().err
    # a --links file without link measurements: a usage error naming it, not a crash
    (tmp_path / "nolinks.json").write_text("{}")
    nolinks = [*args[:5], str(tmp_path / "nolinks.json"), *args[6:]]
    assert main(["predict", *nolinks, "--offload", "^b$"]) == 2
    assert "nolinks.json: no transport measurement" in capsys.readouterr().err
    # the measured CPU per event replaces the fit: 4 ms of 20 under the GIL
    assert main(["predict", *args, "--streams", "1", "--cpu-one-us", "4000"]) == 0
    assert "50.00 events/s" in capsys.readouterr().out
    # ... and at 4 streams the GIL (4 ms) allows far more than the fit's 100 events/s
    assert main(["predict", *args, "--cpu-one-us", "4000"]) == 0
    rate = float(capsys.readouterr().out.split("offloaded: ")[1].split(" events/s")[0])
    assert 150.0 < rate <= 200.0  # 4 events in flight over 20 ms at most


def test_cli_validate_refuses_a_file_without_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"parts": {"sizing": {}}}))
    assert main(["validate", str(tmp_path / "results.json")]) == 2
    assert "no runs of the sizing part" in capsys.readouterr().err


def test_farm_projection_of_the_stated_case() -> None:
    rows = project(Farm(), [100.0])
    cpu_only, in_node, remote = rows
    # 128 cores / 260 ms = 492 events/s per node -> ceil(100 kHz / 492.3) nodes
    assert cpu_only["node_events_per_s"] == pytest.approx(128 / 0.26)
    assert cpu_only["cpu_nodes"] == math.ceil(100e3 / (128 / 0.26)) == 204
    assert cpu_only["cpu_node_gbps"] == pytest.approx(105e3 * 1e6 * 8 / 1e9 / 204)
    # 40% on GPUs 100x faster: the CPU keeps 60% + 2 ms -> at most 810 events/s per node
    assert in_node["cpu_nodes"] == 124
    assert in_node["gpus_total"] == 248
    assert remote["gpu_servers"] == math.ceil(100e3 * 0.104 / 100 / (0.8 * 4))
    assert remote["gpu_server_gbps"] == pytest.approx(
        100e3 * 0.7e6 * 8 / 1e9 / remote["gpu_servers"]
    )


def test_cli_farm_writes_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    assert (
        main(
            [
                "farm",
                "--speedups",
                "10,50",
                "--plot",
                str(tmp_path),
                "--json",
                str(tmp_path / "farm.json"),
            ]
        )
        == 0
    )
    assert (tmp_path / "sizing-farm.png").stat().st_size > 0
    assert json.loads((tmp_path / "farm.json").read_text())["rows"][0]["cpu_nodes"] == 204
    assert "CPU only" in capsys.readouterr().out


def _run(
    rate: float, modules: dict[str, tuple[int, float]] | None = None, streams: int = 1
) -> dict[str, Any]:
    rec: dict[str, Any] = {"events_per_s": rate, "latency": {"mean_ms": 1e3 / rate}}
    if modules is not None:
        rec["reports"] = {"local": _report("P", streams, rate, modules)}
    return rec


def test_cli_validate_repredicts_saved_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTORS_LOG_LEVEL", raising=False)  # set by launcher tests in-process
    from benchmarks.hlt_config import make_menu
    from benchmarks.sizing_evaluate import AWAKE, CALIBRATION, PREDICTED, _profiles

    menu = make_menu(300)
    hlt = {lb: (100, t * 100) for lb, t in zip(menu.labels, menu.times, strict=True)}
    hlt |= {"t0": (100, 0.001), "stamp": (100, 0.001)}
    offload = {
        lb: (100, 0.003) for lb in ("t0", "calib", "threshold", "spectrum", "summary", "stamp")
    }
    runs = {
        "empty tcp s1": _run(4000.0),
        "offload single s1": _run(400.0, offload),
        "offload single s4": _run(600.0, offload, 4),
        "hlt local s1": _run(10.0, hlt) | {"cpu": {"cpu_per_event_s": 0.06}},
        "hlt local s4": _run(12.0, hlt, 4) | {"cpu": {"cpu_per_event_s": 0.072}},
    }
    assert set(runs) == {name for name, *_ in CALIBRATION}
    profiles = _profiles(runs)
    # the HLT's GIL time is its measured CPU (60 ms of 100), 1.2x with 4 streams; the
    # offload example has no CPU measurement here: its GIL time is fitted
    assert profiles["hlt"].gil_s == pytest.approx(0.06)
    assert profiles["hlt"].cpu_ratio == pytest.approx(1.2)
    assert profiles["offload"].cpu_ratio == 1.0
    assert 0.0 < profiles["offload"].gil_s < 1 / 400
    runs |= {name: _run(100.0) for name, *_ in PREDICTED}
    runs[PREDICTED[0][0] + AWAKE] = _run(250.0)  # the launcher's default, beside the verdict
    links = [r | {"series": s} for r in _links() for s in ("tcp://", "shm://")]
    doc = {"parts": {"sizing": {"runs": runs, "link_records": links, "cores": 2.0}}}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    # a fresh interpreter: the menu split keeps per-process state that other tests change
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.sizing", "validate", str(tmp_path / "results.json")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert all(name in out for name, *_ in PREDICTED)
    *_, verdict_line, links_line = out.strip().splitlines()
    assert verdict_line.endswith(f"of {len(PREDICTED)} within 15% with loops asleep")
    assert links_line.startswith("links (one way / wake-ups of an idle round trip): ")
    assert "tcp 20.0 / 0 µs" in links_line  # no idle-gap record: no wake-ups
    first = next(line for line in out.splitlines() if line.startswith(PREDICTED[0][0]))
    assert first.split()[-2] == "250.0"  # loops awake ev/s; the other runs have "-"
    assert first.split()[-3] == "-"  # no awake calibration runs: no awake prediction


def test_awake_runs_are_predicted_from_the_awake_calibration() -> None:
    from benchmarks.sizing_evaluate import AWAKE, BUSY, CALIBRATION, PREDICTED, evaluate
    from benchmarks.sizing_inputs import link_costs

    offload = {
        lb: (100, 0.003) for lb in ("t0", "calib", "threshold", "spectrum", "summary", "stamp")
    }
    asleep = {
        "empty tcp s1": _run(4000.0),
        "offload single s1": _run(400.0, offload) | {"cpu": {"cpu_per_event_s": 0.002}},
        "offload single s4": _run(600.0, offload, 4) | {"cpu": {"cpu_per_event_s": 0.0016}},
    }
    # where the CPUs never idle the same work costs half the CPU per event
    busy = {
        "empty tcp s1" + AWAKE: _run(8000.0),
        "offload single s1" + BUSY: _run(800.0, offload) | {"cpu": {"cpu_per_event_s": 0.001}},
        "offload single s4" + BUSY: _run(1200.0, offload, 4) | {"cpu": {"cpu_per_event_s": 0.0008}},
    }
    hlt = {lb: (100, 0.001) for lb in ("t0", "stamp")}
    hlt_runs = {
        f"hlt local s{s}{suffix}": _run(10.0, hlt, s) | {"cpu": {"cpu_per_event_s": 0.05}}
        for s in (1, 4)
        for suffix in ("", BUSY)
    }
    records = asleep | busy | hlt_runs
    assert {name for name, *_ in CALIBRATION} <= set(records)
    offloaded = [shape for shape in PREDICTED if shape[1] == "offload"]
    records |= {name: _run(300.0) for name, *_ in offloaded}
    records |= {name + AWAKE: _run(600.0) for name, *_ in offloaded}
    links = link_costs([r | {"series": s} for r in _links() for s in ("tcp://", "shm://")])
    woken = {t: replace(link, wake_s=5e-4) for t, link in links.items()}

    rows = {row["name"]: row for row in evaluate(records, links, 2.0)}
    slower = {row["name"]: row for row in evaluate(records, woken, 2.0)}
    for name, *_ in offloaded:
        row = rows[name]
        assert row["predicted_awake_events_per_s"] > 1.5 * row["predicted_events_per_s"]
        # the wake-ups of idle ends slow the asleep prediction only: awake loops never sleep
        assert slower[name]["predicted_events_per_s"] < row["predicted_events_per_s"]
        assert slower[name]["predicted_awake_events_per_s"] == row["predicted_awake_events_per_s"]
        expected = row["predicted_awake_events_per_s"] / 600.0 - 1.0
        assert row["error_awake"] == pytest.approx(expected)
        assert row["within_awake"] == (abs(expected) <= 0.15)
    # one CPU per process fails on one core: the launcher lets the loops sleep there
    one_core = {row["name"]: row for row in evaluate(records, links, 1.0)}
    for name, *_ in offloaded:
        row = one_core[name]
        assert row["predicted_awake_events_per_s"] == row["predicted_events_per_s"]


def test_sizing_runs_choose_the_loop_spin_and_restore_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.sizing_validate import _loop_spin

    monkeypatch.setenv("ACTORS_LOOP_SPIN_US", "123")
    with _loop_spin("0"):
        assert os.environ["ACTORS_LOOP_SPIN_US"] == "0"  # the model's sleeping loops
    with _loop_spin(None):
        assert "ACTORS_LOOP_SPIN_US" not in os.environ  # the launcher chooses
    assert os.environ["ACTORS_LOOP_SPIN_US"] == "123"


def test_offload_layout_follows_the_filter() -> None:
    from benchmarks.sizing_evaluate import predict_offload

    offload = {lb: (100, 0.003) for lb in ("t0", "calib", "threshold", "summary", "stamp")} | {
        "spectrum": (25, 0.003)
    }  # a quarter of the events pass the threshold
    one, many = _report("P", 1, 400.0, offload), _report("P", 4, 600.0, offload, events=100)
    prof = calibrate(one, many, 400.0, 600.0, 1e-4, 1e-4, cpu_one=2e-3, cpu_many=2e-3)
    link = LinkCost(latency_s=1e-5, bandwidth_Bps=1e9)
    p = predict_offload(prof, link, 1, 2.0)
    # local: base + 4 module calls + Controller, EventDone, 0.25 x (Sender, Receiver);
    # remote: empty-chain base + 0.25 spectrum + Receiver, EventDone, 0.25 x Sender
    base = 2e-3 - 1e-4 * 5.25  # t0 and 5 x 1 + 0.25 calls in the one-process run
    local = base + 1e-4 * (4.0 + 2 + 0.5)
    remote = 1e-4 + 1e-4 * (0.25 + 2 + 0.25)
    link_s = 2e-5 + 0.25 * (3 * 1e-5 + (32768 + 8 + 64) / 1e9)
    wait = 1 / 400.0 - 2e-3  # the GIL-free rest, shared by module time
    shares = {lb: t for lb, (_, t) in offload.items()}
    w_local = wait * sum(shares[lb] for lb in ("calib", "threshold", "summary", "stamp")) / 0.018
    w_remote = wait * shares["spectrum"] / 0.018
    expected = local + remote + link_s + w_local + w_remote
    assert p.latency_s == pytest.approx(expected)
