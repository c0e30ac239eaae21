"""Sources: async and blocking iterators, foreign provenance, malformed transition sequences."""

from __future__ import annotations

import pytest

from actors.errors import FrameworkError, ModuleError
from actors.framework import EventID, Process, ProcessEntry, run, run_process
from tests.framework.mods import Collect, M, ProvenanceOf


def _async_process(**params: object) -> Process:
    p = Process("HLT")
    p.set_source(f"{M}:AsyncSource", **params)
    p.add_module("prov", f"{M}:ProvenanceOf")
    p.add_path("p", ["prov"])
    p.options.streams = 2
    return p


def test_async_source_with_foreign_products_and_history() -> None:
    p = _async_process()
    run(p)
    history, *events = ProvenanceOf.seen
    assert history == (ProcessEntry("RECO", "f00"), ProcessEntry("HLT", p.config_hash()))
    assert sorted(events) == [(EventID(7, 1, n), n, "remote:Maker") for n in range(1, 7)]


def test_blocking_source_is_read_in_threads() -> None:
    p = Process("T")
    p.set_source(f"{M}:BlockingSource", lumis=2, events=3)
    p.add_module("col", f"{M}:Collect")
    p.add_path("p", ["col"])
    run(p, streams=2, threads=2)
    assert sorted(n for n, _ in Collect.seen["col"]) == list(range(1, 7))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("event-outside-lumi", "outside an open luminosity block"),
        ("undeclared", "did not declare"),
    ],
)
def test_malformed_sequences_are_errors(bad: str, message: str) -> None:
    with pytest.raises(FrameworkError, match=message) as info:
        run(_async_process(bad=bad))
    assert not isinstance(info.value, ModuleError)


def test_source_ending_without_end_run_is_closed_by_the_framework() -> None:
    report = run(_async_process(bad="no-end-run"))
    assert report.events == 6


async def test_run_process_inside_a_running_loop() -> None:
    report = await run_process(_async_process(), events=4)
    assert report.events == 4
    assert len(ProvenanceOf.seen) == 1 + 4


async def test_cancelling_run_process_stops_the_job_cleanly() -> None:
    import asyncio
    import threading

    p = Process("T")
    p.set_source(f"{M}:CountingSource", lumis=100, events=100)
    p.add_module("a", f"{M}:Add", sleep=0.002)
    p.add_path("p", ["a"])
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await run_process(p, streams=2, threads=2)
    left = {t.name for t in threading.enumerate()} - before
    assert not any(name.startswith("actors-T") for name in left)
