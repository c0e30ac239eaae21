"""Receive-buffer pool of ``mpi://``: large host buffers reused once dropped.

Why: a fresh multi-MiB ``numpy.empty`` is a fresh ``mmap`` whose pages fault
in while MPI writes them (and are unmapped again when the array dies): at
64 MiB that cost a third of the bandwidth on the development machine. Reusing
memory whose pages are already mapped removes it.

Contract: :meth:`BufferPool.take` returns a writable ``numpy.uint8`` array of
exactly ``size`` bytes that nobody else references. Received buffers are handed
to the user, so memory goes back to the pool only when the array handed out is
garbage (a ``weakref.finalize`` on it). The array is made with
``numpy.frombuffer`` over the pooled storage, so every view, slice, reshape or
``memoryview`` derived from it keeps *it* alive (numpy does not collapse a
view's base past an array that does not own its memory): the memory is never
reused while any of them exists. The one escape is reaching the storage
itself through ``array.base.obj`` and keeping only that: don't.

Only buffers of at least :data:`MIN_POOLED` bytes are pooled (smaller ones are
cheap to allocate); at most :data:`MAX_PER_SIZE` free buffers per size and
``ACTORS_MPI_POOL_BYTES`` free bytes in all are kept (:mod:`actors.settings`;
0 disables pooling). Thread-safe (the finalizer may run in any thread).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

from ...settings import MPI_POOL_BYTES

__all__ = ["MAX_PER_SIZE", "MIN_POOLED", "BufferPool", "pool"]

MIN_POOLED = 1 << 20
MAX_PER_SIZE = 4


class BufferPool:
    """Free lists of host buffers keyed by exact size (see the module docstring)."""

    def __init__(self, max_free_bytes: int | None = None) -> None:
        """``max_free_bytes``: default the ``ACTORS_MPI_POOL_BYTES`` setting, read on use."""
        self._free: dict[int, list[Any]] = {}
        self._free_bytes = 0
        self._max_free_bytes = max_free_bytes
        self._lock = threading.Lock()

    @property
    def _max(self) -> int:
        if self._max_free_bytes is not None:
            return self._max_free_bytes
        return MPI_POOL_BYTES.get()

    @property
    def free_bytes(self) -> int:
        """Bytes currently held for reuse."""
        return self._free_bytes

    def take(self, size: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """A ``uint8`` array of ``size`` bytes, reused memory when some is free."""
        if size < MIN_POOLED or self._max <= 0:
            return np.empty(size, dtype=np.uint8)
        store: Any = None
        with self._lock:
            free = self._free.get(size)
            if free:
                store = free.pop()
                self._free_bytes -= size
        if store is None:
            store = np.empty(size, dtype=np.uint8)
        out: np.ndarray[Any, np.dtype[np.uint8]] = np.frombuffer(memoryview(store), np.uint8)
        weakref.finalize(out, self._give_back, store).atexit = False
        return out

    def _give_back(self, store: Any) -> None:
        size = int(store.nbytes)
        with self._lock:
            free = self._free.setdefault(size, [])
            if len(free) < MAX_PER_SIZE and self._free_bytes + size <= self._max:
                free.append(store)
                self._free_bytes += size

    def clear(self) -> None:
        """Drop every free buffer (memory goes back to the system)."""
        with self._lock:
            self._free.clear()
            self._free_bytes = 0


_pool = BufferPool()


def pool() -> BufferPool:
    """The process-wide receive-buffer pool."""
    return _pool
