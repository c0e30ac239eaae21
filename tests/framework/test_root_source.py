"""The ROOT source: TTree and RNTuple, chunking, IDs, transitions, modes, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.errors import ConfigError
from actors.framework import (
    BeginLumi,
    BeginRun,
    Declarer,
    EndLumi,
    EndRun,
    EventTransition,
)
from actors.framework.io import RootSource, SoA
from tests.framework.test_io_helpers import (  # noqa: F401
    MUON_BRANCHES,
    _rntuple_cache,
    input_files,
    write_tree,
)

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")


def declared(source: RootSource) -> dict[str, str]:
    d = Declarer("source", "T", is_source=True)
    source.declare(d)
    return {name: branch.type for name, branch in d.products.items()}


def check_nesting(transitions: list[Any]) -> None:
    """Begin/End pairs nest properly and events sit inside their lumi."""
    run = lumi = None
    for t in transitions:
        if isinstance(t, BeginRun):
            assert run is None
            run = t.run
        elif isinstance(t, BeginLumi):
            assert run == t.run and lumi is None
            lumi = t.lumi
        elif isinstance(t, EventTransition):
            assert (t.id.run, t.id.lumi) == (run, lumi)
        elif isinstance(t, EndLumi):
            assert (t.run, t.lumi) == (run, lumi)
            lumi = None
        elif isinstance(t, EndRun):
            assert t.run == run and lumi is None
            run = None
    assert run is None and lumi is None


@pytest.mark.parametrize("which", ["zmumu", "zmumu_rntuple"])
def test_zmumu_transitions_follow_the_file(which: str, input_files: dict[str, Path]) -> None:  # noqa: F811
    src = RootSource(file=str(input_files[which]), branches=MUON_BRANCHES, step_size=37)
    assert declared(src) == {b: "awkward.Array" for b in MUON_BRANCHES}
    transitions = list(src.transitions())
    check_nesting(transitions)
    kinds = [type(t).__name__ for t in transitions]
    assert kinds.count("BeginRun") == 2 and kinds.count("BeginLumi") == 11
    reference = uproot.open(input_files["zmumu"])["Events"].arrays()
    events = [t for t in transitions if isinstance(t, EventTransition)]
    assert len(events) == len(reference) == 500
    ids = np.array([tuple(e.id) for e in events])
    np.testing.assert_array_equal(ids[:, 0], reference.run)
    np.testing.assert_array_equal(ids[:, 1], reference.luminosityBlock)
    np.testing.assert_array_equal(ids[:, 2], reference.event)
    for e, ref in zip(events[::41], reference[::41], strict=True):
        for b in MUON_BRANCHES:
            assert isinstance(e.products[b], ak.Array)
            assert ak.to_list(e.products[b]) == ak.to_list(ref[b])


def test_chunk_size_does_not_change_the_result(input_files: dict[str, Path]) -> None:  # noqa: F811
    def flat(step: int | str) -> list[Any]:
        src = RootSource(
            file=str(input_files["ttbar_rntuple"]), branches=["Muon_pt", "nMuon"], step_size=step
        )
        out: list[Any] = []
        for t in src.transitions():
            if isinstance(t, EventTransition):
                out.append((t.id, int(t.products["nMuon"]), ak.to_list(t.products["Muon_pt"])))
            else:
                out.append(t)
        return out

    one_chunk = flat(100_000)
    assert flat(7) == one_chunk
    assert flat("10 kB") == one_chunk
    events = [x for x in one_chunk if isinstance(x, tuple)]
    assert len(events) == 200 and {e[0].run for e in events} == {1}
    assert len({e[0].lumi for e in events}) == 6


def test_reads_in_chunks_not_the_whole_file(
    input_files: dict[str, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes: list[int] = []
    tree_type = type(uproot.open(input_files["zmumu"])["Events"])
    original = tree_type.iterate

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        for chunk in original(self, *args, **kwargs):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(tree_type, "iterate", spy)
    src = RootSource(file=str(input_files["zmumu"]), branches=["Muon_pt"], step_size=64)
    it = iter(src.transitions())
    head = [t for _, t in zip(range(10), it, strict=False)]
    first_events = [t for t in head if isinstance(t, EventTransition)]
    assert first_events and sizes == [64]  # only the first chunk was read so far
    rest = list(it)
    assert len(sizes) == 8 and max(sizes) == 64 and sum(sizes) == 500
    assert isinstance(rest[-1], EndRun)


def test_default_ids_without_id_branches(tmp_path: Path) -> None:
    files = [
        write_tree(tmp_path / "a.root", {"x": np.arange(10, dtype=np.float64)}),
        write_tree(tmp_path / "b.root", {"x": np.arange(10, 13, dtype=np.float64)}),
    ]
    src = RootSource(file=[str(f) for f in files], events_per_lumi=4, step_size=3)
    assert declared(src) == {"x": "float64"}
    transitions = list(src.transitions())
    check_nesting(transitions)
    events = [t for t in transitions if isinstance(t, EventTransition)]
    assert [tuple(e.id) for e in events] == [(1, 1 + k // 4, k + 1) for k in range(13)]
    assert [float(e.products["x"]) for e in events] == list(map(float, range(13)))
    assert isinstance(events[0].products["x"], np.floating)
    assert [type(t).__name__ for t in transitions].count("BeginLumi") == 4


def test_wildcards_modes_and_soa(input_files: dict[str, Path]) -> None:  # noqa: F811
    path = str(input_files["zmumu"])
    assert list(declared(RootSource(file=path, branches=["Muon_p*"]))) == ["Muon_pt", "Muon_phi"]
    everything = declared(RootSource(file=path))
    assert "run" not in everything and "event" not in everything  # IDs are not products
    assert everything["nMuon"] == "int32"

    numpy_src = RootSource(file=path, branches=["Muon_pt"], jagged="numpy")
    assert declared(numpy_src) == {"Muon_pt": "numpy.ndarray"}
    ev = next(t for t in numpy_src.transitions() if isinstance(t, EventTransition))
    value = ev.products["Muon_pt"]
    assert isinstance(value, np.ndarray) and value.dtype == np.float32 and len(value) == 2
    assert not value.flags.writeable

    soa_src = RootSource(file=path, branches=["Muon_*", "nMuon"], soa=["Muon"])
    assert declared(soa_src) == {"Muon": "SoA", "nMuon": "int32"}
    reference = uproot.open(path)["Events"].arrays(entry_stop=20)
    events = [t for t in soa_src.transitions() if isinstance(t, EventTransition)][:20]
    for e, ref in zip(events, reference, strict=True):
        muons = e.products["Muon"]
        assert isinstance(muons, SoA)
        assert list(muons) == ["pt", "eta", "phi", "mass", "charge"]
        assert list(muons.offsets) == [0, int(ref.nMuon)]
        np.testing.assert_array_equal(muons["charge"], ak.to_numpy(ref.Muon_charge))
        assert not muons["pt"].flags.writeable


def test_errors_name_file_and_key(tmp_path: Path, input_files: dict[str, Path]) -> None:  # noqa: F811
    missing = tmp_path / "nope.root"
    with pytest.raises(ConfigError) as info:
        declared(RootSource(file=str(missing)))
    assert info.value.file == str(missing) and info.value.key == "source.file"

    with pytest.raises(ConfigError, match=r"no tree or RNTuple 'Tree'.*Events") as info:
        declared(RootSource(file=str(input_files["zmumu"]), tree="Tree"))
    assert info.value.key == "source.tree"

    with pytest.raises(ConfigError, match="'Electron_\\*' matches no branch") as info:
        declared(RootSource(file=str(input_files["zmumu"]), branches=["Muon_pt", "Electron_*"]))
    assert info.value.file == str(input_files["zmumu"])

    with pytest.raises(ConfigError, match="soa collection 'Jet'"):
        declared(RootSource(file=str(input_files["zmumu"]), soa=["Jet"]))

    other = write_tree(tmp_path / "other.root", {"y": np.zeros(3)})
    src = RootSource(file=[str(input_files["zmumu"]), str(other)], branches=["Muon_pt"])
    with pytest.raises(ConfigError, match="missing here") as info:
        list(src.transitions())
    assert info.value.file == str(other)

    for bad in ({"jagged": "arrow"}, {"step_size": 0}, {"events_per_lumi": 0}):
        with pytest.raises(ConfigError):
            RootSource(file="x.root", **bad)
