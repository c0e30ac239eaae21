"""One link of a hub: batched writer task and reader task.

The writer coalesces small control messages: transitions queued during one
turn of the event loop go out as one TRANS message, so a stream of events
costs one transport message per batch, not per event, and no task is created
per event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from ..errors import DistributedError, PeerLost, ProtocolError
from ..transports import Link
from .protocol import pack, unpack

__all__ = ["Peer"]

Handler = Callable[["Peer", list[Any], list[Any]], None]


class Peer:
    """A link plus its writer (batched transitions) and reader (dispatch) tasks."""

    def __init__(self, name: str, link: Link, kind: int) -> None:
        self.name = name  # the link name in the configuration
        self.link = link
        self.kind = kind  # message kind of the batches this side writes
        self.pending: list[Any] = []
        self.tail: list[bytes] = []  # whole messages to send after the batch (END...)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.tasks: list[asyncio.Task[None]] = []
        self.closing = False
        self.lost: BaseException | None = None
        self.process = ""  # the peer's process, once known ("process 'X' (launcher name)")

    @property
    def who(self) -> str:
        peer = f"{self.process} at {self.link.peer}" if self.process else self.link.peer
        return f"link {self.name!r} (peer {peer})"

    def queue(self, item: Any) -> None:
        """Append one control item to the next batch (loop thread only)."""
        self.pending.append(item)
        self._idle.clear()
        self._wake.set()

    def queue_message(self, header: bytes) -> None:
        """Send ``header`` after everything queued so far."""
        self.tail.append(header)
        self._idle.clear()
        self._wake.set()

    def start(self, on_message: Handler, on_lost: Callable[[Peer, BaseException], None]) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self._write(on_lost), name=f"writer {self.name}"),
            loop.create_task(self._read(on_message, on_lost), name=f"reader {self.name}"),
        ]

    async def _write(self, on_lost: Callable[[Peer, BaseException], None]) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.pending or self.tail:
                    batch, self.pending = self.pending, []
                    if batch:
                        await self.link.send(pack(self.kind, batch))
                    tail, self.tail = self.tail, []
                    for header in tail:
                        await self.link.send(header)
                self._idle.set()
        except (PeerLost, ProtocolError) as exc:
            if not self.closing:
                on_lost(self, exc)

    async def _read(self, on_message: Handler,
                    on_lost: Callable[[Peer, BaseException], None]) -> None:
        try:
            while True:
                header, buffers = await self.link.recv()
                on_message(self, unpack(header, self.who), buffers)
        except (PeerLost, ProtocolError, DistributedError) as exc:
            if not self.closing:
                on_lost(self, exc)

    async def close(self) -> None:
        """Stop both tasks and close the link (idempotent)."""
        self.closing = True
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.link.close()

    async def flush(self) -> None:
        """Wait until everything queued has been handed to the link.

        Returns early (without error) when the writer stopped; the caller then
        finds the reason in the hub's error.
        """
        writer = self.tasks[0] if self.tasks else None
        if writer is None:
            return
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({idle, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()

