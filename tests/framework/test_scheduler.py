"""Data-flow scheduling: dependencies, concurrency kinds, paths, filters, on-demand, errors."""

from __future__ import annotations

import asyncio

import pytest

from actors.errors import ConfigError, ModuleError
from actors.framework import Process, run, run_process
from tests.framework.mods import LOG, Busy, Collect, M, Memory


def _process(**options: int) -> Process:
    p = Process("TEST")
    p.set_source(f"{M}:CountingSource", lumis=2, events=4)
    for key, value in options.items():
        setattr(p.options, key, value)
    LOG.clear()
    return p


def _position(entry: tuple[object, ...]) -> int:
    return LOG.index(entry)


def test_diamond_runs_in_dependency_order_with_branches_concurrent() -> None:
    p = _process(streams=1, threads=2)
    p.add_module("a", f"{M}:Add")
    # b and c meet at a barrier per event: they only finish if they run concurrently
    p.add_module("b", f"{M}:Meet", inputs=["a"])
    p.add_module("c", f"{M}:Meet", inputs=["a"])
    p.add_module("d", f"{M}:Add", inputs=["b", "c"], add=0)
    p.add_module("col", f"{M}:Collect", input="d")
    p.add_path("p", ["col"])
    run(p)
    assert Collect.seen["col"] == [(n, 2 * (n + 1)) for n in range(1, 9)]
    for n in range(1, 9):
        a_end = _position(("end", "a", n))
        for mid in ("b", "c"):
            assert _position(("start", mid, n)) > a_end
            assert _position(("start", "d", n)) > _position(("end", mid, n))


def test_stream_modules_have_one_instance_per_stream() -> None:
    p = _process(streams=3, threads=2)
    p.add_module("s", f"{M}:BusyStream")
    p.add_module("l", f"{M}:Busy")
    p.add_module("h", f"{M}:BusyShared")
    p.add_path("p", ["s", "l", "h"])
    Busy.instances.clear()
    run(p)
    assert len(Busy.instances["s"]) == 3
    assert len(Busy.instances["l"]) == 1
    assert len(Busy.instances["h"]) == 1


def test_legacy_module_calls_never_overlap() -> None:
    p = _process(streams=4, threads=4)
    p.add_module("l", f"{M}:Busy")
    p.add_path("p", ["l"])
    run(p)
    assert Busy.max_active["l"] == 1


def test_shared_module_calls_overlap() -> None:
    # pairs of events of one shared instance meet at a barrier: only possible if they overlap
    p = _process(streams=2, threads=2)
    p.add_module("m", f"{M}:Meet", key="module", parties=2)
    p.add_path("p", ["m"])
    report = run(p)
    assert report.events == 8


def test_filter_stops_its_path() -> None:
    p = _process(streams=2, threads=2)
    p.add_module("even", f"{M}:Even")
    p.add_module("a", f"{M}:Add")
    p.add_module("col", f"{M}:Collect", input="a")
    p.add_path("p1", ["even", "a", "col"])
    report = run(p)
    assert [n for n, _ in Collect.seen["col"]] == [2, 4, 6, 8]
    assert sorted(e[2] for e in LOG if e[:2] == ("start", "a")) == [2, 4, 6, 8]
    assert report.accepted == 4


def test_module_after_rejecting_filter_runs_if_another_path_needs_it() -> None:
    p = _process(streams=2, threads=2)
    p.add_module("even", f"{M}:Even")
    p.add_module("a", f"{M}:Add")
    p.add_module("col", f"{M}:Collect", input="a")
    p.add_path("p1", ["even", "a"])
    p.add_path("p2", ["col"])
    run(p)
    assert sorted(e[2] for e in LOG if e[:2] == ("start", "a")) == list(range(1, 9))
    assert sorted(n for n, _ in Collect.seen["col"]) == list(range(1, 9))


