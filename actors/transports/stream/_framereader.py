"""Receive side of a stream link: bytes from a socket -> complete messages.

:class:`FrameReader` owns a 64 KiB scratch area. Each read lands in it and is
parsed at once: a frame that lies wholly in the scratch area (the usual case
for small messages) is taken in one straight pass - prefix, table, header and
inline buffers - with no intermediate state. Anything larger goes through the
general path: the prefix is kept, the table and header wait for more bytes, and
a buffer bigger than what the scratch holds is allocated once (``numpy.empty``,
no zero-fill; from 1 MiB on, reused through :mod:`._recvcache`) and the socket
reads straight into it.

The reader knows nothing about event loops: the link calls :meth:`pump` from
its reader callback (or while polling) and gets each message through
``deliver(header, buffers, device)`` (``device``: None, or which buffers
were device memory on the sending side). Buffers whose table entry carries one of
``oob_flags`` are not on the stream: ``resolve(entry)`` produces them (shm
segments). Control frames go to ``on_control(kind, entries)``.

Errors: :class:`~actors.errors.ProtocolError` for a malformed or oversized
frame (raised from :meth:`pump`); ``OSError``/``BlockingIOError`` from the read
function pass through. A frame that fails after some of its buffers were read
or resolved lets go of them before the error propagates (neither the reader's
state nor the traceback's frames keep them: a resolved buffer may be a view of
a shared-memory segment that stays mapped while any reference to it lives), and
:meth:`FrameReader.discard` drops a partial message when the link closes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._framing import (
    ENTRY,
    FLAG_DEVICE,
    KIND_DATA,
    PREFIX,
    Entry,
    Preamble,
    parse_prefix,
    parse_table,
)
from ._recvcache import MIN_CACHED, empty_bytes
from ._recvcache import cache as recv_cache

__all__ = ["SCRATCH", "FrameReader"]

#: Bytes of the scratch area small frames are read into (and parsed from).
SCRATCH = 1 << 16
_PREFIX = PREFIX.size
_ENTRY = ENTRY.size
_EMPTY = memoryview(b"")

Deliver = Callable[[bytes, list[Any], list[bool] | None], None]


class FrameReader:
    """Incremental frame parser over a scratch area; see the module docstring."""

    def __init__(
        self,
        max_message_size: int,
        peer: str,
        deliver: Deliver,
        on_control: Callable[[int, list[Entry]], None],
        resolve: Callable[[Entry], Any],
        oob_flags: int = 0,
    ) -> None:
        self.max = max_message_size
        self.peer = peer
        #: False while the link is paused: :meth:`pump` reads nothing (bytes already
        #: read are still parsed).
        self.active = True
        #: Set by the link when it closes: nothing more is read or parsed.
        self.stopped = False
        self._deliver = deliver
        self._on_control = on_control
        self._resolve = resolve
        self._oob = oob_flags
        self._scratch = bytearray(SCRATCH)
        self._sview = memoryview(self._scratch)
        self._rbeg = self._rend = 0
        # general path state
        self._pre: Preamble | None = None  # prefix read, table + header not yet
        self._entries: list[Entry] = []
        self._header = b""
        self._bufs: list[Any] = []
        self._target: memoryview | None = None  # direct-read destination
        self._tgot = 0
        self._target_is_preamble = False

    @property
    def mid_message(self) -> bool:
        """True when part of a message has been read (EOF now cuts it short)."""
        return (
            self._pre is not None
            or self._target is not None
            or bool(self._entries)
            or self._rend > self._rbeg
        )

    def discard(self) -> None:
        """Drop the partial message and every byte read but not yet parsed.

        Buffers of an incomplete message (read from the stream, or resolved out
        of band: views of shared-memory segments) are released here rather than
        when the reader itself goes away. The link calls it when it closes; the
        reader then parses nothing more (``stopped``).
        """
        self._pre = None
        self._entries, self._header, self._bufs = [], b"", []
        self._target, self._tgot, self._target_is_preamble = None, 0, False
        self._rbeg = self._rend = 0

    def pump(self, read_into: Callable[[memoryview], int]) -> bool:
        """Read and parse until a short read; False at EOF.

        Raises BlockingIOError when nothing (more) is ready, ProtocolError for a
        bad frame, OSError from ``read_into``.
        """
        while self.active and not self.stopped:
            target = self._target
            if target is not None:
                n = read_into(target[self._tgot :])
                if n == 0:
                    return False
                self._tgot += n
                if self._tgot == len(target):
                    self._target = None
                    self._target_done(target)
                continue
            if self._rend == SCRATCH:
                self._compact()
            space = SCRATCH - self._rend
            n = read_into(self._sview[self._rend :])
            if n == 0:
                return False
            self._rend += n
            self._parse()
            if n < space:
                return True
        return True

    # -- parsing ------------------------------------------------------------------

    def _parse(self) -> None:
        """Consume complete pieces from the scratch area."""
        while self._target is None and not self.stopped:
            if self._pre is None and not self._entries:
                whole = self._rend - self._rbeg >= _PREFIX and self._whole_frame()
                if not whole and not self._start_frame():
                    break
            elif self._pre is not None:
                if not self._preamble_step():
                    break
            else:
                self._next_inline_buffer()
        if self._rbeg == self._rend:
            self._rbeg = self._rend = 0
        elif self._rbeg > SCRATCH // 2:
            self._compact()

    def _whole_frame(self) -> bool:
        """Fast path: take one frame that lies wholly in the scratch area.

        Returns False, having consumed nothing, when the frame is incomplete.
        """
        sv, beg = self._sview, self._rbeg
        pre = parse_prefix(sv, self.max, self.peer, beg)
        tbeg = beg + _PREFIX
        hbeg = tbeg + pre.nbuffers * _ENTRY
        pos = hbeg + pre.header_len
        end = self._rend
        if pos > end:
            return False
        entries = parse_table(sv[tbeg:hbeg], pre, self.max, self.peer) if pre.nbuffers else []
        if pre.kind != KIND_DATA:
            self._rbeg = pos
            self._on_control(pre.kind, entries)
            return True
        oob = self._oob
        if entries:
            inline = 0
            for e in entries:
                if not e.flags & oob:
                    inline += e.size
            if pos + inline > end:
                return False
        header = bytes(sv[hbeg:pos])
        bufs: list[Any] = []
        device: list[bool] | None = None
        scratch = self._scratch
        try:
            for i, e in enumerate(entries):
                size, flags = e.size, e.flags
                if flags & oob:
                    bufs.append(self._resolve(e))
                elif size:
                    bufs.append(memoryview(scratch[pos : pos + size]))
                    pos += size
                else:
                    bufs.append(_EMPTY)
                if flags & FLAG_DEVICE:
                    if device is None:
                        device = [False] * len(entries)
                    device[i] = True
        except BaseException:
            bufs.clear()  # the traceback keeps this frame: not the views resolved so far
            raise
        self._rbeg = pos
        self._deliver(header, bufs, device)
        return True

    def _start_frame(self) -> bool:
        """General path: consume the prefix; False when it is not all here."""
        if self._rend - self._rbeg < _PREFIX:
            return False
        self._pre = parse_prefix(self._sview, self.max, self.peer, self._rbeg)
        self._rbeg += _PREFIX
        return True

    def _preamble_step(self) -> bool:
        """General path: table + header of the current frame; False to wait for bytes."""
        pre = self._pre
        assert pre is not None
        need, avail = pre.rest, self._rend - self._rbeg
        if need > SCRATCH - _PREFIX or (avail < need and self._rbeg + need > SCRATCH):
            # numpy.empty: nothing is touched until bytes arrive (need <= max_message_size)
            self._start_target(empty_bytes(need), preamble=True)
            return True
        if avail < need:
            return False
        self._table_done(self._sview[self._rbeg : self._rbeg + need])
        self._rbeg += need
        return True

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
        entries = parse_table(data, pre, self.max, self.peer)
        if pre.kind != KIND_DATA:
            self._on_control(pre.kind, entries)
            return
        self._header = bytes(data[pre.nbuffers * _ENTRY :])
        self._entries, self._bufs = entries, []
        self._maybe_complete()

    def _next_inline_buffer(self) -> None:
        entry = self._entries[len(self._bufs)]
        if entry.size <= self._rend - self._rbeg:
            end = self._rbeg + entry.size
            self._bufs.append(memoryview(self._scratch[self._rbeg : end]))
            self._rbeg = end
            self._maybe_complete()
        elif entry.size >= MIN_CACHED:
            self._start_target(recv_cache.get(entry.size))
        else:
            self._start_target(empty_bytes(entry.size))

    def _maybe_complete(self) -> None:
        """Resolve out-of-band and empty buffers; deliver once all are in."""
        entries, bufs = self._entries, self._bufs
        try:
            while len(bufs) < len(entries):
                e = entries[len(bufs)]
                if e.flags & self._oob:
                    bufs.append(self._resolve(e))
                elif e.size == 0:
                    bufs.append(_EMPTY)
                else:
                    return
        except BaseException:
            bufs.clear()  # see _whole_frame
            self.discard()
            raise
        header = self._header
        self._header, self._entries, self._bufs = b"", [], []
        device = [bool(e.flags & FLAG_DEVICE) for e in entries]
        self._deliver(header, bufs, device if any(device) else None)
