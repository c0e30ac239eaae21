"""Per-message cost of the actor core: local tell/ask, remote ask round trips.

    python benchmarks/actor_core.py                       # local + inproc, both loops
    python benchmarks/actor_core.py --remote tcp shm      # + two processes over tcp, shm
    python benchmarks/actor_core.py --repeat 7 --json out.json

Every figure is the median of ``--repeat`` runs (the spread is printed too):
machines shared with other work are noisy. ``--serve URL`` is the server half
of the two-process measurement (started by this script itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from actors import Actor, ActorRef, ActorSystem

REPO = Path(__file__).resolve().parent.parent
LISTEN = {"tcp": "tcp://127.0.0.1:0", "shm": "shm://bench-actor-core", "inproc": "inproc://bench"}


class Sink(Actor):
    async def receive(self, message: Any) -> Any:
        return message


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def rate(op: Callable[[int], Awaitable[None]], n: int, repeat: int) -> tuple[float, float]:
    """Median and min/max spread of n/elapsed over ``repeat`` runs of op(n)."""
    await op(min(n, 1000))  # warm-up
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        await op(n)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), (max(rates) - min(rates)) / statistics.median(rates)


def tells(ref: ActorRef) -> Callable[[int], Awaitable[None]]:
    async def op(n: int) -> None:
        for i in range(n):
            await ref.tell(i)
        await ref.ask(None)  # everything processed

    return op


def asks(ref: ActorRef, timeout: float | None) -> Callable[[int], Awaitable[None]]:
    async def op(n: int) -> None:
        for i in range(n):
            await ref.ask(i, timeout=timeout)

    return op


async def local(n: int, repeat: int) -> dict[str, tuple[float, float]]:
    async with ActorSystem("bench") as system:
        ref = system.spawn(Sink, name="sink", mailbox_size=1000)
        out = {
            "local tell /s": await rate(tells(ref), n, repeat),
            "local ask /s (timeout=5)": await rate(asks(ref, 5.0), n // 4, repeat),
            "local ask /s (no timeout)": await rate(asks(ref, None), n // 4, repeat),
        }
        server = await ActorSystem("bench-server").start()
        try:
            server.spawn(Sink, name="sink")
            remote = await system.remote(await server.serve("inproc://bench-core"), "sink")
            out["inproc remote ask /s"] = await rate(asks(remote, 5.0), n // 20, repeat)
            out["inproc remote tell /s"] = await rate(tells(remote), n // 4, repeat)
        finally:
            await server.shutdown()
    return out


async def two_process(scheme: str, n: int, repeat: int, loop: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--serve", LISTEN[scheme], "--loop", loop]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None
        address = (await proc.stdout.readline()).decode().strip()
        async with ActorSystem("bench-client") as system:
            ref = await system.remote(address, "sink", timeout=30)
            return {
                f"{scheme} 2-process ask /s": await rate(asks(ref, 5.0), n // 20, repeat),
                f"{scheme} 2-process tell /s": await rate(tells(ref), n // 4, repeat),
            }
    finally:
        proc.kill()
        await proc.wait()


async def serve(url: str) -> None:
    async with ActorSystem("bench-server") as system:
        system.spawn(Sink, name="sink")
        print(await system.serve(url), flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="tells per run (asks: fewer)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loops", nargs="+", default=["asyncio", "uvloop"])
    parser.add_argument("--remote", nargs="*", default=[], help="schemes for 2 processes")
    parser.add_argument("--json", help="write results here")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="uvloop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
            runner.run(serve(args.serve))
        return
    results: dict[str, dict[str, Any]] = {}
    for loop in args.loops:
        with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
            res = runner.run(local(args.n, args.repeat))
            for scheme in args.remote:
                res.update(runner.run(two_process(scheme, args.n, args.repeat, loop)))
        results[loop] = res
        for what, (median, spread) in res.items():
            print(f"{loop:8} {what:32} {median:12,.0f}   (spread {spread:.0%})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
