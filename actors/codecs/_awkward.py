"""The awkward array codec: plain numeric lists as raw buffers, anything else via ``to_buffers``.

A 1-D array of numbers (layout ``NumpyArray``) and a jagged array of numbers
(``ListOffsetArray`` of ``NumpyArray``), without parameters, behavior or
attrs, travel as their numpy buffers with meta ``["NumpyArray", descr]`` or
``["ListOffsetArray", offsets descr, descr]``: no form JSON and no
``to_buffers``/``from_buffers`` round trip. Every other array uses
``[form JSON, length, keys]`` and one buffer per awkward buffer.

Decoding a jagged array checks its offsets (non-empty, first >= 0,
non-decreasing, last <= content length; CodecError otherwise). Small offsets
(one event's product: a few lists) repeat from event to event, so their
checked awkward ``Index`` is cached by value, over a private copy: a decoded
array never keeps a received offsets buffer alive through the cache, and a
cache hit costs one comparison with the content length instead of an Index
and the checks (the decode of one event's jagged product is about a third
cheaper). This module imports numpy and is itself imported on first use
(:mod:`._builtin` registers a stand-in); awkward is imported on first use too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._optional import optional_module
from ..errors import CodecError
from ._akplain import PlainArrays, shared_plain_arrays
from ._arrays import CACHE_LIMIT, array_meta, dtype_of_descr

__all__ = ["AwkwardCodec"]

_DIRECT_KINDS = ("NumpyArray", "ListOffsetArray")
#: offsets of at most this many entries are checked once and their Index cached
SMALL_OFFSETS = 64
_form_cache: dict[str, Any] = {}
#: (offsets descr, offsets bytes) -> (awkward Index over a private copy, last offset)
_offsets_cache: dict[tuple[str, bytes], tuple[Any, int]] = {}


class AwkwardCodec:
    """awkward arrays (see the module docstring); imports awkward on first use."""

    def __init__(self) -> None:
        self._ak: Any = None

    def _awkward(self) -> Any:
        """The awkward module (imported on first use; BackendUnavailable without it)."""
        if self._ak is None:
            self._ak = optional_module("awkward", "hep")
        return self._ak

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        direct = _direct_encode(obj)
        if direct is not None:
            return direct
        ak = self._awkward()
        form, length, container = ak.to_buffers(obj)
        keys = list(container)
        buffers = [array_meta(np.asarray(container[k]))[1] for k in keys]
        return [form.to_json(), int(length), keys], buffers

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        ak = self._awkward()
        kind = meta[0] if isinstance(meta, list) and meta else None
        if kind in _DIRECT_KINDS:
            plain = shared_plain_arrays()
            return plain.array(_direct_layout(ak, plain, meta, buffers))
        form, length, keys = meta
        container = {k: np.frombuffer(b, dtype="uint8") for k, b in zip(keys, buffers, strict=True)}
        return ak.from_buffers(_form(ak, form), length, container)


def _form(ak: Any, text: str) -> Any:
    """The awkward Form of a form JSON text (cached: forms are immutable)."""
    form = _form_cache.get(text)
    if form is None:
        form = ak.forms.from_json(text)
        if len(_form_cache) < CACHE_LIMIT:
            _form_cache[text] = form
    return form


def _plain_numbers(layout: Any) -> bool:
    """A 1-D numpy-backed NumpyArray of a numeric dtype without parameters."""
    if type(layout).__name__ != "NumpyArray" or layout.parameters:
        return False
    data = layout.data
    return type(data) is np.ndarray and data.ndim == 1 and data.dtype.kind in "biufc"


def _direct_encode(obj: Any) -> tuple[list[Any], list[Any]] | None:
    """(meta, buffers) of a plain numeric list/jagged array; None for anything else."""
    if obj.behavior is not None or obj.attrs:
        return None
    layout = obj.layout
    if _plain_numbers(layout):
        meta, flat = array_meta(layout.data)
        return ["NumpyArray", meta[0]], [flat]
    if type(layout).__name__ != "ListOffsetArray" or layout.parameters:
        return None
    content, offsets = layout.content, layout.offsets.data
    if not _plain_numbers(content) or type(offsets) is not np.ndarray:
        return None
    off_meta, off_flat = array_meta(offsets)
    meta, flat = array_meta(content.data)
    return ["ListOffsetArray", off_meta[0], meta[0]], [off_flat, flat]


def _direct_layout(ak: Any, plain: PlainArrays, meta: list[Any], buffers: list[Any]) -> Any:
    """The layout of a directly encoded array; raises CodecError on inconsistent data."""
    if meta[0] == "NumpyArray":
        _, descr = meta
        (buffer,) = buffers
        return plain.numpy_layout(np.frombuffer(buffer, dtype=dtype_of_descr(descr)))
    _, off_descr, descr = meta
    off_buffer, buffer = buffers
    content = np.frombuffer(buffer, dtype=dtype_of_descr(descr))
    offsets = np.frombuffer(off_buffer, dtype=dtype_of_descr(off_descr))
    if len(offsets) <= SMALL_OFFSETS and type(off_descr) is str:
        index = _small_index(ak, off_descr, offsets, len(content))
    else:
        _check_offsets(offsets, len(content))
        index = ak.index.Index(offsets)
    return ak.contents.ListOffsetArray(index, plain.numpy_layout(content))


def _small_index(ak: Any, descr: str, offsets: np.ndarray[Any, Any], n_content: int) -> Any:
    """The checked Index of small ``offsets`` (cached by value, over a private copy)."""
    key = (descr, offsets.tobytes())
    cached = _offsets_cache.get(key)
    if cached is not None:
        index, last = cached
        if last > n_content:
            raise _inconsistent(len(offsets), n_content)
        return index
    _check_offsets(offsets, n_content)
    private = np.frombuffer(key[1], dtype=offsets.dtype)
    index = ak.index.Index(private)
    if len(_offsets_cache) < CACHE_LIMIT:
        _offsets_cache[key] = (index, int(private[-1]))
    return index


def _check_offsets(offsets: np.ndarray[Any, Any], n_content: int) -> None:
    """CodecError unless ``offsets`` are integers, non-empty, first >= 0,
    non-decreasing and last <= ``n_content``."""
    if (
        offsets.dtype.kind not in "iu"
        or not len(offsets)
        or (
            len(offsets) > 1
            and (
                offsets[0] < 0
                or offsets[-1] > n_content
                or bool(np.any(offsets[1:] < offsets[:-1]))
            )
        )
    ):
        raise _inconsistent(len(offsets), n_content)


def _inconsistent(n_offsets: int, n_content: int) -> CodecError:
    return CodecError(
        f"awkward jagged array: {n_offsets} offsets do not describe {n_content} values"
    )
