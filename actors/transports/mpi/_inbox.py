"""The receive side of one ``mpi://`` link: its header receive and body receives.

Used by the link (:mod:`actors.transports.mpi._link`) while it is open and by
the close-time drain (:mod:`actors.transports.mpi._drain`) after it: both go
through :class:`Inbox`, the one home of the header-receive state.

The header receive is one *persistent* receive (``Recv_init``) of
:data:`~actors.transports.mpi._frame.INLINE` bytes, always active on
``TAG_HEADER`` and restarted as soon as a header message has been parsed (a
posted receive completes faster than a matched probe, and a persistent one
costs no buffer parsing per message). Its state: :meth:`Inbox.ready` is True
from the moment a ``Test`` (ours or the poller's) completes the request until
:meth:`Inbox.restart`, and the request is tested only while it is active. Both
matter because a completed persistent request is inactive, and ``Test`` on an
inactive request answers "complete" with an *empty* status (0 bytes): a
completion lost to a cancellation that raced with it would otherwise read as
a 0-byte header message, and the real header would be gone.

Loop rules: every method runs on the loop of the link (the poller is per
loop); one task at a time waits (:meth:`Inbox.wait`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import PeerLost
from ._frame import (
    CHUNK,
    INLINE,
    INLINED,
    SEQ_FIELD,
    SEQ_OFFSET,
    TAG_DATA,
    TAG_HEADER,
    header_seq,
    unpack_header,
)
from ._runtime import Poller, abandon

__all__ = ["Inbox", "chunks"]


def chunks(view: Any, nbytes: int) -> list[Any]:
    """``view`` in pieces of at most CHUNK bytes (MPI-3 counts are 32-bit)."""
    if nbytes <= CHUNK:
        return [view]
    return [view[off : off + CHUNK] for off in range(0, nbytes, CHUNK)]


class Inbox:
    """Header receive and body receives of a link to rank ``remote`` of ``comm``.

    Starts the header receive at construction; :meth:`free` ends it.
    """

    def __init__(self, mpi: Any, poller: Poller, comm: Any, remote: int) -> None:
        self.poller = poller
        self.comm = comm
        self.remote = remote
        self.error: type[Exception] = mpi.Exception  # what MPI calls raise
        self._byte = mpi.BYTE
        self._buf = bytearray(INLINE)  # parsed through this (fast struct access)
        self._view = np.frombuffer(self._buf, np.uint8)  # inlined buffers copied from this
        self._status = mpi.Status()
        self._req = comm.Recv_init([self._buf, mpi.BYTE], remote, TAG_HEADER)
        self._req.Start()
        self._in = False  # completed; its message is not parsed yet
        self._wait: asyncio.Future[Any] | None = None  # the poller's wait, while one runs
        self._interrupted = False  # interrupt() ended the poller's wait, not a completion
        self._seq_field = SEQ_FIELD.unpack_from

    # -- the header receive -----------------------------------------------------------

    def ready(self) -> bool:
        """Non-blocking: True once the header receive holds a message that is not
        parsed yet. MPI errors (e.g. a truncated, oversized header) raise
        :attr:`error`."""
        if not self._in and self._req.Test(self._status):
            self._in = True
        return self._in

    def seq(self) -> int | None:
        """The ``seq`` of the received header message (only when :meth:`ready`);
        None when it is too short to hold one (:meth:`parse` says why)."""
        return header_seq(self._buf, self._status.Get_count(self._byte))

    def is_seq(self, seq: int) -> bool:
        """Fast form of ``seq() == seq`` for every message's path: reads the
        field without checking the length received, so a header message too
        short to hold one may answer True; :meth:`parse` then refuses it."""
        return bool(self._seq_field(self._buf, SEQ_OFFSET)[0] == seq)

    def parse(self, max_size: int) -> tuple[int, bytes, list[int], bytes, int]:
        """``unpack_header`` of the received header message (only when
        :meth:`ready`); ProtocolError if malformed or larger than ``max_size``."""
        return unpack_header(self._buf, max_size, self._status.Get_count(self._byte))

    def inlined(self, sizes: list[int], flags: bytes, offset: int) -> list[Any]:
        """Copies of the inlined buffers (numpy ``uint8``) of the received header
        message, ``None`` in the places of the others."""
        view = self._view
        if len(flags) == 1 and flags[0] == INLINED:  # the common small message
            return [view[offset : offset + sizes[0]].copy()]
        return inlined_copies(view, sizes, flags, offset)

    def restart(self) -> None:
        """The header message is parsed: receive the next one."""
        self._in = False
        self._req.Start()

    async def wait(self, on_nap: Callable[[], None] | None = None) -> None:
        """Hand the wait for a header message to the poller (backoff) until
        :meth:`ready` or :meth:`interrupt`; ``on_nap`` is called once the wait
        is handed over. Cancel-safe: a completion that races with the
        cancellation (the poller completed the request, the task was cancelled
        before it resumed) is recorded, never lost. Raises what :meth:`fail`
        sets, or :attr:`error`."""
        if self.ready():
            return
        self._wait = fut = self.poller.submit([self._req], None, passive=True, status=self._status)
        if on_nap is not None:
            on_nap()
        try:
            await fut
        finally:
            if self._interrupted:
                self._interrupted = False  # the request was not tested: still active
            elif fut.done() and not fut.cancelled() and fut.exception() is None:
                self._in = True  # the poller's Test completed it
            else:
                fut.cancel()  # no-op when done; otherwise the poller forgets it
            if self._wait is fut:
                self._wait = None

    @property
    def pending_wait(self) -> asyncio.Future[Any] | None:
        """The poller's future while :meth:`wait` has handed the wait over
        (None otherwise); done once the header receive completed."""
        return self._wait

    def interrupt(self) -> None:
        """End a running :meth:`wait` now, without a message (no-op without one;
        the poller skips a wait that is done, so the request stays active)."""
        fut = self._wait
        if fut is not None and not fut.done():
            self._interrupted = True
            fut.set_result(None)

    def fail(self, exc: PeerLost) -> None:
        """Make a running :meth:`wait` raise ``exc`` now (no-op without one)."""
        fut = self._wait
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def free(self) -> None:
        """Cancel (unless complete) and free the header receive; the link is done.
        Idempotent; MPI errors leave the request abandoned with its buffer."""
        req = self._req
        if req is None:
            return
        self._req = None
        try:
            if not self._in and not req.Test(self._status):
                req.Cancel()
                req.Wait()  # a cancelled receive completes locally at once
            req.Free()
        except self.error:
            abandon([req], (self._buf, self._view))

    # -- bodies -----------------------------------------------------------------------

    def post_body(
        self, sizes: list[int], flags: bytes, out: list[Any], allocate: Callable[[int, int], Any]
    ) -> list[Any]:
        """Allocate every buffer of a message that is not in ``out`` yet
        (``allocate(size, flag)``) and post its receives; the requests."""
        byte, comm, src = self._byte, self.comm, self.remote
        reqs: list[Any] = []
        for i, (size, flag) in enumerate(zip(sizes, flags, strict=True)):
            if out[i] is not None:
                continue
            target = allocate(size, flag)
            out[i] = target
            if size:
                for chunk in chunks(target, size):
                    reqs.append(comm.Irecv([chunk, byte], src, TAG_DATA))
        return reqs

    def post(self, data: Any, tag: int) -> Any:
        """Post one receive of ``data`` (bytes-like) on ``tag``; the request."""
        return self.comm.Irecv([data, self._byte], self.remote, tag)


def inlined_copies(data: Any, sizes: list[int], flags: bytes, offset: int) -> list[Any]:
    """Copies of the inlined buffers of a header message held in numpy
    ``uint8`` array ``data``, ``None`` in the places of the others."""
    out: list[Any] = []
    for size, flag in zip(sizes, flags, strict=True):
        if flag & INLINED:
            out.append(data[offset : offset + size].copy())
            offset += size
        else:
            out.append(None)
    return out
