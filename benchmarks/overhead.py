"""The ``overhead`` part: framework cost per event, one process, trivial modules.

A counting source runs through 0 modules (``empty``), one trivial sync
producer with ``run_on_loop`` (``onloop``), one trivial ``async def``
producer (``async``) and one trivial sync producer run in the worker threads
(``sync``), for 1 and 4 streams (2 threads, uvloop when installed). Each
figure is the median over ``--repeat`` jobs of events / wall time of the job.

Standalone: ``python -m benchmarks.overhead [--events N] [--repeat R]
[--json FILE]``. Numbers depend heavily on the machine and its load: repeat,
and quote medians. The modules and the source are defined here, so this file
runs unchanged against another checkout of the package (for side-by-side
comparisons: put it in that checkout's ``benchmarks/``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actors.framework import (
    BeginLumi,
    BeginRun,
    Declarer,
    EndLumi,
    EndRun,
    Event,
    EventID,
    EventTransition,
    Process,
    Producer,
    Source,
    Transition,
    run_process,
)

from .harness import python, run_command
from .parts import Context, PartResult, register

__all__ = ["measure", "run"]

KINDS = ("empty", "onloop", "async", "sync")
_HERE = "benchmarks.overhead"


class Counting(Source):
    """``lumis`` lumis of ``events`` events each in one run; product ``n`` (int)."""

    def __init__(self, *, lumis: int = 10, events: int = 100) -> None:
        self.lumis, self.events = lumis, events

    def declare(self, d: Declarer) -> None:
        d.produces("int", "n")

    def transitions(self) -> Iterator[Transition]:
        number = 0
        yield BeginRun(1)
        for lumi in range(1, self.lumis + 1):
            yield BeginLumi(1, lumi)
            for _ in range(self.events):
                number += 1
                yield EventTransition(EventID(1, lumi, number), {"n": number})
            yield EndLumi(1, lumi)
        yield EndRun(1)


class Trivial(Producer):
    """Puts one int: the per-call overhead of a sync module (worker threads)."""

    def declare(self, d: Declarer) -> None:
        d.produces("int")

    def produce(self, event: Event) -> None:
        event.put(1)


class TrivialOnLoop(Trivial):
    """Trivial, run inline on the loop."""

    run_on_loop = True


class TrivialAsync(Producer):
    """Trivial as an ``async def`` module."""

    def declare(self, d: Declarer) -> None:
        d.produces("int")

    async def produce(self, event: Event) -> None:
        event.put(1)


def make(kind: str, streams: int, events: int) -> Process:
    """The process of one figure."""
    p = Process("BENCH")
    p.set_source(f"{_HERE}:Counting", lumis=10, events=max(1, events // 10))
    p.options.streams = streams
    p.options.threads = 2
    if kind != "empty":
        cls = {"async": "TrivialAsync", "onloop": "TrivialOnLoop", "sync": "Trivial"}[kind]
        p.add_module("a", f"{_HERE}:{cls}")
        p.add_path("p", ["a"])
    return p


def rate(kind: str, streams: int, events: int) -> tuple[float, float]:
    """Events/s of one job (wall time of the job) and its CPU µs per event (all threads).

    CPU time depends much less on what else the machine runs than wall time.
    """
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        cpu = time.process_time()
        report = runner.run(run_process(make(kind, streams, events)))
        cpu = time.process_time() - cpu
    return float(report.events / report.wall_time), 1e6 * cpu / max(1, report.events)


def measure(events: int, repeat: int) -> list[dict[str, Any]]:
    """Every figure: kind, streams, median and all runs (events/s), median CPU µs/event."""
    rows = []
    for kind in KINDS:
        for streams in (1, 4):
            n = events if kind != "sync" else events // 4
            runs = [rate(kind, streams, n) for _ in range(repeat)]
            rates = [r for r, _ in runs]
            rows.append(
                {
                    "kind": kind,
                    "streams": streams,
                    "median": statistics.median(rates),
                    "runs": rates,
                    "cpu_us": statistics.median(c for _, c in runs),
                }
            )
    return rows


@register("overhead")
def run(ctx: Context) -> PartResult:
    """Run the measurement in a subprocess (a fresh interpreter and loop)."""
    out = ctx.out / "overhead.json"
    args = ["--events", "5000", "--repeat", "3"] if ctx.quick else ["--repeat", "5"]
    code, tail = run_command(
        [python(), "-m", _HERE, "--json", str(out), *args], timeout=120 if ctx.quick else 900
    )
    if code is None:
        return PartResult("failed", "overhead benchmark timed out")
    if code != 0 or not out.exists():
        last = tail.splitlines()[-1] if tail else "no output"
        return PartResult("failed", f"overhead benchmark exited with {code}: {last}")
    rows: list[dict[str, Any]] = json.loads(out.read_text())["results"]
    table = [
        [r["kind"], str(r["streams"]), f"{r['median']:.0f}", f"{r['cpu_us']:.1f}"] for r in rows
    ]
    return PartResult(
        "ok",
        data={"results": rows},
        tables=[
            (
                "overhead: one process, trivial modules (medians)",
                ["modules", "streams", "events/s", "CPU µs/event"],
                table,
            ),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    rows = measure(args.events, args.repeat)
    print(f"{'modules':>8} {'streams':>7} {'median ev/s':>12} {'CPU us/ev':>10}  runs (ev/s)")
    for r in rows:
        runs = " ".join(f"{x:.0f}" for x in r["runs"])
        print(f"{r['kind']:>8} {r['streams']:>7} {r['median']:>12.0f} {r['cpu_us']:>10.1f}  {runs}")
    if args.json is not None:
        args.json.write_text(json.dumps({"results": rows}, indent=1))


if __name__ == "__main__":
    main()
