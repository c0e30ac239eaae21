"""Codecs: objects <-> ``(header: bytes, buffers: list)``, without copying memory.

::

    header, buffers = encode({"hits": np.zeros(1000, "f4"), "run": 1})
    obj = decode(header, buffers)          # arrays are views on the buffers

- plain data (None, bool, int, float, str, bytes, list, tuple, dict) through msgpack;
- numpy arrays (any numeric/bool/complex/datetime/structured dtype, any shape),
  numpy scalars, cupy arrays (device memory), awkward arrays (``ak.to_buffers``);
- structure-of-arrays products: :func:`register_layout` on a dataclass;
- your own types: :func:`register_codec`;
- pickle only after :func:`allow_pickle` (per process, both sides).

Objects without a codec raise :class:`~actors.errors.CodecError` naming the
type and how to register one. See ``docs/codecs.md``.
"""

from __future__ import annotations

from typing import Any

from ._builtin import register_builtin_codecs
from ._envelope import decode, decode_parts, encode, encode_parts, name_of
from ._layout import register_layout
from ._registry import Codec, allow_pickle, pickle_allowed, register_codec

__all__ = [
    "Codec",
    "allow_pickle",
    "codec_name_of",
    "decode",
    "decode_parts",
    "encode",
    "encode_parts",
    "pickle_allowed",
    "plain_awkward_arrays",
    "register_codec",
    "register_layout",
]

register_builtin_codecs()


def codec_name_of(obj: Any) -> str:
    """Stable codec name :func:`encode_parts` would use for ``obj``, without encoding it.

    ``"plain"`` (scalars), ``"container"`` (list/tuple/dict), ``"numpy.ndarray"``,
    ``"numpy.scalar"``, ``"cupy.ndarray"``, ``"awkward.Array"``, a registered
    name, or ``"pickle"``. Raises CodecError if no codec applies.
    """
    return name_of(obj)


def plain_awkward_arrays() -> Any:
    """The builder of plain awkward arrays that the awkward codec decodes with
    (:class:`actors.codecs._akplain.PlainArrays`: ``numpy_array(data)`` is
    ``ak.Array(ak.contents.NumpyArray(data))`` of a 1-D numpy array, built by copying
    what those constructors make, ~1 instead of ~11 µs). Imports numpy and awkward
    (BackendUnavailable without the ``hep`` extra)."""
    from ._akplain import shared_plain_arrays

    return shared_plain_arrays()
