"""The mpi:// side channel's watch: death, silence, goodbye and the doorbell (no MPI needed).

Two :class:`SideChannel` ends (or one end and a bare socket standing in for a
peer) over a loopback TCP connection, with short heartbeat settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.transports.mpi._side import SideChannel

pytestmark = pytest.mark.timeout(30)


class _Events:
    """Records a side channel's events; ``first(kind)`` waits for one of that kind."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []
        self._changed = asyncio.Event()

    def __call__(self, kind: str, reason: str) -> None:
        self.seen.append((kind, reason, asyncio.get_running_loop().time()))
        self._changed.set()

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.seen]

    async def first(self, kind: str, timeout: float = 5.0) -> tuple[str, float]:
        async with asyncio.timeout(timeout):
            while True:
                for seen, reason, when in self.seen:
                    if seen == kind:
                        return reason, when
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def connection() -> AsyncIterator[tuple[Any, Any]]:
    """``((reader, writer), (reader, writer))`` of one loopback connection."""
    accepted: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()

    def on_connect(reader: asyncio.StreamReader, writer: Any) -> None:
        accepted.set_result((reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dialled = await asyncio.open_connection("127.0.0.1", port)
    ends = (dialled, await accepted)
    server.close()
    await server.wait_closed()
    yield ends
    for _, writer in ends:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


#: How the loss of a peer that closed its end reads: EOF, or a reset when the
#: peer closed with our heartbeats still unread (a race of the test's timing).
_PEER_DIED = {"peer peer died (side channel closed)", "peer peer died (side channel reset)"}


@pytest.fixture(autouse=True)
def quick_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORS_MPI_HEARTBEAT_S", "0.05")
    monkeypatch.setenv("ACTORS_MPI_HEARTBEAT_TIMEOUT_S", "1")


async def test_a_silent_peer_is_lost_after_the_timeout(connection: Any) -> None:
    (reader, writer), _silent_peer = connection
    events = _Events()
    start = asyncio.get_running_loop().time()
    side = SideChannel(reader, writer, "rank 7", events)
    reason, when = await events.first("lost")
    await side.close(goodbye=False)
    assert reason == "no heartbeat from rank 7 for 1 s"
    assert 1.0 <= when - start < 5.0
    assert events.kinds() == ["lost"]


async def test_heartbeats_keep_both_ends_alive(connection: Any) -> None:
    (r1, w1), (r2, w2) = connection
    events1, events2 = _Events(), _Events()
    one = SideChannel(r1, w1, "one", events1)
    two = SideChannel(r2, w2, "two", events2)
    await asyncio.sleep(2.5)  # two and a half timeouts long
    assert events1.seen == [] and events2.seen == []
    await one.close(goodbye=True)
    reason, _ = await events2.first("closed")
    assert reason == "peer two closed the link"
    await two.close(goodbye=False)


async def test_the_doorbell_bytes_become_events_and_count_as_heard(connection: Any) -> None:
    (reader, writer), (_, peer) = connection
    events = _Events()
    side = SideChannel(reader, writer, "peer", events)
    for _ in range(15):  # 1.5 s of doorbell bytes, no heartbeat: longer than the timeout
        peer.write(b"nw")
        await asyncio.sleep(0.1)
    assert "lost" not in events.kinds()
    assert events.kinds()[:2] == ["napping", "ring"]
    peer.write(b"a")
    await events.first("awake")
    peer.close()
    reason, _ = await events.first("lost")
    assert reason in _PEER_DIED
    await side.close(goodbye=False)


async def test_side_lane_messages_arrive_whole_and_in_order_between_events(
    connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTORS_MPI_HEARTBEAT_S", "10")  # no heartbeat among the raw writes
    monkeypatch.setenv("ACTORS_MPI_HEARTBEAT_TIMEOUT_S", "30")
    (reader, writer), (peer_reader, peer_writer) = connection
    events, frames = _Events(), []
    side = SideChannel(reader, writer, "peer", events, frames.append)
    peer = SideChannel(peer_reader, peer_writer, "me", _Events())
    payloads = [b"x" * n for n in (0, 1, 300, 70_000 // 2, 5)]
    assert all(peer.send_message(p) for p in payloads)
    peer.ring()
    peer_writer.write(b"m" + (3).to_bytes(4, "little"))  # one message in three writes
    await peer_writer.drain()
    await asyncio.sleep(0.05)
    peer_writer.write(b"ab")
    await asyncio.sleep(0.05)
    peer_writer.write(b"cn")  # its last byte, then "napping" in the same write
    await events.first("napping")
    assert frames == [*payloads, b"abc"]
    assert events.kinds() == ["ring", "napping"]
    await peer.close(goodbye=True)
    await events.first("closed")
    await side.close(goodbye=False)


async def test_an_oversized_side_lane_message_loses_the_link(connection: Any) -> None:
    from actors.transports.mpi._side import SIDE_MESSAGE_MAX

    (reader, writer), (_, peer_writer) = connection
    events, frames = _Events(), []
    side = SideChannel(reader, writer, "rank 3", events, frames.append)
    peer_writer.write(b"m" + (SIDE_MESSAGE_MAX + 1).to_bytes(4, "little"))
    reason, _ = await events.first("lost")
    assert reason == f"side-lane message of {SIDE_MESSAGE_MAX + 1} bytes from rank 3 (limit 65536)"
    assert frames == []
    await side.close(goodbye=False)


async def test_what_came_during_the_handshake_is_read_first_in_order(connection: Any) -> None:
    """The channel takes the connection over from its stream pair after the
    handshake: bytes that the stream pair had buffered come before later ones."""
    (reader, writer), (_, peer_writer) = connection
    events, frames = _Events(), []
    peer_writer.write(b"last handshake line\nn" + b"m" + (2).to_bytes(4, "little") + b"xy")
    await peer_writer.drain()
    assert await reader.readuntil(b"\n") == b"last handshake line\n"
    side = SideChannel(reader, writer, "peer", events, frames.append)
    peer_writer.write(b"m" + (1).to_bytes(4, "little") + b"z" + b"w")
    await events.first("ring")
    assert events.kinds() == ["napping", "ring"]
    assert frames == [b"xy", b"z"]
    peer_writer.close()
    reason, _ = await events.first("lost")
    assert reason in _PEER_DIED
    await side.close(goodbye=False)


async def test_a_peer_that_resets_the_connection_is_lost_as_dead(connection: Any) -> None:
    (reader, writer), (_, peer_writer) = connection
    events = _Events()
    side = SideChannel(reader, writer, "peer", events)
    linger_0 = struct.pack("ii", 1, 0)  # close() sends a reset, not a FIN
    peer_writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_0)
    peer_writer.close()
    reason, _ = await events.first("lost")
    assert reason == "peer peer died (side channel reset)"
    await side.close(goodbye=False)


async def test_a_peer_that_closed_during_the_handshake_is_lost_at_once(connection: Any) -> None:
    (reader, writer), (_, peer_writer) = connection
    peer_writer.close()
    assert await reader.read() == b""  # the stream pair read the EOF
    events = _Events()
    side = SideChannel(reader, writer, "rank 2", events)
    assert events.kinds() == ["lost"]
    assert events.seen[0][1] == "peer rank 2 died (side channel closed)"
    await side.close(goodbye=False)


async def test_the_writer_still_closes_promptly_after_the_takeover(connection: Any) -> None:
    """Flow control and the close go on to the stream pair: ``wait_closed`` ends."""
    (reader, writer), (peer_reader, _) = connection
    side = SideChannel(reader, writer, "peer", _Events())
    start = asyncio.get_running_loop().time()
    await side.close(goodbye=True)
    assert asyncio.get_running_loop().time() - start < 0.5
    assert await peer_reader.read() == b"C"
