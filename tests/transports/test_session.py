"""The link session: reader, writer, bounded outbox, one set of loss rules."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest

from actors.errors import PeerLost, ProtocolError
from actors.transports import Capabilities, Link, Message, connect, listen
from actors.transports.session import Session
from tests.transports.schemes import LISTEN_URLS, params, require


@pytest.fixture(params=params(("inproc", "tcp")))
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Link, Link]]:
    require(request.param)
    async with await listen(LISTEN_URLS[request.param]()) as listener:
        client = await connect(listener.address)
        server = await listener.accept()
    try:
        yield client, server
    finally:
        await client.close()
        await server.close()


class Recorder:
    """on_message / on_lost callbacks that remember what they saw."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, list[Any]]] = []
        self.lost: list[BaseException] = []
        self.got = asyncio.Event()
        self.gone = asyncio.Event()

    def on_message(self, header: bytes, buffers: list[Any]) -> None:
        self.messages.append((header, buffers))
        self.got.set()

    def on_lost(self, exc: BaseException) -> None:
        self.lost.append(exc)
        self.gone.set()


def started(session: Session) -> tuple[Session, Recorder]:
    """``session``, started with the callbacks of a new Recorder."""
    recorder = Recorder()
    session.start(recorder.on_message, recorder.on_lost)
    return session, recorder


async def test_put_reaches_the_handler_in_order(pair: tuple[Link, Link]) -> None:
    client, server = pair
    a, b = Session(client, "a", outbox_size=2), Session(server, "b")
    ra, rb = Recorder(), Recorder()
    a.start(ra.on_message, ra.on_lost)
    b.start(rb.on_message, rb.on_lost)
    for i in range(10):
        await a.put(str(i).encode())
    await a.flush()
    async with asyncio.timeout(5):
        while len(rb.messages) < 10:
            rb.got.clear()
            await rb.got.wait()
    assert [bytes(h) for h, _ in rb.messages] == [str(i).encode() for i in range(10)]
    await a.close()
    await b.close()
    assert not ra.lost and not rb.lost  # a close is not a loss


async def test_handler_error_aborts_naming_the_session_and_fails_waits(
    pair: tuple[Link, Link],
) -> None:
    client, server = pair
    a = Session(client, "a")
    b = Session(server, "link 'x' (peer p)", outbox_size=1)
    ra = Recorder()
    a.start(ra.on_message, ra.on_lost)

    def broken(header: bytes, buffers: list[Any]) -> None:
        raise KeyError("malformed")

    rb = Recorder()
    b.start(broken, rb.on_lost)
    # fill b's outbox while its writer cannot drain: a put then waits for room
    await a.put(b"boom")
    async with asyncio.timeout(5):
        await rb.gone.wait()
    (error,) = rb.lost
    assert isinstance(error, ProtocolError)
    assert "link 'x' (peer p)" in str(error) and "malformed" in str(error)
    assert isinstance(error.__cause__, KeyError)
    with pytest.raises(ProtocolError):
        await b.put(b"later")
    with pytest.raises(ProtocolError):
        await b.flush()
    assert b.post(b"dropped") is False
    async with asyncio.timeout(5):  # the abort closed the link: the peer sees it
        await ra.gone.wait()
    assert isinstance(ra.lost[0], PeerLost)
    await a.close()
    await b.close()


class StuckLink(Link):
    """A link whose sends and receives wait until it is closed or ``lose`` is called."""

    capabilities = Capabilities(zero_copy_receive=False, device_memory=False, crosses_nodes=False)
    peer = "stuck"

    def __init__(self) -> None:
        self.gone = asyncio.get_running_loop().create_future()
        self.sending = 0

    async def _wait(self) -> None:
        await asyncio.shield(self.gone)

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        self.sending += 1
        await self._wait()

    async def recv(self) -> Message:
        await self._wait()
        raise AssertionError("unreachable")

    def lose(self, error: BaseException) -> None:
        if not self.gone.done():
            self.gone.set_exception(error)

    async def close(self) -> None:
        self.lose(PeerLost("stuck link closed"))

    @property
    def closed(self) -> bool:
        return self.gone.done()


async def test_waiting_put_fails_when_the_link_is_lost() -> None:
    link = StuckLink()
    a, ra = started(Session(link, "a", outbox_size=2))
    puts = asyncio.gather(*(a.put(b"x") for _ in range(6)))
    flush = asyncio.ensure_future(a.flush())
    await asyncio.sleep(0.05)
    assert not puts.done() and not flush.done() and link.sending == 1
    link.lose(PeerLost("peer died"))
    async with asyncio.timeout(5):
        with pytest.raises(PeerLost, match="peer died"):
            await puts
        with pytest.raises(PeerLost, match="peer died"):
            await flush
    assert len(ra.lost) == 1 and a.lost is ra.lost[0]
    with pytest.raises(PeerLost, match="peer died"):
        await a.put(b"later")
    await a.close()


async def test_close_fails_pending_waits_and_is_idempotent() -> None:
    link = StuckLink()
    a, ra = started(Session(link, "a", outbox_size=1))
    puts = asyncio.gather(*(a.put(b"x") for _ in range(4)))
    await asyncio.sleep(0.05)
    await a.close()
    await a.close()
    with pytest.raises(PeerLost, match="closed by this side"):
        await puts
    assert not ra.lost and link.closed


async def test_close_does_not_swallow_cancellation(pair: tuple[Link, Link]) -> None:
    client, server = pair
    a = Session(client, "a")

    async def stuck(header: bytes, buffers: list[Any]) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.5)  # a slow cleanup keeps close() waiting

    a.start(stuck, Recorder().on_lost)
    await server.send(b"go")
    await asyncio.sleep(0.05)
    closer = asyncio.ensure_future(a.close())
    await asyncio.sleep(0.05)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    await a.close()


