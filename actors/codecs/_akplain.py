"""Plain awkward arrays built by copying what awkward's constructors make (checked once).

``ak.Array(layout)`` and ``ak.contents.NumpyArray(data)`` check their input and
look up behaviors: about 8 and 3 µs for one event's 1-D product, about 40% of
decoding the dimuon offload's five products in the receiving process. For a
parameterless ``NumpyArray`` or ``ListOffsetArray`` layout (no behavior, no
attrs) and a 1-D numpy array of one dtype, what those constructors make is a
fixed set of attributes besides the layout (or the data). :class:`PlainArrays`
learns that set once per layout class and once per dtype, from two constructions
of different inputs, and then builds new objects by copying it, under three
conditions checked while learning: the two constructions are of the class
expected and hold the same attributes, every attribute but the layout (or the
data) is the very same object in both, and a copy built from the second input
holds what the second construction holds. Anything else (another awkward
version that keeps per-instance state, a dtype awkward rejects) keeps awkward's
own constructors for that class or dtype, and with them their errors.

Thread rules: any thread; learning twice at once stores the same answer twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._optional import optional_module

__all__ = ["PlainArrays", "shared_plain_arrays"]

_DATA, _LAYOUT = "_data", "_layout"


class PlainArrays:
    """``ak.Array`` of parameterless numeric layouts, for one awkward module ``ak``."""

    def __init__(self, ak: Any) -> None:
        self._ak = ak
        #: layout class -> attributes of its ak.Array besides the layout (None: no copies)
        self._arrays: dict[type, dict[str, Any] | None] = {}
        #: dtype -> attributes of a NumpyArray besides its data (None: no copies)
        self._numpy: dict[np.dtype[Any], dict[str, Any] | None] = {}

    def numpy_layout(self, data: np.ndarray[Any, Any]) -> Any:
        """``ak.contents.NumpyArray(data)`` of a 1-D numpy array (awkward's errors)."""
        NumpyArray = self._ak.contents.NumpyArray
        if type(data) is not np.ndarray or data.ndim != 1:
            return NumpyArray(data)
        attrs = self._numpy.get(data.dtype, _UNKNOWN)
        if attrs is _UNKNOWN:
            attrs = self._numpy[data.dtype] = _learn(NumpyArray, _numpy_samples(data.dtype), _DATA)
        if attrs is None:
            return NumpyArray(data)
        return _copy(NumpyArray, attrs, _DATA, data)

    def array(self, layout: Any) -> Any:
        """``ak.Array(layout)`` of a parameterless NumpyArray or ListOffsetArray layout."""
        if layout.parameters:
            return self._ak.Array(layout)
        return self._parameterless_array(layout)

    def numpy_array(self, data: np.ndarray[Any, Any]) -> Any:
        """``ak.Array(ak.contents.NumpyArray(data))`` of a 1-D numpy array."""
        return self._parameterless_array(self.numpy_layout(data))

    def _parameterless_array(self, layout: Any) -> Any:
        cls = type(layout)
        attrs = self._arrays.get(cls, _UNKNOWN)
        if attrs is _UNKNOWN:
            samples = self._layout_samples(cls)
            attrs = None if samples is None else _learn(self._ak.Array, samples, _LAYOUT)
            self._arrays[cls] = attrs
        if attrs is None:
            return self._ak.Array(layout)
        return _copy(self._ak.Array, attrs, _LAYOUT, layout)

    def _layout_samples(self, cls: type) -> tuple[Any, Any] | None:
        """Two different layouts of class ``cls`` (None: a class this module does not copy)."""
        contents = self._ak.contents
        numbers = [np.arange(1.0, 2.0), np.arange(3.0)]
        if cls is contents.NumpyArray:
            return contents.NumpyArray(numbers[0]), contents.NumpyArray(numbers[1])
        if cls is contents.ListOffsetArray:
            index = self._ak.index.Index64
            first, second = (contents.NumpyArray(n) for n in numbers)
            return (
                contents.ListOffsetArray(index(np.array([0, 1])), first),
                contents.ListOffsetArray(index(np.array([0, 2, 3])), second),
            )
        return None


_UNKNOWN: Any = object()
_shared: PlainArrays | None = None


def shared_plain_arrays() -> PlainArrays:
    """The process's :class:`PlainArrays` (imports awkward: BackendUnavailable without
    the ``hep`` extra)."""
    global _shared
    if _shared is None:
        _shared = PlainArrays(optional_module("awkward", "hep"))
    return _shared


def _numpy_samples(dtype: np.dtype[Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return np.zeros(1, dtype=dtype), np.zeros(3, dtype=dtype)


def _learn(cls: type, samples: tuple[Any, Any], key: str) -> dict[str, Any] | None:
    """The attributes of ``cls(sample)`` besides ``key``, if a copy makes what ``cls`` makes."""
    try:
        first, second = cls(samples[0]), cls(samples[1])
        attrs = {k: v for k, v in vars(first).items() if k != key}
        if (
            type(first) is not cls
            or type(second) is not cls
            or vars(second).keys() != (attrs.keys() | {key})
        ):
            return None
        if any(vars(second)[k] is not v for k, v in attrs.items()):
            return None
        copied = _copy(cls, attrs, key, samples[1])
        if type(copied) is not cls or vars(copied).keys() != vars(second).keys():
            return None
        same = all(vars(copied)[k] is v for k, v in vars(second).items() if k != key)
        return attrs if same and vars(copied)[key] is vars(second)[key] else None
    except Exception:  # a dtype or class awkward rejects: its own constructor decides
        return None


def _copy(cls: type, attrs: dict[str, Any], key: str, value: Any) -> Any:
    obj: Any = object.__new__(cls)
    fields = vars(obj)
    fields.update(attrs)
    fields[key] = value
    return obj