def test_unscheduled_modules_run_on_demand_only() -> None:
    p = _process(streams=2, threads=2)
    p.add_module("ondemand", f"{M}:Add", add=7)  # on no path, consumed by col
    p.add_module("unused", f"{M}:Add")  # on no path, consumed by nobody
    p.add_module("col", f"{M}:Collect", input="ondemand")
    p.add_path("p", ["col"])
    report = run(p)
    assert not any(e[1] == "unused" for e in LOG if len(e) > 1)
    assert sorted(Collect.seen["col"]) == [(n, n + 7) for n in range(1, 9)]
    assert [m.label for m in report.modules] == ["ondemand", "col"]


def test_output_selects_events_and_products_in_input_order() -> None:
    p = _process(streams=4, threads=4)
    p.options.max_concurrent_lumis = 2
    p.add_module("slow", f"{M}:Add", sleep=0.001, slow_first=True)  # early events finish last
    p.add_module("even", f"{M}:Even")
    p.add_module("other", f"{M}:Add", add=100)  # on demand: kept by the output
    p.add_path("p1", ["slow", "even"])
    p.add_module(
        "out",
        f"{M}:Memory",
        select_events=["p1"],
        output_commands=["drop *", "keep *_slow_*_*", "keep other"],
    )
    p.add_end_path("e", ["out"])
    run(p)
    written = Memory.written["out"]
    assert [n for n, _ in written] == [2, 4, 6, 8]
    assert written[0][1] == {"int_slow__TEST": 3, "int_other__TEST": 102}


def test_output_without_select_events_writes_every_event_in_order() -> None:
    p = _process(streams=4, threads=2)
    p.add_module("slow", f"{M}:Add", sleep=0.001, slow_first=True)
    p.add_path("p1", ["slow"])
    p.add_module("out", f"{M}:Memory", output_commands=["keep *_*_n_*"])
    p.add_end_path("e", ["out"])
    run(p)
    assert Memory.written["out"] == [(n, {"int_source_n_TEST": n}) for n in range(1, 9)]


def test_async_modules_run_on_the_loop() -> None:
    p = _process(streams=2, threads=1)
    p.add_module("x", f"{M}:AsyncAdd")
    p.add_module("col", f"{M}:Collect", input="x")
    p.add_path("p", ["col"])
    run(p)
    assert sorted(Collect.seen["col"]) == [(n, 10 * n) for n in range(1, 9)]


@pytest.mark.parametrize(("streams", "threads"), [(1, 2), (3, 2), (1, 0), (3, 0)])
def test_module_error_names_label_and_event(streams: int, threads: int) -> None:
    p = _process(streams=streams, threads=threads)
    p.add_module("fail", f"{M}:Fail", at=3)
    p.add_module("col", f"{M}:Collect", input="fail")
    p.add_path("p", ["col"])
    with pytest.raises(ModuleError) as info:
        run(p)
    err = info.value
    assert err.label == "fail"
    assert err.transition == "event 1:1:3"
    assert "boom at 3" in err.module_traceback
    assert "RuntimeError" in err.module_traceback
    assert isinstance(err.__cause__, RuntimeError)


@pytest.mark.parametrize("threads", [1, 0])
def test_error_in_a_transition_hook(threads: int) -> None:
    p = _process(threads=threads)
    p.add_module("bad", f"{M}:BadLumi")
    p.add_path("p", ["bad"])
    with pytest.raises(ModuleError) as info:
        run(p)
    assert info.value.label == "bad"
    assert info.value.transition == "begin_lumi 1:2"


def test_event_limit_closes_open_lumis_and_runs() -> None:
    p = _process(streams=2)
    p.add_module("col", f"{M}:Collect")
    p.add_path("p", ["col"])
    report = run(p, events=3)
    assert report.events == 3
    assert [e[0] for e in LOG if e[0] in ("begin_lumi", "end_lumi")] == ["begin_lumi", "end_lumi"]


