"""Richer products, many streams, several followers, follower loss with resend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from actors.framework import JobReport, Process

from .helpers import inproc_tables, run_all
from .mods import RECORDS, M
from .test_inproc import offload_pair, ok, run_two

D = "actors.distributed"


@pytest.fixture(autouse=True)
def _clear() -> None:
    RECORDS.clear()


async def test_soa_awkward_and_refs_cross_the_link() -> None:
    pytest.importorskip("awkward")
    local = Process("LOCAL")
    local.set_source(f"{M}:Lumis", layout=[[1, [6, 6]]])
    local.add_module("offload", f"{D}:Controller", link="offload")
    local.add_module("rich", f"{M}:Rich")
    local.add_module("send", f"{D}:Sender", upstream="offload", instance=3, products=["rich"])
    local.add_path("p", ["offload", "rich", "send"])
    remote = Process("REMOTE")
    remote.set_source(f"{D}:FollowerSource", link="offload")
    types = {
        "hits": "numpy.ndarray",
        "muons": "tests.Muons",
        "jagged": "awkward.Array",
        "refs": "list",
    }
    remote.add_module(
        "got",
        f"{D}:Receiver",
        upstream="source",
        instance=3,
        products=[
            # a label selects its products in branch order (type, then instance)
            {"type": t, "label": "rich", "instance": i}
            for i, t in sorted(types.items(), key=lambda x: x[1])
        ],
    )
    remote.add_module("look", f"{M}:Inspect", src="got", name="remote")
    remote.add_path("p", ["got", "look"])
    results = await run_two(local, remote, streams=3, threads=2)
    assert ok(results["remote"]).events == 12
    seen = sorted(RECORDS["remote"])
    assert [s[0] for s in seen] == list(range(1, 13))
    for n, pt, charge, jagged, resolved in seen:
        assert pt == np.linspace(0, n, 4).tolist()
        assert charge == [1, -1, 1, -1]
        assert jagged == [[float(n)] * k for k in range(n % 4)]
        hits = np.arange(n % 5 + 2, dtype="f8") + n
        assert resolved == hits[::2].tolist()


async def test_40_streams_on_4_threads() -> None:
    local, remote = offload_pair(streams=40)
    local.source.params["layout"] = [[1, [100, 100]], [2, [100]]]
    for p in (local, remote):
        p.options.threads = 4
    results = await run_two(local, remote, max_concurrent_lumis=3)
    assert ok(results["local"]).events == 300
    got = dict(RECORDS["local"])
    assert len(got) == 300
    for values in got.values():
        hits = values["*_arrays_hits_*"].value
        assert values["*_back_total_*"].value == pytest.approx(float(np.sum(hits)))


def two_follower_jobs(policy: str, loss: str = "fail", streams: int = 4) -> dict[str, Any]:
    local, remote = offload_pair(streams=streams)
    local.source.params["layout"] = [[1, [20, 20]], [2, [20]]]
    local.modules["offload"].params.pop("link")
    local.modules["offload"].params.update(
        links=["gpu1", "gpu2"], policy=policy, on_follower_loss=loss
    )
    remotes = {}
    for name in ("gpu1", "gpu2"):
        r = Process(f"REMOTE{name[-1]}")
        r.set_source(f"{D}:FollowerSource", link=name)
        for label, config in remote.modules.items():
            r.add_module(label, config.type, **config.params)
        r.add_path("p", list(remote.paths["p"].modules))
        r.add_end_path("e", ["done"])
        r.options.streams = streams
        remotes[name] = r
    tables = inproc_tables(
        {"gpu1": ("gpu1", "local"), "gpu2": ("gpu2", "local")}, ["local", "gpu1", "gpu2"]
    )
    return {"local": (local, tables["local"], {})} | {
        n: (r, tables[n], {}) for n, r in remotes.items()
    }


@pytest.mark.parametrize("policy", ["round-robin", "least-loaded"])
async def test_two_followers_share_the_events(policy: str) -> None:
    results = await run_all(two_follower_jobs(policy))
    reports = {name: ok(r) for name, r in results.items()}
    assert reports["local"].events == 60
    assert reports["gpu1"].events + reports["gpu2"].events == 60
    if policy == "round-robin":
        assert reports["gpu1"].events == reports["gpu2"].events == 30
    got = dict(RECORDS["local"])
    assert len(got) == 60
    for values in got.values():
        hits = values["*_arrays_hits_*"].value
        assert values["*_back_total_*"].value == pytest.approx(float(np.sum(hits)))


async def test_follower_loss_resends_in_flight_events() -> None:
    jobs = two_follower_jobs("round-robin", loss="resend")
    gpu2, _table, _kw = jobs["gpu2"]
    gpu2.add_module("boom", f"{M}:Boom", at=22)
    gpu2.paths["p"].modules.insert(1, "boom")
    results = await run_all(jobs)
    assert "boom in event" in str(results["gpu2"])
    assert ok(results["local"]).events == 60
    report = results["gpu1"]
    assert isinstance(report, JobReport)
    got = RECORDS["local"]
    ids = [i for i, _ in got]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 60  # each event once
    for _, values in got:
        hits = values["*_arrays_hits_*"].value
        assert values["*_back_total_*"].value == pytest.approx(float(np.sum(hits)))


@pytest.mark.parametrize("token", [False, True])
async def test_receiver_label_selects_its_products(token: bool) -> None:
    """``consumes(receiver label)`` gets the product; the token only on request."""
    local, remote = offload_pair(streams=2)
    back = local.modules["back"].params
    back["products"] = [{"type": "float64", "label": "total", "instance": "total", "as": ""}]
    back["token"] = token
    src = "*_back__*" if token else "back"  # with the token the bare label selects two
    local.add_module("again", f"{M}:Sum", src=src)
    what = ["*_arrays_hits_*", "*_again_total_*"] + (["ChannelToken_back_token_*"] if token else [])
    local.modules["got"].params["what"] = what
    local.paths["p"].modules.insert(-1, "again")
    results = await run_two(local, remote)
    assert ok(results["local"]).events == 30
    for values in dict(RECORDS["local"]).values():
        hits = values["*_arrays_hits_*"].value
        assert values["*_again_total_*"].value == pytest.approx(float(np.sum(hits)))
        if token:
            assert values["ChannelToken_back_token_*"].value.key > 0
