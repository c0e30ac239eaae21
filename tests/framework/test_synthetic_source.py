"""The synthetic source: transition structure, determinism, --events, config errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from actors.errors import ConfigError
from actors.framework import (
    Analyzer,
    BeginLumi,
    BeginRun,
    Declarer,
    EndLumi,
    EndRun,
    Event,
    EventID,
    EventTransition,
    Process,
    run,
)
from actors.framework.sources import SyntheticSource

PRODUCTS = [
    {"instance": "hits", "dtype": "float32", "size": 64},
    {"instance": "ids", "dtype": "int16", "size": 5},
    {"instance": "mask", "dtype": "bool", "size": 7},
    {"instance": "seq", "dtype": "uint8", "size": 4, "fill": "sequence"},
    {"instance": "zero", "dtype": "float64", "size": 3, "fill": "zeros"},
]


def collect(source: SyntheticSource) -> list[Any]:
    it = source.transitions()
    if isinstance(it, Iterator):
        return list(it)
    assert isinstance(it, AsyncIterator)

    async def drain() -> list[Any]:
        return [t async for t in it]

    return asyncio.run(drain())


def test_structure_and_numbering() -> None:
    src = SyntheticSource(runs=2, lumis_per_run=3, events_per_lumi=4, first_run=7)
    kinds = [type(t).__name__ for t in collect(src)]
    assert kinds.count("BeginRun") == kinds.count("EndRun") == 2
    assert kinds.count("BeginLumi") == kinds.count("EndLumi") == 6
    events = [t.id for t in collect(src) if isinstance(t, EventTransition)]
    assert len(events) == 24
    assert [e.event for e in events] == list(range(1, 25))
    assert {e.run for e in events} == {7, 8}
    assert [e.lumi for e in events[:12]] == [1] * 4 + [2] * 4 + [3] * 4
    transitions = collect(src)
    assert transitions[0] == BeginRun(7) and transitions[1] == BeginLumi(7, 1)
    assert transitions[-2] == EndLumi(8, 3) and transitions[-1] == EndRun(8)


def test_products_declared_and_deterministic() -> None:
    a = SyntheticSource(events_per_lumi=3, seed=5, products=PRODUCTS)
    b = SyntheticSource(events_per_lumi=3, seed=5, products=PRODUCTS)
    c = SyntheticSource(events_per_lumi=3, seed=6, products=PRODUCTS)
    d = Declarer("source", "T", is_source=True)
    a.declare(d)
    assert sorted(d.products) == sorted(p["instance"] for p in PRODUCTS)
    ev_a = [t for t in collect(a) if isinstance(t, EventTransition)]
    ev_b = [t for t in collect(b) if isinstance(t, EventTransition)]
    ev_c = [t for t in collect(c) if isinstance(t, EventTransition)]
    for x, y, z in zip(ev_a, ev_b, ev_c, strict=True):
        for spec in PRODUCTS:
            name = spec["instance"]
            value = x.products[name]
            assert value.dtype == np.dtype(spec["dtype"]) and value.shape == (spec["size"],)
            np.testing.assert_array_equal(value, y.products[name])
        assert not np.array_equal(x.products["hits"], z.products["hits"])
        np.testing.assert_array_equal(x.products["seq"], (x.id.event + np.arange(4)) % 256)
        assert not x.products["zero"].any()
    # A product depends only on (seed, event id): recomputing one event agrees.
    again = a.event_products(ev_a[1].id)
    np.testing.assert_array_equal(again["hits"], ev_a[1].products["hits"])
    assert not np.array_equal(ev_a[0].products["hits"], ev_a[1].products["hits"])


def test_heavy_products_come_from_an_async_iterator_with_the_same_values() -> None:
    spec = [{"instance": "big", "dtype": "float32", "size": 4096}]
    light = SyntheticSource(events_per_lumi=3, seed=1, products=spec, blocking_bytes=10**9)
    heavy = SyntheticSource(events_per_lumi=3, seed=1, products=spec, blocking_bytes=1024)
    assert isinstance(light.transitions(), Iterator)
    assert isinstance(heavy.transitions(), AsyncIterator)
    for x, y in zip(collect(light), collect(heavy), strict=True):
        assert type(x) is type(y)
        if isinstance(x, EventTransition):
            assert x.id == y.id
            np.testing.assert_array_equal(x.products["big"], y.products["big"])


class Recorder(Analyzer):
    """Records the event IDs and a checksum of product ``hits`` it sees."""

    seen: list[tuple[EventID, float]] = []

    def declare(self, d: Declarer) -> None:
        self.hits = d.consumes("source", instance="hits")

    def analyze(self, event: Event) -> None:
        Recorder.seen.append((event.id, float(np.sum(event.get(self.hits)))))


def _process(**source: Any) -> Process:
    p = Process("SYN")
    p.set_source("actors.framework.sources.synthetic:SyntheticSource", **source)
    p.add_module("rec", "tests.framework.test_synthetic_source:Recorder")
    p.add_end_path("e", ["rec"])
    return p


@pytest.mark.parametrize("streams", [1, 3])
def test_events_option_stops_an_unbounded_source(streams: int) -> None:
    Recorder.seen = []
    products = [{"instance": "hits", "dtype": "float32", "size": 8}]
    report = run(
        _process(lumis_per_run=0, events_per_lumi=5, products=products),
        events=17,
        streams=streams,
        threads=2,
    )
    assert report.events == 17
    assert sorted(e.event for e, _ in Recorder.seen) == list(range(1, 18))
    reference = SyntheticSource(lumis_per_run=0, events_per_lumi=5, products=products)
    for eid, checksum in Recorder.seen:
        assert eid.run == 1 and eid.lumi == 1 + (eid.event - 1) // 5
        assert checksum == pytest.approx(float(np.sum(reference.event_products(eid)["hits"])))


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"runs": -1}, "source.runs"),
        ({"first_run": 0}, "source.first_run"),
        ({"products": [{"instance": "x", "dtype": "complex64"}]}, "source.products[0].dtype"),
        ({"products": [{"instance": "x", "dtype": "nonsense"}]}, "source.products[0].dtype"),
        ({"products": [{"instance": "x", "size": -2}]}, "source.products[0].size"),
        ({"products": [{"instance": "x", "fill": "ones"}]}, "source.products[0].fill"),
        ({"products": [{"instance": "x", "colour": 1}]}, "source.products[0]"),
        ({"products": [{"dtype": "float32"}]}, "source.products[0].instance"),
        ({"products": [{"instance": "x"}, {"instance": "x"}]}, "source.products"),
    ],
)
def test_config_errors_name_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SyntheticSource(**params)
    assert info.value.key == key
