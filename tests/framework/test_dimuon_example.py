"""The dimuon example against an independent awkward/numpy computation.

Inputs: the shared NanoAOD-style files as TTrees and as RNTuple copies; the
job runs with 1 and 4 streams and both outputs must be identical.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.framework import Process, run
from tests.framework.test_io_helpers import _rntuple_cache, input_files, read_tree  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "dimuon" / "dimuon.toml"


def expected_dimuon(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Vectorised reference: leading-pT pair, opposite charge, float64 mass."""
    uproot = pytest.importorskip("uproot")
    ak = pytest.importorskip("awkward")
    events = uproot.open(path)["Events"].arrays(
        [
            "run",
            "luminosityBlock",
            "event",
            "Muon_pt",
            "Muon_eta",
            "Muon_phi",
            "Muon_mass",
            "Muon_charge",
        ]
    )
    order = ak.argsort(events.Muon_pt, ascending=False, stable=True)
    lead = {k: events[f"Muon_{k}"][order][:, :2] for k in ("pt", "eta", "phi", "mass", "charge")}
    two = ak.num(lead["pt"]) == 2
    keep = ak.to_numpy(two & (ak.prod(ak.fill_none(ak.pad_none(lead["charge"], 2), 0), axis=1) < 0))
    pt, eta, phi, mass = (
        ak.to_numpy(lead[k][keep]).astype(np.float64) for k in ("pt", "eta", "phi", "mass")
    )
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    m2 = energy.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2
    return {
        "run": ak.to_numpy(events.run[keep]),
        "luminosityBlock": ak.to_numpy(events.luminosityBlock[keep]),
        "event": ak.to_numpy(events.event[keep]),
        "dimuon_mass": np.sqrt(np.maximum(m2, 0.0)),
    }


def run_example(src: Path, out: Path, *, streams: int, threads: int) -> None:
    process = Process.from_toml(CONFIG)
    assert process.source is not None
    process.source.params["file"] = str(src)
    process.source.params["step_size"] = 64  # several chunks, boundaries mid-lumi
    process.modules["out"].params["file"] = str(out)
    run(process, streams=streams, threads=threads)


@pytest.mark.parametrize("which", ["zmumu", "zmumu_rntuple", "ttbar", "ttbar_rntuple"])
def test_dimuon_matches_reference_for_1_and_4_streams(
    which: str,
    input_files: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    expected = expected_dimuon(input_files[which])
    outputs = []
    for streams in (1, 4):
        out = tmp_path / f"dimuon_{streams}.root"
        run_example(input_files[which], out, streams=streams, threads=2)
        outputs.append(read_tree(out))
    one, four = outputs
    assert list(one) == ["run", "luminosityBlock", "event", "dimuon_mass"]
    assert one["dimuon_mass"].dtype == np.float64
    for key, values in expected.items():
        np.testing.assert_array_equal(one[key], four[key])  # 1 and 4 streams identical
        if key == "dimuon_mass":
            np.testing.assert_allclose(one[key], values, rtol=1e-12)
        else:
            np.testing.assert_array_equal(one[key], values)


def test_dimuon_without_worker_threads_matches_reference(
    input_files: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    expected = expected_dimuon(input_files["zmumu"])
    out = tmp_path / "dimuon_threads0.root"
    run_example(input_files["zmumu"], out, streams=2, threads=0)
    written = read_tree(out)
    for key, values in expected.items():
        if key == "dimuon_mass":
            np.testing.assert_allclose(written[key], values, rtol=1e-12)
        else:
            np.testing.assert_array_equal(written[key], values)


def test_zmumu_reference_counts(input_files: dict[str, Path]) -> None:  # noqa: F811
    # The data README says 496 of the 500 events have an opposite-charge pair.
    expected = expected_dimuon(input_files["zmumu"])
    assert len(expected["event"]) == 496
    assert np.all(
        np.diff(expected["event"].astype(np.int64))[np.diff(expected["run"].astype(np.int64)) == 0]
        > 0
    )


def test_command_line(input_files: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "cli.root"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors.run",
            str(CONFIG),
            "--input",
            str(input_files["zmumu_rntuple"]),
            "--output",
            str(out),
            "--streams",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = read_tree(out)
    expected = expected_dimuon(input_files["zmumu"])
    np.testing.assert_array_equal(written["event"], expected["event"])
    np.testing.assert_allclose(written["dimuon_mass"], expected["dimuon_mass"], rtol=1e-12)