async def test_writer_error_aborts_the_session(pair: tuple[Link, Link]) -> None:
    client, _server = pair
    a, ra = started(Session(client, "link 'w'"))
    await a.put(b"x", [object()])  # not a buffer: the link's send raises
    async with asyncio.timeout(5):
        await ra.gone.wait()
    (error,) = ra.lost
    assert isinstance(error, ProtocolError) and "link 'w'" in str(error)
    assert "sending" in str(error)
    await a.close()


async def test_received_buffers_are_released_when_dropped(pair: tuple[Link, Link]) -> None:
    client, server = pair
    received: list[Any] = []
    got = asyncio.Event()

    def keep(header: bytes, buffers: list[Any]) -> None:
        received.append(buffers[0])
        got.set()

    b = Session(server, "b")
    b.start(keep, Recorder().on_lost)
    gc.disable()
    try:
        await client.send(b"h", [np.arange(1000, dtype=np.uint8)])
        async with asyncio.timeout(5):
            await got.wait()
        buffer = received.pop()
        # only this frame refers to it (getrefcount's argument is the other one)
        assert sys.getrefcount(buffer) == 2, "the session still holds the received message"
    finally:
        gc.enable()
    await b.close()


async def test_send_bypasses_the_outbox_and_reports_loss(pair: tuple[Link, Link]) -> None:
    client, server = pair
    a, ra = started(Session(client, "a"))
    rb = Recorder()
    b = Session(server, "b")
    b.start(rb.on_message, rb.on_lost)
    await a.send(b"direct")
    async with asyncio.timeout(5):
        await rb.got.wait()
    await b.close()
    async with asyncio.timeout(5):
        await ra.gone.wait()
    with pytest.raises(PeerLost):
        await a.send(b"too late")
    await a.close()


async def test_failed_direct_send_aborts_and_closes_the_link(pair: tuple[Link, Link]) -> None:
    client, server = pair
    a, ra = started(Session(client, "link 's'"))
    rb = Recorder()
    b = Session(server, "b")
    b.start(rb.on_message, rb.on_lost)
    with pytest.raises(ProtocolError, match="link 's': sending a message failed"):
        await a.send(b"x", [object()])  # not a buffer
    assert len(ra.lost) == 1 and client.closed
    async with asyncio.timeout(5):  # the peer learns it
        await rb.gone.wait()
    await a.close()
    await b.close()


class GatedLink(StuckLink):
    """A link whose first send waits for ``gate``; ``on_send`` runs at every send, before it."""

    def __init__(self, on_send: Any = None) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.sent: list[bytes] = []
        self.on_send = on_send

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        self.sent.append(bytes(header))
        if self.on_send is not None:
            self.on_send(len(self.sent))
        if len(self.sent) == 1:
            await self.gate.wait()


async def test_an_abandoned_put_queues_nothing_and_passes_its_room_on() -> None:
    ask_ended = asyncio.get_running_loop().create_future()

    def on_send(count: int) -> None:
        if count == 2:  # the room freed by this send went to the first waiter: now abandon it
            ask_ended.set_result(None)

    link = GatedLink(on_send)
    a, ra = started(Session(link, "a", outbox_size=1))
    assert await a.put(b"1") and await a.put(b"2")  # "1" is being sent, "2" fills the outbox
    abandoned = asyncio.ensure_future(a.put(b"3", abandon=ask_ended))
    waiting = asyncio.ensure_future(a.put(b"4"))
    await asyncio.sleep(0.02)
    assert not abandoned.done() and not waiting.done()
    link.gate.set()
    async with asyncio.timeout(5):
        assert await abandoned is False
        assert await waiting is True  # it got the room the abandoned put was given
        await a.flush()
    assert link.sent == [b"1", b"2", b"4"] and not ra.lost
    assert await a.put(b"5", abandon=ask_ended) is False  # abandoned before it waits: not queued
    await a.close()


async def test_a_put_abandoned_while_it_waits_returns_at_once() -> None:
    link = GatedLink()
    a, _ = started(Session(link, "a", outbox_size=1))
    await a.put(b"1")
    await a.put(b"2")
    ask_ended = asyncio.get_running_loop().create_future()
    put = asyncio.ensure_future(a.put(b"3", abandon=ask_ended))
    await asyncio.sleep(0.02)
    assert not put.done()
    ask_ended.set_exception(TimeoutError("ask timed out"))
    async with asyncio.timeout(5):
        assert await put is False
    ask_ended.exception()
    link.gate.set()
    async with asyncio.timeout(5):
        await a.flush()
    assert link.sent == [b"1", b"2"]
    await a.close()


async def test_a_burst_of_frames_leaves_in_order_with_every_token(pair: tuple[Link, Link]) -> None:
    client, server = pair
    sent: list[Any] = []
    a = Session(client, "a", on_sent=sent.append)
    b = Session(server, "b")
    ra, rb = Recorder(), Recorder()
    a.start(ra.on_message, ra.on_lost)
    b.start(rb.on_message, rb.on_lost)
    for i in range(300):  # queued without yielding: the writer finds them together
        a.post(b"f%d" % i, [np.full(3, i, np.int64)] if i % 50 == 7 else [], i)
    await a.flush()
    async with asyncio.timeout(5):
        while len(rb.messages) < 300:
            rb.got.clear()
            await rb.got.wait()
    assert [bytes(h) for h, _ in rb.messages] == [b"f%d" % i for i in range(300)]
    assert [len(bufs) for _, bufs in rb.messages] == [int(i % 50 == 7) for i in range(300)]
    assert sent == list(range(300))
    await a.close()
    await b.close()
