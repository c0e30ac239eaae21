"""One ``mpi://`` link: message framing over a private two-process communicator.

Wire format (all little endian). A message is one *header message* on tag
:data:`TAG_HEADER` followed by its buffers on tag :data:`TAG_DATA`::

    header message = b"HAM1" | kind u32 | nbufs u32 | size u64 * nbufs
                     | flags u8 * nbufs | header bytes
    data           = each non-empty buffer, in order, in chunks of at most
                     CHUNK bytes (one Isend each, straight from the buffer)

``kind`` 0 is a message, 1 is ``BYE`` (graceful close, the last message the
closing side sends). ``flags`` bit 0 marks device memory. The receiver learns the
header message's length with a matched probe (``Improbe``), checks the sizes
against ``max_message_size``, allocates every buffer (numpy ``uint8`` on the
host, cupy for device buffers when MPI is CUDA-aware) and posts one ``Irecv``
per chunk straight into it: no staging copy, no pickle.

Why messages never mix: every link has its own communicator (rank mode: a
two-rank ``Create_group`` of ``COMM_WORLD``; port-file mode: the
``Accept``/``Connect`` inter-communicator), so links share nothing. Within a
link, MPI's non-overtaking rule keeps same-tag messages in posting order; a
``send`` posts its header and all its chunks synchronously (no await in
between), so concurrent ``send`` calls cannot interleave, and ``recv`` posts all
receives of one message before matching the next header.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..buffers import as_host_view, device_empty, device_to_host, host_to_device, is_device
from ..errors import BackendUnavailable, PeerLost, ProtocolError
from ._base import Capabilities, Link, Message
from ._mpi_runtime import Poller
from ._mpi_side import SideChannel

__all__ = ["CHUNK", "TAG_DATA", "TAG_HEADER", "MPILink", "pack_header", "unpack_header"]

TAG_HEADER = 1
TAG_DATA = 2
CHUNK = 1 << 30  # bytes per Isend/Irecv: stays below the 2 GiB count limit of MPI-3
MAGIC = b"HAM1"
KIND_MESSAGE, KIND_BYE = 0, 1
MAX_BUFFERS = 1 << 16
EAGER_HEADER = 16 << 10  # header messages up to this size are received in place
BYE_GRACE_S = 5.0  # after the peer's goodbye, how long to wait for its BYE
_PREFIX = struct.Struct("<4sII")
_DEVICE = 1


def pack_header(kind: int, header: bytes, sizes: Sequence[int], flags: Sequence[int]) -> bytes:
    """The header message for one message (see the module docstring)."""
    n = len(sizes)
    return b"".join(
        (
            _PREFIX.pack(MAGIC, kind, n),
            struct.pack(f"<{n}Q", *sizes),
            bytes(flags),
            header,
        )
    )


def unpack_header(
    data: bytes | bytearray, max_size: int
) -> tuple[int, bytes, list[int], list[int]]:
    """``(kind, header, sizes, flags)``; ProtocolError if malformed or too large."""
    if len(data) < _PREFIX.size:
        raise ProtocolError(f"header message of {len(data)} bytes is too short")
    magic, kind, n = _PREFIX.unpack_from(data)
    if magic != MAGIC or kind not in (KIND_MESSAGE, KIND_BYE):
        raise ProtocolError(f"bad header message (magic {magic!r}, kind {kind})")
    end = _PREFIX.size + 9 * n
    if n > MAX_BUFFERS or end > len(data):
        raise ProtocolError(f"header message announces {n} buffers but holds {len(data)} bytes")
    sizes = list(struct.unpack_from(f"<{n}Q", data, _PREFIX.size))
    flags = list(data[_PREFIX.size + 8 * n : end])
    header = bytes(data[end:])
    total = len(header) + sum(sizes)
    if total > max_size:
        raise ProtocolError(f"message of {total} bytes exceeds max_message_size={max_size}")
    return kind, header, sizes, flags


def _chunks(view: Any, nbytes: int) -> list[Any]:
    return [view[off : off + CHUNK] for off in range(0, nbytes, CHUNK)]


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
        self._poller = poller
        self._comm = comm
        self._remote = remote
        self._max = max_message_size
        self._cuda_aware = cuda_aware
        self._side: SideChannel | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._inflight: asyncio.Task[Message] | None = None
        self._closed = False
        self._lost: str | None = None  # why calls now raise PeerLost
        self._peer_closing = False

    def attach(self, side: SideChannel) -> None:
        self._side = side

    def on_side_event(self, kind: str, reason: str) -> None:
        """Side channel callback: ``"lost"`` fails everything now; ``"closed"``
        fails sends now and lets ``recv`` drain up to the peer's BYE."""
        if kind == "closed":
            self._peer_closing = True
            self._fail_pending(reason, sends_only=True)
            asyncio.get_running_loop().call_later(BYE_GRACE_S, self._lose, reason)
        else:
            self._lose(reason)

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        self._fail_pending(self._lost, sends_only=False)

    def _fail_pending(self, reason: str, *, sends_only: bool) -> None:
        for fut in list(self._pending):
            if not fut.done() and (not sends_only or getattr(fut, "_mpi_send", False)):
                fut.set_exception(PeerLost(reason))

    @property
    def closed(self) -> bool:
        return self._closed or self._lost is not None

    def _check_open(self) -> None:
        if self._closed:
            raise PeerLost(f"link to {self.peer} is closed")
        if self._lost is not None:
            raise PeerLost(self._lost)

    async def _await(self, fut: asyncio.Future[Any], *, send: bool = False) -> Any:
        """Await a poller future; PeerLost when the link dies meanwhile."""
        if send:
            fut._mpi_send = True  # type: ignore[attr-defined]
        self._pending.add(fut)
        try:
            return await asyncio.shield(fut)
        except self._mpi.Exception as exc:
            self._lose(f"MPI error on link to {self.peer}: {exc}")
            raise PeerLost(self._lost) from exc
        finally:
            self._pending.discard(fut)

    # -- send -------------------------------------------------------------------------

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        self._check_open()
        if self._peer_closing:
            raise PeerLost(f"peer {self.peer} closed the link")
        bufs, sizes, flags = self._prepare(buffers)
        total = len(header) + sum(sizes)
        if total > self._max:
            raise ProtocolError(
                f"message of {total} bytes exceeds max_message_size={self._max} on {self.peer}"
            )
        frame = pack_header(KIND_MESSAGE, bytes(header), sizes, flags)
        await self._post(frame, bufs, sizes)

    def _prepare(self, buffers: Sequence[Any]) -> tuple[list[Any], list[int], list[int]]:
        bufs, sizes, flags = [], [], []
        for buf in buffers:
            if is_device(buf):
                view = self._device_out(buf)
                flags.append(_DEVICE)
            else:
                view = as_host_view(buf)
                flags.append(0)
            bufs.append(view)
            sizes.append(int(view.nbytes))
        return bufs, sizes, flags

    def _device_out(self, buf: Any) -> Any:
        if not self._cuda_aware:
            return memoryview(device_to_host(buf)).cast("B")  # the one staging copy
        import cupy

        cupy.cuda.get_current_stream().synchronize()
        return cupy.asarray(buf).reshape(-1).view(cupy.uint8)

    async def _post(self, frame: bytes, bufs: list[Any], sizes: list[int]) -> None:
        # Everything is posted without an await in between: messages never interleave.
        byte = self._mpi.BYTE
        comm, dest = self._comm, self._remote
        reqs = [comm.Isend([frame, byte], dest, TAG_HEADER)]
        for view, size in zip(bufs, sizes, strict=True):
            for chunk in _chunks(view, size):
                reqs.append(comm.Isend([chunk, byte], dest, TAG_DATA))
        if self._mpi.Request.Testall(reqs):
            return
        await self._await(self._poller.submit(reqs, (frame, bufs)), send=True)

    # -- recv -------------------------------------------------------------------------

    async def recv(self) -> Message:
        task = self._inflight
        if task is not None:  # a cancelled recv left a message half received
            try:
                return await asyncio.shield(task)
            finally:
                if task.done():
                    self._inflight = None
        self._check_open()
        msg, count = self._probe_now()
        if msg is None:
            fut = self._poller.probe(self._comm, self._remote, TAG_HEADER)
            try:
                msg, count, _ = await self._await(fut)
            finally:
                fut.cancel()  # no-op when done; otherwise the poller forgets the probe
        # From here on the message is ours: finish it even if this call is cancelled.
        if count <= EAGER_HEADER:
            data = bytearray(count)
            msg.Recv([data, self._mpi.BYTE])
            header, out, flags, reqs = await self._start_body(data)
            if not reqs or self._mpi.Request.Testall(reqs):
                return header, self._deliver(out, flags)
            coro = self._finish_body(header, out, flags, reqs)
        else:
            coro = self._receive_large(msg, count)
        self._inflight = task = asyncio.get_running_loop().create_task(coro)
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight = None

    def _probe_now(self) -> tuple[Any, int]:
        status = self._mpi.Status()
        msg = self._comm.Improbe(self._remote, TAG_HEADER, status)
        return msg, (status.Get_count(self._mpi.BYTE) if msg is not None else 0)

    async def _receive_large(self, msg: Any, count: int) -> Message:
        if count > self._max + _PREFIX.size + 9 * MAX_BUFFERS:
            await self._abort(f"header message of {count} bytes from {self.peer} is too large")
            raise ProtocolError(f"header message of {count} bytes from {self.peer}; link closed")
        data = bytearray(count)
        req = msg.Irecv([data, self._mpi.BYTE])
        await self._await(self._poller.submit([req], data))
        header, out, flags, reqs = await self._start_body(data)
        return await self._finish_body(header, out, flags, reqs)

    async def _start_body(self, data: bytearray) -> tuple[bytes, list[Any], list[int], list[Any]]:
        """Parse the header message and post every buffer receive."""
        try:
            kind, header, sizes, flags = unpack_header(data, self._max)
        except ProtocolError as exc:
            await self._abort(f"{exc} from {self.peer}")
            raise ProtocolError(f"{exc} from {self.peer}; link closed") from None
        if kind == KIND_BYE:
            self._lose(f"peer {self.peer} closed the link")
            raise PeerLost(self._lost)
        byte, comm, src = self._mpi.BYTE, self._comm, self._remote
        out: list[Any] = []
        reqs: list[Any] = []
        for size, flag in zip(sizes, flags, strict=True):
            target = self._allocate(size, flag)
            out.append(target)
            for chunk in _chunks(target, size):
                reqs.append(comm.Irecv([chunk, byte], src, TAG_DATA))
        return header, out, flags, reqs

    async def _finish_body(
        self, header: bytes, out: list[Any], flags: list[int], reqs: list[Any]
    ) -> Message:
        if reqs:
            await self._await(self._poller.submit(reqs, out))
        return header, self._deliver(out, flags)

    def _allocate(self, size: int, flag: int) -> Any:
        if flag & _DEVICE and self._cuda_aware:
            return device_empty(size)
        return np.empty(size, dtype=np.uint8)

    @staticmethod
    def _deliver(out: list[Any], flags: list[int]) -> list[Any]:
        result = []
        for buf, flag in zip(out, flags, strict=True):
            if flag & _DEVICE and not is_device(buf):
                with contextlib.suppress(BackendUnavailable):
                    buf = host_to_device(buf)  # staged: the one copy on this side
            result.append(buf)
        return result

    # -- close ------------------------------------------------------------------------

    async def _abort(self, reason: str) -> None:
        self._lose(reason)
        await self.close()

    async def close(self) -> None:
        """Send BYE (after everything already sent), say goodbye on the side
        channel, fail our own pending calls. Idempotent; never blocks > ~2 s."""
        if self._closed:
            return
        self._closed = True
        graceful = self._lost is None and not self._peer_closing
        if graceful:
            bye = pack_header(KIND_BYE, b"", [], [])
            req = self._comm.Isend([bye, self._mpi.BYTE], self._remote, TAG_HEADER)
            with contextlib.suppress(PeerLost, TimeoutError):
                async with asyncio.timeout(1.0):
                    if not self._mpi.Request.Testall([req]):
                        await self._await(self._poller.submit([req], bye))
        if self._side is not None:
            await self._side.close(goodbye=self._lost is None)
        self._lose(f"link to {self.peer} is closed")
