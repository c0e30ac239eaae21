"""Shared helpers of the framework I/O tests: RNTuple copies and file writers.

(Named ``test_io_*`` to sit with the I/O tests; it holds no tests itself.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

ZMUMU = "cms2010_zmumu_nano.root"
TTBAR = "cms_nanoaod_ttbar_200evts.root"
MUON_BRANCHES = ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge"]


def rntuple_copy(src: Path, dst: Path, prefixes: tuple[str, ...] = ("Muon_", "Jet_pt")) -> Path:
    """Copy the ID, ``n*`` and ``prefixes*`` branches of TTree ``Events`` into an RNTuple."""
    uproot = pytest.importorskip("uproot")
    tree = uproot.open(src)["Events"]
    keys: list[str] = tree.keys()
    names = [
        k
        for k in keys
        if k in ("run", "luminosityBlock", "event", "nMuon") or k.startswith(prefixes)
    ]
    arrays = tree.arrays(names)
    with uproot.recreate(dst) as out:
        out.mkrntuple("Events", arrays)
    return dst


def write_tree(path: Path, data: dict[str, Any], tree: str = "Events") -> Path:
    """Write ``data`` (numpy/awkward columns) to TTree ``tree``."""
    uproot = pytest.importorskip("uproot")
    with uproot.recreate(path) as out:
        out[tree] = data
    return path


def read_tree(path: Path, tree: str = "Events") -> dict[str, np.ndarray[Any, Any]]:
    """All branches of ``tree`` as numpy arrays (jagged ones as awkward)."""
    uproot = pytest.importorskip("uproot")
    obj = uproot.open(path)[tree]
    keys: list[str] = obj.keys()
    return {k: obj[k].array(library="np") for k in keys}


@pytest.fixture(scope="session")
def _rntuple_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {"dir": tmp_path_factory.mktemp("rntuple")}


@pytest.fixture
def input_files(shared_data: Path, _rntuple_cache: dict[str, Path]) -> dict[str, Path]:
    """``{"zmumu", "zmumu_rntuple", "ttbar", "ttbar_rntuple"}`` -> path (copies made once)."""
    files = {"zmumu": shared_data / ZMUMU, "ttbar": shared_data / TTBAR}
    for name in ("zmumu", "ttbar"):
        key = f"{name}_rntuple"
        if key not in _rntuple_cache:
            _rntuple_cache[key] = rntuple_copy(files[name], _rntuple_cache["dir"] / f"{key}.root")
        files[key] = _rntuple_cache[key]
    return files
