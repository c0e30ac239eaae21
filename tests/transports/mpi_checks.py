"""Two-sided link checks run over ``mpi://`` by tests/transports/mpi_conformance.py.

Each check is a pair ``(server_side(link), client_side(link))`` of coroutines
that run in two different MPI processes on the two ends of one fresh link and
raise AssertionError on a violation. The shared suite
(:mod:`actors.transports.testing`) runs first; these are the two checks that
only make sense over MPI (the poller's header receive racing a cancel, the
size check before any MPI call, the loop spinner's kicks and header polls, and
the side lane's order with the MPI lane while a receiver naps).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from actors.errors import ProtocolError
from actors.transports import Link

Side = Callable[[Link], Awaitable[None]]

#: max_message_size the conformance script uses (the oversized check sends one byte more)
MAX_MESSAGE_SIZE = 512 << 20
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


def _race_message() -> tuple[bytes, tuple[int, int]]:
    """The header and buffer sizes of the cancel race: a header longer than
    SIDE_LANE_MAX (the message stays off the side lane), the first buffer
    inlined in its header message, the second sent as its own MPI message."""
    from actors.transports.mpi._frame import INLINE, SMALL
    from actors.transports.mpi._sidelane import SIDE_LANE_MAX

    header = b"race" + b"." * SIDE_LANE_MAX
    inlined = SMALL // 2
    assert len(header) + inlined + 1024 <= INLINE, "the first buffer must stay inlined"
    return header, (inlined, 1 << 20)


RACE_HEADER, RACE_SIZES = _race_message()


def _pattern(size: int, seed: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return (np.arange(size, dtype=np.uint64) * 2654435761 + seed).astype(np.uint8)


async def _ack(link: Link) -> None:
    header, _ = await link.recv()
    assert header == b"ack", header


# -- MPI-specific: the poller completes a header receive, then the recv is cancelled --


async def cancel_race_server(link: Link) -> None:
    # Deterministic form of the race behind a former "header message of 0 bytes"
    # ProtocolError: the poller completes the header receive, and the recv is
    # cancelled before its task resumes. Nothing may be lost. The sizes keep the
    # message off the side lane (which a napping receiver's peer uses for small
    # messages): a header longer than SIDE_LANE_MAX with one buffer inlined in its
    # header message, then one sent as its own MPI message.
    from actors.transports.mpi._runtime import poller

    for size in RACE_SIZES:
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
        assert header == RACE_HEADER, header[:16]
        assert np.array_equal(np.frombuffer(bufs[0], np.uint8), _pattern(size, 3))
    await link.send(b"ack")


async def cancel_race_client(link: Link) -> None:
    for size in RACE_SIZES:
        assert (await link.recv())[0] == b"go"
        await link.send(RACE_HEADER, [_pattern(size, 3)])
    await _ack(link)


# -- MPI-specific: a message above max_message_size is refused before any MPI call --


async def oversized_server(link: Link) -> None:
    assert (await link.recv())[0] == b"still fine"
    await link.send(b"ack")


async def oversized_client(link: Link) -> None:
    try:
        await link.send(b"x", [np.zeros(MAX_MESSAGE_SIZE + 1, np.uint8)])
    except ProtocolError:
        pass
    else:
        raise AssertionError("message above max_message_size was sent")
    await link.send(b"still fine")
    await _ack(link)


# -- the loop spinner: mpi:// traffic keeps the event loop awake, then lets it sleep --


async def _ping_pong_spinning(link: Link, first: bool) -> None:
    """50 round trips with ``ACTORS_LOOP_SPIN_US`` at 300 µs on this loop: the header
    waits poll while the loop is awake; every message arrives; the loop is awake right
    after the traffic and asleep 20 ms later."""
    from actors.transports import loop_spinner

    spinner = loop_spinner(asyncio.get_running_loop())
    saved, spinner.seconds = spinner.seconds, 300e-6
    try:
        for i in range(50):
            if first:
                await link.send(b"%d" % i, [_pattern(i * 100, i)])
            header, bufs = await link.recv()
            assert header == b"%d" % i, header
            assert bytes(bufs[0]) == _pattern(i * 100, i).tobytes()
            if not first:
                await link.send(header, bufs)
        assert spinner.spinning, "traffic did not keep the loop awake"
        await asyncio.sleep(0.02)
        assert not spinner.spinning, "the loop stayed awake on a quiet link"
    finally:
        spinner.seconds = saved


async def loop_spin_server(link: Link) -> None:
    await _ping_pong_spinning(link, first=False)
    await _ack(link)


async def loop_spin_client(link: Link) -> None:
    await _ping_pong_spinning(link, first=True)
    await link.send(b"ack")


# -- the side lane: small messages to a napping receiver, in order with the MPI lane --

#: sizes of the burst: side lane (inlined, up to 32 KiB), MPI lane (inlined but longer than
#: the side lane takes: a RACE_HEADER; own MPI messages), and a few side-lane messages
#: behind each
_BURST = [16, 200, 100_000, 8, 0, RACE_SIZES[0], 64, 1 << 20, 1, 32, 32 << 10, 8] * 4


def _burst_header(i: int, size: int) -> bytes:
    """The header of burst message ``i``: padded past the side lane's limit for the
    inlined buffer meant to go over MPI."""
    return b"%d" % i + (RACE_HEADER if size == RACE_SIZES[0] else b"")


async def side_lane_server(link: Link) -> None:
    """Wait in the poller's naps (the peer is told so), then receive a burst of
    mixed sizes: every message in order and intact, some of them over the side lane;
    a recv cancelled while it waits loses nothing."""
    task = asyncio.ensure_future(link.recv())
    for _ in range(10_000):  # until the recv waits in the poller (and told the peer)
        if link.inbox.pending_wait is not None:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.001)
    await link.send(b"go")
    got = [await task]
    while len(got) < len(_BURST):
        waiting = asyncio.ensure_future(link.recv())
        await asyncio.sleep(0)
        if len(got) % 5 == 0 and not waiting.done():
            waiting.cancel()  # nothing may be lost by a cancelled recv
        result = await asyncio.gather(waiting, return_exceptions=True)
        if not isinstance(result[0], asyncio.CancelledError):
            got.append(result[0])
    for i, (size, (header, bufs)) in enumerate(zip(_BURST, got, strict=True)):
        assert header == _burst_header(i, size), (i, header[:16])
        assert bytes(bufs[0]) == _pattern(size, i).tobytes(), (i, size)
    delivered = link._side_lane.delivered  # type: ignore[attr-defined]
    assert delivered > 0, "no message took the side lane"
    await _waits_for_the_ring(link)
    await link.send(b"ack")


async def _waits_for_the_ring(link: Link) -> None:
    """Told the peer long enough ago that we nap: a recv waits for its ring, not in
    the poller, and the ring of a message over MPI and a side-lane message end it."""
    from actors.settings import MPI_SHORT_NAPS_S

    task = asyncio.ensure_future(link.recv())
    for _ in range(10_000):  # until the recv naps in the poller and told the peer so
        if link.inbox.pending_wait is not None:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.001)
    await link.send(b"ring")
    assert (await task)[0] == b"ready"
    await asyncio.sleep(MPI_SHORT_NAPS_S.get() + 0.05)  # the peer has read that we nap
    wait = link._header_wait  # type: ignore[attr-defined]
    for size in (1 << 20, 32 << 10, 8):
        task = asyncio.ensure_future(link.recv())
        for _ in range(5000):
            if wait._bell is not None:
                break
            await asyncio.sleep(0.001)
        assert wait._bell is not None, "the recv did not wait for the ring"
        assert link.inbox.pending_wait is None  # type: ignore[attr-defined]
        await link.send(b"ring %d" % size)
        header, bufs = await task
        assert header == b"rang %d" % size, header
        assert bytes(bufs[0]) == _pattern(size, 7).tobytes()


async def side_lane_client(link: Link) -> None:
    assert (await link.recv())[0] == b"go"
    for _ in range(5000):  # the peer's "napping" comes on the side channel
        if link._header_wait.peer_naps:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.001)
    assert link._header_wait.peer_naps, "the peer never said it naps"  # type: ignore[attr-defined]
    for i, size in enumerate(_BURST):
        await link.send(_burst_header(i, size), [_pattern(size, i)])
    assert (await link.recv())[0] == b"ring"
    await link.send(b"ready")
    for size in (1 << 20, 32 << 10, 8):  # the peer waits for the ring
        assert (await link.recv())[0] == b"ring %d" % size
        await link.send(b"rang %d" % size, [_pattern(size, 7)])
    await _ack(link)


CHECKS: list[Check] = [
    ("cancel_race", cancel_race_server, cancel_race_client),
    ("oversized", oversized_server, oversized_client),
    ("loop_spin", loop_spin_server, loop_spin_client),
    ("side_lane", side_lane_server, side_lane_client),
]
