"""The ``scale`` part: many processes on one host, launched as users launch them.

Two shapes, each one ``python -m actors.launch`` of a generated topology over
``tcp``:

- ``1x16``: one controller spreading events over 16 followers;
- ``16x1``: 16 controllers sharing one follower (it runs one schedule per
  controller, like ``examples/offload/shared.toml``).

Every follower event runs a synthetic module that sleeps ``SLEEP_S`` in a
worker thread (:class:`benchmarks.bench_modules.HltModule`; sleeping releases
the GIL, so the ideal rate does not depend on the cores: ``followers x
concurrent events per follower / SLEEP_S``, bounded by the follower's
threads). Reported per shape:

- launcher start-up: from starting ``python -m actors.launch`` to the first
  event finished anywhere, in seconds;
- memory: peak resident set of every process (``ru_maxrss`` at its end),
  median and largest, in MiB;
- events/s: the steady rate of completions (:func:`benchmarks.launched.steady_rate`)
  against the ideal, as a fraction.

``--quick``: 1x4 and 4x1 with fewer events.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.tomlfile import dump_toml

from .harness import python, run_command
from .launched import steady_rate
from .parts import Context, PartResult, register

__all__ = ["SLEEP_S", "Shape", "run", "write_shape"]

#: seconds each follower event sleeps in its synthetic module
SLEEP_S = 0.02
#: events in flight per controller-follower pair
STREAMS = 2

_SOURCE = "actors.framework.sources.synthetic:SyntheticSource"
_D = "actors.distributed"
_M = "benchmarks.bench_modules"


@dataclass(frozen=True)
class Shape:
    """``controllers`` x ``followers``: one of them is 1."""

    controllers: int
    followers: int
    events: int  # in all, over every controller

    @property
    def label(self) -> str:
        return f"{self.controllers}x{self.followers}"

    @property
    def ideal_per_s(self) -> float:
        """Events/s if only the sleeping module took time (every pair keeps STREAMS busy)."""
        pairs = self.controllers * self.followers
        return pairs * STREAMS / SLEEP_S


def _stamp(name: str, workdir: Path) -> dict[str, Any]:
    return {"type": f"{_M}:Stamp", "file": str(workdir / f"stamps-{name}.json")}


def _controller(name: str, links: list[str], workdir: Path) -> dict[str, Any]:
    return {
        "process": {"name": "SCALELOCAL"},
        "source": {"type": _SOURCE, "runs": 1, "lumis_per_run": 0, "events_per_lumi": 1000},
        "modules": {
            "offload": {"type": f"{_D}:Controller", "links": links},
            "stamp": _stamp(name, workdir),
        },
        "paths": {"p": ["offload"]},
        "end_paths": {"e": ["stamp"]},
    }


def _follower(name: str, link: str, workdir: Path) -> dict[str, Any]:
    return {
        "process": {"name": "SCALEREMOTE"},
        "source": {"type": f"{_D}:FollowerSource", "link": link},
        "modules": {
            "work": {"type": f"{_M}:HltModule", "time": SLEEP_S},
            "seen": {"type": f"{_D}:EventDone", "upstream": "source"},
            "stamp": _stamp(name, workdir),
        },
        "paths": {"p": ["work"]},
        "end_paths": {"e": ["seen", "stamp"]},
    }


def _entry(config: str, streams: int, threads: int) -> dict[str, Any]:
    return {"config": config, "streams": streams, "threads": threads, "args": ["--quiet"]}


def write_shape(shape: Shape, workdir: Path) -> Path:
    """Write every process configuration and ``topology.toml``; returns the topology."""
    processes: dict[str, Any] = {}
    links = []
    if shape.controllers == 1:  # one controller, N followers, one link each
        names = [f"f{i}" for i in range(shape.followers)]
        (workdir / "c0.toml").write_text(dump_toml(_controller("c0", names, workdir)))
        processes["c0"] = _entry("c0.toml", STREAMS * shape.followers, 1)
        for name in names:
            (workdir / f"{name}.toml").write_text(dump_toml(_follower(name, name, workdir)))
            processes[name] = _entry(f"{name}.toml", STREAMS, STREAMS)
            links.append({"name": name, "client": "c0", "server": name})
    else:  # N controllers sharing one follower under one link name
        (workdir / "f0.toml").write_text(dump_toml(_follower("f0", "shared", workdir)))
        processes["f0"] = _entry("f0.toml", STREAMS, STREAMS * shape.controllers)
        for i in range(shape.controllers):
            name = f"c{i}"
            (workdir / f"{name}.toml").write_text(dump_toml(_controller(name, ["shared"], workdir)))
            processes[name] = _entry(f"{name}.toml", STREAMS, 1)
            links.append({"name": "shared", "client": name, "server": "f0"})
    topology = {
        "run": {"events": shape.events // shape.controllers, "transport": "tcp"},
        "process": processes,
        "link": links,
    }
    path = workdir / "topology.toml"
    path.write_text(dump_toml(topology))
    return path


def _measure(shape: Shape, ctx: Context) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hep-bench-scale-") as tmp:
        workdir = Path(tmp)
        topology = write_shape(shape, workdir)
        timeout = ctx.timeout
        started = time.time()
        code, tail = run_command(
            [python(), "-m", "actors.launch", str(topology), "--timeout", str(timeout)],
            timeout=timeout + 15,
            tail_lines=40,
        )
        wall = time.time() - started
        if code != 0:
            lines = [ln.strip() for ln in tail.splitlines() if ln.strip()][-3:]
            return {
                "shape": shape.label,
                "error": f"launcher exited with {code}: " + " | ".join(lines),
            }
        stamps = {
            p.stem.removeprefix("stamps-"): json.loads(p.read_text())
            for p in workdir.glob("stamps-*.json")
        }
    followers = [s for name, s in stamps.items() if name.startswith("f")]
    done = sorted(t for s in followers for t in s["done"])
    rss = [s["max_rss_kib"] / 1024 for s in stamps.values() if "max_rss_kib" in s]
    rate, _ = steady_rate(done)
    return {
        "shape": shape.label,
        "processes": shape.controllers + shape.followers,
        "events": len(done),
        "startup_s": min(done) - started if done else None,
        "wall_s": wall,
        "events_per_s": rate,
        "ideal_per_s": shape.ideal_per_s,
        "fraction_of_ideal": rate / shape.ideal_per_s,
        "rss_median_MiB": statistics.median(rss) if rss else None,
        "rss_max_MiB": max(rss) if rss else None,
    }


def _rows(records: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in records:
        if "error" in r:
            rows.append([r["shape"], r["error"], "", "", "", "", ""])
            continue
        rows.append(
            [
                r["shape"],
                str(r["processes"]),
                f"{r['startup_s']:.2f}",
                f"{r['rss_median_MiB']:.0f} / {r['rss_max_MiB']:.0f}",
                f"{r['events_per_s']:,.0f}",
                f"{r['ideal_per_s']:,.0f}",
                f"{r['fraction_of_ideal']:.0%}",
            ]
        )
    return rows


@register("scale")
def run(ctx: Context) -> PartResult:
    n = 4 if ctx.quick else 16
    events = 200 if ctx.quick else 4000
    records = []
    for shape in (Shape(1, n, events), Shape(n, 1, events)):
        if ctx.selects(shape.label):
            ctx.log(f"scale: {shape.label}")
            records.append(_measure(shape, ctx))
    failed = [r for r in records if "error" in r]
    columns = [
        "shape",
        "processes",
        "start-up s",
        "RSS MiB median / max",
        "events/s",
        "ideal events/s",
        "of ideal",
    ]
    return PartResult(
        "failed" if failed else "ok",
        reason="; ".join(r["error"] for r in failed) or None,
        data={"sleep_s": SLEEP_S, "streams": STREAMS, "shapes": records},
        tables=[
            (
                f"scale: synthetic {SLEEP_S * 1e3:.0f} ms modules over tcp, one host",
                columns,
                _rows(records),
            )
        ],
    )
