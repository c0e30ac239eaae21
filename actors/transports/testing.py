"""The transport conformance suite, shipped so that any backend can run it.

Every built-in backend runs it (``tests/transports/test_conformance.py``); a
third-party backend registered under the ``actors.transports`` entry-point group
runs it the same way, from its own tests::

    from actors.transports.testing import check_link

    async def make_pair():                  # a fresh (server end, client end)
        listener = await listen("mine://...")
        client = await connect(listener.address)
        return await listener.accept(), client

    await check_link(make_pair)             # raises AssertionError naming the check

Each check is a pair of coroutine functions ``server_side(link)`` and
``client_side(link)`` run on the two ends of ONE fresh link: the end returned by
``listener.accept()`` and the end returned by ``connect()``. A side raises
(``AssertionError`` or a transport error) on a violation and returns normally
otherwise. No side closes its link before the other side is done with it,
except in the checks that are about closing. ``CHECKS`` lists them as
``(name, server_side, client_side)``; this module needs no pytest, so a runner
that puts the two ends in two processes (the mpiexec runner of the test suite)
calls each process's side with its own link.

Links must accept messages of at least :data:`MAX_MESSAGE_SIZE` bytes. The
checks hold the contract of :mod:`actors.transports._base`, including its
bounded-buffering rule (see :func:`backpressure_client`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import numpy as np

from ..errors import PeerLost
from ._base import Link

__all__ = ["CHECKS", "MAX_MESSAGE_SIZE", "Check", "Side", "check_link", "run_check"]

Side = Callable[[Link], Coroutine[Any, Any, None]]
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
    digest = hashlib.sha256(payload.data.cast("B")).digest()
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


# -- a recv cancelled at any point, even while a big message arrives, loses nothing ---

_MIDWAY = 32 << 20


def _pattern(size: int, seed: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return (np.arange(size, dtype=np.uint64) * 2654435761 + seed).astype(np.uint8)


async def cancelled_midway_server(link: Link) -> None:
    expected_tail = _pattern(_MIDWAY, 1)[-100:]
    for delay in (0.0, 0.001, 0.01, 0.05):
        await link.send(b"go")
        task = asyncio.ensure_future(link.recv())
        await asyncio.sleep(delay)
        task.cancel()
        try:
            header, bufs = await task
        except asyncio.CancelledError:
            header, bufs = await link.recv()
        assert header == b"big", f"after a cancelled recv the next one got {header[:40]!r}"
        data = np.frombuffer(memoryview(bufs[0]).cast("B"), np.uint8)
        assert data.size == _MIDWAY and np.array_equal(data[-100:], expected_tail)
    await link.send(b"done")


async def cancelled_midway_client(link: Link) -> None:
    big = _pattern(_MIDWAY, 1)
    for _ in range(4):
        await _expect(link, b"go")
        await link.send(b"big", [big])
    await _expect(link, b"done")


# -- close semantics ------------------------------------------------------------------


#: Messages the close check sends right before it closes (every one must arrive).
_BEFORE_CLOSE = 20


async def close_server(link: Link) -> None:
    for i in range(_BEFORE_CLOSE):
        await _expect(link, b"before-close %d" % i)
    (big,) = await _expect(link, b"big")
    assert _bytes(big) == b"\x01" * (1 << 20), "the 1 MiB message sent before close arrived altered"
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
    for i in range(_BEFORE_CLOSE):
        await link.send(b"before-close %d" % i)
    await link.send(b"big", [np.ones(1 << 20, np.uint8)])
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


# -- bounded buffering: a peer that does not read makes send wait --------------------

#: Messages and size of the backpressure check (128 MiB in all).
_BACKPRESSURE_COUNT = 2048
_BACKPRESSURE_SIZE = 64 << 10
#: How long the server of the backpressure check waits before it reads.
_BACKPRESSURE_PAUSE_S = 1.5


async def backpressure_server(link: Link) -> None:
    """Read nothing for a while, then everything; tell the client when reading began."""
    await _expect(link, b"start")
    await asyncio.sleep(_BACKPRESSURE_PAUSE_S)
    began = time.monotonic()
    for i in range(_BACKPRESSURE_COUNT):
        bufs = await _expect(link, b"%d" % i)
        assert len(memoryview(bufs[0]).cast("B")) == _BACKPRESSURE_SIZE
    await link.send(b"began:%r" % began)


async def backpressure_client(link: Link) -> None:
    """The contract's bounded-buffering rule.

    While the peer does not receive, a link accepts a bounded amount of data
    (socket buffers, a queue of at most ~1,000 messages, a bounded pool of
    segments): ``send`` then waits until the peer reads, and never fails or
    grows memory without bound for that reason. 128 MiB in 2,048 messages is
    past that bound on every backend, so the last send completes only after the
    peer began to read.
    """
    payload = np.ones(_BACKPRESSURE_SIZE, np.uint8)
    await link.send(b"start")
    for i in range(_BACKPRESSURE_COUNT):
        await link.send(b"%d" % i, [payload])
    last_send_done = time.monotonic()
    (began,) = await _expect_prefix(link, b"began:")
    assert last_send_done >= began, (
        f"{_BACKPRESSURE_COUNT} x {_BACKPRESSURE_SIZE} bytes were all accepted "
        f"{began - last_send_done:.2f} s before the peer read anything: unbounded buffering"
    )


async def _expect_prefix(link: Link, prefix: bytes) -> tuple[float]:
    header, _ = await link.recv()
    assert header.startswith(prefix), f"expected {prefix!r}..., got {header[:60]!r}"
    return (float(header[len(prefix) :]),)


# -- read-only buffers travel; strided ones are refused before anything is sent -------


def _readonly_buffers() -> list[Any]:
    readonly = np.arange(1000, dtype=np.float64)
    readonly.flags.writeable = False
    return [readonly, memoryview(b"immutable bytes"), bytearray(b"mutable"), b""]


def _strided_buffers() -> list[Any]:
    base = np.arange(4096, dtype=np.int32)
    return [base[::3], np.arange(12, dtype=np.int16).reshape(3, 4).T]


async def odd_buffers_server(link: Link) -> None:
    bufs = await _expect(link, b"readonly")
    expected = [bytes(memoryview(b).cast("B")) for b in _readonly_buffers()]
    assert [_bytes(b) for b in bufs] == expected, "read-only buffers arrived changed"
    await link.send(b"done")


async def odd_buffers_client(link: Link) -> None:
    """Buffers must be C-contiguous; read-only ones are fine (the contract).

    A strided or Fortran-ordered buffer raises ValueError before anything is
    sent, and the link stays usable.
    """
    for strided in _strided_buffers():
        try:
            await link.send(b"strided", [np.ones(4, np.uint8), strided])
        except ValueError:
            continue
        raise AssertionError(f"a non-C-contiguous buffer was accepted: {strided!r}")
    await link.send(b"readonly", _readonly_buffers())
    await _expect(link, b"done")


# -- send after close -----------------------------------------------------------------


async def send_after_close_server(link: Link) -> None:
    await _expect(link, b"closing")
    async with asyncio.timeout(5):  # PeerLost promptly, never a hang
        while True:
            try:
                await link.send(b"still there?", [np.zeros(1 << 16, np.uint8)])
                await asyncio.sleep(0.01)
            except PeerLost:
                return


async def send_after_close_client(link: Link) -> None:
    await link.send(b"closing")
    await link.close()
    try:
        await link.send(b"after-close")
    except PeerLost:
        return
    raise AssertionError("send on a closed link did not raise PeerLost")


# -- send_many: a batch arrives as one send each would --------------------------------

N_BATCH = 1500


def _batch() -> list[tuple[bytes, list[Any]]]:
    """600 header-only messages (more than one system call's share), then some
    with buffers among the rest, and an empty one."""
    batch: list[tuple[bytes, list[Any]]] = []
    for i in range(N_BATCH):
        buffers = [np.full(i, i % 251, np.uint8)] if i >= 600 and i % 100 == 0 else []
        batch.append((b"m%d" % i, buffers))
    batch.append((b"", []))
    return batch


async def send_many_server(link: Link) -> None:
    for i, (header, buffers) in enumerate(_batch()):
        got, bufs = await link.recv()
        assert got == header, f"message {i} of a batch arrived as {got[:60]!r}"
        assert [_bytes(b) for b in bufs] == [_bytes(b) for b in buffers], f"message {i}"
    await link.send(b"done")


async def send_many_client(link: Link) -> None:
    batch = _batch()
    await link.send_many(batch[:700])
    await link.send_many(batch[700:])
    await _expect(link, b"done")


CHECKS: list[Check] = [
    ("ordered_10000", ordered_server, ordered_client),
    ("shapes", shapes_server, shapes_client),
    ("big_256MiB", big_server, big_client),
    ("both_ways", both_ways_server, both_ways_client),
    ("concurrent_sends", concurrent_sends_server, concurrent_sends_client),
    ("concurrent_large_sends", concurrent_large_sends_server, concurrent_large_sends_client),
    ("cancelled_recv", cancelled_recv_server, cancelled_recv_client),
    ("cancelled_midway", cancelled_midway_server, cancelled_midway_client),
    ("close", close_server, close_client),
    ("backpressure", backpressure_server, backpressure_client),
    ("odd_buffers", odd_buffers_server, odd_buffers_client),
    ("send_after_close", send_after_close_server, send_after_close_client),
    ("send_many", send_many_server, send_many_client),
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


async def check_link(
    make_pair: Callable[[], Awaitable[tuple[Link, Link]]],
    *,
    skip: Sequence[str] = (),
) -> list[str]:
    """Run every check of :data:`CHECKS` on a fresh pair from ``make_pair()``.

    ``make_pair`` returns ``(server_end, client_end)`` of one new link. Checks
    named in ``skip`` are left out (say why in your test). Returns the names of
    the checks that ran; raises AssertionError naming the first failing check
    (the transport error it raised is chained).
    """
    ran = []
    for check in CHECKS:
        name = check[0]
        if name in skip:
            continue
        server, client = await make_pair()
        try:
            await run_check(check, server, client)
        except Exception as exc:
            raise AssertionError(f"conformance check {name!r} failed: {exc!r}") from exc
        ran.append(name)
    return ran
