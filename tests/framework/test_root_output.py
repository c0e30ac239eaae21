"""The ROOT output module: keep/drop, SelectEvents, input order, SoA, empty output, errors."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.errors import FrameworkError, ModuleError
from actors.framework import (
    Branch,
    Concurrency,
    Declarer,
    Event,
    EventID,
    Filter,
    OutputEvent,
    Process,
    Producer,
    Product,
    Provenance,
    run,
)
from actors.framework.io import RootOutput
from tests.framework.test_io_helpers import _rntuple_cache, input_files, read_tree  # noqa: F401

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")
HERE = "tests.framework.test_root_output"
pytestmark = pytest.mark.timeout(60)


class Maker(Producer):
    """Puts ``value`` (float64 = event number / 2), ``count`` (int) and ``hits`` (1-D)."""

    concurrency = Concurrency.SHARED

    def declare(self, d: Declarer) -> None:
        d.produces("float64", "value")
        d.produces("int64", "count")
        d.produces("numpy.ndarray", "hits")

    async def produce(self, event: Event) -> None:
        n = event.id.event
        await asyncio.sleep(0.002 * ((n * 7) % 5))  # finish out of input order
        event.put(np.float64(n / 2), "value")
        event.put(n % 4, "count")
        event.put(np.arange(n % 4, dtype=np.float32) + n, "hits")


class EvenFilter(Filter):
    """Accepts events with an even event number (or none with ``reject_all``)."""

    concurrency = Concurrency.SHARED

    def __init__(self, *, reject_all: bool = False) -> None:
        self.reject_all = reject_all

    async def filter(self, event: Event) -> bool:
        await asyncio.sleep(0.001 * ((event.id.event * 3) % 4))
        return not self.reject_all and event.id.event % 2 == 0


def make_process(
    out: Path, *, commands: list[str], reject_all: bool = False, **output: Any
) -> Process:
    p = Process("OUT")
    p.set_source(
        "actors.framework.sources.synthetic:SyntheticSource",
        runs=2,
        lumis_per_run=2,
        events_per_lumi=15,
        products=[{"instance": "raw", "dtype": "int32", "size": 3, "fill": "sequence"}],
    )
    p.add_module("maker", f"{HERE}:Maker")
    p.add_module("even", f"{HERE}:EvenFilter", reject_all=reject_all)
    p.add_module(
        "out",
        "actors.framework.io:RootOutput",
        file=str(out),
        select_events=["p"],
        output_commands=commands,
        **output,
    )
    p.add_path("p", ["even", "maker"])
    p.add_end_path("e", ["out"])
    return p


@pytest.mark.parametrize("streams", [1, 4])
def test_keep_drop_select_and_input_order(tmp_path: Path, streams: int) -> None:
    out = tmp_path / "out.root"
    run(
        make_process(out, commands=["keep *", "drop *_maker_count_*"], flush_events=4),
        streams=streams,
        threads=2,
    )
    data = read_tree(out)
    assert list(data) == ["run", "luminosityBlock", "event", "value", "hits", "raw"] or set(
        data
    ) == {"run", "luminosityBlock", "event", "value", "nhits", "hits", "nraw", "raw"}
    events = np.arange(2, 61, 2)
    np.testing.assert_array_equal(data["event"], events)
    np.testing.assert_array_equal(data["run"], 1 + (events - 1) // 30)
    np.testing.assert_array_equal(data["luminosityBlock"], 1 + ((events - 1) % 30) // 15)
    assert data["event"].dtype == np.uint64 and data["run"].dtype == np.uint32
    np.testing.assert_array_equal(data["value"], events / 2)
    assert "count" not in data
    for n, hits, raw in zip(events, data["hits"], data["raw"], strict=True):
        np.testing.assert_array_equal(hits, np.arange(n % 4, dtype=np.float32) + n)
        np.testing.assert_array_equal(raw, n + np.arange(3))


def test_names_parameter_and_clash(tmp_path: Path) -> None:
    out = tmp_path / "named.root"
    run(
        make_process(
            out, commands=["drop *", "keep *_maker_*_*"], names={"*_maker_value_*": "half"}
        ),
        streams=2,
    )
    assert set(read_tree(out)) >= {"half", "count", "hits"}

    with pytest.raises(ModuleError, match="both map to column 'value'"):
        run(
            make_process(
                tmp_path / "clash.root",
                commands=["keep *_maker_*_*"],
                names={"*_maker_count_*": "value"},
            )
        )


def test_no_accepted_event_still_writes_the_tree(tmp_path: Path) -> None:
    out = tmp_path / "empty.root"
    run(make_process(out, commands=["drop *", "keep *_maker_value_*"], reject_all=True))
    tree = uproot.open(out)["Events"]
    assert tree.num_entries == 0
    assert tree.keys() == ["run", "luminosityBlock", "event", "value"]
    assert tree["value"].typename == "double"


def test_soa_round_trip(input_files: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "soa.root"
    p = Process("COPY")
    p.set_source(
        "actors.framework.io:RootSource",
        file=str(input_files["zmumu_rntuple"]),
        branches=["Muon_*"],
        soa=["Muon"],
        step_size=100,
    )
    p.add_module("out", "actors.framework.io:RootOutput", file=str(out), flush_events=128)
    p.add_end_path("e", ["out"])
    run(p, streams=3, threads=2)
    copied = uproot.open(out)["Events"].arrays()
    original = uproot.open(input_files["zmumu"])["Events"].arrays()
    for name in ("run", "luminosityBlock", "event", "nMuon"):
        np.testing.assert_array_equal(copied[name], original[name])
    for field in ("pt", "eta", "phi", "mass", "charge"):
        assert ak.all(copied[f"Muon_{field}"] == original[f"Muon_{field}"])


class ThreadRecordingOutput(RootOutput):
    """A RootOutput that records the thread of every row and of every chunk write
    (instances by file name in ``made``)."""

    made: dict[str, ThreadRecordingOutput] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.row_threads: set[str] = set()
        self.chunk_threads: list[str] = []
        ThreadRecordingOutput.made[self.file] = self

    def write(self, event: OutputEvent) -> Any:
        self.row_threads.add(threading.current_thread().name)
        return super().write(event)

    def flush(self) -> None:
        if self._rows:
            self.chunk_threads.append(threading.current_thread().name)
        super().flush()


@pytest.mark.parametrize("threads", [0, 2])
def test_rows_are_buffered_on_the_loop_and_chunks_written_off_it_with_threads(
    tmp_path: Path, threads: int
) -> None:
    out = tmp_path / "threads.root"
    p = make_process(out, commands=["drop *", "keep *_maker_value_*"], flush_events=7)
    p.modules["out"].type = f"{HERE}:ThreadRecordingOutput"
    run(p, streams=2, threads=threads)
    module = ThreadRecordingOutput.made.pop(str(out))
    main = threading.main_thread().name
    assert module.row_threads == {main}  # run_on_loop: no hand-over per event
    assert len(module.chunk_threads) == 5  # 30 accepted events: 4 chunks of 7, then end_job
    if threads:
        assert main not in module.chunk_threads  # the loop goes on while a chunk is written
    else:
        assert set(module.chunk_threads) == {main}  # no worker threads: on the loop
    np.testing.assert_array_equal(read_tree(out)["event"], np.arange(2, 61, 2))


def _output_event(index: int, value: float) -> OutputEvent:
    branch = Branch("float64", "maker", "value", "OUT")
    product = Product(branch, np.float64(value), Provenance("maker", "M", "0", "OUT"))
    return OutputEvent(EventID(1, 1, index + 1), index, {branch: product}, ("p",))


def test_out_of_order_and_missing_columns_are_errors(tmp_path: Path) -> None:
    module = RootOutput(file=str(tmp_path / "order.root"), flush_events=2)
    module.write(_output_event(0, 1.0))
    module.write(_output_event(2, 3.0))  # flushed: indices 0 and 2 written
    with pytest.raises(FrameworkError, match="input order"):
        module.write(_output_event(1, 2.0))
    module.end_job()

    module = RootOutput(file=str(tmp_path / "missing.root"), flush_events=10)
    module.write(_output_event(0, 1.0))
    module.write(OutputEvent(EventID(1, 1, 2), 1, {}, ("p",)))
    with pytest.raises(FrameworkError, match="column 'value' is missing in events \\['1:1:2'\\]"):
        module.end_job()


class BoomAt(Producer):
    """Raises in event ``at``."""

    def __init__(self, *, at: int) -> None:
        self.at = at

    def produce(self, event: Event) -> None:
        if event.id.event == self.at:
            raise RuntimeError(f"boom in event {self.at}")


def _open_paths() -> set[str]:
    fds = Path("/proc/self/fd")
    return {str(Path(str(fd.readlink()))) for fd in fds.iterdir() if fd.is_symlink()}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_a_failed_job_closes_the_file_with_the_chunks_flushed_before(tmp_path: Path) -> None:
    out = tmp_path / "failed.root"
    p = make_process(out, commands=["keep *"], flush_events=4)
    p.add_module("boom", f"{HERE}:BoomAt", at=40)
    p.paths["p"].modules.insert(0, "boom")
    with pytest.raises(ModuleError, match="boom in event 40"):
        run(p, streams=1, threads=2)
    assert str(out) not in _open_paths()  # close() released the file at the job's end
    # events 2..38 were accepted: four chunks of 4 were flushed, 3 rows still buffered
    np.testing.assert_array_equal(read_tree(out)["event"], np.arange(2, 33, 2))
