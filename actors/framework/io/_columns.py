"""Turning per-event product values into columns uproot can write.

``to_column(values, type_name, where)`` takes the values of one product over
the events of a chunk and returns a numpy array (numbers), an awkward jagged
array (1-D arrays per event) or an awkward array of records (SoA products,
written by uproot as ``nX``, ``X_col``...). It raises FrameworkError naming
``where`` for values it cannot write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._optional import optional_module
from ...errors import FrameworkError
from .soa import SoA


def empty_column(type_name: str) -> np.dtype[Any] | None:
    """The dtype of a flat column for branch type ``type_name``, or None if not a number."""
    try:
        dtype = np.dtype(type_name)
    except TypeError:
        return None
    return dtype if dtype.kind in "biuf" else None


def to_column(values: Sequence[Any], type_name: str, where: str) -> Any:
    """A writable column from one product's values over a chunk (see module docstring)."""
    first = values[0]
    if isinstance(first, SoA):
        return _soa_column(values, where)
    if np.ndim(first) == 0 and _is_number(first):
        dtype = empty_column(type_name)
        try:
            return np.asarray(values, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise FrameworkError(f"{where}: values are not all numbers: {exc}") from exc
    return _jagged_column(values, where)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | bool | np.number | np.bool_)


def _as_flat(value: Any, where: str) -> np.ndarray[Any, Any]:
    if isinstance(value, np.ndarray):
        arr = value
    else:
        ak = optional_module("awkward", "hep")
        try:
            arr = ak.to_numpy(value) if isinstance(value, ak.Array) else np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise FrameworkError(f"{where}: cannot write a {type(value).__name__}: {exc}") from exc
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        raise FrameworkError(
            f"{where}: cannot write a {type(value).__name__} of shape {arr.shape} and dtype "
            f"{arr.dtype} (numbers, 1-D number arrays and SoA products are supported)"
        )
    return arr


def _jagged_column(values: Sequence[Any], where: str) -> Any:
    ak = optional_module("awkward", "hep")
    arrays = [_as_flat(v, where) for v in values]
    counts = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    content = np.concatenate(arrays) if arrays else np.zeros(0)
    return ak.unflatten(content, counts)


def _soa_column(values: Sequence[Any], where: str) -> Any:
    ak = optional_module("awkward", "hep")
    if not all(isinstance(v, SoA) for v in values):
        raise FrameworkError(f"{where}: mixes SoA and other values")
    fields = list(values[0])
    if any(list(v) != fields for v in values):
        raise FrameworkError(f"{where}: SoA products with different columns")
    counts = np.concatenate([v.counts for v in values])
    if len(counts) != len(values):
        raise FrameworkError(f"{where}: SoA products must hold one event each")
    flat = {f: np.concatenate([v[f] for v in values]) for f in fields}
    return ak.unflatten(ak.zip(flat, depth_limit=1), counts)
