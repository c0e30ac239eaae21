"""Shared pieces of the fuzz targets: example counts, one event loop, link pairs.

Example counts come from settings: ``ACTORS_FUZZ_EXAMPLES`` (default 300) for
the ordinary test of each target, ``ACTORS_FUZZ_SLOW_EXAMPLES`` (default, and
at least, 10,000) for its ``slow`` twin. Runs are derandomized (the same
examples every run) and keep no example database, so they are deterministic.
``--hypothesis-show-statistics`` prints how many examples each test ran.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from actors.transports import Capabilities, Link
from actors.transports.stream._link import StreamLink

T = TypeVar("T")

FAST_EXAMPLES = int(os.environ.get("ACTORS_FUZZ_EXAMPLES", "300"))
SLOW_EXAMPLES = max(10_000, int(os.environ.get("ACTORS_FUZZ_SLOW_EXAMPLES", "10000")))
#: pytest-timeout of a slow twin (10,000 examples on a loaded 2-core machine).
SLOW_TIMEOUT_S = 3600
#: Seconds within which every hostile input must have ended its link.
BOUND_S = 2.0
#: max_message_size of the fuzzed links (announcements above it must be refused).
FUZZ_MAX = 1 << 20
_CAPS = Capabilities(zero_copy_receive=True, device_memory=False, crosses_nodes=True)


def fuzz_settings(*, slow: bool) -> settings:
    """Hypothesis settings of a fuzz test (ordinary or slow twin)."""
    return settings(
        max_examples=SLOW_EXAMPLES if slow else FAST_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class LoopRunner:
    """One event loop for every example of a test module (closed by the module fixture)."""

    def __init__(self) -> None:
        self._runner = asyncio.Runner()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def close(self) -> None:
        self._runner.close()


def timed(coro: Coroutine[Any, Any, T], runner: LoopRunner) -> tuple[T, float]:
    """Run ``coro`` on ``runner``; (result, seconds taken)."""
    start = time.monotonic()
    result = runner.run(coro)
    return result, time.monotonic() - start


def stream_pair(
    family: int = socket.AF_UNIX, make: Callable[[socket.socket, str], Link] | None = None
) -> tuple[Link, socket.socket]:
    """A real stream link on one end of a socketpair, and the raw other end (blocking)."""
    a, b = socket.socketpair(family)
    a.setblocking(False)
    if make is None:
        link: Link = StreamLink(a, "fuzz-peer", FUZZ_MAX, _CAPS)
    else:
        link = make(a, "fuzz-peer")
    return link, b


async def sentinel_round_trip(pair: tuple[Link, Link]) -> None:
    """Another link of the same process still carries a message both ways."""
    a, b = pair
    async with asyncio.timeout(BOUND_S):
        await a.send(b"ping", [b"sentinel"])
        header, bufs = await b.recv()
        assert (header, bytes(bufs[0])) == (b"ping", b"sentinel")
        await b.send(b"pong")
        assert (await a.recv())[0] == b"pong"


async def linked_pair() -> tuple[Link, Link]:
    """Two StreamLinks joined by a socketpair (the sentinel)."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return (
        StreamLink(a, "sentinel-a", FUZZ_MAX, _CAPS),
        StreamLink(b, "sentinel-b", FUZZ_MAX, _CAPS),
    )


def open_fds() -> set[str]:
    """This process's open sockets, pipes and memory files ("number->target")."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(("socket:", "pipe:", "/memfd:")):
            out.add(f"{fd}->{target}")
    return out
