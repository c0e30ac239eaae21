"""One link of a hub: a :class:`~actors.transports.session.Session` plus batched transitions.

The writer coalesces small control messages: transitions queued during one
turn of the event loop go out as one TRANS message, so a stream of events
costs one transport message per batch, not per event, and no task is created
per event. Loss rules are the session's: any error while receiving, decoding
(:func:`~actors.distributed.protocol.unpack`), dispatching or sending aborts
the link and calls ``on_lost(peer, error)`` once, the error naming the link and
peer (never a silent reader death).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import TransportError
from ..transports import Link
from ..transports.session import Session
from .protocol import pack, unpack

__all__ = ["Peer"]

Handler = Callable[["Peer", list[Any], list[Any]], None]

log = logging.getLogger("actors.distributed")


class Peer:
    """A link plus its session: writer (batched transitions) and reader (dispatch).

    ``lost`` is for the owner to record the loss it handled (the session keeps
    its own in ``session.lost``). Loop rules: the hub's event loop only.
    """

    def __init__(self, name: str, link: Link, kind: int) -> None:
        self.name = name  # the link name in the configuration
        self.link = link
        self.kind = kind  # message kind of the batches this side writes
        self.pending: list[Any] = []
        self.lost: BaseException | None = None
        self._process = ""  # the peer's process, once known ("process 'X' (launcher name)")
        self.session = Session(link, self.who, before_write=self._batch)
        self._on_message: Handler | None = None
        #: False once a device product from this link found no cupy in this process
        self.device_ok = True

    @property
    def process(self) -> str:
        return self._process

    @process.setter
    def process(self, value: str) -> None:
        self._process = value
        self.session.who = self.who

    @property
    def who(self) -> str:
        peer = f"{self._process} at {self.link.peer}" if self._process else self.link.peer
        return f"link {self.name!r} (peer {peer})"

    @property
    def closing(self) -> bool:
        """True once closed or lost."""
        return self.session.closed

    def no_device(self, product: str, exc: BaseException) -> None:
        """The peer sent ``product`` flagged as device memory but this process
        cannot hold device memory (no cupy): it and later device products from
        this link stay in host memory. Logged once per link, naming the peer."""
        if self.device_ok:
            self.device_ok = False
            log.warning(
                "%s sent the device product %s but this process cannot hold device memory "
                "(%s): device products from this link are delivered in host memory",
                self.who,
                product,
                exc,
            )

    def queue(self, item: Any) -> None:
        """Append one control item to the next batch (loop thread only)."""
        self.pending.append(item)
        self.session.wake()

    def queue_message(self, header: bytes) -> None:
        """Send ``header`` after everything queued so far."""
        self._batch()
        self.session.post(header)

    def _batch(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.session.post(pack(self.kind, batch))

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        """Send a message now (bulk data); raises and aborts the link like the session."""
        await self.session.send(header, buffers)

    def start(self, on_message: Handler, on_lost: Callable[[Peer, BaseException], None]) -> None:
        """Start reading (``on_message(peer, msg, buffers)``) and writing."""
        self._on_message = on_message
        self.session.start(self._handle, lambda exc: on_lost(self, exc))

    def _handle(self, header: bytes, buffers: list[Any]) -> None:
        assert self._on_message is not None
        self._on_message(self, unpack(header, self.who), buffers)

    async def close(self) -> None:
        """Stop both tasks and close the link (idempotent)."""
        await self.session.close()

    async def flush(self) -> None:
        """Wait until everything queued has been handed to the link.

        Returns early (without error) when the link was lost or closed; the
        caller then finds the reason in the hub's error.
        """
        try:
            await self.session.flush()
        except TransportError:
            return

    def describe_state(self) -> dict[str, Any]:
        """Queue depths and state, for the stall report."""
        return {
            "link": self.name,
            "peer": self.who,
            "batched": len(self.pending),
            "outbox": self.session.queued,
            "lost": None
            if self.lost is None and self.session.lost is None
            else str(self.lost or self.session.lost),
        }