def test_output_knows_its_kept_branches_before_the_first_event() -> None:
    p = _process()
    p.add_module("a", f"{M}:Add")
    p.add_path("p", ["a"])
    p.add_module("out", f"{M}:KeptAtBeginJob", output_commands=["keep *", "drop *_*_n_*"])
    p.add_end_path("e", ["out"])
    run(p)
    from tests.framework.mods import KeptAtBeginJob

    assert KeptAtBeginJob.kept == ["int_a__TEST"]


def test_filter_must_return_a_bool() -> None:
    p = _process()
    p.add_module("f", f"{M}:NoReturnFilter")
    p.add_path("p", ["f"])
    with pytest.raises(ModuleError, match="must return a bool") as info:
        run(p)
    assert info.value.label == "f" and info.value.transition == "event 1:1:1"


def test_failing_progress_callback_fails_the_job() -> None:
    p = _process()
    p.add_module("a", f"{M}:Add")
    p.add_path("p", ["a"])

    def progress(done: int) -> None:
        if done == 3:
            raise RuntimeError("progress broke")

    with pytest.raises(RuntimeError, match="progress broke"):
        run(p, progress=progress)


def test_modules_completing_at_once_do_not_end_the_trigger_phase_early() -> None:
    # async modules that never suspend: every trigger path must be done before the end path
    p = _process(streams=1)
    p.add_module("x", f"{M}:TrivialAsync")
    p.add_module("y", f"{M}:TrivialAsync")
    p.add_module("z", f"{M}:TrivialAsync")
    p.add_path("p1", ["x"])
    p.add_path("p2", ["y", "z"])
    p.add_module("out", f"{M}:Memory", output_commands=["keep *_?_*_*"])
    p.add_end_path("e", ["out"])
    report = run(p)
    expected = {"int_x__TEST": 1, "int_y__TEST": 1, "int_z__TEST": 1}
    assert Memory.written["out"] == [(n, expected) for n in range(1, 9)]
    assert all(path.passed == 8 for path in report.paths)


def test_consumer_of_a_filter_product_waits_for_its_other_inputs() -> None:
    # "both" follows the filter on its path and consumes the filter's product and the
    # slow module's: it must wait for "slow" (the filter's completion was once counted
    # twice for "both", which then ran before "slow" had put its product)
    p = _process(streams=2, threads=3)
    p.add_module("gate", f"{M}:PassAndPut")
    p.add_module("slow", f"{M}:Add", sleep=0.02)
    p.add_module("both", f"{M}:Add", inputs=["gate", "slow"], add=0)
    p.add_module("col", f"{M}:Collect", input="both")
    p.add_path("p", ["gate", "slow", "both", "col"])
    run(p)
    assert sorted(Collect.seen["col"]) == [(n, 2 * n + 1) for n in range(1, 9)]


def test_async_module_may_use_task_bound_asyncio_features() -> None:
    p = _process(streams=2)
    p.add_module("t", f"{M}:WithTimeout")
    p.add_module("col", f"{M}:Collect", input="t")
    p.add_path("p", ["col"])
    run(p)
    assert sorted(Collect.seen["col"]) == [(n, n) for n in range(1, 9)]


def test_run_on_loop_module_runs_in_the_loop_thread() -> None:
    import threading

    from tests.framework.mods import OnLoop

    p = _process(streams=3, threads=2)
    p.add_module("x", f"{M}:OnLoop")
    p.add_module("col", f"{M}:Collect", input="x")
    p.add_path("p", ["col"])
    OnLoop.threads.clear()
    run(p)
    assert OnLoop.threads == {threading.current_thread().name}
    assert sorted(Collect.seen["col"]) == [(n, n + 1000) for n in range(1, 9)]


