"""Test-only source and modules for the framework tests (importable as tests.framework.mods)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from actors.framework import (
    Analyzer,
    BeginLumi,
    BeginRun,
    Concurrency,
    Declarer,
    EndLumi,
    EndRun,
    Event,
    EventID,
    EventTransition,
    Filter,
    Lumi,
    OutputEvent,
    OutputModule,
    Producer,
    Source,
    Transition,
)

M = "tests.framework.mods"
LOG: list[tuple[Any, ...]] = []  # shared by modules that record what happens
LOG_LOCK = threading.Lock()


def log(*entry: Any) -> None:
    with LOG_LOCK:
        LOG.append(entry)


class CountingSource(Source):
    """runs x lumis x events; product "n" (int) = event number."""

    def __init__(self, *, runs: int = 1, lumis: int = 2, events: int = 5, file: str = "") -> None:
        self.runs, self.lumis, self.events, self.file = runs, lumis, events, file

    def declare(self, d: Declarer) -> None:
        d.produces("int", "n")

    def transitions(self) -> Iterator[Transition]:
        number = 0
        for run in range(1, self.runs + 1):
            yield BeginRun(run)
            for lumi in range(1, self.lumis + 1):
                yield BeginLumi(run, lumi)
                for _ in range(self.events):
                    number += 1
                    yield EventTransition(EventID(run, lumi, number), {"n": number})
                yield EndLumi(run, lumi)
            yield EndRun(run)


class Add(Producer):
    """Puts int(sum of consumed ints) + add; optional sleep."""

    def __init__(
        self,
        *,
        inputs: list[str] | None = None,
        add: int = 1,
        sleep: float = 0.0,
        slow_first: bool = False,
    ):
        self.inputs = inputs if inputs is not None else ["source"]
        self.add, self.sleep, self.slow_first = add, sleep, slow_first

    def declare(self, d: Declarer) -> None:
        self.tokens = [d.consumes(label) for label in self.inputs]
        d.produces("int")

    def produce(self, event: Event) -> None:
        log("start", self.label, event.id.event)
        if self.sleep:
            time.sleep(self.sleep * ((20 - event.id.event % 20) if self.slow_first else 1))
        event.put(sum(event.get(t) for t in self.tokens) + self.add)
        log("end", self.label, event.id.event)


class Array(Producer):
    concurrency = Concurrency.SHARED

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("numpy.ndarray")

    def produce(self, event: Event) -> None:
        event.put(np.arange(event.get(self.n)) * 1.5)


class Even(Filter):
    """Passes events whose number is even (or odd with odd=true)."""

    def __init__(self, *, odd: bool = False) -> None:
        self.odd = odd

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")

    def filter(self, event: Event) -> bool:
        log("filter", self.label, event.id.event)
        return (event.get(self.n) % 2 == 1) == self.odd


class PassAndPut(Filter):
    """Puts the event number (int) and passes: a filter with a product, like a Receiver."""

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    def filter(self, event: Event) -> bool:
        event.put(event.get(self.n))
        return True


class AsyncAdd(Producer):
    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    async def produce(self, event: Event) -> None:
        await asyncio.sleep(0)
        event.put(event.get(self.n) * 10)


class Collect(Analyzer):
    """Records every value it sees of `input` and per-lumi sums."""

    concurrency = Concurrency.LEGACY
    seen: ClassVar[dict[str, list[Any]]] = {}

    def __init__(self, *, input: str = "source") -> None:
        self.input = input

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.input)

    def begin_job(self) -> None:
        Collect.seen[self.label] = []

    def begin_lumi(self, lumi: Lumi) -> None:
        lumi.state = []
        log("begin_lumi", self.label, lumi.id)

    def analyze(self, event: Event) -> None:
        value = event.get(self.token)
        event.lumi.state.append(event.id.event)
        Collect.seen[self.label].append((event.id.event, value))
        log("event", self.label, event.id)

    def end_lumi(self, lumi: Lumi) -> None:
        log("end_lumi", self.label, lumi.id, tuple(sorted(lumi.state)))


class Fail(Producer):
    def __init__(self, *, at: int = 3) -> None:
        self.at = at

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    def produce(self, event: Event) -> None:
        if event.get(self.n) == self.at:
            raise RuntimeError(f"boom at {self.at}")
        event.put(0)


class Memory(OutputModule):
    """Keeps what it would write, in order, in Memory.written[label]."""

    written: ClassVar[dict[str, list[tuple[int, dict[str, Any]]]]] = {}

    def __init__(self, *, file: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.file = file

    def begin_job(self) -> None:
        Memory.written[self.label] = []

    def write(self, event: OutputEvent) -> None:
        Memory.written[self.label].append(
            (event.id.event, {str(b): v for b, v in event.values().items()})
        )


_BARRIERS: dict[Any, threading.Barrier] = {}


def barrier(key: Any, parties: int) -> threading.Barrier:
    """One shared barrier per key (created on first use)."""
    with LOG_LOCK:
        if key not in _BARRIERS:
            _BARRIERS[key] = threading.Barrier(parties, timeout=20)
        return _BARRIERS[key]


class Meet(Producer):
    """Waits at a barrier shared by `parties` calls with the same key before putting.

    key "event": calls of different modules for the same event must overlap;
    key "module": calls of this module for different events must overlap.
    """

    concurrency = Concurrency.SHARED

    def __init__(
        self, *, inputs: list[str] | None = None, key: str = "event", parties: int = 2
    ) -> None:
        self.inputs = inputs if inputs is not None else ["source"]
        self.key, self.parties = key, parties

    def declare(self, d: Declarer) -> None:
        self.tokens = [d.consumes(label) for label in self.inputs]
        d.produces("int")

    def produce(self, event: Event) -> None:
        n = event.id.event
        key = ("event", n) if self.key == "event" else (self.label, (n - 1) // self.parties)
        log("start", self.label, n)
        barrier(key, self.parties).wait()
        event.put(sum(event.get(t) for t in self.tokens))
        log("end", self.label, n)


class Busy(Analyzer):
    """Records how many calls of one instance overlap (max_active per label)."""

    concurrency = Concurrency.LEGACY
    active: ClassVar[dict[str, int]] = {}
    max_active: ClassVar[dict[str, int]] = {}
    instances: ClassVar[dict[str, set[int]]] = {}

    def __init__(self, *, sleep: float = 0.002) -> None:
        self.sleep = sleep

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        with LOG_LOCK:
            Busy.instances.setdefault(self.label, set()).add(id(self))
            Busy.active[self.label] = Busy.max_active[self.label] = 0

    def analyze(self, event: Event) -> None:
        with LOG_LOCK:
            Busy.active[self.label] += 1
            Busy.max_active[self.label] = max(Busy.max_active[self.label], Busy.active[self.label])
        time.sleep(self.sleep)
        with LOG_LOCK:
            Busy.active[self.label] -= 1


class BusyStream(Busy):
    concurrency = Concurrency.STREAM


class BusyShared(Busy):
    concurrency = Concurrency.SHARED


class HoldUntilLumi(Analyzer):
    """Holds event `hold` until an event of lumi `lumi` has started (SHARED)."""

    concurrency = Concurrency.SHARED
    started = threading.Event()

    def __init__(self, *, hold: int, lumi: int = 2) -> None:
        self.hold, self.lumi = hold, lumi
        HoldUntilLumi.started = threading.Event()

    def analyze(self, event: Event) -> None:
        log("event", self.label, event.id)
        if event.id.lumi == self.lumi:
            HoldUntilLumi.started.set()
        if event.id.event == self.hold and not HoldUntilLumi.started.wait(20):
            raise RuntimeError(f"no event of lumi {self.lumi} started while {event.id} waited")


class BadLumi(Analyzer):
    def begin_lumi(self, lumi: Lumi) -> None:
        if lumi.number == 2:
            raise ValueError("bad lumi")

    def analyze(self, event: Event) -> None:
        pass


class History(Analyzer):
    concurrency = Concurrency.LEGACY
    seen: ClassVar[list[Any]] = []

    def begin_job(self) -> None:
        History.seen = []

    def begin_run(self, run: Any) -> None:
        History.seen.append((tuple(tuple(e) for e in run.process_history), run.number))

    def analyze(self, event: Event) -> None:
        pass


class Tracks(Producer):
    """Puts an array of n values and, as instance "best", a RefVector to its even elements."""

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("numpy.ndarray")
        d.produces("actors.framework.RefVector", "best")
        d.produces("actors.framework.Ref", "first")

    def produce(self, event: Event) -> None:
        n = event.get(self.n)
        branch = event.put(np.arange(n, dtype=np.float64) * 10.0)
        from actors.framework import Ref, RefVector

        event.put(RefVector(branch, tuple(range(0, n, 2))), "best")
        event.put(Ref(branch, n - 1), "first")


class Inspect(Analyzer):
    """Records products, provenance and errors seen through the Event API."""

    concurrency = Concurrency.LEGACY
    seen: ClassVar[dict[int, dict[str, Any]]] = {}

    def declare(self, d: Declarer) -> None:
        self.best = d.consumes("tracks", instance="best")
        self.first = d.consumes("tracks", instance="first")
        self.tracks = d.consumes("*_tracks__*")
        self.all = d.consumes("tracks")

    def analyze(self, event: Event) -> None:
        out: dict[str, Any] = {}
        out["best"] = event.resolve(event.get(self.best))
        out["first"] = event.resolve(event.get(self.first))
        product = event.get_product(self.tracks)
        out["provenance"] = product.provenance
        out["branch"] = product.branch
        try:
            product.value[0] = -1.0
        except ValueError as exc:
            out["readonly"] = str(exc)
        for what in (self.all, "nothing"):
            try:
                event.get(what)
            except Exception as exc:
                out[f"error {what}"] = exc
        out["many"] = sorted(str(b) for b in event.get_many(self.all))
        out["ref"] = event.ref(self.tracks, 1)
        try:
            event.put(1.0)
        except Exception as exc:
            out["put error"] = exc
        Inspect.seen[event.id.event] = out


class Trivial(Producer):
    """Puts nothing-much: the per-call overhead of a sync module."""

    def declare(self, d: Declarer) -> None:
        d.produces("int")

    def produce(self, event: Event) -> None:
        event.put(1)


class TrivialAsync(Producer):
    """Same as Trivial, as an async module (runs on the loop)."""

    def declare(self, d: Declarer) -> None:
        d.produces("int")

    async def produce(self, event: Event) -> None:
        event.put(1)


class KeptAtBeginJob(OutputModule):
    kept: ClassVar[list[str]] = []

    def begin_job(self) -> None:
        KeptAtBeginJob.kept = [str(b) for b in self.kept_branches]

    def write(self, event: OutputEvent) -> None:
        pass


class AsyncSource(Source):
    """Async iterator; products given as Product records with foreign provenance."""

    def __init__(self, *, events: int = 6, bad: str = "") -> None:
        self.events, self.bad = events, bad

    def declare(self, d: Declarer) -> None:
        d.produces("int", "n", label="reco", process="RECO")

    async def transitions(self) -> Any:  # an async generator
        from actors.framework import Branch, ProcessEntry, Product, Provenance

        branch = Branch("int", "reco", "n", "RECO")
        provenance = Provenance("reco", "remote:Maker", "abc", "RECO", ())
        yield BeginRun(7, (ProcessEntry("RECO", "f00"),))
        if self.bad == "event-outside-lumi":
            yield EventTransition(EventID(7, 1, 1), {})
        yield BeginLumi(7, 1)
        for n in range(1, self.events + 1):
            await asyncio.sleep(0)
            if self.bad == "undeclared" and n == 2:
                yield EventTransition(EventID(7, 1, n), {"other": 1})
            yield EventTransition(EventID(7, 1, n), {str(branch): Product(branch, n, provenance)})
        yield EndLumi(7, 1)
        if self.bad != "no-end-run":
            yield EndRun(7)


class BlockingSource(CountingSource):
    blocking = True


class ProvenanceOf(Analyzer):
    concurrency = Concurrency.LEGACY
    seen: ClassVar[list[Any]] = []

    def begin_job(self) -> None:
        ProvenanceOf.seen = []

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes("*_reco_n_RECO")

    def begin_run(self, run: Any) -> None:
        ProvenanceOf.seen.append(run.process_history)

    def analyze(self, event: Event) -> None:
        product = event.get_product(self.token)
        ProvenanceOf.seen.append((event.id, product.value, product.provenance.module_type))


class Picky(Analyzer):
    def __init__(self, *, level: int = 0) -> None:
        if level < 0:
            raise ValueError("level must be >= 0")

    def analyze(self, event: Event) -> None:
        pass


class NoReturnFilter(Filter):
    def filter(self, event: Event) -> bool:
        pass  # type: ignore[return-value]  # the bug under test: no return


class WithTimeout(Producer):
    """Uses asyncio.timeout and a TaskGroup, which need to run inside their own task."""

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    async def produce(self, event: Event) -> None:
        async with asyncio.timeout(10):
            async with asyncio.TaskGroup() as group:
                task = group.create_task(asyncio.sleep(0, event.get(self.n)))
        event.put(task.result())


class ThreadRecorder(Producer):
    """A plain sync producer that records the threads of its event calls and hooks."""

    threads: ClassVar[set[str]] = set()

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    def _record(self) -> None:
        type(self).threads.add(threading.current_thread().name)

    def begin_job(self) -> None:
        self._record()

    def begin_lumi(self, lumi: Lumi) -> None:
        self._record()

    def produce(self, event: Event) -> None:
        self._record()
        event.put(event.get(self.n) + 1000)


class OnLoop(ThreadRecorder):
    """A ThreadRecorder that runs on the loop thread (``run_on_loop``)."""

    run_on_loop = True
    threads: ClassVar[set[str]] = set()


class PollState(Producer):
    """Records whether receive polls are on where its (loop-thread) event calls run."""

    run_on_loop = True
    seen: ClassVar[set[bool]] = set()

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    def produce(self, event: Event) -> None:
        from actors.transports import receive_polls_enabled

        PollState.seen.add(receive_polls_enabled())
        event.put(event.get(self.n))


class BlockingThreadSource(CountingSource):
    """A blocking source that records the threads its transitions are read in."""

    blocking = True
    threads: ClassVar[set[str]] = set()

    def transitions(self) -> Iterator[Transition]:
        for transition in super().transitions():
            BlockingThreadSource.threads.add(threading.current_thread().name)
            yield transition


class TrivialOnLoop(Trivial):
    run_on_loop = True


class OnLoopSlowPath(Producer):
    """run_on_loop producer: even events complete at once, odd ones return a coroutine.

    The slow path uses task-bound asyncio features (timeout, TaskGroup).
    """

    run_on_loop = True

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    def produce(self, event: Event) -> Any:
        n = event.get(self.n)
        if n % 2 == 0:
            event.put(n * 10)
            return None
        return self._slow(event, n)

    async def _slow(self, event: Event, n: int) -> None:
        async with asyncio.timeout(10):
            async with asyncio.TaskGroup() as group:
                task = group.create_task(asyncio.sleep(0.001, n * 10))
        event.put(task.result())


class OnLoopSlowFails(OnLoopSlowPath):
    """Like OnLoopSlowPath, but the slow path of event 3 raises."""

    async def _slow(self, event: Event, n: int) -> None:
        await asyncio.sleep(0)
        if n == 3:
            raise ValueError("slow path failed")
        event.put(n * 10)


class SharedAsyncOverlap(Producer):
    """SHARED async producer that records how many of its calls overlap at most."""

    concurrency = Concurrency.SHARED
    running = 0
    most = 0
    tasks: ClassVar[set[int]] = set()

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    async def produce(self, event: Event) -> None:
        cls = SharedAsyncOverlap
        cls.running += 1
        cls.most = max(cls.most, cls.running)
        task = asyncio.current_task()
        assert task is not None
        cls.tasks.add(id(task))
        try:
            await asyncio.sleep(0.02)
        finally:
            cls.running -= 1
        event.put(event.get(self.n))


class LetsCancelledOut(Producer):
    """Async producer whose own code lets a CancelledError out (not a cancellation of it)."""

    async def produce(self, event: Event) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future
