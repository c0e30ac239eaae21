"""Controller -> follower over inproc://: transitions, products, filters, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from actors.distributed import use_links
from actors.distributed._controller_hub import ControllerHub
from actors.distributed.follower import FollowerHub
from actors.distributed.hub import _hubs
from actors.errors import DistributedError, PeerLost, SchemaMismatch
from actors.framework import EventID, JobReport, Process, run_process

from .helpers import inproc_tables, run_all
from .mods import RECORDS, M

D = "actors.distributed"
LAYOUT = [[1, [3, 0, 5]], [2, [4]], [7, [2, 2]]]


@pytest.fixture(autouse=True)
def _clear() -> None:
    RECORDS.clear()


def local_process(name: str = "LOCAL", layout: Any = LAYOUT, **controller: Any) -> Process:
    p = Process(name)
    p.set_source(f"{M}:Lumis", layout=layout)
    controller.setdefault("link", "offload")
    p.add_module("offload", f"{D}:Controller", **controller)
    p.add_module("seen", f"{M}:Transitions", name=f"{name}-seen")
    p.add_path("p", ["offload", "seen"])
    return p


def remote_process(name: str = "REMOTE", link: str = "offload") -> Process:
    p = Process(name)
    p.set_source(f"{D}:FollowerSource", link=link)
    p.add_module("seen", f"{M}:Transitions", name=f"{name}-seen")
    p.add_path("p", ["seen"])
    return p


def one_link() -> dict[str, Any]:
    return inproc_tables({"offload": ("remote", "local")}, ["local", "remote"])


async def run_two(local: Process, remote: Process, **options: Any) -> dict[str, Any]:
    tables = one_link()
    results = await run_all(
        {
            "local": (local, tables["local"], dict(options)),
            "remote": (remote, tables["remote"], dict(options)),
        }
    )
    return results


def ok(result: Any) -> JobReport:
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, JobReport)
    return result


def without_history(records: list[Any]) -> list[Any]:
    return [r[:2] if r[0] == "br" else r for r in records]


@pytest.mark.parametrize(("streams", "lumis"), [(1, 1), (4, 2), (3, 3)])
async def test_follower_replays_transitions(streams: int, lumis: int) -> None:
    results = await run_two(
        local_process(), remote_process(), streams=streams, max_concurrent_lumis=lumis
    )
    assert ok(results["local"]).events == 16
    assert ok(results["remote"]).events == 16
    here, there = RECORDS["LOCAL-seen"], RECORDS["REMOTE-seen"]
    assert sorted(without_history(here)) == sorted(without_history(there))
    events = [r for r in there if r[0] == "ev"]
    assert len(events) == 16 and len(set(events)) == 16
    if streams == 1:  # run and lumi begins arrive in source order

        def begins(rs: list[Any]) -> list[Any]:
            return [r for r in without_history(rs) if r[0] in ("br", "bl")]

        assert begins(here) == begins(there)
    runs = [r for r in there if r[0] == "br"]
    assert [r[1] for r in runs] == [1, 2, 7]
    assert all(r[2] == ("LOCAL", "REMOTE") for r in runs)


def offload_pair(streams: int = 1, filtered: bool = False) -> tuple[Process, Process]:
    local = local_process(layout=[[1, [10, 10]], [2, [10]]])
    local.add_module("arrays", f"{M}:Arrays")
    local.add_module("odd", f"{M}:Odd")
    local.add_module("send", f"{D}:Sender", upstream="offload", instance=1, products=["arrays"])
    local.add_module(
        "back",
        f"{D}:Receiver",
        upstream="offload",
        instance=2,
        products=[{"type": "float64", "label": "total", "instance": "total"}],
    )
    local.add_module(
        "got", f"{M}:Collect", name="local", what=["*_arrays_hits_*", "*_back_total_*"]
    )
    local.add_module("done", f"{D}:EventDone", upstream="offload")
    chain = ["offload", "arrays"] + (["odd"] if filtered else []) + ["send", "back", "got"]
    local.paths.clear()
    local.add_path("p", chain)
    local.add_end_path("e", ["done"])
    remote = remote_process()
    remote.add_module(
        "arrays",
        f"{D}:Receiver",
        upstream="source",
        instance=1,
        products=[
            {"type": "numpy.ndarray", "label": "arrays", "instance": "hits"},
            {"type": "numpy.ndarray", "label": "arrays", "instance": "ids"},
        ],
    )
    remote.add_module("total", f"{M}:Sum", src="*_arrays_hits_*")
    remote.add_module("send", f"{D}:Sender", upstream="source", instance=2, products=["total"])
    remote.add_module("done", f"{D}:EventDone", upstream="source")
    remote.paths.clear()
    remote.add_path("p", ["arrays", "total", "send"])
    remote.add_end_path("e", ["done"])
    for p in (local, remote):
        p.options.streams = streams
        p.options.threads = 2
    return local, remote


@pytest.mark.parametrize("streams", [1, 4])
async def test_products_both_ways(streams: int) -> None:
    local, remote = offload_pair(streams)
    results = await run_two(local, remote)
    assert ok(results["local"]).events == 30
    assert ok(results["remote"]).events == 30
    got = dict(RECORDS["local"])
    assert len(got) == 30
    for (_, _, n), values in got.items():
        hits = values["*_arrays_hits_*"].value
        assert values["*_back_total_*"].value == pytest.approx(float(np.sum(hits)))
        assert hits.sum() == pytest.approx(n * sum(range(n % 7 + 1)))
        prov = values["*_back_total_*"].provenance
        assert prov.module_label == "back"
        assert str(prov.parents[0]).startswith("float64_total_total_REMOTE")


async def test_filtered_events_send_negative_count() -> None:
    local, remote = offload_pair(streams=2, filtered=True)
    results = await run_two(local, remote)
    assert ok(results["local"]).events == 30
    report = ok(results["remote"])
    assert report.events == 30
    assert report.accepted == 15  # the remote receiver rejects the even events
    got = dict(RECORDS["local"])
    assert sorted(n for _, _, n in got) == list(range(1, 31, 2))


async def test_schema_mismatch_at_start_up() -> None:
    local, remote = offload_pair()
    remote.modules["send"].params["products"] = ["total", "arrays"]
    results = await run_two(local, remote)
    for side in ("local", "remote"):
        error = results[side]
        assert isinstance(error, BaseException)
        text = str(error)
        assert "instance 2" in text and "products differ" in text, text
    assert "local" not in RECORDS


async def test_metadata_mismatch_names_both_views() -> None:
    local, remote = offload_pair()
    local.modules["arrays"].params["ids_every"] = 4  # ids missing in most events
    results = await run_two(local, remote)
    error = results["remote"]
    assert isinstance(error, BaseException)
    text = str(error)
    assert "SchemaMismatch" in text or isinstance(error.__cause__, SchemaMismatch), text
    assert "the sender sent 1 product(s) [numpy.ndarray_arrays_hits]" in text, text
    assert "expects 2 [numpy.ndarray_arrays_hits, numpy.ndarray_arrays_ids]" in text, text
    assert isinstance(results["local"], BaseException)  # the controller learns it too


async def test_lost_follower_is_reported_with_in_flight_events() -> None:
    local, remote = offload_pair(streams=4)
    remote.add_module("boom", f"{M}:Boom", at=6)
    remote.paths["p"].modules.insert(1, "boom")
    results = await run_two(local, remote)
    assert "boom in event" in str(results["remote"])
    error = results["local"]
    assert isinstance(error, BaseException), error
    text = str(error)
    assert "lost the follower on link 'offload'" in text, text
    assert "event(s) in flight on it: " in text and "1:1:6" in text, text


async def test_controller_ending_early_ends_follower_cleanly() -> None:
    local, remote = offload_pair(streams=2)
    local.options.events = 7
    results = await run_two(local, remote)
    assert ok(results["local"]).events == 7
    assert ok(results["remote"]).events == 7


async def test_lost_controller_is_reported_by_follower() -> None:
    local, remote = offload_pair(streams=2)
    local.add_module("boom", f"{M}:Boom", at=4)
    local.paths["p"].modules.insert(1, "boom")
    results = await run_two(local, remote)
    assert "boom in event" in str(results["local"])
    text = str(results["remote"])
    assert "controller 'LOCAL'" in text and "disappeared" in text, text


def test_an_orphaned_event_that_ends_before_the_replacement_joins_is_not_sent_again() -> None:
    """A lost lone follower's result that is read after its loss ends the event: the
    replacement must not get that event again (without its data it waited forever)."""
    hub = ControllerHub("offload")
    hub.resend = True
    hub.orphans = [(29, EventID(1, 1, 29)), (30, EventID(1, 1, 30))]
    hub.event_done(29)
    assert hub.orphans == [(30, EventID(1, 1, 30))]


async def test_a_send_that_finds_the_controller_gone_names_the_controller() -> None:
    """A follower's Sender can find the link closed before the follower's reader
    does (the race behind a rare failure of the test above, under load): its
    error names the lost controller, not only the link's PeerLost."""

    class ClosedLinkPeer:
        name = "offload"
        who = "inproc://gone (client)"

        async def send(self, header: bytes, buffers: list[Any]) -> None:
            raise PeerLost("link to inproc://gone (client) is closed")

    hub = FollowerHub("source")
    hub.controller = "LOCAL"
    hub.peer = ClosedLinkPeer()  # type: ignore[assignment]
    with pytest.raises(DistributedError, match=r"controller 'LOCAL'.*disappeared") as info:
        await hub.send_data(3, b"data", [])
    assert isinstance(info.value.__cause__, PeerLost)
    with pytest.raises(DistributedError, match="disappeared"):  # the channel stays failed
        hub.check()


async def test_a_failed_job_closes_its_links_without_close_channels() -> None:
    """In-process (a notebook): the framework's close() at the end of the failed
    controller job closes its link, so the follower ends at once."""
    local, remote = offload_pair(streams=2)
    local.add_module("boom", f"{M}:Boom", at=4)
    local.paths["p"].modules.insert(1, "boom")
    tables = one_link()

    async def one(process: Process, name: str) -> JobReport:
        with use_links(tables[name]):  # no close_channels() afterwards
            return await run_process(process)

    async with asyncio.timeout(20):
        results = await asyncio.gather(
            one(local, "local"), one(remote, "remote"), return_exceptions=True
        )
    assert "boom in event" in str(results[0])
    text = str(results[1])
    assert "controller 'LOCAL'" in text and "disappeared" in text, text
    ours = {id(tables["local"]), id(tables["remote"])}
    assert [key for key in _hubs if key[0] in ours] == []  # both channels closed and forgotten
