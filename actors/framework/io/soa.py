"""Structure-of-arrays collection product with offsets (numpy only).

A :class:`SoA` holds the columns of one collection (e.g. the muons: ``pt``,
``eta``, ``phi``...) as contiguous 1-D numpy arrays of equal length, and
``offsets`` saying which elements belong to which event: the elements of
event ``i`` are ``offsets[i]:offsets[i + 1]``. A product of one event has
``offsets == [0, n]``. This is the layout GPU code and transports want: every
column is one contiguous buffer.

Contract: the arrays are read-only (a product is immutable for consumers);
``offsets`` is int64, starts at 0, is non-decreasing, and its last value is the
length of every column. The constructor checks this and raises
:class:`~actors.errors.FrameworkError` naming the offending column.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ...errors import FrameworkError

__all__ = ["SoA"]

Array = np.ndarray[Any, Any]


class SoA(Mapping[str, Array]):
    """Columns of one collection plus per-event offsets (a read-only Mapping)."""

    __slots__ = ("_columns", "offsets")

    def __init__(self, columns: Mapping[str, Any], offsets: Any) -> None:
        offs = np.asarray(offsets, dtype=np.int64)
        if offs.ndim != 1 or offs.size < 1 or offs[0] != 0 or np.any(np.diff(offs) < 0):
            raise FrameworkError(f"SoA offsets must start at 0 and not decrease: {offs!r}")
        total = int(offs[-1])
        cols: dict[str, Array] = {}
        for name, column in columns.items():
            arr = np.asarray(column)
            if arr.ndim != 1 or len(arr) != total:
                raise FrameworkError(
                    f"SoA column {name!r} has shape {arr.shape}; expected ({total},) from offsets"
                )
            cols[name] = _readonly(arr)
        self._columns = cols
        self.offsets = _readonly(offs)

    @classmethod
    def single(cls, columns: Mapping[str, Any]) -> SoA:
        """The SoA of one event: offsets ``[0, n]`` with ``n`` the columns' length."""
        lengths = {len(np.asarray(c)) for c in columns.values()}
        if len(lengths) > 1:
            raise FrameworkError(f"SoA columns differ in length: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        return cls(columns, [0, n])

    @property
    def num_events(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> Array:
        """Number of elements of each event."""
        return np.diff(self.offsets)

    def event(self, i: int) -> SoA:
        """The elements of event ``i`` as a one-event SoA (views, no copy)."""
        if not -self.num_events <= i < self.num_events:
            raise IndexError(f"event {i} out of range for an SoA of {self.num_events} events")
        i %= self.num_events
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return SoA({k: v[start:stop] for k, v in self._columns.items()}, [0, stop - start])

    def to_awkward(self) -> Any:
        """An awkward array of records, one list per event (needs awkward)."""
        from ..._optional import optional_module

        ak = optional_module("awkward", "hep")
        flat = ak.zip({k: np.asarray(v) for k, v in self._columns.items()}, depth_limit=1)
        return ak.unflatten(flat, self.counts)

    def __getitem__(self, name: str) -> Array:
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(f"SoA has no column {name!r} (has {sorted(self._columns)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    @property
    def size(self) -> int:
        """Number of elements (over all events)."""
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        return f"SoA({sorted(self._columns)}, events={self.num_events}, elements={self.size})"


def _readonly(arr: Array) -> Array:
    if arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr
