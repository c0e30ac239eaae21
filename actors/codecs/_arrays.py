"""Built-in codecs for arrays: numpy, numpy scalars, cupy (awkward: :mod:`._awkward`).

numpy arrays travel as one buffer: a flat ``uint8`` view of the array's own
memory (a non-contiguous array is made contiguous once). ``meta`` holds the
dtype description (any numeric, bool, complex, datetime or structured dtype,
byte order kept) and the shape. Decoding wraps the received buffer without
copying; the result may be read-only.

This module imports numpy: :mod:`._builtin` registers its codecs as stand-ins
that import it on first use. cupy is imported only when a cupy array is
actually decoded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._optional import optional_module
from ..buffers import device_to_host, is_device
from ..errors import BackendUnavailable, CodecError

__all__ = [
    "CACHE_LIMIT",
    "array_from_meta",
    "array_meta",
    "dtype_of_descr",
]


CACHE_LIMIT = 4096
_descr_cache: dict[np.dtype[Any], Any] = {}
_dtype_cache: dict[Any, np.dtype[Any]] = {}


def _descr(dtype: np.dtype[Any]) -> Any:
    """Description of ``dtype`` as plain data: ``dtype.str`` or a structured descr."""
    cached = _descr_cache.get(dtype)
    if cached is not None:
        return cached
    if dtype.hasobject:
        raise CodecError(
            f"numpy dtype {dtype} holds Python objects and cannot travel as raw memory; "
            "use a numeric/structured dtype, or opt into pickle"
        )
    descr: Any = dtype.str if dtype.fields is None and dtype.subdtype is None else None
    if descr is None:
        descr = np.lib.format.dtype_to_descr(dtype)
    if len(_descr_cache) < CACHE_LIMIT:
        _descr_cache[dtype] = descr
    return descr


def _tuples(descr: Any) -> Any:
    """msgpack turns tuples into lists; a structured descr needs them back."""
    if isinstance(descr, list):
        return [tuple(_tuples(x) for x in field) for field in descr]
    return descr


def dtype_of_descr(descr: Any) -> np.dtype[Any]:
    """The numpy dtype that a description from :func:`array_meta` names (cached).

    Raises CodecError for an invalid description.
    """
    key = descr if isinstance(descr, str) else repr(descr)
    cached = _dtype_cache.get(key)
    if cached is not None:
        return cached
    try:
        dtype = np.lib.format.descr_to_dtype(_tuples(descr))
    except (TypeError, ValueError) as exc:
        raise CodecError(f"invalid dtype description {descr!r}: {exc}") from exc
    if len(_dtype_cache) < CACHE_LIMIT:
        _dtype_cache[key] = dtype
    return dtype


_U8 = np.dtype(np.uint8)
#: buffer types that are host memory for sure (skips the device check)
_HOST_TYPES = frozenset((memoryview, bytes, bytearray, np.ndarray))


def array_meta(arr: Any) -> tuple[list[Any], Any]:
    """(meta, flat uint8 buffer) of a numpy or cupy array, made contiguous once.

    meta is ``[dtype description, shape]``; the buffer shares the array's
    memory unless the array was not C-contiguous. Raises CodecError for object
    dtypes.
    """
    descr = _descr(arr.dtype)
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    if not arr.dtype.itemsize:
        flat = arr.ravel()
    elif arr.ndim == 1:
        flat = arr.view(_U8)
    else:
        flat = arr.ravel().view(_U8)
    return [descr, list(arr.shape)], flat


def array_from_meta(meta: Any, buffer: Any) -> np.ndarray[Any, Any]:
    """Wrap host ``buffer`` as the numpy array described by ``meta`` (no copy).

    Raises CodecError if meta is malformed or the buffer has the wrong size.
    """
    try:
        descr, shape = meta
        dtype = dtype_of_descr(descr)
        if not dtype.itemsize:
            # no bytes to wrap; np.empty would widen S0/U0 to one byte or character per
            # element and allocate what a hostile shape asks for (2**31 elements: 2 GiB)
            return np.ndarray(shape, dtype=dtype, buffer=b"")
        flat = np.frombuffer(buffer, dtype=dtype)
        if len(shape) == 1 and flat.shape[0] == shape[0]:
            return flat
        return flat.reshape(shape)
    except (TypeError, ValueError) as exc:
        raise CodecError(
            f"cannot rebuild a numpy array from meta {meta!r} and a buffer of "
            f"{_size(buffer)} bytes: {exc}"
        ) from exc


def _size(buffer: Any) -> Any:
    try:
        return memoryview(buffer).nbytes
    except TypeError:
        return "?"


class NumpyCodec:
    #: registered for this exact type too (the fast lookup), once loaded
    exact_type = np.ndarray

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        meta, flat = array_meta(obj)
        return meta, [flat]

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        (buffer,) = buffers
        if type(buffer) not in _HOST_TYPES and is_device(buffer):
            buffer = device_to_host(buffer)
        return array_from_meta(meta, buffer)


class NumpyScalarCodec:
    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        return [_descr(obj.dtype), obj.tobytes()], []

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        descr, raw = meta
        return np.frombuffer(raw, dtype=dtype_of_descr(descr))[0]


class CupyCodec:
    """cupy arrays: the buffer is device memory; received host memory is copied once.

    decode raises CodecError, before importing cupy or touching the device, for a
    dtype cupy cannot hold (anything but bool and numbers: no zero-size items) and
    for a host buffer whose size is not the shape's; for a device buffer of the
    wrong size after viewing it.
    """

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        meta, flat = array_meta(obj)
        return meta, [flat]

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        (buffer,) = buffers
        dtype, shape, nbytes = _device_layout(meta)
        on_device = is_device(buffer)
        if not on_device and (size := _size(buffer)) != nbytes:
            raise _wrong_size(dtype, shape, nbytes, size)
        try:
            cp = optional_module("cupy", "gpu")
        except BackendUnavailable as exc:
            raise CodecError(
                "received a cupy (device) array, but this process cannot accept device "
                "arrays: cupy is not installed here; install 'hep-actors[gpu]' on the "
                f"receiving side ({exc})"
            ) from exc
        if on_device:  # a device receive: view it
            flat = cp.asarray(buffer).reshape(-1).view(cp.uint8)
            if flat.size != nbytes:
                raise _wrong_size(dtype, shape, nbytes, flat.size)
        else:  # staged through host memory: one copy to the device
            flat = cp.asarray(np.frombuffer(buffer, dtype=np.uint8))
        return flat.view(dtype).reshape(shape)


#: the dtype kinds a cupy array can hold: bool, signed, unsigned, float, complex
_DEVICE_KINDS = frozenset("biufc")


def _device_layout(meta: Any) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """(dtype, shape, bytes) of the cupy array ``meta`` describes; CodecError if invalid."""
    try:
        descr, raw_shape = meta
        dtype = dtype_of_descr(descr)
        shape: tuple[int, ...] = tuple(n for n in raw_shape if type(n) is int and n >= 0)
        if len(shape) != len(raw_shape):
            raise ValueError(f"shape {raw_shape!r} is not a list of counts")
    except (TypeError, ValueError) as exc:
        raise CodecError(f"cannot rebuild a cupy array from meta {meta!r}: {exc}") from exc
    if dtype.kind not in _DEVICE_KINDS:
        raise CodecError(
            f"cannot rebuild a cupy array of dtype {dtype} (meta {meta!r}): cupy arrays "
            "hold only bool and numeric items"
        )
    return dtype, shape, math.prod(shape) * dtype.itemsize


def _wrong_size(dtype: np.dtype[Any], shape: tuple[int, ...], nbytes: int, got: Any) -> CodecError:
    return CodecError(
        f"cannot rebuild a cupy array of dtype {dtype} and shape {list(shape)} "
        f"({nbytes} bytes) from a buffer of {got} bytes"
    )
