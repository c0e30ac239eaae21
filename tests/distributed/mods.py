"""Test modules for the distributed tests (importable as tests.distributed.mods)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from actors.codecs import register_layout
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
    Producer,
    Ref,
    Run,
    Source,
    Transition,
)

M = "tests.distributed.mods"
RECORDS: dict[str, list[Any]] = {}
_LOCK = threading.Lock()


def record(name: str, item: Any) -> None:
    with _LOCK:
        RECORDS.setdefault(name, []).append(item)


class Lumis(Source):
    """Runs/lumis/events from a list ``[[run, [events per lumi, ...]], ...]``."""

    def __init__(self, *, layout: list[Any]) -> None:
        self.layout = layout

    def transitions(self) -> Iterator[Transition]:
        n = 0
        for run, lumis in self.layout:
            yield BeginRun(run)
            for lumi, count in enumerate(lumis, start=1):
                yield BeginLumi(run, lumi)
                for _ in range(count):
                    n += 1
                    yield EventTransition(EventID(run, lumi, n))
                yield EndLumi(run, lumi)
            yield EndRun(run)


class Transitions(Analyzer):
    """Records every transition it sees (run/lumi hooks and events) under ``name``."""

    concurrency: ClassVar[Concurrency] = Concurrency.LEGACY

    def __init__(self, *, name: str) -> None:
        self.name = name

    def declare(self, d: Declarer) -> None:
        pass

    def begin_run(self, run: Run) -> None:
        record(self.name, ("br", run.number, tuple(e.name for e in run.process_history)))

    def begin_lumi(self, lumi: Lumi) -> None:
        record(self.name, ("bl", *lumi.id))

    def analyze(self, event: Event) -> None:
        record(self.name, ("ev", *event.id))

    def end_lumi(self, lumi: Lumi) -> None:
        record(self.name, ("el", *lumi.id))

    def end_run(self, run: Run) -> None:
        record(self.name, ("er", run.number))


class Arrays(Producer):
    """Puts ``hits`` (float64, size depends on the event, plus ``offset``) and ``ids`` (int64).

    ``ids_every = k`` puts ``ids`` only in events whose number is a multiple of k.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, ids_every: int = 1, offset: float = 0.0) -> None:
        self.ids_every = ids_every
        self.offset = offset

    def declare(self, d: Declarer) -> None:
        d.produces("numpy.ndarray", "hits")
        d.produces("numpy.ndarray", "ids")

    def produce(self, event: Event) -> None:
        n = event.id.event
        event.put(np.arange(n % 7 + 1, dtype="f8") * n + self.offset, "hits")
        if n % self.ids_every == 0:
            event.put(np.full(3, n, dtype="i8"), "ids")


class Sum(Producer):
    """Sum of a product (the 'heavy' remote work): float64 ``total``."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, src: str) -> None:
        self.src = src

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.src)
        d.produces("float64", "total")

    def produce(self, event: Event) -> None:
        event.put(float(np.sum(event.get(self.token))), "total")


class Odd(Filter):
    """Accepts events with an odd event number."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def filter(self, event: Event) -> bool:
        return event.id.event % 2 == 1


class Collect(Analyzer):
    """Records ``(event id, {selection: value})`` for each given selection."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, name: str, what: list[str]) -> None:
        self.name = name
        self.what = what

    def declare(self, d: Declarer) -> None:
        self.tokens = [d.consumes(w) for w in self.what]

    def analyze(self, event: Event) -> None:
        values = {w: event.get_product(t) for w, t in zip(self.what, self.tokens, strict=True)}
        record(self.name, (tuple(event.id), values))


class Refs(Producer):
    """References to the elements of ``hits`` above their mean."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, src: str) -> None:
        self.src = src

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.src, instance="hits")
        d.produces("list", "refs")

    def produce(self, event: Event) -> None:
        hits = event.get(self.token)
        event.put(
            [event.ref(self.token, int(i)) for i in np.nonzero(hits >= hits.mean())[0]], "refs"
        )


class ResolveRefs(Analyzer):
    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, src: str, name: str) -> None:
        self.src = src
        self.name = name

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.src, instance="refs")

    def analyze(self, event: Event) -> None:
        refs: list[Ref] = event.get(self.token)
        record(self.name, (event.id.event, [float(event.resolve(r)) for r in refs]))


class SelfKill(Producer):
    """Kills its own process (SIGKILL, no clean-up) in the ``at``-th event it sees."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, at: int) -> None:
        self.at = at
        self.seen = 0
        self.lock = threading.Lock()

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            last = self.seen == self.at
        if last:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


class Boom(Producer):
    """Raises in event number ``at`` (a crash in the middle of a job)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, at: int) -> None:
        self.at = at

    def produce(self, event: Event) -> None:
        if event.id.event == self.at:
            raise RuntimeError(f"boom in event {event.id}")


@register_layout(name="tests.Muons")
@dataclass
class Muons:
    pt: np.ndarray[Any, Any]
    charge: np.ndarray[Any, Any]


class Rich(Producer):
    """Puts an SoA layout ``muons``, an awkward array ``jagged`` and ``refs`` into ``hits``."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def declare(self, d: Declarer) -> None:
        d.produces("numpy.ndarray", "hits")
        d.produces("tests.Muons", "muons")
        d.produces("awkward.Array", "jagged")
        d.produces("list", "refs")

    def produce(self, event: Event) -> None:
        import awkward as ak

        n = event.id.event
        hits = np.arange(n % 5 + 2, dtype="f8") + n
        branch = event.put(hits, "hits")
        event.put(Muons(np.linspace(0, n, 4), np.array([1, -1, 1, -1], "i1")), "muons")
        event.put(ak.Array([[float(n)] * k for k in range(n % 4)]), "jagged")
        event.put([Ref(branch, i) for i in range(0, len(hits), 2)], "refs")


class Inspect(Analyzer):
    """Records what arrived: SoA columns, awkward list, resolved refs."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, src: str, name: str) -> None:
        self.src = src
        self.name = name

    def declare(self, d: Declarer) -> None:
        self.muons = d.consumes(self.src, instance="muons")
        self.jagged = d.consumes(self.src, instance="jagged")
        self.refs = d.consumes(self.src, instance="refs")

    def analyze(self, event: Event) -> None:
        muons = event.get(self.muons)
        jagged = event.get(self.jagged).to_list()
        resolved = [float(event.resolve(r)) for r in event.get(self.refs)]
        record(
            self.name, (event.id.event, muons.pt.tolist(), muons.charge.tolist(), jagged, resolved)
        )


class DeviceArrays(Producer):
    """Puts ``hits`` as a cupy (device) array: float64, size depends on the event."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def declare(self, d: Declarer) -> None:
        d.produces("cupy.ndarray", "hits")

    def produce(self, event: Event) -> None:
        import cupy

        n = event.id.event
        event.put(cupy.arange(n % 7 + 1, dtype="f8") * n, "hits")


class DeviceSum(Producer):
    """Sum of a device product, checked to be in device memory: float64 ``total``."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, src: str) -> None:
        self.src = src

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.src)
        d.produces("float64", "total")

    def produce(self, event: Event) -> None:
        value = event.get(self.token)
        if not hasattr(value, "__cuda_array_interface__"):
            raise TypeError(f"expected a device array, got {type(value).__name__}")
        event.put(float(value.sum().get()), "total")
