"""A :class:`Link` over a connected, non-blocking stream socket (TCP or Unix).

Receiving: one reader callback stays registered on the event loop for the
whole life of the link (``loop.add_reader``, no per-message registration). Small
frames are read into a 64 KiB scratch area and parsed from it, several per
system call; a buffer that is larger than what the scratch holds is allocated
once (``numpy.empty``, no zero-fill; from 1 MiB on, reused through
:mod:`._recvcache`) and the socket reads straight into it.
Complete messages wait in a short inbox; when ``_INBOX_HIGH`` of them are
unclaimed the link stops reading (TCP/Unix flow control then stops the sender)
and resumes when ``recv`` has taken them below ``_INBOX_LOW``.

Sending: the preamble (see :mod:`._framing`) and the buffers go out with
``socket.sendmsg`` (scatter/gather, no concatenation); what the kernel does not
take at once is sent when the socket becomes writable. Concurrent ``send`` calls
are serialised by a lock. Cancelling a ``send`` after part of its frame went
out leaves the stream unusable, so the link is closed (PeerLost afterwards).

Subclasses (shm) override :meth:`StreamLink._read_into`, :meth:`_resolve` and
:meth:`_on_control` to carry buffers out of band.
"""

from __future__ import annotations

import array
import asyncio
import collections
import logging
import os
import select
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from ..buffers import as_host_view, device_to_host, host_to_device, is_device
from ..errors import PeerLost, ProtocolError
from ._base import Capabilities, Link, Message
from ._framing import (
    ENTRY,
    FLAG_DEVICE,
    KIND_DATA,
    PREFIX,
    Entry,
    Preamble,
    encode_preamble,
    parse_prefix,
    parse_table,
)
from ._recvcache import MIN_CACHED
from ._recvcache import cache as recv_cache

__all__ = ["StreamLink", "log"]

log = logging.getLogger("actors.transports")

_SCRATCH = 1 << 16
#: Seconds ``recv`` polls the socket without yielding before it waits in the event
#: loop (env ``HEP_ACTORS_SPIN_US``, microseconds). Polling saves the wake-up of a
#: sleeping loop on a lightly loaded host with spare cores and costs a core while it
#: lasts; the default is 0 (never spin).
SPIN_SECONDS = float(os.environ.get("HEP_ACTORS_SPIN_US", "0")) * 1e-6
_INBOX_HIGH = 64
_INBOX_LOW = 16
_IOV_MAX = 512
_Pending = tuple[bytes, list[Any], list[Entry]]


