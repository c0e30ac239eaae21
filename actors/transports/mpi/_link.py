"""One ``mpi://`` link: messages over a private two-process communicator.

A message is one header message on tag :data:`TAG_HEADER` (wire format in
:mod:`actors.transports.mpi._frame`) followed by its buffers on tag
:data:`TAG_DATA`, each non-empty buffer in chunks of at most :data:`CHUNK`
bytes, one ``Isend`` each straight from its memory. Host buffers up to
:data:`SMALL` bytes ride inside the header message instead (one small copy,
like MPI's own eager protocol, saving a message). A header message larger than
:data:`INLINE` bytes is announced on TAG_HEADER and follows on :data:`TAG_LONG`.
While the peer's header waits nap, a message whose header message is small and
holds all its buffers takes the side lane instead (:mod:`._sidelane`: the TCP
side channel, one write that is also the doorbell); every message carries its
number, and ``recv`` delivers the two lanes in that order.

Receiving: each side keeps one *persistent* receive of INLINE bytes active
on TAG_HEADER, restarted as soon as a header message has been parsed; its
state lives in the link's :class:`~actors.transports.mpi._inbox.Inbox` (shared
with the close-time drain), not in the waiting task. The receiver checks the
sizes against ``max_message_size``, allocates every buffer (host: numpy
``uint8``, from :mod:`actors.transports.mpi._pool` for large ones; device: cupy
when MPI is CUDA-aware; host memory, logged once, when this process has no
cupy) and posts one ``Irecv`` per chunk straight into it: no
staging copy, no pickle.

Fast path (why a small round trip costs only a few Python calls): ``send``
posts its ``Isend`` and tests it once; a small (eager) message is complete at
once and ``send`` returns without yielding. ``recv`` tests the header receive
first; only when nothing is there does it poll from its own task with
``asyncio.sleep(0)`` for an adaptive budget of at most ``ACTORS_MPI_SPIN_S``,
then hands the wait to the loop's poller, which backs off (idle CPU stays low)
and which the peer's doorbell wakes (:mod:`._headerwait`). No future or task
is created per message on the fast path.

Why messages never mix: every link has its own communicator (rank mode: a
two-rank ``Create_group`` of ``COMM_WORLD``; port-file mode: the
``Accept``/``Connect`` communicator), so links share nothing. Within a link,
MPI's non-overtaking rule keeps same-tag messages in posting order; a ``send``
posts its header and all its chunks synchronously (no await in between), so
concurrent ``send`` calls cannot interleave, and ``recv`` posts all receives of
one message before it looks at the next header.

Cancellation: a ``recv`` cancelled before a header message came in loses
nothing. Once a header message is in, the message belongs to the link: a
``recv`` cancelled after that point leaves the rest of it to finish in a
background task (``_stash``) whose result the next ``recv`` returns.

Loop rules: every method runs on the loop that created the link (the poller is
per loop); ``recv`` must not be called concurrently with itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ...buffers import as_host_view
from ...errors import PeerLost, ProtocolError
from .._base import Capabilities, Link, Message
from ._devices import CUDA_INTERFACE, LinkDevices
from ._drain import start_drain
from ._frame import (
    CHUNK,
    DEVICE,
    INLINE,
    INLINED,
    KIND_BYE,
    KIND_LONG,
    KIND_MESSAGE,
    PREFIX,
    SEQ_MASK,
    SMALL,
    TAG_DATA,
    TAG_HEADER,
    TAG_LONG,
    long_header_limit,
    pack_announcement,
    pack_header,
    unpack_header,
)
from ._headerwait import HeaderWait
from ._inbox import Inbox, chunks, inlined_copies
from ._runtime import Poller, abandon
from ._side import SideChannel
from ._sidelane import SIDE_LANE_MAX, SideLane

__all__ = [  # the wire constants are re-exported from _frame
    "CHUNK",
    "INLINE",
    "SMALL",
    "TAG_DATA",
    "TAG_HEADER",
    "TAG_LONG",
    "MPILink",
    "pack_header",
    "unpack_header",
]

log = logging.getLogger("actors.transports.mpi")

BYE_GRACE_S = 5.0  # after the peer's goodbye, how long to wait for its BYE


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a stash nobody collects (link closed) logs nothing


class MPILink(Link):
    """A link over a private communicator ``comm`` to rank ``remote`` in it.

    Created by :mod:`actors.transports.mpi` once the side channel is up; the
    side channel's events (death, graceful close) fail or finish pending calls.
    """

    def __init__(
        self,
        mpi: Any,
        poller: Poller,
        comm: Any,
        remote: int,
        peer: str,
        caps: Capabilities,
        max_message_size: int,
        cuda_aware: bool,
    ) -> None:
        self.capabilities = caps
        self.peer = peer
        self._mpi = mpi
        self._byte = mpi.BYTE
        self._poller = poller
        self._comm = comm
        self._remote = remote
        self._max = max_message_size
        self._devices = LinkDevices(peer, cuda_aware)
        self._side: SideChannel | None = None
        self._inbox = Inbox(mpi, poller, comm, remote)
        self._header_wait = HeaderWait(self._inbox, self._check_open, lambda: self._closed)
        self._side_lane = SideLane(peer, max_message_size, self._header_wait.arrived)
        self._send_seq = 0  # number of the next message sent (modulo 2**32)
        self._recv_seq = 0  # number of the next message to deliver
        self._stash: asyncio.Task[Message] | None = None  # rest of a message a cancelled recv took
        self._closed = False
        self._bye_received = False
        self._lost: str | None = None  # why calls now raise PeerLost
        self._peer_closing: str | None = None  # peer said goodbye: sends fail

    @property
    def inbox(self) -> Inbox:
        """The receive side of this link (header-receive state; see :mod:`._inbox`)."""
        return self._inbox

    def attach(self, side: SideChannel) -> None:
        self._side = side
        self._header_wait.attach(side)

    def on_side_message(self, frame: bytes) -> None:
        """Side channel callback: a side-lane message (see :mod:`._sidelane`)."""
        try:
            self._side_lane.put(frame)
        except ProtocolError as exc:
            self._lose(f"{exc}; link closed")

    def on_side_event(self, kind: str, reason: str) -> None:
        """Side channel callback: ``"lost"`` fails everything now; ``"closed"``
        fails sends now and lets ``recv`` drain up to the peer's BYE."""
        if kind == "ring":
            self._poller.ring()
            self._header_wait.ring()
        elif kind == "napping":
            self._header_wait.peer_naps = True
        elif kind == "awake":
            self._header_wait.peer_naps = False
        elif kind == "closed":  # its BYE follows (or came) over MPI
            self._peer_closing = reason
            self._header_wait.ring()
            asyncio.get_running_loop().call_later(BYE_GRACE_S, self._lose, reason)
        else:
            self._lose(reason)

    def _lose(self, reason: str) -> None:
        """Fail pending and later calls with PeerLost(reason) (the first reason
        sticks). A stashed message fails by itself: its task polls ``_lost``."""
        if self._lost is None:
            self._lost = reason
        self._inbox.fail(PeerLost(self._lost))
        self._side_lane.fail(PeerLost(self._lost))
        self._header_wait.ring()  # its wait then raises PeerLost

    @property
    def closed(self) -> bool:
        return self._closed or self._lost is not None

    def _check_open(self) -> None:
        if self._closed:
            raise PeerLost(f"link to {self.peer} is closed")
        if self._lost is not None:
            raise PeerLost(self._lost)

    def _mpi_failed(self, exc: BaseException) -> PeerLost:
        self._lose(f"MPI error on link to {self.peer}: {exc}")
        assert self._lost is not None
        return PeerLost(self._lost)

    async def _complete(
        self,
        reqs: list[Any],
        keep: Any,
        *,
        sending: bool,
        on_cancel: Callable[[list[Any]], None] | None = None,
    ) -> None:
        """Wait for posted requests (in flight: MPI needs progress calls, so this
        task polls them itself). Raises PeerLost when the link dies (requests
        abandoned with their buffers). Cancelled: hands the unfinished requests
        to ``on_cancel`` if given, else to the poller, which finishes them in
        the background; re-raises in both cases."""
        try:
            while True:
                await asyncio.sleep(0)
                reqs = [r for r in reqs if not r.Test()]
                if not reqs:
                    return
                reason = self._lost or (self._peer_closing if sending else None)
                if reason is not None:
                    abandon(reqs, keep)
                    raise PeerLost(reason)
        except asyncio.CancelledError:
            if on_cancel is not None:
                on_cancel(reqs)
            else:
                self._poller.submit(reqs, keep)
            raise
        except self._mpi.Exception as exc:
            raise self._mpi_failed(exc) from exc

    # -- send -------------------------------------------------------------------------

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        if self._closed or self._lost is not None or self._peer_closing is not None:
            self._check_open()
            raise PeerLost(self._peer_closing)
        header = bytes(header)
        room = INLINE - PREFIX.size - len(header)
        sizes: list[int] = []
        flags = bytearray()
        inline: list[Any] = []
        big: list[Any] = []
        for buf in buffers:
            if hasattr(buf, CUDA_INTERFACE):
                view = self._devices.outgoing(buf)
                flag = DEVICE
            else:  # as_host_view, inlined: this is the per-message hot path
                view = memoryview(buf)
                if view.format != "B" or view.ndim != 1 or not view.c_contiguous:
                    view = as_host_view(view)
                flag = 0
            size = view.nbytes
            room -= 9
            if not flag and size <= SMALL and size <= room:
                flag = INLINED
                room -= size
                inline.append(view)
            elif size:
                big.append(view)
            sizes.append(size)
            flags.append(flag)
        total = len(header) + sum(sizes)
        if total > self._max:
            raise ProtocolError(
                f"message of {total} bytes exceeds max_message_size={self._max} on {self.peer}"
            )
        seq = self._send_seq
        self._send_seq = (seq + 1) & SEQ_MASK
        frame = pack_header(KIND_MESSAGE, header, sizes, flags, inline, seq)
        if not big and self._header_wait.peer_naps and self._side_lane_send(frame):
            return
        reqs = self._post(frame, big, seq)
        self._header_wait.sent()
        if len(reqs) == 1 and reqs[0].Test():
            return  # eager: done, no yield
        await self._complete(reqs, (frame, big), sending=True)

    def _side_lane_send(self, frame: bytes) -> bool:
        """Send a header message that holds its whole message on the side lane
        (the peer naps); False when it is too long or the side channel does
        not take it now (then it goes over MPI: the peer orders the lanes)."""
        side = self._side
        if side is None or len(frame) > SIDE_LANE_MAX or not side.send_message(frame):
            return False
        self._header_wait.spinner.kick()  # traffic: keep the loop awake (ACTORS_LOOP_SPIN_US)
        return True

    def _post(self, frame: bytes, big: list[Any], seq: int) -> list[Any]:
        """Post the header message (number ``seq``) and every chunk, without
        yielding in between (so that concurrent sends never interleave)."""
        byte, comm, dest = self._byte, self._comm, self._remote
        if len(frame) <= INLINE:
            reqs = [comm.Isend([frame, byte], dest, TAG_HEADER)]
        else:
            announce = pack_announcement(len(frame), seq)
            reqs = [
                comm.Isend([announce, byte], dest, TAG_HEADER),
                comm.Isend([frame, byte], dest, TAG_LONG),
            ]
        for view in big:
            for chunk in chunks(view, view.nbytes):
                reqs.append(comm.Isend([chunk, byte], dest, TAG_DATA))
        return reqs

    # -- recv -------------------------------------------------------------------------

    async def recv(self) -> Message:
        if self._stash is not None:  # a cancelled recv left a message half received
            return await self._finish_stash()
        self._check_open()
        inbox = self._inbox
        lane, seq = self._side_lane, self._recv_seq
        try:
            if not lane.pending and not inbox.ready():
                await self._header_wait.wait(lane, seq)
            # the fast path: nothing came on the side lane, the inbox holds message seq
            if (lane.pending or not inbox.is_seq(seq)) and await self._header_wait.next_message(
                seq, lane
            ):
                return await self._from_side_lane()
        except self._mpi.Exception as exc:  # e.g. MPI_ERR_TRUNCATE: oversized header
            await self._abort(f"bad header message from {self.peer}: {exc}")
            raise ProtocolError(f"bad header message from {self.peer}: {exc}") from exc
        self._recv_seq = (seq + 1) & SEQ_MASK
        # The header receive is inactive now: parse, copy out, restart it.
        # From here on the message is ours: if this call is cancelled, the rest
        # is finished in the background and handed to the next recv.
        try:
            kind, header, sizes, flags, offset = inbox.parse(self._max)
        except ProtocolError as exc:
            await self._abort(f"{exc} from {self.peer}")
            raise ProtocolError(f"{exc} from {self.peer}; link closed") from None
        self._header_wait.spinner.kick()  # traffic: keep the loop awake (ACTORS_LOOP_SPIN_US)
        if kind == KIND_LONG:
            inbox.restart()
            task = asyncio.get_running_loop().create_task(self._long_message(offset))
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                self._keep(task)
                raise
        out = inbox.inlined(sizes, flags, offset)
        inbox.restart()
        return await self._rest(kind, header, sizes, flags, out, stash=True)

    async def _from_side_lane(self) -> Message:
        """The next message, from the side lane (only when it is there).
        Raises ProtocolError (the link closed) when it is malformed."""
        try:
            message = self._side_lane.take()
        except ProtocolError as exc:
            await self._abort(str(exc))
            raise ProtocolError(f"{exc}; link closed") from None
        self._recv_seq = (self._recv_seq + 1) & SEQ_MASK
        self._header_wait.spinner.kick()  # traffic: keep the loop awake (ACTORS_LOOP_SPIN_US)
        return message

    async def _rest(
        self,
        kind: int,
        header: bytes,
        sizes: list[int],
        flags: bytes,
        out: list[Any],
        *,
        stash: bool,
    ) -> Message:
        """Receive the buffers of a parsed header message (``out`` holds the
        inlined ones). ``stash``: when cancelled, the rest goes on in a task
        whose message the next ``recv`` returns."""
        if kind == KIND_BYE:
            self._bye_received = True
            self._lose(f"peer {self.peer} closed the link")
            raise PeerLost(self._lost)
        if flags.count(INLINED) == len(flags):  # nothing left to receive
            return header, out
        reqs = self._inbox.post_body(sizes, flags, out, self._devices.allocate)

        def finish_later(left: list[Any]) -> None:
            task = asyncio.get_running_loop().create_task(
                self._finish_body(left, header, out, flags)
            )
            self._keep(task)

        await self._complete(reqs, out, sending=False, on_cancel=finish_later if stash else None)
        return header, self._devices.deliver(out, flags) if DEVICE in flags else out

    async def _finish_body(
        self, reqs: list[Any], header: bytes, out: list[Any], flags: bytes
    ) -> Message:
        await self._complete(reqs, out, sending=False)
        return header, self._devices.deliver(out, flags)

    async def _long_message(self, size: int) -> Message:
        """The whole message behind a KIND_LONG announcement of ``size`` bytes."""
        kind, header, sizes, flags, out = await self._receive_long(size)
        return await self._rest(kind, header, sizes, flags, out, stash=False)

    def _keep(self, task: asyncio.Task[Message]) -> None:
        """Stash the rest of a message taken by a cancelled recv for the next recv."""
        task.add_done_callback(_retrieve)
        self._stash = task

    async def _finish_stash(self) -> Message:
        task = self._stash
        assert task is not None
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._stash = None

    async def _receive_long(self, size: int) -> tuple[int, bytes, list[int], bytes, list[Any]]:
        """Receive and parse a header message too long for the header receive."""
        import numpy as np

        try:
            if size > long_header_limit(self._max):
                raise ProtocolError(f"header message of {size} bytes is too large")
            data = np.empty(size, np.uint8)
            req = self._inbox.post(data, TAG_LONG)
            await self._complete([req], data, sending=False)
            kind, header, sizes, flags, offset = unpack_header(data, self._max)
            if kind == KIND_LONG:
                raise ProtocolError("long header message announces another one")
        except ProtocolError as exc:
            await self._abort(f"{exc} from {self.peer}")
            raise ProtocolError(f"{exc} from {self.peer}; link closed") from None
        return kind, header, sizes, flags, inlined_copies(data, sizes, flags, offset)

    # -- close ------------------------------------------------------------------------

    async def _abort(self, reason: str) -> None:
        self._lose(reason)
        await self.close()

    async def close(self) -> None:
        """Send BYE (after everything already sent), say goodbye on the side
        channel, fail our own pending calls. Idempotent; never blocks > ~2 s.

        Unless the peer's BYE was already received (or the peer is gone), a
        background task then keeps receiving and discarding what the peer
        sent until its BYE arrives, so that no message is left unmatched
        inside MPI at finalize (see :mod:`actors.transports.mpi._drain`)."""
        if self._closed:
            return
        self._closed = True
        # a peer that closed gracefully drains up to our BYE, also once its own BYE is in
        peer_waits = self._lost is None or self._bye_received
        if peer_waits:
            bye = pack_header(KIND_BYE, b"", [], [], seq=self._send_seq)
            req = self._comm.Isend([bye, self._byte], self._remote, TAG_HEADER)
            self._header_wait.sent()
            with contextlib.suppress(PeerLost, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._complete([req], bye, sending=False)
        if self._side is not None:
            await self._side.close(goodbye=peer_waits)
        drain = self._lost is None and not self._bye_received
        self._lose(f"link to {self.peer} is closed")
        if drain:
            start_drain(self._inbox, self.peer, self._max)
        else:
            self._inbox.free()
