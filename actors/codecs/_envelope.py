"""``encode``/``decode``: any object <-> (msgpack header, [buffers]).

Plain data (None, bool, int, float, str, bytes, list, dict) is msgpack itself.
Everything else - at the top or nested anywhere inside lists, tuples and dicts
- becomes a msgpack extension that names its codec, carries the codec's meta
and points at its slice of the buffer list, so a dict of arrays still sends
every array as its own region. Tuples stay tuples. Thread-safe: no shared
mutable state per call.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ..errors import CodecError
from ._registry import PLAIN, codec_by_name, codec_for

__all__ = ["decode", "decode_parts", "encode", "encode_parts"]

#: codec name of lists/tuples/dicts in encode_parts (meta = an encode() header)
CONTAINER = "container"
_EXT_OBJECT = 1
_EXT_TUPLE = 2
_EXT_BIGINT = 3


def encode_parts(obj: Any) -> tuple[str, Any, list[Any]]:
    """(codec name, meta, buffers) of ``obj``.

    Plain scalars have the name ``"plain"``, lists/tuples/dicts ``"container"``.

    The distributed layer sends these per product itself. Raises CodecError.
    """
    if _is_plain_scalar(obj):
        return PLAIN, obj, []
    if type(obj) in (list, tuple, dict):
        header, buffers = encode(obj)
        return CONTAINER, header, buffers
    name, codec = codec_for(obj)
    meta, buffers = codec.encode(obj)
    return name, meta, list(buffers)


def decode_parts(name: str, meta: Any, buffers: list[Any]) -> Any:
    """Inverse of :func:`encode_parts`; raises CodecError (unknown codec, bad data)."""
    if name == PLAIN:
        return meta
    if name == CONTAINER:
        return decode(meta, buffers)
    try:
        return codec_by_name(name).decode(meta, list(buffers))
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"codec {name!r} cannot decode its payload: {exc!r}") from exc


def _is_plain_scalar(obj: Any) -> bool:
    return obj is None or type(obj) in (bool, int, float, str, bytes)


def encode(obj: Any) -> tuple[bytes, list[Any]]:
    """Encode ``obj`` to ``(header, buffers)``; buffers are its own memory.

    Raises CodecError naming the type of any object without a codec.
    """
    buffers: list[Any] = []

    def default(value: Any) -> Any:
        if type(value) is tuple:
            return msgpack.ExtType(_EXT_TUPLE, pack(list(value)))
        if type(value) is int:  # beyond 64 bits: msgpack has no type for it
            return msgpack.ExtType(_EXT_BIGINT, str(value).encode())
        name, codec = codec_for(value)
        meta, bufs = codec.encode(value)
        first = len(buffers)
        buffers.extend(bufs)
        return msgpack.ExtType(_EXT_OBJECT, pack([name, meta, first, len(bufs)]))

    def pack(value: Any) -> bytes:
        try:
            packed: bytes = msgpack.packb(
                value, default=default, strict_types=True, use_bin_type=True
            )
        except CodecError:
            raise
        except (TypeError, ValueError) as exc:
            raise CodecError(f"cannot encode {type(value).__qualname__}: {exc}") from exc
        return packed

    return pack(obj), buffers


def decode(header: bytes | memoryview, buffers: list[Any]) -> Any:
    """Decode what :func:`encode` produced; raises CodecError on any malformed input."""

    def ext_hook(code: int, data: bytes) -> Any:
        if code == _EXT_TUPLE:
            return tuple(unpack(data))
        if code == _EXT_BIGINT:
            return int(data)
        if code == _EXT_OBJECT:
            name, meta, first, count = unpack(data)
            if first < 0 or first + count > len(buffers):
                raise CodecError(
                    f"header refers to buffers {first}..{first + count - 1} "
                    f"but only {len(buffers)} arrived"
                )
            return decode_parts(name, meta, buffers[first : first + count])
        raise CodecError(f"unknown msgpack extension code {code}")

    def unpack(data: bytes | memoryview) -> Any:
        return msgpack.unpackb(
            data, ext_hook=ext_hook, raw=False, strict_map_key=False, use_list=True
        )

    try:
        return unpack(header)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"malformed codec header ({len(header)} bytes): {exc!r}") from exc
