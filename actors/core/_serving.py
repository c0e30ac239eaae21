"""The serving side of remote actors: one reader and one writer per accepted link.

Internal to :mod:`actors.core.remote` (see there for the protocol, backpressure and
failure rules). Everything runs on the owning system's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..codecs import decode, encode
from ..errors import ActorDead, CodecError, PeerLost, ProtocolError
from ..transports import Link
from . import _wire

if TYPE_CHECKING:
    from ._cell import ActorCell
    from .system import ActorSystem

__all__ = ["MAX_INFLIGHT", "Frame", "Outbox", "ServedLink"]

log = logging.getLogger("actors.core.remote")

#: Asks from one served link being processed at once before its reader waits.
MAX_INFLIGHT = 1024

Frame = tuple[bytes, list[Any], int]


class Outbox:
    """A writer task that sends queued frames in order; send is never cancelled midway."""

    def __init__(
        self,
        link: Link,
        maxsize: int,
        on_lost: Callable[[BaseException], None],
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        self.link = link
        self.queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize)
        self._on_lost = on_lost
        self._on_sent = on_sent
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"actor link writer {link.peer}"
        )

    async def _run(self) -> None:
        try:
            while True:
                header, buffers, corr = await self.queue.get()
                await self.link.send(header, buffers)
                if self._on_sent is not None:
                    self._on_sent(corr)
        except (PeerLost, ProtocolError) as exc:
            self._on_lost(exc)
        finally:
            if self.queue.qsize():
                log.warning("link %s lost %d unsent frame(s)", self.link.peer, self.queue.qsize())


class ServedLink:
    """The serving side of one accepted link: requests in, replies out."""

    def __init__(self, system: ActorSystem, link: Link, max_inflight: int) -> None:
        self.system = system
        self.link = link
        self._slots = asyncio.Semaphore(max_inflight)
        self._open = True
        self._outbox = Outbox(link, 0, self._lost, self._sent)
        self._stoppers: set[asyncio.Task[None]] = set()

    def _lost(self, exc: BaseException) -> None:
        self._open = False
        log.info("served link %s closed: %s", self.link.peer, exc)

    def _sent(self, corr: int) -> None:
        if corr:
            self._slots.release()

    def _send(self, kind: int, target: str, corr: int, obj: Any) -> None:
        if not self._open:
            return
        try:
            body, buffers = encode(obj)
        except CodecError as exc:
            kind, body, buffers = _wire.ERROR, _wire.exception_to_wire(exc), []
        self._outbox.queue.put_nowait((_wire.pack_header(kind, target, corr, body), buffers, corr))

    def _send_error(self, target: str, corr: int, exc: BaseException) -> None:
        if self._open:
            header = _wire.pack_header(_wire.ERROR, target, corr, _wire.exception_to_wire(exc))
            self._outbox.queue.put_nowait((header, [], corr))

    async def run(self) -> None:
        try:
            while True:
                header, buffers = await self.link.recv()
                await self._dispatch(header, buffers)
        except PeerLost:
            pass
        except ProtocolError as exc:
            log.error("closing served link %s: %s", self.link.peer, exc)
        finally:
            self._open = False
            await self.close()

    async def close(self) -> None:
        self._open = False
        await self.link.close()
        for task in (self._outbox.task, *self._stoppers):
            task.cancel()
        await asyncio.wait([self._outbox.task, *self._stoppers])

    async def _dispatch(self, header: bytes, buffers: list[Any]) -> None:
        kind, target, corr, body = _wire.unpack_header(header, self.link.peer)
        if kind not in (_wire.TELL, _wire.ASK, _wire.STOP, _wire.LOOKUP) or (
            kind != _wire.TELL and corr <= 0
        ):
            raise ProtocolError(f"unexpected frame kind {kind} from client {self.link.peer}")
        if kind != _wire.TELL:
            await self._slots.acquire()
        try:
            cell = self.system._live_cell(target)
        except ActorDead as exc:
            self._refuse(kind, target, corr, exc)
            return
        if kind == _wire.LOOKUP:
            self._send(_wire.REPLY, target, corr, None)
        elif kind == _wire.STOP:
            self._stop(cell, corr)
        else:
            await self._deliver(cell, kind, target, corr, body, buffers)

    def _refuse(self, kind: int, target: str, corr: int, exc: ActorDead) -> None:
        if kind == _wire.TELL:
            self._send_error(target, 0, exc)
            log.warning("tell from %s dropped: %s", self.link.peer, exc)
        elif kind == _wire.STOP:
            self._send(_wire.REPLY, target, corr, None)  # stopping a stopped actor is fine
        else:
            self._send_error(target, corr, exc)

    def _stop(self, cell: ActorCell, corr: int) -> None:
        async def stop() -> None:
            await cell.stop()
            self._send(_wire.REPLY, cell.name, corr, None)

        task = asyncio.get_running_loop().create_task(stop())
        self._stoppers.add(task)
        task.add_done_callback(self._stoppers.discard)

    async def _deliver(
        self, cell: ActorCell, kind: int, target: str, corr: int, body: bytes, buffers: list[Any]
    ) -> None:
        try:
            message = decode(body, buffers)
        except CodecError as exc:
            log.error("undecodable message for actor %r from %s: %s", target, self.link.peer, exc)
            if kind == _wire.ASK:
                self._send_error(target, corr, exc)
            return
        fut: asyncio.Future[Any] | None = None
        if kind == _wire.ASK:
            fut = asyncio.get_running_loop().create_future()
            fut.add_done_callback(lambda f: self._reply(target, corr, f))
        try:
            await cell.deliver((message, fut))
        except ActorDead as exc:
            if fut is None:
                self._send_error(target, 0, exc)
            elif not fut.done():
                fut.set_exception(exc)

    def _reply(self, target: str, corr: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            self._send_error(target, corr, ActorDead(f"ask to actor {target!r} was cancelled"))
        elif (exc := fut.exception()) is not None:
            self._send_error(target, corr, exc)
        else:
            self._send(_wire.REPLY, target, corr, fut.result())