class StreamLink(Link):
    """Framed messages over ``sock`` (connected, handshake done)."""

    def __init__(
        self, sock: socket.socket, peer: str, max_message_size: int, caps: Capabilities
    ) -> None:
        self.peer = peer
        self.capabilities = caps
        self._sock = sock
        self._fd = sock.fileno()
        self._max = max_message_size
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._error: tuple[type[Exception], str] | None = None
        self._send_lock = asyncio.Lock()
        self._inbox: collections.deque[_Pending] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._wfut: asyncio.Future[None] | None = None
        self._paused = False
        # receive state
        self._scratch = bytearray(_SCRATCH)
        self._sview = memoryview(self._scratch)
        self._rbeg = self._rend = 0
        self._pre: Preamble | None = None  # current frame's prefix, table not yet parsed
        self._entries: list[Entry] = []
        self._header = b""
        self._bufs: list[Any] = []
        self._target: memoryview | None = None  # direct-read destination
        self._tgot = 0
        self._target_is_preamble = False
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
        self._check_usable()
        entries, views = self._stage(buffers)
        await self._send_frame(KIND_DATA, header, entries, views)

    async def recv(self) -> Message:
        if not self._inbox and SPIN_SECONDS > 0:
            self._spin(SPIN_SECONDS)
        while not self._inbox:
            if self._closed:
                self._raise_terminal()
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        header, bufs, entries = self._inbox.popleft()
        if self._paused and len(self._inbox) <= _INBOX_LOW and not self._closed:
            self._paused = False
            self._loop.add_reader(self._fd, self._on_readable)
        for i, e in enumerate(entries):
            if e.flags & FLAG_DEVICE:
                bufs[i] = host_to_device(bufs[i])
        return header, bufs

    async def close(self) -> None:
        self._shutdown(PeerLost, f"link to {self.peer} is closed")

    def _spin(self, seconds: float) -> None:
        """Poll the socket for up to ``seconds`` (blocks the loop that long at most)."""
        deadline = time.perf_counter() + seconds
        while not self._inbox and not self._closed and not self._paused:
            self._on_readable()
            if time.perf_counter() > deadline:
                return

    # -- sending ------------------------------------------------------------------

    def _stage(self, buffers: Sequence[Any]) -> tuple[list[Entry], list[Any]]:
        """Table entries and host views for ``buffers`` (device ones copied once)."""
        entries, views = [], []
        total = 0
        for b in buffers:
            if is_device(b):
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

    async def _send_frame(
        self,
        kind: int,
        header: bytes,
        entries: list[Entry],
        views: list[Any],
        fds: Sequence[int] = (),
    ) -> None:
        iov = [encode_preamble(kind, header, entries)]
        if views:
            iov.extend(v for v in views if len(v))
        if not self._send_lock.locked():
            # nobody is sending: try at once, without yielding (usually takes it all)
            self._check_usable()
            n = self._sendmsg(iov[:_IOV_MAX], fds)
            if n:
                fds = ()
                _consume(iov, n)
            if not iov:
                return
            sent_any = bool(n)
        else:
            sent_any = False
        await self._send_lock.acquire()  # does not yield when free
        try:
            self._check_usable()
            await self._write(iov, fds, sent_any=sent_any)
        finally:
            self._send_lock.release()

    async def _write(self, iov: list[Any], fds: Sequence[int], *, sent_any: bool) -> None:
        """Send the rest of a frame; waits for writability between attempts."""
        try:
            if not sent_any:
                n = self._sendmsg(iov[:_IOV_MAX], fds)
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
        try:
            self._pump()
        except ProtocolError as exc:
            log.warning("closing link to %s: %s", self.peer, exc)
            self._shutdown(ProtocolError, str(exc))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._shutdown(PeerLost, f"peer {self.peer} is gone ({exc.strerror or exc})")
        except Exception as exc:  # e.g. MemoryError for an allowed but huge message
            log.error("closing link to %s: cannot receive: %r", self.peer, exc)
            self._shutdown(PeerLost, f"link to {self.peer} failed while receiving: {exc!r}")

    def _pump(self) -> None:
        while not self._closed and not self._paused:
            target = self._target
            if target is not None:
                n = self._recv_into(target[self._tgot :])
                if n == 0:
                    return self._eof()
                self._tgot += n
                if self._tgot == len(target):
                    self._target = None
                    self._target_done(target)
                continue
            if self._rbeg == self._rend:
                self._rbeg = self._rend = 0
            if self._rend == _SCRATCH:
                self._compact()
            space = _SCRATCH - self._rend
            n = self._recv_into(self._sview[self._rend :])
            if n == 0:
                return self._eof()
            self._rend += n
            self._parse()
            if n < space:
                return None
        return None

    def _eof(self) -> None:
        if self._pre is not None or self._target is not None or self._entries:
            msg = f"peer {self.peer} closed the connection in the middle of a message"
        else:
            msg = f"peer {self.peer} closed the connection"
        self._shutdown(PeerLost, msg)

    def _parse(self) -> None:
        """Consume complete pieces from the scratch area."""
        sv = self._sview
        while self._target is None and not self._closed:
            avail = self._rend - self._rbeg
            if self._pre is None and not self._entries:
                if avail < PREFIX.size:
                    break
                end = self._rbeg + PREFIX.size
                self._pre = parse_prefix(sv[self._rbeg : end], self._max, self.peer)
                self._rbeg = end
            elif self._pre is not None:
                need = self._pre.rest
                if need > _SCRATCH - PREFIX.size or (avail < need and self._rbeg + need > _SCRATCH):
                    self._start_target(bytearray(need), preamble=True)
                    continue
                if avail < need:
                    break
                self._table_done(sv[self._rbeg : self._rbeg + need])
                self._rbeg += need
            else:
                self._next_inline_buffer()
        if self._rbeg == self._rend:
            self._rbeg = self._rend = 0
        elif self._rbeg > _SCRATCH // 2:
            self._compact()

    def _compact(self) -> None:
        rest = self._rend - self._rbeg
        self._sview[:rest] = self._sview[self._rbeg : self._rend]
        self._rbeg, self._rend = 0, rest

    def _start_target(self, dest: Any, *, preamble: bool = False) -> None:
        """Move what the scratch holds into ``dest`` and read the rest directly."""
        view = memoryview(dest).cast("B")
        k = min(len(view), self._rend - self._rbeg)
        view[:k] = self._sview[self._rbeg : self._rbeg + k]
        self._rbeg += k
        self._target_is_preamble = preamble
        if k == len(view):
            self._target_done(view)
        else:
            self._target, self._tgot = view, k

    def _target_done(self, view: memoryview) -> None:
        if self._target_is_preamble:
            self._target_is_preamble = False
            self._table_done(view)
        else:
            self._bufs.append(view)
            self._maybe_complete()

    def _table_done(self, data: memoryview) -> None:
        pre = self._pre
        assert pre is not None
        self._pre = None
        entries = parse_table(data, pre, self._max, self.peer)
        header = bytes(data[pre.nbuffers * ENTRY.size :])
        if pre.kind != KIND_DATA:
            self._on_control(pre.kind, entries)
            return
        self._header, self._entries, self._bufs = header, entries, []
        self._maybe_complete()

    def _next_inline_buffer(self) -> None:
        entry = self._entries[len(self._bufs)]
        if entry.size <= self._rend - self._rbeg:
            end = self._rbeg + entry.size
            self._bufs.append(memoryview(bytearray(self._sview[self._rbeg : end])))
            self._rbeg = end
            self._maybe_complete()
        elif entry.size >= MIN_CACHED:
            self._start_target(recv_cache.get(entry.size))
        else:
            self._start_target(np.empty(entry.size, np.uint8))

    def _maybe_complete(self) -> None:
        """Resolve out-of-band buffers; deliver the message once all are in."""
        entries, bufs = self._entries, self._bufs
        while len(bufs) < len(entries):
            resolved = self._resolve(entries[len(bufs)])
            if resolved is None:
                return
            bufs.append(resolved)
        self._inbox.append((self._header, bufs, entries))
        self._header, self._entries, self._bufs = b"", [], []
        if len(self._inbox) >= _INBOX_HIGH and not self._paused:
            self._paused = True
            self._loop.remove_reader(self._fd)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _resolve(self, entry: Entry) -> Any | None:
        """A buffer that does not travel on the stream, or None if it does."""
        if entry.size == 0:
            return memoryview(b"")
        return None

    def _on_control(self, kind: int, entries: list[Entry]) -> None:
        raise ProtocolError(f"unexpected control frame kind {kind} from {self.peer}")

    # -- closing ------------------------------------------------------------------

    def _shutdown(self, kind: type[Exception], message: str) -> None:
        """Close the socket once; later calls raise ``kind(message)``."""
        if self._closed:
            return
        self._closed = True
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
