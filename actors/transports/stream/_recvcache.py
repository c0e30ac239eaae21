"""Reuse of large receive allocations (process-wide, thread-safe).

A fresh multi-megabyte ``numpy.empty`` is backed by new pages that the kernel
faults in and zeroes while the socket writes into them - for 64 MiB that costs
about as much as the copy itself. Large received buffers are therefore carved
from cached allocations: the receiver gets a ``memoryview`` over ``base[:n]``;
when the last reference to it (or to anything made from it) is gone, a
finalizer puts ``base`` back. A buffer is never handed out twice while in use.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MIN_CACHED", "RecvCache", "cache", "empty_bytes"]

#: Buffers from this size on come from the cache.
MIN_CACHED = 1 << 20


def empty_bytes(nbytes: int) -> np.ndarray[Any, Any]:
    """An uninitialised ``uint8`` array (numpy loads with the first large buffer)."""
    import numpy as np

    return np.empty(nbytes, np.uint8)


class RecvCache:
    """Free allocations by power-of-two size class, at most ``max_bytes`` idle."""

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        self.max_bytes = max_bytes
        self._free: dict[int, list[np.ndarray]] = {}
        self._idle = 0
        self._lock = threading.RLock()  # a finalizer may run inside get() (GC)

    def get(self, nbytes: int) -> memoryview:
        """A writable byte view of exactly ``nbytes`` (uninitialised)."""
        size = 1 << (nbytes - 1).bit_length()
        with self._lock:
            free = self._free.get(size)
            base = free.pop() if free else None
            if base is not None:
                self._idle -= size
        if base is None:
            base = empty_bytes(size)
        view = base[:nbytes]
        weakref.finalize(view, self._put, base).atexit = False
        return view.data

    def _put(self, base: np.ndarray) -> None:
        with self._lock:
            if self._idle + base.nbytes > self.max_bytes:
                return  # let it go
            self._free.setdefault(base.nbytes, []).append(base)
            self._idle += base.nbytes

    def clear(self) -> None:
        """Drop every idle allocation."""
        with self._lock:
            self._free.clear()
            self._idle = 0


#: The process-wide cache used by stream links.
cache = RecvCache()
