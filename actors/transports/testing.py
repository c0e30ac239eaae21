"""Backend-independent two-sided link checks (the transport conformance suite).

Each check is a pair of coroutine functions ``server_side(link)`` and
``client_side(link)`` run on the two ends of ONE fresh link: the end returned by
``listener.accept()`` and the end returned by ``connect()``. A side raises
(``AssertionError`` or a transport error) on a violation and returns normally
otherwise. No side closes its link before the other side is done with it,
except in the checks that are about closing; the runner closes both links
afterwards (closing twice is allowed).

``CHECKS`` lists them as ``(name, server_side, client_side)``. This module
imports no pytest fixtures, so other launchers (the mpiexec runner in
tests/transports/mpi_conformance.py) run the same checks in two processes:
each process calls its side with its own link. In one process::

    await run_check(check, server_link, client_link)

Links must accept messages of at least :data:`MAX_MESSAGE_SIZE` bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from actors.errors import PeerLost
from actors.transports import Link

Side = Callable[[Link], Awaitable[None]]
Check = tuple[str, Side, Side]

#: Smallest max_message_size a link must allow for these checks.
MAX_MESSAGE_SIZE = 512 << 20
N_ORDERED = 10_000
BIG = 256 << 20
CHECK_TIMEOUT_S = 60.0


def _bytes(buf: Any) -> bytes:
    return bytes(memoryview(buf).cast("B"))


async def _expect(link: Link, header: bytes) -> list[Any]:
    got, bufs = await link.recv()
    assert got == header, f"expected header {header!r}, got {got[:60]!r}"
    return bufs


# -- 10,000 messages arrive in order --------------------------------------------------


async def ordered_server(link: Link) -> None:
    for i in range(N_ORDERED):
        bufs = await _expect(link, b"seq")
        (value,) = np.frombuffer(bufs[0], np.int64)
        assert value == i, f"message {i} arrived as number {value}"
    await link.send(b"done")


async def ordered_client(link: Link) -> None:
    for i in range(N_ORDERED):
        await link.send(b"seq", [np.array([i], np.int64)])
    await _expect(link, b"done")


# -- empty header, zero buffers, empty buffers, 64 buffers, a long header -------------


async def shapes_server(link: Link) -> None:
    header, bufs = await link.recv()
    assert (header, bufs) == (b"", []), f"empty message arrived as {header!r}, {bufs!r}"
    header, bufs = await link.recv()
    assert header == b"" and [len(memoryview(b)) for b in bufs] == [0, 0]
    bufs = await _expect(link, b"64")
    assert len(bufs) == 64, f"64 buffers arrived as {len(bufs)}"
    for i, b in enumerate(bufs):
        expected = np.full(i * 1000 + 1, i, np.uint8).tobytes()
        assert _bytes(b) == expected, f"buffer {i} of 64 differs"
    header, bufs = await link.recv()
    assert header == bytes(range(256)) * 4096 and _bytes(bufs[0]) == b"tail"
    await link.send(b"done")


async def shapes_client(link: Link) -> None:
    await link.send(b"", [])
    await link.send(b"", [b"", np.empty(0, np.float64)])
    await link.send(b"64", [np.full(i * 1000 + 1, i, np.uint8) for i in range(64)])
    await link.send(bytes(range(256)) * 4096, [b"tail"])  # a 1 MiB header
    await _expect(link, b"done")


# -- a 256 MiB message ----------------------------------------------------------------


def _big_payload() -> np.ndarray:
    return np.arange(BIG // 8, dtype=np.uint64)


async def big_server(link: Link) -> None:
    payload = _big_payload()
    digest = hashlib.sha256(payload).digest()
    await link.send(b"big", [payload, np.arange(10, dtype=np.uint8)])
    del payload
    await _expect(link, b"digest:" + digest)


async def big_client(link: Link) -> None:
    bufs = await _expect(link, b"big")
    assert len(memoryview(bufs[0]).cast("B")) == BIG
    assert _bytes(bufs[1]) == bytes(range(10))
    digest = hashlib.sha256(memoryview(bufs[0]).cast("B")).digest()
    del bufs
    await link.send(b"digest:" + digest)


# -- both directions at once ----------------------------------------------------------


async def _both_ways(link: Link, me: bytes, other: bytes, n: int = 2000) -> None:
    async def sender() -> None:
        for i in range(n):
            size = 100_000 if i % 100 == 0 else 16
            await link.send(me, [np.full(size, i % 251, np.uint8)])

    async def receiver() -> None:
        for i in range(n):
            bufs = await _expect(link, other)
            arr = np.frombuffer(bufs[0], np.uint8)
            assert arr.size == (100_000 if i % 100 == 0 else 16) and arr[0] == i % 251

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sender())
        tg.create_task(receiver())
    # make sure the peer is done too before either side may close
    await link.send(b"bye")
    await _expect(link, b"bye")


async def both_ways_server(link: Link) -> None:
    await _both_ways(link, b"from-server", b"from-client")


async def both_ways_client(link: Link) -> None:
    await _both_ways(link, b"from-client", b"from-server")


# -- concurrent senders on one link: messages are never interleaved ------------------


async def concurrent_sends_server(link: Link) -> None:
    seen: dict[int, int] = {}
    for _ in range(8 * 200):
        header, bufs = await link.recv()
        task, index = int(header[:2]), int(header[3:])
        assert index == seen.get(task, -1) + 1, f"task {task} out of order"
        seen[task] = index
        assert _bytes(bufs[0]) == header * 100
    await link.send(b"done")


async def concurrent_sends_client(link: Link) -> None:
    async def one(task: int) -> None:
        for index in range(200):
            header = b"%02d:%d" % (task, index)
            await link.send(header, [header * 100])

    async with asyncio.TaskGroup() as tg:
        for task in range(8):
            tg.create_task(one(task))
    await _expect(link, b"done")


# -- concurrent large senders: partial writes of one frame never interleave ----------

_LARGE = 2 << 20


async def concurrent_large_sends_server(link: Link) -> None:
    for _ in range(4 * 8):
        header, bufs = await link.recv()
        task, index = int(header[:2]), int(header[3:])
        data = np.frombuffer(bufs[0], dtype=np.uint8)
        assert data.size == _LARGE, f"message {header!r}: {data.size} bytes"
        assert bool((data == (task * 8 + index) % 251).all()), f"message {header!r} corrupted"
    await link.send(b"done")


async def concurrent_large_sends_client(link: Link) -> None:
    async def one(task: int) -> None:
        for index in range(8):
            payload = np.full(_LARGE, (task * 8 + index) % 251, dtype=np.uint8)
            await link.send(b"%02d:%d" % (task, index), [payload])

    async with asyncio.TaskGroup() as tg:
        for task in range(4):
            tg.create_task(one(task))
    await _expect(link, b"done")


# -- a cancelled recv loses nothing ---------------------------------------------------


async def cancelled_recv_server(link: Link) -> None:
    pending = asyncio.ensure_future(link.recv())
    await asyncio.sleep(0.05)
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
    await link.send(b"go")
    await _expect(link, b"after-cancel")
    await link.send(b"done")


async def cancelled_recv_client(link: Link) -> None:
    await _expect(link, b"go")
    await link.send(b"after-cancel")
    await _expect(link, b"done")


# -- close semantics ------------------------------------------------------------------


async def close_server(link: Link) -> None:
    await _expect(link, b"last")
    try:
        got = await link.recv()
    except PeerLost:
        pass
    else:
        raise AssertionError(f"recv after the peer closed returned {got[0][:40]!r}")
    try:
        await asyncio.wait_for(link.send(b"x", [np.zeros(1 << 20, np.uint8)]), 5)
        await asyncio.wait_for(link.send(b"x", [np.zeros(1 << 20, np.uint8)]), 5)
    except PeerLost:
        return
    # a send may be buffered by the OS once; a recv must tell the truth now
    try:
        await link.recv()
    except PeerLost:
        return
    raise AssertionError("link still usable after the peer closed it")


async def close_client(link: Link) -> None:
    await link.send(b"last")
    await link.close()
    await link.close()  # idempotent
    assert link.closed
    for op in (link.recv(), link.send(b"after-close")):
        try:
            await op
        except PeerLost:
            continue
        raise AssertionError("a closed link accepted an operation")


CHECKS: list[Check] = [
    ("ordered_10000", ordered_server, ordered_client),
    ("shapes", shapes_server, shapes_client),
    ("big_256MiB", big_server, big_client),
    ("both_ways", both_ways_server, both_ways_client),
    ("concurrent_sends", concurrent_sends_server, concurrent_sends_client),
    ("concurrent_large_sends", concurrent_large_sends_server, concurrent_large_sends_client),
    ("cancelled_recv", cancelled_recv_server, cancelled_recv_client),
    ("close", close_server, close_client),
]


async def run_check(check: Check, server: Link, client: Link) -> None:
    """Run both sides of ``check`` concurrently on two ends of one link (one process).

    Raises the first side's failure (an ``ExceptionGroup`` from the TaskGroup is
    unwrapped when it holds one error); closes both links in any case.
    """
    _, server_side, client_side = check
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), asyncio.TaskGroup() as tg:
            tg.create_task(server_side(server))
            tg.create_task(client_side(client))
    except ExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        await client.close()
        await server.close()
