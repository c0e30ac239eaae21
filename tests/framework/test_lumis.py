"""Concurrent luminosity blocks: overlap, per-lumi state, serialisation with max 1."""

from __future__ import annotations

from actors.framework import LumiID, Process, run
from tests.framework.mods import LOG, M


def _process(max_lumis: int, *, hold: bool) -> Process:
    p = Process("TEST")
    p.set_source(f"{M}:CountingSource", runs=2, lumis=2, events=5)
    p.options.streams = 3
    p.options.threads = 3
    p.options.max_concurrent_lumis = max_lumis
    labels = ["col"]
    if hold:
        # the last event of lumi 1:1 only finishes once an event of lumi 2 has started
        p.add_module("hold", f"{M}:HoldUntilLumi", hold=5, lumi=2)
        labels.insert(0, "hold")
    p.add_module("col", f"{M}:Collect")
    p.add_path("p", labels)
    LOG.clear()
    return p


def _per_lumi_state() -> dict[LumiID, tuple[int, ...]]:
    return {e[2]: e[3] for e in LOG if e[0] == "end_lumi"}


EXPECTED = {
    LumiID(1, 1): (1, 2, 3, 4, 5),
    LumiID(1, 2): (6, 7, 8, 9, 10),
    LumiID(2, 1): (11, 12, 13, 14, 15),
    LumiID(2, 2): (16, 17, 18, 19, 20),
}


def test_events_of_next_lumi_start_before_previous_lumi_ends() -> None:
    run(_process(2, hold=True))
    first_of_lumi2 = LOG.index(("event", "hold", (1, 2, 6)))
    end_of_lumi1 = LOG.index(("end_lumi", "col", LumiID(1, 1), EXPECTED[LumiID(1, 1)]))
    assert first_of_lumi2 < end_of_lumi1
    # per-lumi state saw exactly its own lumi's events although lumis overlapped
    assert _per_lumi_state() == EXPECTED


def test_transition_order_per_module_is_consistent() -> None:
    run(_process(2, hold=True))
    for lumi_id, events in EXPECTED.items():
        begin = LOG.index(("begin_lumi", "col", lumi_id))
        end = LOG.index(("end_lumi", "col", lumi_id, events))
        positions = [LOG.index(("event", "col", (lumi_id.run, lumi_id.lumi, n))) for n in events]
        assert begin < min(positions) and max(positions) < end


def test_one_lumi_at_a_time_serialises() -> None:
    run(_process(1, hold=False))
    assert _per_lumi_state() == EXPECTED
    kinds = [(e[0], e[2] if e[0] != "event" else LumiID(e[2][0], e[2][1])) for e in LOG]
    # with one lumi in flight, the log is begin, its events, end - lumi after lumi
    current = None
    for kind, lumi_id in kinds:
        if kind == "begin_lumi":
            assert current is None
            current = lumi_id
        elif kind == "event":
            assert lumi_id == current
        else:
            assert lumi_id == current
            current = None


def test_process_history_reaches_run_hooks() -> None:
    p = _process(2, hold=False)
    p.add_module("hist", f"{M}:History")
    p.add_path("h", ["hist"])
    run(p)
    from tests.framework.mods import History

    assert History.seen == [((("TEST", p.config_hash()),), 1), ((("TEST", p.config_hash()),), 2)]
