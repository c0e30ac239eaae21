"""The side lane of an ``mpi://`` link: small messages over the side channel.

MPI cannot wake a process that sleeps, so a message to a peer whose header
waits nap (:mod:`actors.transports.mpi._headerwait`) used to cost an MPI send
*and* a doorbell write on the TCP side channel; measured with more processes
than CPUs (the empty chain with 4 followers on 2 CPUs, py-spy), the doorbell's
write alone cost what a whole tcp:// send does. While the peer naps, a small
message whose buffers all fit inside its header message (host memory only)
therefore travels on the side channel itself, and the write that carries it is
the ring: one system call per message, like tcp://.

Order: both lanes carry the header message with its ``seq``
(:mod:`actors.transports.mpi._frame`); each lane is FIFO, and the receiver
delivers message ``seq`` from whichever lane holds it: a header message on MPI
that is ahead waits for the side-lane messages before it, and the other way
round. The BYE of a graceful close always goes over MPI, numbered like any
message, so everything sent before it is delivered first.

:class:`SideLane` is the receive side: the side channel hands it every
message (:meth:`SideLane.put`), the link takes them in order. Loop rules: the
link's loop only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import PeerLost, ProtocolError
from ._frame import INLINED, KIND_MESSAGE, header_seq, unpack_header
from ._inbox import inlined_copies

__all__ = ["SIDE_LANE_MAX", "SideLane"]

#: header messages up to this many bytes may take the side lane (the receiver
#: accepts up to :data:`~actors.transports.mpi._side.SIDE_MESSAGE_MAX`): one buffer
#: of up to :data:`~actors.transports.mpi._frame.SMALL` bytes with its header, such
#: as the offload example's 32 KiB product (16 KiB until 2026-12-07: that product
#: then went over MPI with a ring, 5% more CPU per event with sleeping loops)
SIDE_LANE_MAX = 48 << 10


class SideLane:
    """Messages that came over the side channel, not delivered yet.

    ``max_size`` is the link's ``max_message_size``; ``on_arrival()`` is
    called after each :meth:`put` (the link cuts a napping header wait short).
    """

    def __init__(self, peer: str, max_size: int, on_arrival: Callable[[], None]) -> None:
        self._peer = peer
        self._max = max_size
        self._on_arrival = on_arrival
        self._frames: deque[tuple[int, bytes]] = deque()
        self._arrival: asyncio.Future[None] | None = None
        self._failure: PeerLost | None = None
        #: True while a side-lane message waits to be delivered (a plain attribute:
        #: header waits read it on every poll)
        self.pending = False
        #: messages taken from this lane so far (a diagnostic, read by the tests)
        self.delivered = 0

    def put(self, frame: bytes) -> None:
        """One side-lane message, in the order the peer wrote them. Raises
        ProtocolError if it is too short to hold a header message."""
        seq = header_seq(frame, len(frame))
        if seq is None:
            raise ProtocolError(f"side-lane message of {len(frame)} bytes from {self._peer}")
        self._frames.append((seq, frame))
        self.pending = True
        arrival, self._arrival = self._arrival, None
        if arrival is not None and not arrival.done():
            arrival.set_result(None)
        self._on_arrival()

    def ready(self, seq: int) -> bool:
        """True when the next undelivered side-lane message is number ``seq``."""
        frames = self._frames
        return bool(frames) and frames[0][0] == seq

    def take(self) -> tuple[bytes, list[Any]]:
        """The next message (only when :meth:`ready`), its buffers as numpy
        ``uint8`` copies. Raises ProtocolError when it is malformed, larger
        than ``max_message_size``, or has a buffer that is not inlined."""
        _, frame = self._frames.popleft()
        self.pending = bool(self._frames)
        kind, header, sizes, flags, offset = unpack_header(frame, self._max)
        if kind != KIND_MESSAGE or flags.count(INLINED) != len(flags):
            raise ProtocolError(
                f"side-lane message of kind {kind} with buffers {list(flags)} from {self._peer}"
            )
        self.delivered += 1
        if not sizes:  # most messages of a job: no array view to make
            return header, []
        return header, inlined_copies(np.frombuffer(frame, np.uint8), sizes, flags, offset)

    async def arrival(self) -> None:
        """Wait for the next :meth:`put`. Raises what :meth:`fail` set.
        Cancel-safe (nothing is taken)."""
        if self._failure is not None:
            raise self._failure
        if self._arrival is None or self._arrival.done():
            self._arrival = asyncio.get_running_loop().create_future()
        await self._arrival

    def fail(self, exc: PeerLost) -> None:
        """The link is lost or closed: :meth:`arrival` raises ``exc`` from now on."""
        self._failure = exc
        arrival, self._arrival = self._arrival, None
        if arrival is not None and not arrival.done():
            arrival.set_exception(exc)
            arrival.exception()  # nobody may wait for it: no "never retrieved" log
        self._frames.clear()
        self.pending = False
