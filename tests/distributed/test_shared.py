"""Followers shared by several controllers: one schedule per controller connection."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from actors.distributed.shared import merge_reports
from actors.framework import JobReport, Process

from .helpers import run_all, shared_tables
from .mods import RECORDS, M
from .test_inproc import offload_pair, ok, run_two

D = "actors.distributed"
# Both client jobs have run 1 (and event numbers 1, 2, ...): merged, they would clash.
CLIENTS = {
    "cpuA": (0.0, [[1, [10, 10]], [2, [10]]]),
    "cpuB": (0.5, [[1, [8, 4]], [3, [6]]]),
}


@pytest.fixture(autouse=True)
def _clear() -> None:
    RECORDS.clear()


def client(name: str, streams: int, links: list[str]) -> Process:
    offset, layout = CLIENTS[name]
    local, _ = offload_pair(streams)
    local.name = f"LOCAL{name[-1].upper()}"
    local.source.params["layout"] = layout
    local.modules["arrays"].params["offset"] = offset
    local.modules["got"].params["name"] = name
    local.modules["offload"].params.pop("link")
    local.modules["offload"].params["links"] = links
    return local


def server(name: str, streams: int, link: str) -> Process:
    _, remote = offload_pair(streams)
    remote.name = f"REMOTE{name[-1].upper()}"
    remote.source.params["link"] = link
    remote.modules["seen"].params["name"] = name
    remote.paths["e"].modules.append("seen")
    return remote


def totals(name: str) -> dict[Any, float]:
    return {event: values["*_back_total_*"].value for event, values in RECORDS[name]}


async def alone(name: str, streams: int) -> dict[Any, float]:
    """The reference: this client with its own single follower."""
    results = await run_two(client(name, streams, ["offload"]), server("one", streams, "offload"))
    ok(results["local"])
    return totals(name)


@pytest.mark.parametrize("streams", [1, 3])
async def test_two_controllers_two_followers(streams: int) -> None:
    reference = {name: await alone(name, streams) for name in CLIENTS}
    RECORDS.clear()
    tables = shared_tables(
        {"gpu1": ("gpu1", ["cpuA", "cpuB"]), "gpu2": ("gpu2", ["cpuA", "cpuB"])},
        ["cpuA", "cpuB", "gpu1", "gpu2"],
    )
    jobs = {name: (client(name, streams, ["gpu1", "gpu2"]), tables[name], {}) for name in CLIENTS}
    jobs |= {name: (server(name, streams, name), tables[name], {}) for name in ("gpu1", "gpu2")}
    results = await run_all(jobs)
    reports = {name: ok(r) for name, r in results.items()}
    assert reports["cpuA"].events == 30 and reports["cpuB"].events == 18
    # round robin: every follower serves both controllers
    assert reports["gpu1"].events + reports["gpu2"].events == 48
    assert reports["gpu1"].events == reports["gpu2"].events == 24
    for name, (offset, _) in CLIENTS.items():
        got = totals(name)
        assert got == reference[name]  # equal to one client with one follower
        for (_, _, n), total in got.items():
            hits = np.arange(n % 7 + 1, dtype="f8") * n + offset
            assert total == pytest.approx(float(hits.sum()))
    for gpu in ("gpu1", "gpu2"):
        begins = sorted(r[1:] for r in RECORDS[gpu] if r[0] == "br")
        remote = f"REMOTE{gpu[-1]}"
        assert begins == [
            (1, ("LOCALA", remote)),
            (1, ("LOCALB", remote)),
            (2, ("LOCALA", remote)),
            (3, ("LOCALB", remote)),
        ]


@pytest.mark.parametrize("threads", [2, 0])
async def test_one_follower_serves_controllers_with_explicit_count(threads: int) -> None:
    """``controllers = 2`` without a launcher-made table (clients configured by hand);
    the schedules share the follower's pool, or run on its loop with ``threads = 0``."""
    tables = shared_tables({"offload": ("gpu", ["cpuA", "cpuB"])}, ["cpuA", "cpuB", "gpu"])
    gpu = server("gpu", 2, "offload")
    gpu.source.params["controllers"] = 2
    gpu_table = tables["gpu"]
    endpoint = gpu_table.endpoints["offload"]
    gpu_table.endpoints["offload"] = type(endpoint)(endpoint.name, "server", endpoint.url)
    jobs = {name: (client(name, 2, ["offload"]), tables[name], {}) for name in CLIENTS}
    jobs["gpu"] = (gpu, gpu_table, {"threads": threads})
    results = await run_all(jobs)
    report = ok(results["gpu"])
    assert report.events == 48 and report.streams == 4 and report.threads == threads
    assert [p.visited for p in report.paths if p.name == "p"] == [48]
    assert len(totals("cpuA")) == 30 and len(totals("cpuB")) == 18


async def test_a_failing_controller_does_not_stop_the_other() -> None:
    tables = shared_tables({"offload": ("gpu", ["cpuA", "cpuB"])}, ["cpuA", "cpuB", "gpu"])
    jobs = {name: (client(name, 2, ["offload"]), tables[name], {}) for name in CLIENTS}
    bad, _, _ = jobs["cpuB"]
    bad.add_module("boom", f"{M}:Boom", at=5)
    bad.paths["p"].modules.insert(1, "boom")
    jobs["gpu"] = (server("gpu", 2, "offload"), tables["gpu"], {})
    results = await run_all(jobs, grace=30.0)
    assert ok(results["cpuA"]).events == 30
    assert "boom in event" in str(results["cpuB"])
    error = results["gpu"]
    assert isinstance(error, BaseException)
    text = str(error) + "".join(getattr(error, "__notes__", []))
    assert "controller 'LOCALB'" in text and "disappeared" in text, text
    assert "controller 2 of 2 on link 'offload'" in text or "controller 1 of 2" in text, text


async def test_controller_that_never_connects_is_reported() -> None:
    tables = shared_tables({"offload": ("gpu", ["cpuA", "cpuB"])}, ["cpuA", "cpuB", "gpu"])
    gpu = server("gpu", 1, "offload")
    gpu.source.params["accept_timeout"] = 1.0
    results = await run_all(
        {
            "cpuA": (client("cpuA", 1, ["offload"]), tables["cpuA"], {}),
            "gpu": (gpu, tables["gpu"], {}),
        },
        grace=30.0,
    )
    assert ok(results["cpuA"]).events == 30  # the connected controller is served
    assert "only 1 of 2 controllers connected" in str(results["gpu"])


def test_merge_reports_adds_counts() -> None:
    a = JobReport("P", events=3, accepted=2, streams=2, threads=4, event_loop_time=1.0)
    b = JobReport("P", events=5, accepted=5, streams=2, threads=4, event_loop_time=2.0)
    merged = merge_reports("P", [a, b], wall=3.0)
    assert (merged.events, merged.accepted, merged.streams, merged.threads) == (8, 7, 4, 4)
    assert merged.event_loop_time == 2.0 and merged.wall_time == 3.0
