"""Unit tests of the events and hlt benchmark plumbing: statistics, generated configurations.

Nothing here starts a process; the end-to-end runs are in test_benchmarks.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors.framework import Process
from actors.launch.topology import load_topology
from benchmarks.bench_modules import Stamp
from benchmarks.chains import Chain, write_chain
from benchmarks.events import grid, round_order
from benchmarks.hlt_config import make_menu, make_process, write_offloaded
from benchmarks.launched import latency_summary, steady_rate
from benchmarks.parts import Context


def test_steady_rate_excludes_start_up_and_drain() -> None:
    # 10 slow events (start-up), 80 at 1 ms apart, 10 slow ones (drain)
    done = [float(i) for i in range(10)]
    done += [10.0 + 0.001 * i for i in range(1, 81)]
    done += [11.0 + i for i in range(10)]
    rate, window = steady_rate(done, lead=1)
    assert window == 79 and rate == pytest.approx(1000.0)


def test_steady_rate_of_tiny_samples_uses_everything() -> None:
    assert steady_rate([0.0, 0.5, 1.0]) == (pytest.approx(2.0), 2)
    assert steady_rate([1.0, 1.0]) == (0.0, 1)


def test_latency_summary_in_milliseconds() -> None:
    s = latency_summary([0.001 * i for i in range(1, 101)])
    assert s["n"] == 100 and s["median_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(91.0) and s["p99_ms"] == pytest.approx(100.0)
    assert latency_summary([]) == {}


def test_grid_quick_and_full() -> None:
    quick = Context(quick=True, out=Path("."), transports=["tcp"], device="host")
    assert [(c.followers, c.streams, c.payload) for c in grid(quick, "tcp")] == [
        (1, 1, 0),
        (1, 2, 0),
    ]
    full = grid(Context(quick=False, out=Path("."), transports=["tcp"], device="host"), "shm")
    assert {c.followers for c in full} == {1, 2, 4}
    assert {c.streams for c in full} == {1, 2, 4, 8}
    assert {c.scenario for c in full} == {
        "empty",
        "1 MiB one way",
        "10 MiB one way",
        "offload example",
    }


def test_a_round_runs_each_series_over_every_transport_back_to_back() -> None:
    """A ratio to tcp:// compares runs seconds apart (a shared VM's speed drifts over
    minutes), and no transport runs first in every round."""
    ctx = Context(quick=False, out=Path("."), transports=["tcp", "mpi"], device="host")
    series = [c for t in ("tcp", "mpi", "ucx") for c in grid(ctx, t)]

    def key(c: Chain) -> tuple[str, int, int]:
        return (c.scenario, c.followers, c.streams)

    first, second = round_order(series, 0, key), round_order(series, 1, key)
    assert sorted(map(id, first)) == sorted(map(id, series)) == sorted(map(id, second))
    assert [c.transport for c in first[:3]] == ["tcp", "mpi", "ucx"]
    assert [c.transport for c in second[:3]] == ["ucx", "mpi", "tcp"]
    for order in (first, second):
        keys = [key(c) for c in order]
        assert keys == [k for k in dict.fromkeys(keys) for _ in range(3)]
        assert list(dict.fromkeys(keys)) == list(dict.fromkeys(key(c) for c in series))


@pytest.mark.parametrize("payload", [0, 1 << 20])
def test_write_chain_gives_a_valid_topology(tmp_path: Path, payload: int) -> None:
    written = write_chain(Chain("tcp", 2, payload, 4, 100), tmp_path)
    topo = load_topology(written.topology)
    assert set(topo.processes) == {"local", "f0", "f1"}
    assert {(link.client, link.server) for link in topo.links} == {("local", "f0"), ("local", "f1")}
    assert all(p.streams == 4 for p in topo.processes.values())
    local = Process.from_toml(tmp_path / "local.toml")
    assert local.modules["offload"].params["links"] == ["f0", "f1"]
    assert ("payload" in local.modules) == bool(payload)
    for i in range(2):
        follower = Process.from_toml(tmp_path / f"f{i}.toml")
        assert follower.source is not None and follower.source.params["link"] == f"f{i}"
        assert follower.modules["stamp"].params["file"] == str(written.stamps[i])


def test_stamp_writes_completion_times(tmp_path: Path) -> None:
    stamp = Stamp(file=str(tmp_path / "s.json"))
    stamp.done = [1.0, 2.0]
    stamp.end_job()
    doc = json.loads((tmp_path / "s.json").read_text())
    assert (doc["done"], doc["latency"]) == ([1.0, 2.0], [])
    assert doc["max_rss_kib"] > 0  # the process's peak resident set, for the scale part


def test_menu_is_seeded_and_flags_the_heaviest() -> None:
    menu = make_menu(60)
    assert make_menu(60).times == menu.times
    assert len(menu.gpu) == 3
    lightest_gpu = min(menu.times[j] for j in menu.gpu)
    assert all(t <= lightest_gpu for j, t in enumerate(menu.times) if j not in menu.gpu)
    assert all(p < j for j, ps in enumerate(menu.parents) for p in ps)  # a DAG
    d = menu.describe()
    assert d["modules"] == 60 and 0 < d["gpu_like_fraction"] < 1


@pytest.mark.parametrize("remotes", [1, 2])
def test_offloaded_menu_runs_gpu_like_modules_remotely(tmp_path: Path, remotes: int) -> None:
    menu = make_menu(40)
    process = make_process(menu, tmp_path / "stamps.json")
    path, reports = write_offloaded(process, menu.gpu_labels, remotes, "tcp", 2, 2, 10, tmp_path)
    topo = load_topology(path)
    assert set(topo.processes) == {"local", *(f"gpu{i}" for i in range(remotes))}
    assert set(reports) == set(topo.processes)
    local = Process.from_toml(tmp_path / "local.toml")
    remote_labels: set[str] = set()
    for i in range(remotes):
        remote = Process.from_toml(tmp_path / f"gpu{i}.toml")
        remote_labels |= {
            label for label, m in remote.modules.items() if m.type.endswith(":HltModule")
        }
    assert remote_labels == set(menu.gpu_labels)
    local_hlt = {label for label, m in local.modules.items() if m.type.endswith(":HltModule")}
    assert local_hlt == set(menu.labels) - set(menu.gpu_labels)
    assert "stamp" in local.modules


def test_events_targets_use_the_best_empty_single_follower_series() -> None:
    from benchmarks.events import evaluate_targets

    def entry(t: str, streams: int, rate: float, followers: int = 1) -> dict[str, object]:
        return {
            "transport": t,
            "status": "ok",
            "scenario": "empty",
            "followers": followers,
            "streams": streams,
            "events_per_s": rate,
        }

    rows = evaluate_targets(
        [
            entry("shm", 1, 9000.0),
            entry("shm", 4, 12000.0),
            entry("mpi", 1, 15000.0),
            entry("mpi", 1, 30000.0, followers=2),
        ]
    )
    by = {r["series"]: r for r in rows}
    assert by["empty chain over shm"]["met"] is True
    assert "12,000 events/s (4 streams)" in by["empty chain over shm"]["measured"]
    assert by["empty chain over mpi"]["met"] is False


def test_select_filters_series_labels() -> None:
    ctx = Context(
        quick=False,
        out=Path("."),
        transports=["tcp"],
        device="host",
        select="empty f1 s[14]$|offload example",
    )
    chosen = [c.label for c in grid(ctx, "tcp") if ctx.selects(c.label)]
    assert chosen == [
        "tcp empty f1 s1",
        "tcp empty f1 s4",
        "tcp offload example f1 s1",
        "tcp offload example f1 s4",
    ]
    assert Context(quick=True, out=Path("."), transports=[], device="host").selects("x")


@pytest.fixture
def dimuon() -> Any:
    """:mod:`benchmarks.dimuon`; the test skips when the real events are missing."""
    from benchmarks import dimuon

    missing = dimuon.data_missing()
    if missing:
        pytest.skip(missing)
    return dimuon


def test_dimuon_series_write_the_example_with_8000_events_and_streams(
    tmp_path: Path, dimuon: Any
) -> None:
    import tomllib

    single = dimuon._command(dimuon.Offload(None, 4), tmp_path, 1000, 60)
    assert single[2:4] == ["actors.run", str(tmp_path / "dimuon.toml")]
    doc = tomllib.loads((tmp_path / "dimuon.toml").read_text())
    assert len(doc["source"]["file"]) * 500 == dimuon.LONG
    assert doc["options"] == {"streams": 4, "threads": 4}
    offload = dimuon._command(dimuon.Offload("shm", 4), tmp_path, 1000, 60)
    assert "actors.launch" in offload and offload[-4:] == ["--events", "1000", "--timeout", "60"]
    topology = load_topology(tmp_path / "offload.toml")
    assert topology.run.transport == "shm"
    assert {p.streams for p in topology.processes.values()} == {4}
    assert dimuon.Offload("shm", 4).label == "dimuon offload shm s4"


def _entries(series: list[Any], rates: dict[str, float]) -> list[dict[str, Any]]:
    """The dimuon entries of ``series``, each measured at 100 events/s unless ``rates``
    gives its label another rate."""
    from benchmarks.dimuon_report import entries

    rec = {"events_per_s": 100.0, "events_long": 8000, "wall_long_s": 80.0}
    samples = {c.label: [dict(rec, events_per_s=rates.get(c.label, 100.0))] for c in series}
    return entries(series, samples)


def test_bound_dimuon_series_bind_every_process_and_pair_with_the_bound_single(
    tmp_path: Path, dimuon: Any
) -> None:
    from benchmarks.events import evaluate_loaded

    bound = dimuon.Offload("tcp", 1, bound=True)
    assert bound.label == "dimuon offload tcp s1 bound"
    assert dimuon._command(bound, tmp_path, 1000, 60)[-2:] == ["--bind-to", "core"]
    assert dimuon._env(bound) == {}  # the launcher binds its processes
    single = dimuon.Offload(None, 1, bound=True)
    assert dimuon._env(single)["ACTORS_CPUS"].isdigit()
    assert dimuon._env(dimuon.Offload(None, 1)) == {}
    series = [dimuon.Offload(None, 1), single, dimuon.Offload("tcp", 1), bound]
    ratios = {e["label"]: e.get("ratio") for e in _entries(series, {single.label: 200.0})}
    assert ratios["dimuon offload tcp s1"] == 1.0 and ratios[bound.label] == 0.5
    shm = dimuon.Offload("shm", 1, bound=True)  # against the bound tcp series only
    rates = {single.label: 200.0, shm.label: 50.0, bound.label: 60.0}
    loaded = evaluate_loaded(_entries([*series, shm], rates), 0)
    assert [(r["series"], r["tcp_events_per_s"]) for r in loaded] == [(shm.label, 60.0)]


def test_threads0_dimuon_series_run_without_worker_threads_and_pair_with_their_single(
    tmp_path: Path, dimuon: Any
) -> None:
    import tomllib

    from benchmarks.dimuon_report import rows

    loop = dimuon.Offload("mpi", 4, threads0=True)
    assert loop.label == "dimuon offload mpi s4 threads0"
    dimuon._command(loop, tmp_path, 1000, 60)
    topology = load_topology(tmp_path / "offload.toml")
    assert {(p.threads, p.streams) for p in topology.processes.values()} == {(0, 4)}
    for name in ("offload_local.toml", "offload_remote.toml"):
        options = tomllib.loads((tmp_path / name).read_text())["options"]
        assert options == {"streams": 4, "threads": 0}
    single = dimuon.Offload(None, 4, threads0=True)
    dimuon._command(single, tmp_path, 1000, 60)
    assert tomllib.loads((tmp_path / "dimuon.toml").read_text())["options"]["threads"] == 0
    series = [dimuon.Offload(None, 4), single, dimuon.Offload("mpi", 4), loop]
    entries = _entries(series, {single.label: 400.0})
    ratios = {e["label"]: e.get("ratio") for e in entries}
    assert ratios["dimuon offload mpi s4"] == 1.0 and ratios[loop.label] == 0.25
    assert [row[0] for row in rows(entries)][-1] == "mpi (threads = 0)"


def test_loaded_series_are_compared_with_tcp_of_the_same_series() -> None:
    from benchmarks.events import evaluate_loaded

    def entry(transport: str, rate: float, streams: int = 1) -> dict[str, object]:
        return {
            "transport": transport,
            "scenario": "empty",
            "followers": 1,
            "streams": streams,
            "status": "ok",
            "events_per_s": rate,
        }

    failed = {
        "transport": "ucx",
        "scenario": "empty",
        "followers": 1,
        "streams": 1,
        "status": "failed",
        "reason": "timed out",
    }
    rows = evaluate_loaded(
        [
            entry("tcp", 100.0),
            entry("shm", 91.0),
            entry("mpi", 89.0),
            entry("inproc", 10.0),
            entry("ucx", 50.0, streams=4),
            failed,
        ],
        load=2,
    )
    assert [(r["series"], r["met"]) for r in rows] == [
        ("shm empty f1 s1", True),
        ("mpi empty f1 s1", False),
        ("ucx empty f1 s1", False),
    ]
    assert all(r["load"] == 2 for r in rows)


def test_transports_are_judged_on_the_median_of_ratios_within_each_round() -> None:
    from benchmarks.events import _summarise, evaluate_loaded, paired_ratio

    def entry(transport: str, rates: list[float | None]) -> dict[str, Any]:
        samples = [{"window": 1} if r is None else {"events_per_s": r, "window": 1} for r in rates]
        return _summarise(Chain(transport, 1, 0, 1, 100), samples)

    # the machine slowed down in round 2: tcp and mpi both ran slower there
    tcp = entry("tcp", [1000.0, 500.0, 1000.0])
    mpi = entry("mpi", [1000.0, 450.0, 980.0])
    assert mpi["round_events_per_s"] == [1000.0, 450.0, 980.0]
    assert paired_ratio(mpi, tcp) == pytest.approx(0.98)  # median of 1.0, 0.9, 0.98
    ucx = entry("ucx", [None, 200.0, 880.0])  # a failed round is left out of the pairs
    assert paired_ratio(ucx, tcp) == pytest.approx((0.4 + 0.88) / 2)
    # shm slow in one round of three: the paired median 1.0, the ratio of medians 0.5
    shm = entry("shm", [500.0, 500.0, 1000.0])
    rows = {r["series"]: r for r in evaluate_loaded([tcp, mpi, ucx, shm], load=2)}
    assert rows["mpi empty f1 s1"]["met"] and not rows["mpi empty f1 s1"]["at_or_above"]
    assert rows["mpi empty f1 s1"]["ratio_of_medians"] == pytest.approx(0.98)
    assert not rows["ucx empty f1 s1"]["met"]
    assert rows["shm empty f1 s1"]["ratio"] == pytest.approx(1.0)
    assert rows["shm empty f1 s1"]["at_or_above"] is True
    assert paired_ratio({"events_per_s": 90.0}, {"events_per_s": 100.0}) == pytest.approx(0.9)


def test_dimuon_series_without_the_real_events_are_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import dimuon, events

    monkeypatch.setattr(dimuon, "data_missing", lambda: "/x/cms.root is absent")
    said: list[str] = []
    ctx = Context(quick=False, out=Path("."), transports=["tcp"], device="host", log=said.append)
    assert events._dimuon_series(ctx) == []
    assert said == ["  dimuon series: skipped: /x/cms.root is absent"]
    said.clear()
    ctx.select = "empty f1"  # no dimuon series chosen: nothing to say
    assert events._dimuon_series(ctx) == [] and said == []


def test_the_control_runs_tcp_again_next_to_tcp_and_is_judged_like_a_transport(
    tmp_path: Path, dimuon: Any
) -> None:
    from benchmarks.chains import CONTROL
    from benchmarks.events import _summarise, compared, evaluate_loaded, verdict_counts

    ctx = Context(quick=False, out=Path("."), transports=["tcp", "mpi"], device="host")
    assert compared(ctx) == ["tcp", "mpi"]
    ctx.control = True
    assert compared(ctx) == [CONTROL, "tcp", "mpi"]
    # each of the control and mpi:// runs next to tcp:// in every round
    series = [c for t in compared(ctx) for c in grid(ctx, t)[:1]]
    for n in (0, 1):
        order = [c.transport for c in round_order(series, n, lambda c: c.scenario)]
        assert order[1] == "tcp"
    (tmp_path / "chain").mkdir()
    written = Chain(CONTROL, 1, 0, 1, 100).write(tmp_path / "chain")
    assert load_topology(written.topology).run.transport == "tcp"
    dimuon._command(dimuon.Offload(CONTROL, 1), tmp_path, 1000, 60)
    assert load_topology(tmp_path / "offload.toml").run.transport == "tcp"

    def entry(transport: str, rates: list[float]) -> dict[str, Any]:
        samples = [{"events_per_s": r, "window": 1} for r in rates]
        return _summarise(Chain(transport, 1, 0, 1, 100), samples)

    tcp = entry("tcp", [100.0, 100.0, 100.0])
    rows = evaluate_loaded(
        [tcp, entry(CONTROL, [95.0, 85.0, 101.0]), entry("mpi", [80.0, 85.0, 120.0])], load=2
    )
    assert verdict_counts(rows) == [
        {
            "transport": CONTROL,
            "series": 1,
            "within_10": 1,
            "at_or_above": 0,
            "median_ratio": pytest.approx(0.95),
            "lowest_ratio": pytest.approx(0.95),
            "rounds": 3,
            "rounds_within_10": 2,  # 0.95 and 1.01: 0.85 is not
            "rounds_at_or_above": 1,
        },
        {
            "transport": "mpi",
            "series": 1,
            "within_10": 0,
            "at_or_above": 0,
            "median_ratio": pytest.approx(0.85),
            "lowest_ratio": pytest.approx(0.85),
            "rounds": 3,
            "rounds_within_10": 1,  # 1.2 alone
            "rounds_at_or_above": 1,
        },
    ]


def test_markdown_renders_every_table_of_the_events_part() -> None:
    from benchmarks.events import _summarise, evaluate_loaded, verdict_counts
    from benchmarks.events_tables import tables
    from benchmarks.markdown import _events

    entries = [
        _summarise(Chain(t, 1, 0, 1, 100), [{"events_per_s": rate, "window": 1}])
        for t, rate in (("tcp", 100.0), ("tcp-again", 95.0), ("mpi", 80.0))
    ]
    loaded = evaluate_loaded(entries, 2)
    data = {
        "series": entries,
        "targets": [],
        "load": 2,
        "loaded_vs_tcp": loaded,
        "verdict_counts": verdict_counts(loaded),
        "control": True,
    }
    text = "\n\n".join(_events(data))
    titles = [title for title, _, _ in tables(data)]
    assert [line for line in text.splitlines() if line in titles] == titles
    assert len(titles) == 4  # series, targets, against tcp://, verdict counts
    assert "| mpi empty f1 s1 | 80 | 100 | 0.80x | 0.80x | MISSED | MISSED |" in text
    assert "| tcp-again | 1 | 1 | 0 | 0.95x | 0.95x | 1 of 1 | 0 of 1 |" in text
    # results written before the single rounds were counted still render
    del data["verdict_counts"][0]["rounds"]
    assert "| tcp-again | 1 | 1 | 0 | 0.95x | 0.95x | - | - |" in "\n\n".join(_events(data))