@pytest.mark.parametrize("threads", [0, 1])
def test_threads_0_runs_module_code_hooks_and_a_blocking_source_on_the_loop_thread(
    threads: int,
) -> None:
    import threading

    from tests.framework.mods import BlockingThreadSource, ThreadRecorder

    p = _process(streams=2, threads=threads)
    p.set_source(f"{M}:BlockingThreadSource", lumis=2, events=4)
    p.add_module("x", f"{M}:ThreadRecorder")
    p.add_module("col", f"{M}:Collect", input="x")
    p.add_path("p", ["col"])
    ThreadRecorder.threads.clear()
    BlockingThreadSource.threads.clear()
    report = run(p)
    loop_thread = {threading.current_thread().name}
    if threads == 0:
        assert ThreadRecorder.threads == loop_thread
        assert BlockingThreadSource.threads == loop_thread
    else:  # the same job with a pool: none of it on the loop's thread
        assert ThreadRecorder.threads and not ThreadRecorder.threads & loop_thread
        assert BlockingThreadSource.threads and not BlockingThreadSource.threads & loop_thread
    assert sorted(Collect.seen["col"]) == [(n, n + 1000) for n in range(1, 9)]
    assert report.threads == threads and report.workers == 1
    assert 0.0 <= report.overhead < 1.0


@pytest.mark.parametrize("threads", [0, 1])
def test_a_job_without_worker_threads_holds_its_loops_receive_polls_off(threads: int) -> None:
    from actors.transports import receive_polls_enabled
    from tests.framework.mods import PollState

    p = _process(streams=2, threads=threads)
    p.add_module("x", f"{M}:PollState")
    p.add_module("col", f"{M}:Collect", input="x")
    p.add_path("p", ["col"])
    PollState.seen.clear()

    async def job() -> bool:
        await run_process(p)
        return receive_polls_enabled()  # on again once the job ended

    assert asyncio.run(job())
    assert PollState.seen == {threads != 0}


def test_threads_must_not_be_negative() -> None:
    p = _process(threads=-1)
    p.add_module("x", f"{M}:Add")
    with pytest.raises(ConfigError, match=r"options.threads.*must be an integer >= 0, not -1"):
        run(p)


def test_run_on_loop_method_may_return_its_slow_path_as_a_coroutine() -> None:
    p = _process(streams=3)
    p.add_module("x", f"{M}:OnLoopSlowPath")
    p.add_module("col", f"{M}:Collect", input="x")
    p.add_path("p", ["col"])
    report = run(p)
    assert sorted(Collect.seen["col"]) == [(n, n * 10) for n in range(1, 9)]
    assert next(t for t in report.modules if t.label == "x").calls == 8


def test_a_failing_slow_path_of_a_run_on_loop_module_is_a_module_error() -> None:
    p = _process(streams=2)
    p.add_module("x", f"{M}:OnLoopSlowFails")
    p.add_path("p", ["x"])
    with pytest.raises(ModuleError, match="slow path failed") as info:
        run(p)
    assert info.value.label == "x"


def test_shared_async_module_calls_overlap_in_at_most_streams_worker_tasks() -> None:
    from tests.framework.mods import SharedAsyncOverlap

    SharedAsyncOverlap.most = 0
    SharedAsyncOverlap.tasks.clear()
    p = _process(streams=3)
    p.add_module("x", f"{M}:SharedAsyncOverlap")
    p.add_module("col", f"{M}:Collect", input="x")
    p.add_path("p", ["col"])
    run(p)
    assert sorted(Collect.seen["col"]) == [(n, n) for n in range(1, 9)]
    assert SharedAsyncOverlap.most == 3  # one call per stream at once
    assert len(SharedAsyncOverlap.tasks) <= 3  # calls reuse the actor's worker tasks


def test_a_cancelled_error_let_out_by_module_code_fails_the_job() -> None:
    p = _process(streams=2)
    p.add_module("x", f"{M}:LetsCancelledOut")
    p.add_path("p", ["x"])
    with pytest.raises(ModuleError, match="was cancelled") as info:
        run(p)
    assert info.value.label == "x"
