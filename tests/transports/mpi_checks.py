"""Two-sided link checks run over ``mpi://`` by tests/transports/mpi_conformance.py.

Each check is a pair ``(server_side(link), client_side(link))`` of coroutines
that run in two different MPI processes on the two ends of one fresh link and
raise AssertionError on a violation. The shared conformance suite
(tests/transports/conformance.py) is used instead when it exists; these are
the MPI-specific checks (sizes and paths of the MPI framing) that run in any
case.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from actors.errors import PeerLost, ProtocolError
from actors.transports import Link

Side = Callable[[Link], Awaitable[None]]
Check = tuple[str, Side, Side]


def emit(row: dict[str, Any]) -> None:
    """Report one result row: a JSON line appended to ``$MPI_RESULTS_DIR/<pid>.jsonl``
    (lines of several ranks on one mpiexec stdout can interleave), or stdout."""
    line = json.dumps(row)
    folder = os.environ.get("MPI_RESULTS_DIR")
    if folder is None:
        print(line, flush=True)
        return
    with open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a") as f:
        f.write(line + "\n")


def _pattern(size: int, seed: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return (np.arange(size, dtype=np.uint64) * 2654435761 + seed).astype(np.uint8)


async def _ack(link: Link) -> None:
    header, _ = await link.recv()
    assert header == b"ack", header


# -- ordering ------------------------------------------------------------------------


async def ordering_server(link: Link) -> None:
    for i in range(300):
        header, bufs = await link.recv()
        assert header == str(i).encode(), (header, i)
        assert bytes(bufs[0]) == i.to_bytes(4, "little")
    await link.send(b"ack")


async def ordering_client(link: Link) -> None:
    for i in range(300):
        await link.send(str(i).encode(), [i.to_bytes(4, "little")])
    await _ack(link)


# -- sizes -----------------------------------------------------------------------------

LARGE = 256 << 20


async def large_server(link: Link) -> None:
    header, bufs = await link.recv()
    assert header == b"large"
    assert len(bufs) == 1 and bufs[0].nbytes == LARGE
    got = np.frombuffer(bufs[0], np.uint8)
    assert np.array_equal(got[:: 1 << 16], _pattern(LARGE, 7)[:: 1 << 16])
    assert np.array_equal(got[-4096:], _pattern(LARGE, 7)[-4096:])
    await link.send(b"ack")


async def large_client(link: Link) -> None:
    await link.send(b"large", [_pattern(LARGE, 7)])
    await _ack(link)


async def empty_server(link: Link) -> None:
    assert await link.recv() == (b"", [])
    header, bufs = await link.recv()
    assert header == b"" and [b.nbytes for b in bufs] == [0, 0, 0]
    header, bufs = await link.recv()
    assert header == b"h" and [b.nbytes for b in bufs] == [0]
    await link.send(b"ack")


async def empty_client(link: Link) -> None:
    await link.send(b"")
    await link.send(b"", [b"", np.empty(0, np.uint8), bytearray()])
    await link.send(b"h", [b""])
    await _ack(link)


SIZES = [0, 1, 7, 255, 256, 257, 4096, 4097, 65536, 1 << 20] * 6 + [3, 0, 100, 99999]


async def many_buffers_server(link: Link) -> None:
    header, bufs = await link.recv()
    assert header == b"many" and len(bufs) == len(SIZES) == 64
    for i, (buf, size) in enumerate(zip(bufs, SIZES, strict=True)):
        assert np.array_equal(np.frombuffer(buf, np.uint8), _pattern(size, i)), i
    await link.send(b"ack")


async def many_buffers_client(link: Link) -> None:
    await link.send(b"many", [_pattern(size, i) for i, size in enumerate(SIZES)])
    await _ack(link)


async def long_header_server(link: Link) -> None:
    header, bufs = await link.recv()
    assert header == bytes(_pattern(100_000, 3)) and bytes(bufs[0]) == b"tail"
    await link.send(b"ack")


async def long_header_client(link: Link) -> None:
    await link.send(bytes(_pattern(100_000, 3)), [b"tail"])
    await _ack(link)


# -- concurrency -----------------------------------------------------------------------


async def _exchange(link: Link, me: bytes, other: bytes) -> None:
    async def sender() -> None:
        for i in range(100):
            await link.send(me + str(i).encode(), [_pattern(3000 * (i % 5), i)])

    async def receiver() -> None:
        for i in range(100):
            header, bufs = await link.recv()
            assert header == other + str(i).encode(), header
            assert np.array_equal(np.frombuffer(bufs[0], np.uint8), _pattern(3000 * (i % 5), i))

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sender())
        tg.create_task(receiver())


async def both_ways_server(link: Link) -> None:
    await _exchange(link, b"s", b"c")


async def both_ways_client(link: Link) -> None:
    await _exchange(link, b"c", b"s")


async def concurrent_sends_server(link: Link) -> None:
    seen: dict[int, int] = {}
    for _ in range(10 * 30):
        header, bufs = await link.recv()
        task, seq = (int(x) for x in header.split(b":"))
        assert seen.get(task, -1) == seq - 1, (task, seq)
        assert np.array_equal(np.frombuffer(bufs[0], np.uint8), _pattern(10_000 + seq, task))
        seen[task] = seq
    await link.send(b"ack")


async def concurrent_sends_client(link: Link) -> None:
    async def one(task: int) -> None:
        for seq in range(30):
            await link.send(f"{task}:{seq}".encode(), [_pattern(10_000 + seq, task)])

    async with asyncio.TaskGroup() as tg:
        for task in range(10):
            tg.create_task(one(task))
    await _ack(link)


async def cancelled_recv_server(link: Link) -> None:
    # A recv cancelled at any point loses nothing: the next recv gets the message.
    for delay in (0.0, 0.001, 0.01, 0.05):
        await link.send(b"go")
        task = asyncio.ensure_future(link.recv())
        await asyncio.sleep(delay)
        task.cancel()
        try:
            header, bufs = await task
        except asyncio.CancelledError:
            header, bufs = await link.recv()
        assert header == b"big" and bufs[0].nbytes == 32 << 20
        assert np.array_equal(np.frombuffer(bufs[0], np.uint8)[-100:], _pattern(32 << 20, 1)[-100:])
    await link.send(b"ack")


async def cancelled_recv_client(link: Link) -> None:
    big = _pattern(32 << 20, 1)
    for _ in range(4):
        assert (await link.recv())[0] == b"go"
        await link.send(b"big", [big])
    await _ack(link)


async def cancel_race_server(link: Link) -> None:
    # Deterministic form of the race behind a former "header message of 0 bytes"
    # ProtocolError: the poller completes the header receive, and the recv is
    # cancelled before its task resumes. Nothing may be lost.
    from actors.transports.mpi._runtime import poller

    for size in (8, 1 << 20):
        task = asyncio.ensure_future(link.recv())
        for _ in range(10_000):  # until the recv waits in the poller
            probe = link.inbox.pending_wait  # type: ignore[attr-defined]
            if probe is not None:
                break
            await asyncio.sleep(0.001)
        assert probe is not None, "recv did not hand its wait to the poller"
        await link.send(b"go")
        deadline = time.monotonic() + 10.0
        while not probe.done() and time.monotonic() < deadline:
            poller().poll_once()  # the loop does not run: the recv task cannot resume
        assert probe.done(), "the peer's message did not arrive within 10 s"
        task.cancel()
        (first,) = await asyncio.gather(task, return_exceptions=True)
        header, bufs = await link.recv() if isinstance(first, asyncio.CancelledError) else first
        assert header == b"race", header
        assert np.array_equal(np.frombuffer(bufs[0], np.uint8), _pattern(size, 3))
    await link.send(b"ack")


async def cancel_race_client(link: Link) -> None:
    for size in (8, 1 << 20):
        assert (await link.recv())[0] == b"go"
        await link.send(b"race", [_pattern(size, 3)])
    await _ack(link)


# -- errors and close ------------------------------------------------------------------


async def close_server(link: Link) -> None:
    assert (await link.recv())[0] == b"last words"
    try:
        await link.recv()
    except PeerLost:
        pass
    else:
        raise AssertionError("recv after the peer closed did not raise PeerLost")
    try:
        for _ in range(100):  # the goodbye may take a moment to arrive
            await link.send(b"anyone?")
            await asyncio.sleep(0.05)
    except PeerLost:
        pass
    else:
        raise AssertionError("send to a closed peer did not raise PeerLost")


async def close_client(link: Link) -> None:
    await link.send(b"last words")
    await link.close()
    await link.close()  # idempotent
    assert link.closed
    try:
        await link.recv()
    except PeerLost:
        return
    raise AssertionError("recv after our own close did not raise PeerLost")


async def oversized_server(link: Link) -> None:
    assert (await link.recv())[0] == b"still fine"
    await link.send(b"ack")


async def oversized_client(link: Link) -> None:
    try:
        await link.send(b"x", [np.zeros(link._max + 1, np.uint8)])  # type: ignore[attr-defined]
    except ProtocolError:
        pass
    else:
        raise AssertionError("message above max_message_size was sent")
    await link.send(b"still fine")
    await _ack(link)


CHECKS: list[Check] = [
    ("ordering", ordering_server, ordering_client),
    ("large_256MiB", large_server, large_client),
    ("empty", empty_server, empty_client),
    ("many_buffers_64", many_buffers_server, many_buffers_client),
    ("long_header", long_header_server, long_header_client),
    ("both_ways", both_ways_server, both_ways_client),
    ("concurrent_sends", concurrent_sends_server, concurrent_sends_client),
    ("cancelled_recv", cancelled_recv_server, cancelled_recv_client),
    ("cancel_race", cancel_race_server, cancel_race_client),
    ("oversized", oversized_server, oversized_client),
    ("close", close_server, close_client),
]

#: max_message_size the conformance script uses (the oversized check needs a small one)
MAX_MESSAGE_SIZE = 512 << 20
