"""A :class:`Link` over a connected, non-blocking stream socket (TCP or Unix).

Receiving: one reader callback stays registered on the event loop for the
whole life of the link (``loop.add_reader``, no per-message registration); it
reads and parses with :class:`._framereader.FrameReader` (several small frames
per system call; large buffers read straight into their final allocation).
Complete messages wait in a short inbox, and ``recv`` returns one without
creating a future when one is there. When ``_INBOX_HIGH`` of them are
unclaimed the link stops reading (TCP/Unix flow control then stops the sender)
and resumes when ``recv`` has taken them below ``_INBOX_LOW``.

Adaptive polling (:mod:`._spin`): a ``recv`` that finds the inbox empty
shortly after the last message arrived first polls the socket with
non-blocking reads for at most ``link.poller.seconds`` (default 100 us, env
``ACTORS_STREAM_SPIN_US``), then waits in the event loop: a request/reply exchange
between processes skips the wake-up of a sleeping loop; a quiet link never
polls and uses no CPU.

Sending: the preamble (see :mod:`._framing`) and the buffers go out with
``socket.sendmsg`` (scatter/gather, no concatenation; from 256 KiB of payload
the preamble goes first on its own, which keeps the payload aligned in the
kernel's socket pages, see ``_SPLIT_PREAMBLE``) directly from ``send``,
without yielding when the kernel takes it all (the usual case); the rest is
sent when the socket becomes writable. Concurrent ``send`` calls are
serialised by a lock. Cancelling a ``send`` after part of its frame went out
leaves the stream unusable, so the link is closed (PeerLost afterwards).

Subclasses (shm) override :meth:`StreamLink._read_into`, :meth:`_resolve` and
:meth:`_on_control`, and set ``_OOB_FLAGS``, to carry buffers out of band.
"""

from __future__ import annotations

import array
import asyncio
import collections
import logging
import select
import socket
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ...buffers import as_host_view, device_to_host, host_to_device
from ...errors import BackendUnavailable, PeerLost, ProtocolError
from .._base import Capabilities, Link, Message, warn_no_device
from .._spin import AdaptivePoll, loop_spinner
from ._framereader import FrameReader
from ._framing import FLAG_DEVICE, KIND_DATA, Entry, encode_preamble

__all__ = ["StreamLink", "log"]

log = logging.getLogger("actors.transports")

_INBOX_HIGH = 64
_INBOX_LOW = 16
_IOV_MAX = 512
#: Frames with at least this many payload bytes send their preamble on its own
#: first: sent together, the payload lands in the kernel's socket pages offset
#: by the preamble length, misaligned for both the sender's and the receiver's
#: copy - 64 MiB ping-pong ran at ~1.6 GB/s instead of ~3.5 GB/s on loopback.
_SPLIT_PREAMBLE = 1 << 18
_Pending = tuple[bytes, list[Any], list[bool] | None]  # header, buffers, which on device


