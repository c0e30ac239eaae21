"""The synthetic event source: runs, lumis, events and products from a seed.

The default source of a process; it needs no file. Configuration (TOML)::

    [source]
    type = "actors.framework.sources.synthetic:SyntheticSource"
    runs = 2                 # runs, numbered first_run, first_run + 1, ...
    lumis_per_run = 3        # lumis 1..3 in every run
    events_per_lumi = 100
    seed = 42
    products = [
        { instance = "hits", dtype = "float32", size = 1024 },
        { instance = "ids", dtype = "int64", size = 16, fill = "sequence" },
    ]

Contract:

* Event numbers count from ``first_event`` through the whole job (like CMSSW's
  ``EmptySource``); lumis count from 1 in every run.
* ``runs``, ``lumis_per_run`` or ``events_per_lumi`` may be 0, meaning "no
  limit": the job then ends only through ``--events N`` (the framework closes
  the iterator after N events).
* Each product is a read-only 1-D ``numpy.ndarray`` (branch type
  ``numpy.ndarray``, label = the source's label, instance as configured) of
  ``size`` elements of ``dtype``. ``fill`` is ``"random"`` (default; normal
  values for floats, 0..999 for integers, coin flips for bool), ``"zeros"`` or
  ``"sequence"`` (``event + arange(size)``, cast). Random products depend only
  on ``(seed, run, lumi, event, product)``: the same seed gives identical
  products whatever the number of streams or threads.
* Bad parameters raise :class:`~actors.errors.ConfigError` naming the key.
* Threading: the iterator runs on the event loop when the products of one
  event are small (< ``blocking_bytes``, default 256 KiB); larger products are
  generated in a worker thread (``asyncio.to_thread``) so the loop never
  stalls on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError
from ..event import EventID
from ..module import Declarer
from ..source import BeginLumi, BeginRun, EndLumi, EndRun, EventTransition, Source, Transition

__all__ = ["ProductSpec", "SyntheticSource"]

_FILLS = ("random", "zeros", "sequence")


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """One synthetic product: instance name, dtype, number of elements, fill."""

    instance: str
    dtype: np.dtype[Any]
    size: int
    fill: str = "random"

    @classmethod
    def parse(cls, spec: Mapping[str, Any], index: int) -> ProductSpec:
        """Build from a TOML table; ConfigError names ``products[index].key``."""
        where = f"source.products[{index}]"
        if not isinstance(spec, Mapping):
            raise ConfigError("expected a table {instance=..., dtype=..., size=...}", key=where)
        unknown = set(spec) - {"instance", "dtype", "size", "fill"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", key=where)
        instance = spec.get("instance")
        if not isinstance(instance, str):
            raise ConfigError("missing or non-string 'instance'", key=f"{where}.instance")
        try:
            dtype = np.dtype(spec.get("dtype", "float32"))
        except TypeError as exc:
            raise ConfigError(f"unknown dtype: {exc}", key=f"{where}.dtype") from None
        if dtype.kind not in "biuf":
            raise ConfigError(f"dtype {dtype} is not numeric or bool", key=f"{where}.dtype")
        size = spec.get("size", 1)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"must be an integer >= 0, not {size!r}", key=f"{where}.size")
        fill = spec.get("fill", "random")
        if fill not in _FILLS:
            raise ConfigError(f"must be one of {_FILLS}, not {fill!r}", key=f"{where}.fill")
        return cls(instance, dtype, size, fill)

    def make(self, seed: int, index: int, eid: EventID) -> np.ndarray[Any, Any]:
        """The product of event ``eid`` (``index`` = position in the product list)."""
        if self.fill == "zeros":
            return np.zeros(self.size, self.dtype)
        if self.fill == "sequence":
            return (eid.event + np.arange(self.size)).astype(self.dtype)
        rng = np.random.default_rng([seed, eid.run, eid.lumi, eid.event, index])
        if self.dtype.kind == "f":
            return rng.standard_normal(self.size, dtype=np.float64).astype(self.dtype)
        if self.dtype.kind == "b":
            return rng.integers(0, 2, self.size).astype(bool)
        return rng.integers(0, 1000, self.size).astype(self.dtype)


def _count(name: str, value: Any, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, not {value!r}", key=f"source.{name}")
    return value


class SyntheticSource(Source):
    """Deterministic runs/lumis/events with numpy products (see module docstring)."""

    def __init__(
        self,
        *,
        runs: int = 1,
        lumis_per_run: int = 1,
        events_per_lumi: int = 100,
        first_run: int = 1,
        first_event: int = 1,
        seed: int = 0,
        products: Sequence[Mapping[str, Any]] = (),
        blocking_bytes: int = 256 * 1024,
    ) -> None:
        self.runs = _count("runs", runs)
        self.lumis_per_run = _count("lumis_per_run", lumis_per_run)
        self.events_per_lumi = _count("events_per_lumi", events_per_lumi)
        self.first_run = _count("first_run", first_run, 1)
        self.first_event = _count("first_event", first_event, 1)
        self.seed = _count("seed", seed)
        self.blocking_bytes = _count("blocking_bytes", blocking_bytes)
        if isinstance(products, (str, Mapping)):
            raise ConfigError("expected a list of tables", key="source.products")
        self.products = [ProductSpec.parse(p, i) for i, p in enumerate(products)]
        names = [p.instance for p in self.products]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate product instance in {names}", key="source.products")

    def declare(self, d: Declarer) -> None:
        for spec in self.products:
            d.produces("numpy.ndarray", spec.instance)

    @property
    def event_bytes(self) -> int:
        """Bytes of products per event."""
        return sum(p.size * p.dtype.itemsize for p in self.products)

    def event_products(self, eid: EventID) -> dict[str, np.ndarray[Any, Any]]:
        """The products of event ``eid`` (pure function of the seed and ``eid``)."""
        return {p.instance: p.make(self.seed, i, eid) for i, p in enumerate(self.products)}

    def transitions(self) -> Iterator[Transition] | AsyncIterator[Transition]:
        if self.products and self.event_bytes >= self.blocking_bytes:
            return self._heavy_transitions()
        return self._plan(with_products=True)

    async def _heavy_transitions(self) -> AsyncIterator[Transition]:
        for transition in self._plan(with_products=False):
            if isinstance(transition, EventTransition):
                made = await asyncio.to_thread(self.event_products, transition.id)
                transition = EventTransition(transition.id, made)
            yield transition

    def _plan(self, *, with_products: bool) -> Iterator[Transition]:
        event = self.first_event
        for run in _numbers(self.first_run, self.runs):
            yield BeginRun(run)
            for lumi in _numbers(1, self.lumis_per_run):
                yield BeginLumi(run, lumi)
                for _ in _numbers(0, self.events_per_lumi):
                    eid = EventID(run, lumi, event)
                    made = self.event_products(eid) if with_products else {}
                    yield EventTransition(eid, made)
                    event += 1
                yield EndLumi(run, lumi)
            yield EndRun(run)


def _numbers(first: int, count: int) -> Iterator[int]:
    """``first, first+1, ...``: ``count`` numbers, or without end when ``count`` is 0."""
    n = first
    while count == 0 or n < first + count:
        yield n
        n += 1
