"""The serving side of remote actors: one session (reader, writer) per accepted link.

Internal to :mod:`actors.core.remote` (see there for the protocol, backpressure and
failure rules). Everything runs on the owning system's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..codecs import decode, encode
from ..errors import ActorDead, CodecError, PeerLost, ProtocolError
from ..settings import ASK_SPIN_US
from ..transports import Link, loop_spinner
from ..transports.session import Session
from . import _wire, remote_stall

if TYPE_CHECKING:
    from ._cell import ActorCell
    from .system import ActorSystem

__all__ = ["MAX_INFLIGHT", "ServedLink"]

log = logging.getLogger("actors.core.remote")

#: Asks from one served link being processed at once before its reader waits.
MAX_INFLIGHT = 1024


class ServedLink:
    """The serving side of one accepted link: requests in, replies out."""

    def __init__(self, system: ActorSystem, link: Link, max_inflight: int) -> None:
        self.system = system
        self.link = link
        self._slots = asyncio.Semaphore(max_inflight)
        self.session = Session(link, f"served actor link {link.peer}", on_sent=self._sent)
        #: keeps the loop awake after a reply (ACTORS_ASK_SPIN_US)
        self._spinner = loop_spinner(asyncio.get_running_loop(), ASK_SPIN_US)
        self._stoppers: set[asyncio.Task[None]] = set()
        #: correlation id -> (frame kind, target, time.monotonic() when read): requests
        #: being handled, until their answer is handed to the link (stall report)
        self.requests: dict[int, tuple[int, str, float]] = {}
        self._done = asyncio.get_running_loop().create_future()

    def _lost(self, exc: BaseException) -> None:
        level = logging.INFO if isinstance(exc, PeerLost) else logging.ERROR
        log.log(level, "closing served link %s: %s", self.link.peer, exc)
        if not self._done.done():
            self._done.set_result(None)

    def _sent(self, corr: int) -> None:
        if corr:
            self.requests.pop(corr, None)
            self._slots.release()

    def _send(self, kind: int, target: str, corr: int, obj: Any) -> None:
        if self.session.closed:
            return
        try:
            body, buffers = encode(obj)
        except CodecError as exc:
            kind, body, buffers = _wire.ERROR, _wire.exception_to_wire(exc), []
        self.session.post(_wire.pack_header(kind, target, corr, body), buffers, corr)
        if corr:
            self._spinner.kick()  # a reply: the asker's next request may follow at once

    def _send_error(self, target: str, corr: int, exc: BaseException) -> None:
        header = _wire.pack_header(_wire.ERROR, target, corr, _wire.exception_to_wire(exc))
        self.session.post(header, (), corr)

    async def run(self) -> None:
        """Serve until the link is lost or closed (a malformed frame closes it, logged)."""
        self.session.start(self._dispatch, self._lost)
        try:
            await self._done
        finally:
            await self.close()

    async def close(self) -> None:
        await self.session.close()
        if not self._done.done():
            self._done.set_result(None)
        for task in self._stoppers:
            task.cancel()
        if self._stoppers:
            await asyncio.wait(self._stoppers)

    async def _dispatch(self, header: bytes, buffers: list[Any]) -> None:
        kind, target, corr, body = _wire.unpack_header(header, self.link.peer)
        if kind not in (_wire.TELL, _wire.ASK, _wire.STOP, _wire.LOOKUP) or (
            kind != _wire.TELL and corr <= 0
        ):
            raise ProtocolError(f"unexpected frame kind {kind} from client {self.link.peer}")
        if kind != _wire.TELL:
            await self._slots.acquire()
            self.requests[corr] = (kind, target, time.monotonic())
        try:
            cell = self.system.live_cell(target)
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

    def describe_stall(self, system: str) -> list[str]:
        """This link's line and one per request being handled, oldest first (stall report)."""
        requests = sorted(self.requests.items(), key=lambda item: item[1][2])
        head = (
            f"system {system!r} serves peer {self.link.peer}: {len(requests)} request(s) in "
            f"progress, " + remote_stall.session_state(self.session)
        )
        lines = [
            (corr, _wire.KIND_NAMES.get(kind, str(kind)), target, started)
            for corr, (kind, target, started) in requests
        ]
        return [head, *remote_stall.request_lines(lines, "in progress", time.monotonic())]
