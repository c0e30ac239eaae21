"""Worker of the ``actors`` part: an echo actor and the client that measures it.

::

    python -m benchmarks.workers.actor_echo serve URL          # prints {"ready": address}
    python -m benchmarks.workers.actor_echo client CONFIG ADDRESS  # prints {"series": [...]}

The server process serves an ActorSystem at ``URL`` with two actors: ``echo``
(replies with the message) and ``sink`` (keeps nothing; answers ``None``). The
client process (another ActorSystem) measures, through remote refs:

- ``ask 8 B``: round trips of an 8-byte array (median and p99 microseconds);
- ``ask 64 MiB``: round trips of a 64 MiB float64 array echoed back (the reply is
  a fresh array in the client); GB/s = 64 MiB / median round trip;
- ``tell 8 B`` / ``tell 64 MiB``: one-way tells, finished by an ask (messages/s
  and GB/s).

CONFIG is JSON: ``{"rounds": {"small": N, "large": N, "tells": N, "large_tells": N}}``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import time
from typing import Any

import numpy as np

from actors import Actor, ActorRef, ActorSystem

MiB = 1 << 20
LARGE = 64 * MiB


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


class Sink(Actor):
    async def receive(self, message: Any) -> Any:
        return None


async def serve(url: str) -> None:
    """Serve ``echo`` and ``sink`` at ``url`` until SIGTERM or SIGINT, then close cleanly
    (an MPI process that is killed leaves its MPICH segment in /dev/shm)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ActorSystem("bench-actors-server") as system:
        system.spawn(Echo, name="echo")
        system.spawn(Sink, name="sink", mailbox_size=64)
        print(json.dumps({"ready": await system.serve(url)}), flush=True)
        await stop.wait()


async def _asks(ref: ActorRef, message: Any, rounds: int) -> list[float]:
    await ref.ask(message, timeout=60)  # warm-up (connection, caches, segments)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        back = await ref.ask(message, timeout=60)
        times.append(time.perf_counter() - start)
        del back
    return times


async def _tells(ref: ActorRef, message: Any, count: int) -> float:
    await ref.ask(message, timeout=60)
    start = time.perf_counter()
    for _ in range(count):
        await ref.tell(message)
    await ref.ask(None, timeout=60)  # every tell processed
    return time.perf_counter() - start


def _ask_record(what: str, size: int, times: list[float]) -> dict[str, Any]:
    median = statistics.median(times)
    p99 = sorted(times)[min(len(times) - 1, int(len(times) * 0.99))]
    return {
        "what": what,
        "bytes": size,
        "rounds": len(times),
        "median_us": median * 1e6,
        "p99_us": p99 * 1e6,
        "GB_per_s": size / median / 1e9,
    }


async def client(config: dict[str, Any], address: str) -> list[dict[str, Any]]:
    rounds = config.get("rounds", {})
    small, large = np.zeros(1, np.float64), np.arange(LARGE // 8, dtype=np.float64)
    async with ActorSystem("bench-actors-client") as system:
        echo = await system.remote(address, "echo", timeout=60)
        sink = await system.remote(address, "sink", timeout=60)
        out = [
            _ask_record("ask 8 B", 8, await _asks(echo, small, rounds.get("small", 2000))),
            _ask_record("ask 64 MiB", LARGE, await _asks(echo, large, rounds.get("large", 10))),
        ]
        for what, msg, count in (
            ("tell 8 B", small, rounds.get("tells", 5000)),
            ("tell 64 MiB", large, rounds.get("large_tells", 10)),
        ):
            elapsed = await _tells(sink, msg, count)
            size = msg.nbytes
            out.append(
                {
                    "what": what,
                    "bytes": size,
                    "rounds": count,
                    "per_s": count / elapsed,
                    "GB_per_s": count * size / elapsed / 1e9,
                }
            )
    return out


def main(argv: list[str]) -> int:
    try:
        if argv[0] == "serve":
            asyncio.run(serve(argv[1]))
            return 0
        series = asyncio.run(client(json.loads(argv[1]), argv[2]))
    except Exception as exc:  # report, so the driver shows why
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"series": series}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
