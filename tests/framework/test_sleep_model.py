"""The sleep-model benchmark: generator, limits, simulation, and a tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.sleep_model import Model, generate, main, make_process, run_grid, simulate


def test_generator_is_seeded_and_acyclic() -> None:
    a = generate(12, seed=3, mean_time=0.002)
    assert a == generate(12, seed=3, mean_time=0.002)
    assert a != generate(12, seed=4, mean_time=0.002)
    assert all(p < j for j, ps in enumerate(a.parents) for p in ps)  # a DAG by construction
    assert all(t > 0 for t in a.times)
    for dist in ("exponential", "uniform", "constant"):
        assert len(generate(5, distribution=dist).times) == 5
    with pytest.raises(ValueError, match="unknown distribution"):
        generate(3, distribution="pareto")


def test_limits_and_ideal_schedule() -> None:
    # a -> b, and c independent: work 6, critical path a+b = 4.
    model = Model([1.0, 3.0, 2.0], [[], [0], []], 0, "hand")
    assert model.work == 6.0 and model.critical_path == 4.0
    assert model.limit(threads=1, streams=4) == pytest.approx(1 / 6)
    assert model.limit(threads=8, streams=1) == pytest.approx(1 / 4)
    done = simulate(model, threads=8, streams=1, events=3)
    assert done == pytest.approx([4.0, 8.0, 12.0])
    done = simulate(model, threads=1, streams=2, events=4)
    assert done[-1] == pytest.approx(24.0)  # one thread: all work back to back


def test_process_has_one_path_with_the_dependencies() -> None:
    model = generate(6, seed=2)
    process = make_process(model, events=5)
    assert list(process.paths) == ["p"] and len(process.paths["p"].modules) == 6
    for j, label in enumerate(process.paths["p"].modules):
        params = process.modules[label].params
        assert params["parents"] == [f"a{p}" for p in model.parents[j]]


def test_tiny_run_gives_a_well_formed_result(tmp_path: Path) -> None:
    model = generate(4, seed=1, mean_time=0.001)
    results = run_grid(model, [2], [1, 2], events=8)
    assert [(r["threads"], r["streams"]) for r in results] == [(2, 1), (2, 2)]
    for r in results:
        assert r["events"] == 8
        assert r["measured"] > 0 and r["theoretical"] > 0 and r["simulated"] > 0
        assert r["ratio"] == pytest.approx(r["measured"] / r["theoretical"])
    out = tmp_path / "sleep.json"
    assert (
        main(
            [
                "--algorithms",
                "3",
                "--mean-time",
                "0.001",
                "--threads",
                "1",
                "--streams",
                "1",
                "--events",
                "6",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert set(doc) == {"model", "host", "results"}
    assert len(doc["model"]["times"]) == 3 and len(doc["results"]) == 1
