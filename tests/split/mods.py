"""Modules of the synthetic split tests (importable as tests.split.mods)."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import numpy as np

from actors.framework import Analyzer, Concurrency, Declarer, Event, Filter, Producer

M = "tests.split.mods"
RECORDS: dict[str, list[Any]] = {}
_LOCK = threading.Lock()


class Scale(Producer):
    """``scaled`` = ``factor`` x product ``src``/``instance``."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, src: str, instance: str, factor: float) -> None:
        self.src, self.instance, self.factor = src, instance, factor

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.src, instance=self.instance)
        d.produces("numpy.ndarray", "scaled")

    def produce(self, event: Event) -> None:
        event.put(np.asarray(event.get(self.token)) * self.factor, "scaled")


class Slow(Scale):
    """A :class:`Scale` that sleeps ``delay`` seconds first (in its worker thread)."""

    def __init__(self, *, src: str, instance: str, factor: float, delay: float) -> None:
        super().__init__(src=src, instance=instance, factor=factor)
        self.delay = delay

    def produce(self, event: Event) -> None:
        time.sleep(self.delay)
        super().produce(event)


class Sum(Producer):
    """``sum`` = element-wise sum of the numpy products of modules ``a`` and ``b``."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, a: str, b: str) -> None:
        self.a, self.b = a, b

    def declare(self, d: Declarer) -> None:
        self.ta = d.consumes(f"numpy.ndarray_{self.a}_*_*")
        self.tb = d.consumes(f"numpy.ndarray_{self.b}_*_*")
        d.produces("numpy.ndarray", "sum")

    def produce(self, event: Event) -> None:
        event.put(np.asarray(event.get(self.ta)) + np.asarray(event.get(self.tb)), "sum")


class Threshold(Filter):
    """Passes when the sum of ``src``'s product is above ``cut`` (produces nothing)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, src: str, cut: float = 0.0) -> None:
        self.src, self.cut = src, cut

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(f"numpy.ndarray_{self.src}_*_*")

    def filter(self, event: Event) -> bool:
        return float(np.sum(event.get(self.token))) > self.cut


class Record(Analyzer):
    """Appends ``(event, {label: values})`` to ``RECORDS[name]``."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, name: str, srcs: list[str]) -> None:
        self.name, self.srcs = name, srcs

    def declare(self, d: Declarer) -> None:
        self.tokens = [(s, d.consumes(f"numpy.ndarray_{s}_*_*")) for s in self.srcs]

    def analyze(self, event: Event) -> None:
        values = {s: np.asarray(event.get(t)).tolist() for s, t in self.tokens}
        with _LOCK:
            RECORDS.setdefault(self.name, []).append((event.id.event, values))
