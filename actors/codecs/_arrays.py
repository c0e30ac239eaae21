"""Built-in codecs for arrays: numpy, numpy scalars, cupy, awkward, pickle.

numpy arrays travel as one buffer: a flat ``uint8`` view of the array's own
memory (a non-contiguous array is made contiguous once). ``meta`` holds the
dtype description (any numeric, bool, complex, datetime or structured dtype,
byte order kept) and the shape. Decoding wraps the received buffer without
copying; the result may be read-only.

cupy and awkward are recognised by module name and imported only when such an
object is actually encoded or decoded.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from ..buffers import is_device
from ..errors import BackendUnavailable, CodecError
from ._registry import PICKLE, register_codec, register_structural

__all__ = ["array_from_meta", "array_meta", "register_builtin_array_codecs"]


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
    _descr_cache[dtype] = descr
    return descr


def _tuples(descr: Any) -> Any:
    """msgpack turns tuples into lists; a structured descr needs them back."""
    if isinstance(descr, list):
        return [tuple(_tuples(x) for x in field) for field in descr]
    return descr


def _dtype(descr: Any) -> np.dtype[Any]:
    key = descr if isinstance(descr, str) else repr(descr)
    cached = _dtype_cache.get(key)
    if cached is not None:
        return cached
    try:
        dtype = np.lib.format.descr_to_dtype(_tuples(descr))
    except (TypeError, ValueError) as exc:
        raise CodecError(f"invalid dtype description {descr!r}: {exc}") from exc
    if len(_dtype_cache) < 4096:
        _dtype_cache[key] = dtype
    return dtype


def array_meta(arr: Any) -> tuple[list[Any], Any]:
    """(meta, flat uint8 buffer) of a numpy or cupy array, contiguous once."""
    descr = _descr(np.dtype(arr.dtype))
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    flat = arr.reshape(-1).view("uint8") if arr.dtype.itemsize else arr.reshape(-1)
    return [descr, list(arr.shape)], flat


def array_from_meta(meta: Any, buffer: Any) -> np.ndarray[Any, Any]:
    """Wrap ``buffer`` as the numpy array described by ``meta`` (no copy)."""
    try:
        descr, shape = meta
        dtype = _dtype(descr)
        count = 1
        for dim in shape:
            count *= dim
        return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"cannot rebuild numpy array from meta {meta!r}: {exc}") from exc


class NumpyCodec:
    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        meta, flat = array_meta(obj)
        return meta, [flat]

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        (buffer,) = buffers
        if is_device(buffer):
            from ..buffers import device_to_host

            buffer = device_to_host(buffer)
        return array_from_meta(meta, buffer)


class NumpyScalarCodec:
    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        return [_descr(obj.dtype), obj.tobytes()], []

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        descr, raw = meta
        return np.frombuffer(raw, dtype=_dtype(descr))[0]


def _cupy() -> Any:
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailable("cupy", "gpu", str(exc)) from exc
    return cupy


class CupyCodec:
    """cupy arrays: the buffer is device memory; received host memory is copied once."""

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        meta, flat = array_meta(obj)
        return meta, [flat]

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        (buffer,) = buffers
        cp = _cupy()
        descr, shape = meta
        dtype = _dtype(descr)
        if is_device(buffer):
            flat = cp.asarray(buffer).reshape(-1).view("uint8")
        else:
            flat = cp.asarray(np.frombuffer(buffer, dtype="uint8"))
        return flat.view(dtype).reshape(shape)


class AwkwardCodec:
    """awkward arrays through ``ak.to_buffers``: one buffer per awkward buffer."""

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        ak = _awkward()
        form, length, container = ak.to_buffers(obj)
        keys = list(container)
        buffers = [_flat_bytes(np.asarray(container[k])) for k in keys]
        return [form.to_json(), int(length), keys], buffers

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        ak = _awkward()
        form, length, keys = meta
        container = {k: np.frombuffer(b, dtype="uint8") for k, b in zip(keys, buffers, strict=True)}
        return ak.from_buffers(ak.forms.from_json(form), length, container)


def _flat_bytes(arr: np.ndarray[Any, Any]) -> Any:
    return array_meta(arr)[1]


def _awkward() -> Any:
    try:
        import awkward
    except ImportError as exc:
        raise BackendUnavailable("awkward", "hep", str(exc)) from exc
    return awkward


class PickleCodec:
    """Pickle protocol 5 with out-of-band buffers; only with the per-process opt-in."""

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        buffers: list[Any] = []
        try:
            data = pickle.dumps(obj, protocol=5, buffer_callback=lambda b: buffers.append(b.raw()))
        except Exception as exc:
            raise CodecError(f"cannot pickle {type(obj).__qualname__}: {exc}") from exc
        return data, buffers

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        try:
            return pickle.loads(meta, buffers=buffers)
        except Exception as exc:
            raise CodecError(f"cannot unpickle payload: {exc}") from exc


def _module_is(prefix: str) -> Any:
    return lambda cls: cls.__module__.split(".")[0] == prefix


def register_builtin_array_codecs() -> None:
    register_codec(np.ndarray, NumpyCodec(), "numpy.ndarray")
    register_codec(None, NumpyScalarCodec(), "numpy.scalar")
    register_structural(lambda cls: issubclass(cls, np.generic), "numpy.scalar")
    register_structural(lambda cls: issubclass(cls, np.ndarray), "numpy.ndarray")
    register_codec(None, CupyCodec(), "cupy.ndarray")
    register_structural(
        lambda cls: _module_is("cupy")(cls) and cls.__name__ == "ndarray", "cupy.ndarray"
    )
    register_codec(None, AwkwardCodec(), "awkward.Array")
    register_structural(
        lambda cls: _module_is("awkward")(cls) and cls.__name__ == "Array", "awkward.Array"
    )
    register_codec(None, PickleCodec(), PICKLE)
