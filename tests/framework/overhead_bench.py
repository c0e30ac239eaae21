"""Framework overhead per event (not a test): ``python -m tests.framework.overhead_bench``.

Runs a counting source through 0 modules, one trivial sync producer with
``run_on_loop``, one trivial ``async def`` producer and one trivial sync
producer, for 1 and 4 streams (2 threads, uvloop), and prints the median of
``--repeat`` runs in events/s (wall time of the job).
Numbers depend heavily on the machine and its load: repeat, and quote medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from actors.framework import Process, run_process
from tests.framework.mods import M


def make(kind: str, streams: int, events: int) -> Process:
    p = Process("BENCH")
    p.set_source(f"{M}:CountingSource", lumis=10, events=max(1, events // 10))
    p.options.streams = streams
    p.options.threads = 2
    if kind != "empty":
        cls = {"async": "TrivialAsync", "onloop": "TrivialOnLoop", "sync": "Trivial"}[kind]
        p.add_module("a", f"{M}:{cls}")
        p.add_path("p", ["a"])
    return p


def rate(kind: str, streams: int, events: int) -> float:
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        report = runner.run(run_process(make(kind, streams, events)))
    return report.events / report.wall_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'modules':>8} {'streams':>7} {'median ev/s':>12}  runs")
    for kind in ("empty", "onloop", "async", "sync"):
        for streams in (1, 4):
            events = args.events if kind != "sync" else args.events // 4
            rates = [rate(kind, streams, events) for _ in range(args.repeat)]
            runs = " ".join(f"{r:.0f}" for r in rates)
            print(f"{kind:>8} {streams:>7} {statistics.median(rates):>12.0f}  {runs}")


if __name__ == "__main__":
    main()
