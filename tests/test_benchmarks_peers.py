"""The peers part: our worker runs for real; the comparison computes the ratios it reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.peers import compare


@pytest.mark.parametrize("peer", ["hep-actors tcp", "hep-actors shm", "hep-actors tcp, loop spin"])
def test_our_peer_worker_measures_every_workload(peer: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.workers.peers", peer, "--quick", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["peer"] == peer
    figures = result["results"]
    assert set(figures) == {
        "startup_s",
        "small_ask_per_s",
        "outstanding_ask_per_s",
        "tell_per_s",
        "echo_64MiB_GBps",
        "sum_back_64MiB_GBps",
    }
    assert all(v > 0 for v in figures.values())


def test_a_missing_peer_is_skipped_with_the_extra_to_install() -> None:
    from benchmarks.workers import peers

    peers.PEERS["absent"] = ("surely_not_installed_module", lambda w, r: {})
    try:
        result = peers.run_peer("absent", quick=True, repeat=1)
    finally:
        del peers.PEERS["absent"]
    assert "hep-actors[peers]" in result["skipped"]


def test_comparison_ratios_and_targets() -> None:
    def entry(peer: str, **figures: float) -> dict[str, object]:
        return {"peer": peer, "results": figures}

    rows = compare(
        [
            entry("hep-actors tcp", small_ask_per_s=4000, startup_s=0.5, echo_64MiB_GBps=3.0),
            entry("hep-actors shm", small_ask_per_s=5000, startup_s=0.3, echo_64MiB_GBps=7.0),
            entry("ray", small_ask_per_s=1000, startup_s=5.0, echo_64MiB_GBps=5.0),
            entry("thespian", small_ask_per_s=3000, startup_s=0.2),
            {"peer": "dask", "skipped": "not installed"},
        ]
    )
    by = {r["workload"]: r for r in rows}
    small = by["small asks/s"]
    assert small["ours"] == ("hep-actors shm", 5000) and small["peer"] == ("thespian", 3000)
    assert small["ratio"] == pytest.approx(5000 / 3000) and small["met"] is False
    echo = by["64 MiB echo GB/s"]  # shm:// against Ray's object store
    assert echo["ratio"] == pytest.approx(7.0 / 5.0) and echo["met"] is True
    startup = by["start-up s"]  # lower is better: ratio = peer / ours
    assert startup["ratio"] == pytest.approx(0.2 / 0.3) and startup["met"] is False
    assert by["10,000 tells/s"]["ratio"] is None


def test_startup_only_reports_the_startup_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.workers.peers", "hep-actors shm", "--startup-only"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["results"]) == {"startup_s"}
    assert 0 < result["results"]["startup_s"] < 60
