"""Shared-memory segments for ``shm://``: memfd files passed over a Unix socket.

A segment is an anonymous memory file (``memfd_create``, named
``hep-actors-<pid>-<n>`` in /proc/<pid>/fd) sized to a power of two, sealed
against shrinking and growing, and mapped by both processes. It never has a
name in /dev/shm, so nothing can be left behind there: the kernel frees it when
the last mapping and descriptor are gone, also when a process crashes.

:class:`SendPool` (sending side) owns the segments of one direction of one link
and reuses them: a segment is *busy* from the send that fills it until the
receiver acknowledges that it dropped its view. :class:`RecvMaps` (receiving
side) maps segments from descriptors received with SCM_RIGHTS and validates them
(size, seals) before any byte is read.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import mmap
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...errors import ProtocolError
from ._recvcache import empty_bytes

if TYPE_CHECKING:
    import numpy as np

__all__ = ["RecvMaps", "Segment", "SendPool", "size_class"]

_MIN_SEGMENT = 1 << 16
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
_ids = itertools.count(1)


def size_class(nbytes: int) -> int:
    """Segment size used for a buffer of ``nbytes``: the next power of two >= 64 KiB."""
    return max(_MIN_SEGMENT, 1 << (nbytes - 1).bit_length())


@dataclass(eq=False)
class Segment:
    """One mapped segment of the sending side."""

    id: int
    size: int
    fd: int
    mm: mmap.mmap
    array: np.ndarray = field(repr=False)
    announced: bool = False  # the receiver has its descriptor
    released: int = 0  # release counter value when it last became idle


def _create(size: int) -> Segment:
    fd = os.memfd_create(
        f"hep-actors-{os.getpid()}-{next(_ids)}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    )
    try:
        os.ftruncate(fd, size)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.close(fd)
        raise
    import numpy as np  # segments carry large buffers only: numpy loads with the first

    return Segment(0, size, fd, mm, np.frombuffer(mm, np.uint8))


class SendPool:
    """Busy and idle segments of one sending direction; not thread-safe."""

    def __init__(self) -> None:
        self._next_id = 1
        self._busy: dict[int, Segment] = {}
        self._idle: dict[int, list[Segment]] = {}
        self.busy_bytes = 0
        self._releases = 0

    def acquire(self, nbytes: int) -> Segment:
        """A segment of at least ``nbytes``, marked busy (reused when possible)."""
        size = size_class(nbytes)
        free = self._idle.get(size)
        if free:
            seg = free.pop()
        else:
            seg = _create(size)
            seg.id, self._next_id = self._next_id, self._next_id + 1
        self._busy[seg.id] = seg
        self.busy_bytes += seg.size
        return seg

    def release(self, seg_id: int) -> bool:
        """The receiver is done with ``seg_id``; False if it was not busy."""
        seg = self._busy.pop(seg_id, None)
        if seg is None:
            return False
        self.busy_bytes -= seg.size
        self._releases += 1
        seg.released = self._releases
        self._idle.setdefault(seg.size, []).append(seg)
        return True

    def trim(self, max_idle_bytes: int) -> list[int]:
        """Unmap least recently released idle segments above ``max_idle_bytes``; their ids."""
        idle = sum(seg.size for lst in self._idle.values() for seg in lst)
        dropped = []
        while idle > max_idle_bytes:
            seg = min((lst[0] for lst in self._idle.values() if lst), key=lambda s: s.released)
            self._idle[seg.size].remove(seg)
            idle -= seg.size
            _unmap(seg)
            dropped.append(seg.id)
        return dropped

    def close(self) -> None:
        """Unmap and close every segment (busy ones too: the peer keeps its own map)."""
        segs = list(self._busy.values()) + [s for lst in self._idle.values() for s in lst]
        self._busy.clear()
        self._idle.clear()
        self.busy_bytes = 0
        for seg in segs:
            _unmap(seg)


def _unmap(seg: Segment) -> None:
    seg.array = empty_bytes(0)
    with contextlib.suppress(BufferError):  # a staging view lives on; the map goes with it
        seg.mm.close()
    os.close(seg.fd)


class RecvMaps:
    """Segments mapped on the receiving side, by the sender's segment id.

    At most ``max_segments`` segments and ``max_bytes`` bytes of them (their
    whole size, not what frames use) are mapped at once for one peer: each
    mapping holds a descriptor and a memory map of this process, so a peer that
    announced segment after segment would otherwise exhaust the process's
    descriptors or its address space (every other link with it). A segment
    counts from the frame that announces it until the peer drops it or the link
    closes; views handed out keep their mapping alive beyond that, they are the
    caller's.
    """

    def __init__(self, peer: str, *, max_segments: int, max_bytes: int) -> None:
        self._peer = peer
        self._maps: dict[int, mmap.mmap] = {}
        self.max_segments = max_segments
        self.max_bytes = max_bytes
        #: Bytes of the segments in the table now (the sum of their sizes).
        self.mapped_bytes = 0

    def add(self, seg_id: int, fd: int, need: int) -> None:
        """Map the received descriptor ``fd`` (always closed) as segment ``seg_id``.

        Raises ProtocolError naming the peer for a segment announced twice,
        smaller than ``need``, not sealed against shrinking and growing, one
        beyond ``max_segments`` or ``max_bytes``, or one that cannot be mapped.
        """
        try:
            if seg_id in self._maps:
                raise ProtocolError(f"{self._peer} announced segment {seg_id} twice")
            size = os.fstat(fd).st_size
            if size < need:
                raise ProtocolError(
                    f"segment {seg_id} from {self._peer} has {size} bytes, frame needs {need}"
                )
            if fcntl.fcntl(fd, fcntl.F_GET_SEALS) & _SEALS != _SEALS:
                raise ProtocolError(f"segment {seg_id} from {self._peer} is not sealed")
            if len(self._maps) >= self.max_segments:
                raise ProtocolError(
                    f"{self._peer} announced segment {seg_id} beyond the limit of "
                    f"{self.max_segments} mapped segments per link (ACTORS_SHM_MAX_SEGMENTS)"
                )
            if self.mapped_bytes + size > self.max_bytes:
                raise ProtocolError(
                    f"{self._peer} announced segment {seg_id} of {size} bytes beyond the limit "
                    f"of {self.max_bytes} mapped bytes per link ({self.mapped_bytes} mapped; "
                    "ACTORS_SHM_MAX_MAPPED_BYTES)"
                )
            self._maps[seg_id] = mmap.mmap(fd, size, mmap.MAP_SHARED)
            self.mapped_bytes += size
        except OSError as exc:
            raise ProtocolError(f"cannot map segment {seg_id} from {self._peer}: {exc}") from exc
        finally:
            os.close(fd)

    def __len__(self) -> int:
        """Number of segments mapped for the peer now."""
        return len(self._maps)

    def view(self, seg_id: int, nbytes: int) -> np.ndarray:
        """A zero-copy array over the first ``nbytes`` of segment ``seg_id``."""
        mm = self._maps.get(seg_id)
        if mm is None:
            raise ProtocolError(f"{self._peer} refers to unknown segment {seg_id}")
        if nbytes > len(mm):
            raise ProtocolError(f"{self._peer} overruns segment {seg_id} ({nbytes} > {len(mm)})")
        import numpy as np

        return np.frombuffer(mm, np.uint8, count=nbytes)

    def drop(self, seg_id: int) -> None:
        """Forget a segment the sender discarded (views handed out stay valid)."""
        mm = self._maps.pop(seg_id, None)
        if mm is not None:
            self.mapped_bytes -= len(mm)
            _close_map(mm)

    def close(self) -> None:
        """Forget every mapping: unmapped (and its descriptor closed) now, or
        when the last view handed out is gone."""
        maps = list(self._maps.values())
        self._maps.clear()
        self.mapped_bytes = 0
        for mm in maps:
            _close_map(mm)


def _close_map(mm: mmap.mmap) -> None:
    """Unmap ``mm`` and close its descriptor now, unless a view of it lives
    (then both go with the last view, by reference counting)."""
    with contextlib.suppress(BufferError):
        mm.close()
