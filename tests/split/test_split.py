"""python -m actors.split: generated configurations, equal outputs, refusals."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.errors import ConfigError
from actors.framework import Process, run_process
from actors.split import main, split_process

from .mods import RECORDS, M

REPO = Path(__file__).resolve().parents[2]
DIMUON = REPO / "examples" / "dimuon"
SYNTH = "actors.framework.sources.synthetic:SyntheticSource"


def python(*args: str, timeout: float = 110) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def read_root(path: Path) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    uproot = pytest.importorskip("uproot")
    return uproot.open(path)["Events"].arrays(library="np")  # type: ignore[no-any-return]


# ---------------------------------------------------------------- dimuon


_CACHE: dict[str, Path] = {}


@pytest.fixture
def nano(shared_data: Path) -> Path:
    path = shared_data / "cms2010_zmumu_nano.root"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def dimuon_split(tmp_path_factory: pytest.TempPathFactory, nano: Path) -> Path:
    if "split" in _CACHE:
        return _CACHE["split"]
    out = _CACHE["split"] = tmp_path_factory.mktemp("split")
    assert (
        main(
            [
                str(DIMUON / "dimuon.toml"),
                "--offload",
                "dimuon",
                "--input",
                str(nano),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    return out


@pytest.fixture
def single(tmp_path_factory: pytest.TempPathFactory, nano: Path) -> Path:
    if "single" in _CACHE:
        return _CACHE["single"]
    out = _CACHE["single"] = tmp_path_factory.mktemp("single") / "single.root"
    run = python(
        "-m",
        "actors.run",
        str(DIMUON / "dimuon.toml"),
        "--input",
        str(nano),
        "--output",
        str(out),
        "--quiet",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_dimuon_local_configuration(dimuon_split: Path) -> None:
    local = load(dimuon_split / "local.toml")
    mods = local["modules"]
    assert "dimuon" in mods and mods["dimuon"]["type"] == "actors.distributed:Receiver"
    controller = [k for k, v in mods.items() if v["type"] == "actors.distributed:Controller"]
    assert controller == ["offload"] and mods["offload"]["link"] == "offload"
    senders = {k: v for k, v in mods.items() if v["type"] == "actors.distributed:Sender"}
    assert set(senders) == {"oppositeToRemote", "sourceToRemote"}
    assert senders["oppositeToRemote"]["products"] == ["numpy.ndarray_opposite_pair_*"]
    assert sorted(senders["sourceToRemote"]["products"]) == [
        f"awkward.Array_source_Muon_{k}_*" for k in ("eta", "mass", "phi", "pt")
    ]
    assert mods["dimuon"]["products"] == [
        {"type": "float64", "label": "dimuon", "instance": "dimuon_mass"}
    ]
    instances = [v["instance"] for v in mods.values() if "instance" in v]
    assert len(instances) == len(set(instances)) == 3
    assert local["paths"]["dimuon"] == ["sourceToRemote", "opposite", "oppositeToRemote", "dimuon"]
    assert local["end_paths"]["output"] == ["out"]
    assert mods[local["end_paths"]["done"][0]]["type"] == "actors.distributed:EventDone"


def test_dimuon_remote_configuration(dimuon_split: Path) -> None:
    local = load(dimuon_split / "local.toml")["modules"]
    remote = load(dimuon_split / "remote.toml")
    assert remote["source"] == {
        "type": "actors.distributed:FollowerSource",
        "link": "offload",
        "label": "follower",
    }
    mods = remote["modules"]
    assert mods["dimuon"]["type"] == "modules:DimuonMass"
    for label in ("opposite", "source"):  # receivers keep the labels the consumer expects
        assert mods[label]["type"] == "actors.distributed:Receiver"
        assert mods[label]["upstream"] == "follower"
    pairs = {("send", v["instance"]): v for v in local.values() if "Sender" in v["type"]}
    pairs |= {("recv", v["instance"]): v for v in mods.values() if "Receiver" in v["type"]}
    assert mods["source"]["instance"] == local["sourceToRemote"]["instance"]
    assert mods["opposite"]["instance"] == local["oppositeToRemote"]["instance"]
    assert mods["dimuonToLocal"]["instance"] == local["dimuon"]["instance"]
    assert mods["dimuonToLocal"]["products"] == ["float64_dimuon_dimuon_mass_*"]
    assert remote["paths"]["dimuon"] == ["source", "opposite", "dimuon", "dimuonToLocal"]
    topo = load(dimuon_split / "topology.toml")
    assert topo["link"] == [{"name": "offload", "client": "local", "server": "remote"}]
    assert (dimuon_split / "modules.py").resolve() == (DIMUON / "modules.py").resolve()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_dimuon_split_output_equals_single_process(
    transport: str, dimuon_split: Path, single: Path, nano: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"{transport}.root"
    run = python(
        "-m",
        "actors.launch",
        str(dimuon_split / "topology.toml"),
        "--transport",
        transport,
        "--input",
        str(nano),
        "--output",
        str(out),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    got, want = read_root(out), read_root(single)
    assert sorted(got) == sorted(want) and len(want["event"]) > 0
    for name in want:
        assert got[name].dtype == want[name].dtype
        assert np.array_equal(got[name], want[name]), name


# ---------------------------------------------------------------- synthetic, both ways


def synthetic(name: str = "rec") -> Process:
    p = Process("SYN")
    p.set_source(
        SYNTH,
        runs=1,
        lumis_per_run=2,
        events_per_lumi=15,
        seed=7,
        products=[{"instance": "x", "dtype": "float64", "size": 8}],
    )
    p.add_module("a", f"{M}:Scale", src="source", instance="x", factor=2.0)
    p.add_module("calib", f"{M}:Scale", src="source", instance="x", factor=0.5)
    p.add_module("heavy", f"{M}:Sum", a="a", b="calib")
    p.add_module("sel", f"{M}:Threshold", src="heavy", cut=0.0)
    p.add_module("post", f"{M}:Sum", a="heavy", b="calib")
    p.add_module("rec", f"{M}:Record", name=name, srcs=["a", "heavy", "post"])
    p.add_path("p1", ["a", "heavy", "sel", "post"])
    p.add_end_path("e", ["rec"])
    p.options.streams = 3
    return p


def test_synthetic_pairs_both_ways_with_duplicate_and_decision() -> None:
    result = split_process(synthetic(), ["heavy", "sel"], ["calib"])
    local, remote = result.local, result.remote
    assert {"heavy", "sel", "calib"} <= set(remote.modules) and "calib" in local.modules
    kinds = {(p.origin, p.label, p.decision) for p in result.pairs}
    assert kinds == {
        ("local", "a", False),
        ("local", "source", False),
        ("remote", "heavy", False),
        ("remote", "sel", True),
    }
    assert len({p.instance for p in result.pairs}) == 4
    # the remote filter's decision comes back and gates the local path where 'sel' was
    dec = next(p for p in result.pairs if p.decision)
    assert local.paths["p1"].modules == [
        "sourceToRemote",
        "a",
        "aToRemote",
        "heavy",
        dec.receiver,
        "post",
    ]
    assert remote.paths["p1"].modules == [
        "source",
        "a",
        "heavy",
        "heavyToLocal",
        "sel",
        dec.marker,
        dec.sender,
    ]
    assert remote.modules[dec.marker].type == "actors.split:Decision"


def _run_embedded(topology: Path) -> None:
    from actors.launch import build_plan
    from actors.launch._embedded import run_topology_async
    from actors.launch.topology import load_topology

    topo = load_topology(topology)
    topo.override(transport="inproc")
    plan = build_plan(topo)
    try:
        asyncio.run(run_topology_async(plan, topo))
    finally:
        shutil.rmtree(plan.rundir, ignore_errors=True)


def test_synthetic_split_records_equal_single_process(tmp_path: Path) -> None:
    RECORDS.clear()
    asyncio.run(run_process(synthetic("single")))
    split_process(synthetic("split"), ["heavy", "sel"], ["calib"]).write(tmp_path)
    _run_embedded(tmp_path / "topology.toml")
    want, got = sorted(RECORDS["single"]), sorted(RECORDS["split"])
    assert 0 < len(want) == 30 and got == want


def test_consumer_after_a_receiver_waits_for_its_other_inputs(tmp_path: Path) -> None:
    """A Receiver is a filter: when it ends, its path goes on to ``slow`` and ``both``;
    ``both`` consumes the received product and ``slow``'s, and must wait for ``slow``
    (the scheduler once counted the Receiver twice and started ``both`` at once)."""
    RECORDS.clear()
    p = Process("AFTER")
    p.set_source(SYNTH, events_per_lumi=6, products=[{"instance": "x", "size": 4}])
    p.add_module("a", f"{M}:Scale", src="source", instance="x", factor=2.0)
    p.add_module("gpu", f"{M}:Scale", src="a", instance="scaled", factor=3.0)
    p.add_module("slow", f"{M}:Slow", src="a", instance="scaled", factor=5.0, delay=0.05)
    p.add_module("both", f"{M}:Sum", a="gpu", b="slow")
    p.add_module("rec", f"{M}:Record", name="after", srcs=["both"])
    p.add_path("p", ["a", "gpu", "slow", "both"])
    p.add_end_path("e", ["rec"])
    p.options.threads = 3
    result = split_process(p, ["gpu"])
    assert result.local.paths["p"].modules == ["a", "aToRemote", "gpu", "slow", "both"]
    result.write(tmp_path)
    _run_embedded(tmp_path / "topology.toml")
    assert len(RECORDS["after"]) == 6


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("offload", "duplicate", "words"),
    [
        (["nosuch"], [], ["unknown module 'nosuch'", "a, calib"]),
        (["source"], [], ["'source' is the event source"]),
        (["rec", "heavy"], ["rec"], ["both to --offload and --duplicate"]),
        ([], [], ["nothing to offload"]),
    ],
)
def test_refusals_name_the_module(
    offload: list[str], duplicate: list[str], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        split_process(synthetic(), offload, duplicate)
    for word in words:
        assert word in str(info.value)


def test_output_module_stays_local(nano: Path) -> None:
    process = Process.from_toml(DIMUON / "dimuon.toml")
    assert process.source is not None
    process.source.params["file"] = str(nano)
    with pytest.raises(ConfigError, match="--offload 'out': output modules stay"):
        split_process(process, ["out"])


def test_cycle_across_the_split_is_refused() -> None:
    p = Process("CYC")
    p.set_source(SYNTH, events_per_lumi=2, products=[{"instance": "x", "size": 4}])
    p.add_module("b", f"{M}:Scale", src="source", instance="x", factor=1.0)
    p.add_module("f", f"{M}:Threshold", src="b")
    p.add_path("p", ["f", "b"])  # f (remote) needs b, which the path runs after f
    with pytest.raises(ConfigError, match=r"cycle across the processes \(.*remote:f.*local:b"):
        split_process(p, ["f"])


def test_bare_label_consumer_of_a_receiver_is_accepted() -> None:
    """Receivers put only the received products under their label (the token is opt-in)."""
    p = Process("TOK")
    p.set_source(SYNTH, events_per_lumi=2, products=[{"instance": "x", "size": 4}])
    p.add_module("a", f"{M}:Scale", src="source", instance="x", factor=1.0)
    p.add_module("c", f"{M}:Scale", src="a", instance="scaled", factor=1.0)
    p.add_module("s", "tests.split.test_split:Bare")
    p.add_path("p", ["a", "c", "s"])
    result = split_process(p, ["c"])
    receiver = result.local.modules["c"]
    assert receiver.type.endswith(":Receiver") and not receiver.params.get("token", False)


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            str(DIMUON / "dimuon.toml"),
            "--offload",
            "dimuon",
            "--transport",
            "carrier",
            "-o",
            str(tmp_path),
        ]
    )
    assert code == 2 and "unknown transport 'carrier'" in capsys.readouterr().err


from actors.framework import Analyzer, Declarer, Event  # noqa: E402


class Bare(Analyzer):
    """Consumes every product of module ``c`` by its bare label."""

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes("c")

    def analyze(self, event: Event) -> None:
        event.get(self.token)
