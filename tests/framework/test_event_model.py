"""Event data model: Ref resolution, provenance, immutability, lookup errors."""

from __future__ import annotations

import pytest

from actors.errors import FrameworkError, ProductNotFound
from actors.framework import Branch, Process, Ref, run
from tests.framework.mods import Inspect, M


def _run() -> Process:
    p = Process("RECO")
    p.set_source(f"{M}:CountingSource", lumis=1, events=4)
    p.add_module("tracks", f"{M}:Tracks")
    p.add_module("inspect", f"{M}:Inspect")
    p.add_path("p", ["inspect"])
    p.options.streams = 2
    Inspect.seen.clear()
    run(p)
    return p


def test_refs_resolve_through_the_event() -> None:
    _run()
    for n in range(1, 5):
        seen = Inspect.seen[n]
        assert seen["best"] == [10.0 * i for i in range(0, n, 2)]
        assert seen["first"] == 10.0 * (n - 1)
        assert seen["ref"] == Ref(Branch("numpy.ndarray", "tracks", "", "RECO"), 1)


def test_provenance_records_module_parents_and_process() -> None:
    p = _run()
    prov = Inspect.seen[3]["provenance"]
    assert prov.module_label == "tracks"
    assert prov.module_type == f"{M}:Tracks"
    assert prov.parameter_hash == p.modules["tracks"].parameter_hash()
    assert prov.process == "RECO"
    assert prov.parents == (Branch("int", "source", "n", "RECO"),)
    assert Inspect.seen[3]["branch"] == Branch("numpy.ndarray", "tracks", "", "RECO")


def test_products_are_read_only_for_consumers() -> None:
    _run()
    assert "read-only" in Inspect.seen[2]["readonly"]


def test_lookup_errors() -> None:
    _run()
    seen = Inspect.seen[1]
    ambiguous = next(v for k, v in seen.items() if k.startswith("error Token"))
    assert isinstance(ambiguous, FrameworkError) and "matches several products" in str(ambiguous)
    missing = seen["error nothing"]
    assert isinstance(missing, ProductNotFound) and "nothing" in str(missing)
    assert seen["many"] == [
        "actors.framework.RefVector_tracks_best_RECO",
        "actors.framework.Ref_tracks_first_RECO",
        "numpy.ndarray_tracks__RECO",
    ]
    assert "did not declare" in str(seen["put error"])


def test_put_with_given_provenance_and_get_products() -> None:
    from actors.framework import EventID, LumiID, Provenance
    from actors.framework.event import Event, EventData, ModuleInfo
    from actors.framework.runlumi import LumiContext, RunContext

    data = EventData(EventID(1, 1, 1), 0, LumiContext(LumiID(1, 1), RunContext(1, ())))
    branch = Branch("int", "recv", "", "LOCAL")
    info = ModuleInfo("recv", "m:Receiver", "h", "LOCAL", {"": branch})
    original = Provenance("maker", "remote:Maker", "abc", "REMOTE", ())
    event = Event(data, info)
    event.put(5, provenance=original)
    (product,) = event.get_products("recv")
    assert product.branch == branch and product.value == 5 and product.provenance == original


def test_put_with_parents_keeps_the_module_and_replaces_the_parents() -> None:
    from actors.framework import EventID, LumiID, Provenance
    from actors.framework.event import Event, EventData, ModuleInfo
    from actors.framework.runlumi import LumiContext, RunContext

    data = EventData(EventID(1, 1, 1), 0, LumiContext(LumiID(1, 1), RunContext(1, ())))
    branch = Branch("int", "recv", "", "LOCAL")
    info = ModuleInfo(
        "recv", "m:Receiver", "h", "LOCAL", {"": branch, "b": branch._replace(instance="b")}
    )
    remote = Branch("int", "maker", "", "REMOTE")
    event = Event(data, info)
    event.put(5, parents=(remote,))
    (product,) = event.get_products("int_recv__LOCAL")
    assert product.provenance == Provenance("recv", "m:Receiver", "h", "LOCAL", (remote,))
    with pytest.raises(FrameworkError, match="not both"):
        event.put(6, "b", parents=(remote,), provenance=product.provenance)


def test_freeze_value_makes_arrays_read_only_and_learns_types_with_nothing_to_freeze() -> None:
    import numpy as np

    from actors.framework.event import PLAIN_TYPES, freeze_value

    class Token:  # nothing to freeze: learnt, later values skip the lookup
        __slots__ = ("key",)

    class Proxy:  # a __getattr__ may produce ``flags`` for some value: never learnt
        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    array = np.zeros(3)
    assert freeze_value(array) is array and not array.flags.writeable
    assert np.ndarray not in PLAIN_TYPES
    token, proxy = Token(), Proxy()
    assert freeze_value(token) is token and Token in PLAIN_TYPES
    assert freeze_value(proxy) is proxy and Proxy not in PLAIN_TYPES
    again = np.ones(2)
    assert freeze_value(again) is again and not again.flags.writeable  # arrays stay frozen


def test_awkward_arrays_and_records_have_nothing_to_freeze_and_are_learnt() -> None:
    ak = pytest.importorskip("awkward", reason="awkward not installed (extra [hep])")
    from actors.framework.event import PLAIN_TYPES, freeze_value

    class Muons(ak.Array):  # a behavior's subclass: an awkward array too
        pass

    muons = ak.Array([{"flags": [1, 2], "pt": [30.0, 20.0]}])  # a field named like numpy's
    for value in (muons, muons[0], Muons([1.0, 2.0]), ak.Array([1.0])):
        assert freeze_value(value) is value and type(value) in PLAIN_TYPES
    assert ak.to_list(muons.flags) == [[1, 2]]
