"""The synthetic HLT-like configuration of the ``hlt`` part, and its split.

:func:`make_menu` draws a random DAG of ``n`` modules (the DAG generator of
:func:`benchmarks.sleep_model.generate`, seeded) and gives them per-module
times from a log-normal distribution with a median of ``median`` seconds and
shape ``sigma``, clipped at ``max_time``. With the defaults (median 15 us,
sigma 2.3, clip 30 ms) most modules take tens of microseconds and a few take
milliseconds to tens of milliseconds, as in the CMS HLT timing tables. The
``gpu`` heaviest modules are flagged "GPU-like": they are the ones offloaded,
and each of them puts a ``gpu_bytes`` array (a SoA-sized product) instead of
an ``int``, so that real data comes back from the remote process.

:func:`make_process` builds the one-process configuration (a
:class:`~benchmarks.bench_modules.StartTime` first, every module on one path,
a :class:`~benchmarks.bench_modules.Stamp` on an end path for latencies);
:func:`write_offloaded` splits it with :func:`actors.split.split_process`
(1 remote process, or 2 by splitting twice) and writes a runnable topology.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actors.framework import Process
from actors.split import split_process
from actors.tomlfile import dump_toml

from .sleep_model import generate

__all__ = ["Menu", "make_menu", "make_process", "write_offloaded"]

_M = "benchmarks.bench_modules"


@dataclass
class Menu:
    """Times (s), parents (indices) and the GPU-like module indices."""

    times: list[float]
    parents: list[list[int]]
    gpu: list[int]
    gpu_bytes: int
    seed: int

    def label(self, j: int) -> str:
        return f"{'gpu' if j in self.gpu else 'm'}{j:03d}"

    @property
    def labels(self) -> list[str]:
        return [self.label(j) for j in range(len(self.times))]

    @property
    def gpu_labels(self) -> list[str]:
        return [self.label(j) for j in self.gpu]

    def describe(self) -> dict[str, Any]:
        t = np.array(self.times)
        gpu = t[self.gpu]
        return {
            "modules": len(t),
            "gpu_like": len(self.gpu),
            "seed": self.seed,
            "work_per_event_ms": float(t.sum() * 1e3),
            "gpu_like_work_ms": float(gpu.sum() * 1e3),
            "gpu_like_fraction": float(gpu.sum() / t.sum()),
            "median_us": float(np.median(t) * 1e6),
            "p90_us": float(np.quantile(t, 0.9) * 1e6),
            "max_ms": float(t.max() * 1e3),
            "gpu_bytes": self.gpu_bytes,
        }


def make_menu(
    n: int = 200,
    *,
    seed: int = 4,
    median: float = 15e-6,
    sigma: float = 2.3,
    max_time: float = 0.03,
    gpu: int | None = None,
    gpu_bytes: int = 64 * 1024,
) -> Menu:
    """A random HLT-like menu; same arguments -> same menu (see the module docstring)."""
    dag = generate(n, seed=seed, max_parents=3, edge_probability=0.5)
    rng = np.random.default_rng(seed + 1000)
    times = np.minimum(rng.lognormal(np.log(median), sigma, n), max_time)
    k = gpu if gpu is not None else max(2, n // 20)
    heaviest = sorted(int(j) for j in np.argsort(times)[-k:])
    return Menu([float(x) for x in times], dag.parents, heaviest, gpu_bytes, seed)


def make_process(menu: Menu, stamp_file: Path) -> Process:
    """The whole menu in one process: t0, every module on path ``hlt``, Stamp on an end path."""
    process = Process("HLT")
    process.set_source(
        "actors.framework.sources.synthetic:SyntheticSource",
        runs=1,
        lumis_per_run=0,
        events_per_lumi=1000,
    )
    process.add_module("t0", f"{_M}:StartTime")
    labels = menu.labels
    for j, label in enumerate(labels):
        process.add_module(
            label,
            f"{_M}:HltModule",
            time=menu.times[j],
            parents=[labels[p] for p in menu.parents[j]],
            nbytes=menu.gpu_bytes if j in menu.gpu else 0,
        )
    process.add_path("hlt", ["t0", *labels])
    process.add_module("stamp", f"{_M}:Stamp", file=str(stamp_file), start="t0")
    process.add_end_path("timing", ["stamp"])
    return process


def _entry(config: str, threads: int, streams: int, report: Path) -> dict[str, Any]:
    return {
        "config": config,
        "threads": threads,
        "streams": streams,
        "args": ["--quiet", "--report-json", str(report)],
    }


def write_offloaded(
    process: Process,
    gpu_labels: list[str],
    remotes: int,
    transport: str,
    threads: int,
    streams: int,
    events: int,
    workdir: Path,
) -> tuple[Path, dict[str, Path]]:
    """Split ``process`` (the GPU-like modules dealt round robin over ``remotes``) into
    ``workdir``; returns the topology path and the report file of every process."""
    groups = [gpu_labels[i::remotes] for i in range(remotes)]
    local = process
    remote_procs = []
    for i, group in enumerate(groups):
        result = split_process(
            local, group, transport=transport, link=f"gpu{i}", remote_name=f"HLTGPU{i}"
        )
        local = result.local
        remote_procs.append(result.remote)
    reports = {"local": workdir / "report-local.json"}
    (workdir / "local.toml").write_text(local.to_toml())
    processes = {"local": _entry("local.toml", threads, streams, reports["local"])}
    links = []
    for i, remote in enumerate(remote_procs):
        name = f"gpu{i}"
        (workdir / f"{name}.toml").write_text(remote.to_toml())
        reports[name] = workdir / f"report-{name}.json"
        processes[name] = _entry(f"{name}.toml", threads, streams, reports[name])
        links.append({"name": name, "client": "local", "server": name})
    topology = {
        "run": {"events": events, "transport": transport},
        "process": processes,
        "link": links,
    }
    path = workdir / "topology.toml"
    path.write_text(dump_toml(topology))
    return path, reports