class StreamLink(Link):
    """Framed messages over ``sock`` (connected, handshake done)."""

    #: Table-entry flags of buffers that do not travel on the stream (see _resolve).
    _OOB_FLAGS = 0

    def __init__(
        self, sock: socket.socket, peer: str, max_message_size: int, caps: Capabilities
    ) -> None:
        self.peer = peer
        self.capabilities = caps
        #: When and how long ``recv`` polls before it waits (see :mod:`._spin`).
        self._spinner = loop_spinner(asyncio.get_running_loop())
        self.poller = AdaptivePoll(spinner=self._spinner)
        self._sock = sock
        self._fd = sock.fileno()
        self._max = max_message_size
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._error: tuple[type[Exception], str] | None = None
        self._send_lock = asyncio.Lock()
        self._senders = 0  # senders holding or waiting for _send_lock
        self._inbox: collections.deque[_Pending] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._wfut: asyncio.Future[None] | None = None
        self._paused = False
        self._device_ok = True  # until a device-flagged buffer finds no cupy here
        self._reader = FrameReader(
            max_message_size, peer, self._deliver, self._on_control, self._resolve, self._OOB_FLAGS
        )
        # the plain socket call when no subclass changes how bytes are read
        self._recv_into: Callable[[memoryview], int] = (
            sock.recv_into if type(self)._read_into is StreamLink._read_into else self._read_into
        )
        self._loop.add_reader(self._fd, self._on_readable)

    # -- public API ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        if self._closed or self._paused:
            self._check_usable()
        entries, views = self._stage(buffers)
        await self._send_frame(KIND_DATA, header, entries, views)

    async def recv(self) -> Message:
        inbox = self._inbox
        if not inbox:
            await self._wait_message()
        header, bufs, device = inbox.popleft()
        if self._paused and len(inbox) <= _INBOX_LOW and not self._closed:
            self._paused = False
            self._reader.active = True
            self._loop.add_reader(self._fd, self._on_readable)
        if device is not None and self._device_ok:
            for i, on_device in enumerate(device):
                if on_device and self._device_ok:
                    bufs[i] = self._to_device(bufs[i])
        return header, bufs

    async def close(self) -> None:
        """Close the link; idempotent. Messages not yet received are dropped:
        ``recv`` raises from now on (PeerLost, or once the ProtocolError that
        closed the link, if not reported yet), and nothing the link read keeps
        a buffer alive - a shm:// segment is unmapped as soon as the caller
        holds no view of it either."""
        self._shutdown(PeerLost, f"link to {self.peer} is closed")
        self._inbox.clear()

    def _to_device(self, buf: Any) -> Any:
        """A received buffer the peer flagged as device memory: copied to the
        device, or left in host memory when this process has no cupy (the
        peer's flag is no misuse here: decoding a cupy array from it raises
        CodecError, anything else decodes as usual). Logged once per link."""
        try:
            return host_to_device(buf)
        except BackendUnavailable as exc:
            self._device_ok = False
            warn_no_device(log, self.peer, exc)
            return buf

    async def _wait_message(self) -> None:
        """Poll briefly (see :mod:`._spin`), then wait for the reader callback."""
        if not self._closed and not self._paused:
            self.poller.run(self._poll_once)
        while not self._inbox:
            if self._closed:
                self._raise_terminal()
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _poll_once(self) -> bool:
        """One non-blocking read; True when polling should stop (message, close, pause)."""
        self._on_readable()
        return bool(self._inbox) or self._closed or self._paused

    # -- sending ------------------------------------------------------------------

    def _stage(self, buffers: Sequence[Any]) -> tuple[list[Entry], list[Any]]:
        """Table entries and host views for ``buffers`` (device ones copied once)."""
        entries, views = [], []
        total = 0
        for b in buffers:
            if hasattr(b, "__cuda_array_interface__"):  # is_device(), inlined
                view, flags = as_host_view(device_to_host(b)), FLAG_DEVICE
            else:
                view, flags = as_host_view(b), 0
            total += view.nbytes
            entries.append(Entry(view.nbytes, flags))
            views.append(view)
        if total > self._max:
            raise ProtocolError(
                f"message of {total} bytes exceeds max_message_size={self._max} on {self.peer}"
            )
        return entries, views

    async def send_many(self, messages: Sequence[tuple[bytes, Sequence[Any]]]) -> None:
        """Send ``messages`` in order; consecutive ones without buffers leave
        together (one ``sendmsg`` where the socket takes them all). Raises as
        :meth:`send` does; after an error, some of them may have gone."""
        iov: list[Any] = []
        size = 0
        for header, buffers in messages:
            if buffers:
                if iov:
                    await self._send_iov(iov, size, size)
                    iov, size = [], 0
                await self.send(header, buffers)
                continue
            preamble = encode_preamble(KIND_DATA, header, [])
            iov.append(preamble)
            size += len(preamble)
        if iov:
            await self._send_iov(iov, size, size)

    async def _send_frame(
        self,
        kind: int,
        header: bytes,
        entries: list[Entry],
        views: list[Any],
        fds: Sequence[int] = (),
    ) -> None:
        iov = [encode_preamble(kind, header, entries)]
        size = pre = len(iov[0])
        if views:
            size += sum(v.nbytes for v in views)
            iov.extend(v for v in views if v.nbytes)
        await self._send_iov(iov, size, pre, fds)

    async def _send_iov(self, iov: list[Any], size: int, pre: int, fds: Sequence[int] = ()) -> None:
        """Write ``iov`` (``size`` bytes, of which the first ``pre`` are the
        preamble to send on its own ahead of a large payload) as one unit."""
        split = not fds and size - pre >= _SPLIT_PREAMBLE
        sent_any = False
        if not self._senders:
            # no other sender holds or waits for the lock: try at once, without yielding
            # (usually takes it all). A sender that was woken by a release but has not run
            # yet still counts in _senders, so a frame is never written into another's.
            if self._closed or self._paused:
                self._check_usable()
            n = pre
            if split:  # the preamble alone first (see _SPLIT_PREAMBLE)
                n = self._sendmsg(iov[:1], fds)
                if n:
                    sent_any = True
                    _consume(iov, n)
                    size -= n
            if n == pre:
                n = self._sendmsg(iov[:_IOV_MAX], fds)
                if n == size and len(iov) <= _IOV_MAX:
                    self._spinner.kick()
                    return  # all of it went out (the usual case)
                if n:
                    fds = ()
                    _consume(iov, n)
                    sent_any = True
                if not iov:
                    return
        self._senders += 1
        try:
            await self._send_lock.acquire()  # free, without yielding, if we wrote above
            try:
                self._check_usable()
                await self._write(iov, fds, sent_any=sent_any, split=split)
            finally:
                self._send_lock.release()
        finally:
            self._senders -= 1

    async def _write(
        self, iov: list[Any], fds: Sequence[int], *, sent_any: bool, split: bool = False
    ) -> None:
        """Send the rest of a frame; waits for writability between attempts."""
        try:
            if not sent_any:
                n = self._sendmsg(iov[:1] if split else iov[:_IOV_MAX], fds)
                if n:
                    sent_any, fds = True, ()
                    _consume(iov, n)
            while iov:
                await self._writable()
                n = self._sendmsg(iov[:_IOV_MAX], fds)
                if n:
                    sent_any, fds = True, ()
                    _consume(iov, n)
        except asyncio.CancelledError:
            if sent_any and iov:
                self._shutdown(PeerLost, f"send to {self.peer} cancelled mid-frame")
            raise

    def _sendmsg(self, iov: list[Any], fds: Sequence[int]) -> int:
        try:
            if not fds:
                return self._sock.sendmsg(iov)
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
            return self._sock.sendmsg(iov, anc)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._shutdown(PeerLost, f"peer {self.peer} is gone ({exc.strerror or exc})")
            self._raise_terminal()

    async def _writable(self) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._wfut = fut
        self._loop.add_writer(self._fd, _set_done, fut)
        try:
            await fut
        finally:
            self._wfut = None
            if not self._closed:
                self._loop.remove_writer(self._fd)
        self._check_usable()

    def _check_usable(self) -> None:
        if self._closed:
            self._raise_terminal(as_peer_lost=True)
        if self._paused and self._peer_hung_up():
            self._shutdown(PeerLost, f"peer {self.peer} closed the connection")
            self._raise_terminal()

    def _peer_hung_up(self) -> bool:
        """While reading is paused, EOF is not seen by the reader: poll for it."""
        poller = select.poll()
        poller.register(self._fd, select.POLLRDHUP)
        return any(
            ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR) for _, ev in poller.poll(0)
        )

    # -- receiving ----------------------------------------------------------------

    def _read_into(self, view: memoryview) -> int:
        """One non-blocking read into ``view``; 0 at EOF; raises BlockingIOError."""
        return self._sock.recv_into(view)

    def _on_readable(self) -> None:
        """Reader callback: read and parse what is there; an error closes the link.

        Errors are logged and kept as text only: a log record that held the
        exception would hold its traceback, whose frames may hold buffers of the
        failed frame (views of shm segments, which then stay mapped, their
        descriptors open, for as long as a handler keeps the record).
        """
        try:
            if not self._reader.pump(self._recv_into):
                self._eof()
        except ProtocolError as exc:
            message = str(exc)
            log.warning("closing link to %s: %s", self.peer, message)
            self._shutdown(ProtocolError, message)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._shutdown(PeerLost, f"peer {self.peer} is gone ({exc.strerror or exc})")
        except Exception as exc:  # e.g. MemoryError for an allowed but huge message
            message = repr(exc)
            log.error("closing link to %s: cannot receive: %s", self.peer, message)
            self._shutdown(PeerLost, f"link to {self.peer} failed while receiving: {message}")

    def _eof(self) -> None:
        if self._reader.mid_message:
            msg = f"peer {self.peer} closed the connection in the middle of a message"
        else:
            msg = f"peer {self.peer} closed the connection"
        self._shutdown(PeerLost, msg)

    def _deliver(self, header: bytes, bufs: list[Any], device: list[bool] | None) -> None:
        """FrameReader callback: one complete message."""
        self._inbox.append((header, bufs, device))
        self.poller.activity()
        self._spinner.kick()
        if len(self._inbox) >= _INBOX_HIGH and not self._paused:
            self._paused = True
            self._reader.active = False
            self._loop.remove_reader(self._fd)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resolve(self, entry: Entry) -> Any:
        """A buffer whose entry has one of ``_OOB_FLAGS`` (never called without any)."""
        raise ProtocolError(f"{self.peer} sent an out-of-band buffer on a stream-only link")

    def _on_control(self, kind: int, entries: list[Entry]) -> None:
        raise ProtocolError(f"unexpected control frame kind {kind} from {self.peer}")

    # -- closing ------------------------------------------------------------------

    def _shutdown(self, kind: type[Exception], message: str) -> None:
        """Close the socket once; later calls raise ``kind(message)``.

        Drops the reader's partial message and calls :meth:`_release` (shm://
        unmaps every segment no caller holds a view of, closes every received
        descriptor). Complete messages already in the inbox stay receivable
        until :meth:`close`.
        """
        if self._closed:
            return
        self._closed = True
        self._reader.stopped = True
        self._reader.discard()
        self._error = (kind, message)
        if not self._paused:
            self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()
        self._release()
        for fut in (self._waiter, self._wfut):
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _release(self) -> None:
        """Free backend resources (subclasses); called once from _shutdown."""

    def _raise_terminal(self, *, as_peer_lost: bool = False) -> NoReturn:
        kind, message = self._error or (PeerLost, f"link to {self.peer} is closed")
        if as_peer_lost or kind is PeerLost:
            raise PeerLost(message)
        # a protocol error is reported once by recv; afterwards the link is simply gone
        self._error = (PeerLost, f"link to {self.peer} was closed after: {message}")
        raise kind(message)


def _consume(iov: list[Any], n: int) -> None:
    """Drop the first ``n`` sent bytes from ``iov`` in place."""
    while n:
        first = len(iov[0])
        if n >= first:
            n -= first
            iov.pop(0)
        else:
            iov[0] = memoryview(iov[0])[n:]
            n = 0


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
