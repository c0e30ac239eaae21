"""``encode``/``decode``: any object <-> (msgpack header, [buffers]).

Plain data (None, bool, int, float, str, bytes, list, dict) is msgpack itself.
Everything else - at the top or nested anywhere inside lists, tuples and dicts
- becomes a msgpack extension that names its codec, carries the codec's meta
and points at its slice of the buffer list, so a dict of arrays still sends
every array as its own region. Tuples stay tuples; integers beyond 64 bits
travel as decimal text. A top-level ``bytes`` of ``BYTES_INLINE_LIMIT`` or more
travels as its own buffer instead of being copied into the header.

The msgpack packers are configured once per thread (one per nesting level, so
a codec may itself call :func:`encode`); ``encode`` and ``decode`` are safe to
call from any thread and from inside a codec.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import msgpack

from ..errors import CodecError
from ._registry import PLAIN, codec_by_name, codec_for, register_codec

__all__ = [
    "BYTES",
    "BYTES_INLINE_LIMIT",
    "CONTAINER",
    "decode",
    "decode_parts",
    "encode",
    "encode_parts",
    "is_plain",
    "name_of",
]

#: codec name of lists/tuples/dicts in encode_parts (meta = an encode() header)
CONTAINER = "container"
#: codec name of a top-level ``bytes`` object sent as its own buffer
BYTES = "bytes"
#: top-level bytes at least this long travel as a buffer instead of in the header
BYTES_INLINE_LIMIT = 16 * 1024
_EXT_OBJECT = 1
_EXT_TUPLE = 2
_EXT_BIGINT = 3
_PLAIN_SCALARS = frozenset((type(None), bool, int, float, str, bytes))
_CONTAINERS = frozenset((list, tuple, dict))
_EXT8 = struct.Struct(">BBb")
_EXT16 = struct.Struct(">BHb")
_EXT32 = struct.Struct(">BIb")


class _BytesCodec:
    """Large top-level ``bytes``: the object itself is the buffer."""

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        return None, [obj]

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        (buffer,) = buffers
        return buffer if type(buffer) is bytes else bytes(buffer)  # one copy: bytes own memory


register_codec(None, _BytesCodec(), BYTES)


class _EncodeState(threading.local):
    """Per-thread packers (index = nesting depth) and the buffers being collected."""

    def __init__(self) -> None:
        self.packers: list[msgpack.Packer] = []
        self.depth = -1
        self.buffers: list[Any] = []


_state = _EncodeState()


def _pack(value: Any) -> bytes:
    """Pack with the packer of the next nesting level (a packer is not reentrant)."""
    state = _state
    depth = state.depth + 1
    state.depth = depth
    try:
        packers = state.packers
        if depth == len(packers):
            packers.append(msgpack.Packer(default=_default, strict_types=True, use_bin_type=True))
        packed: bytes = packers[depth].pack(value)
        return packed
    finally:
        state.depth = depth - 1


def _default(value: Any) -> msgpack.ExtType:
    """msgpack's hook for everything that is not plain msgpack data."""
    return msgpack.ExtType(*_extension(value))


def _extension(value: Any) -> tuple[int, bytes]:
    """(extension code, payload) of a tuple, a big int or an object with a codec."""
    cls = type(value)
    if cls is tuple:
        return _EXT_TUPLE, _pack(list(value))
    if cls is int:  # beyond 64 bits: msgpack has no type for it
        return _EXT_BIGINT, str(value).encode()
    name, codec = codec_for(value)
    meta, bufs = _codec_encode(name, codec, value)
    buffers = _state.buffers
    first = len(buffers)
    buffers.extend(bufs)
    return _EXT_OBJECT, _pack([name, meta, first, len(bufs)])


def _ext_bytes(code: int, data: bytes) -> bytes:
    """A msgpack ext8/16/32 item, as the packer would wrap an ExtType at top level."""
    size = len(data)
    if size < 0x100:
        prefix = _EXT8.pack(0xC7, size, code)
    elif size < 0x10000:
        prefix = _EXT16.pack(0xC8, size, code)
    else:
        prefix = _EXT32.pack(0xC9, size, code)
    return prefix + data


def _codec_encode(name: str, codec: Any, value: Any) -> tuple[Any, list[Any]]:
    try:
        meta, bufs = codec.encode(value)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(
            f"codec {name!r} failed to encode a {type(value).__qualname__}: {exc!r}"
        ) from exc
    return meta, list(bufs)


def is_plain(obj: Any) -> bool:
    """True for None/bool/float/str/bytes and ints msgpack holds natively."""
    cls = type(obj)
    return cls in _PLAIN_SCALARS and (cls is not int or -(2**63) <= obj < 2**64)


def encode(obj: Any) -> tuple[bytes, list[Any]]:
    """Encode ``obj`` to ``(header, buffers)``; buffers are its own memory.

    Raises CodecError naming the type of any object without a codec (or a
    codec that produced meta msgpack cannot hold).
    """
    state = _state
    outer = state.buffers
    buffers: list[Any] = []
    state.buffers = buffers
    try:
        cls = type(obj)
        if cls is bytes and len(obj) >= BYTES_INLINE_LIMIT:
            buffers.append(obj)
            header = _ext_bytes(_EXT_OBJECT, _pack([BYTES, None, 0, 1]))
        elif cls in _PLAIN_SCALARS or cls in _CONTAINERS:
            header = _pack(obj)
        else:  # top-level object: skip the packer's default-hook round trip
            header = _ext_bytes(*_extension(obj))
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {type(obj).__qualname__}: {exc}") from exc
    finally:
        state.buffers = outer
    return header, buffers


def encode_parts(obj: Any) -> tuple[str, Any, list[Any]]:
    """(codec name, meta, buffers) of ``obj``; meta is plain msgpack-able data.

    Plain scalars have the name ``"plain"`` (meta is the value itself),
    lists/tuples/dicts ``"container"`` (meta is their :func:`encode` header).
    The distributed layer sends these per product itself. Raises CodecError.
    """
    if type(obj) is bytes and len(obj) >= BYTES_INLINE_LIMIT:
        return BYTES, None, [obj]
    if is_plain(obj):
        return PLAIN, obj, []
    if type(obj) in _CONTAINERS or type(obj) is int:
        header, buffers = encode(obj)
        return CONTAINER, header, buffers
    name, codec = codec_for(obj)
    return (name, *_codec_encode(name, codec, obj))


def name_of(obj: Any) -> str:
    """The codec name :func:`encode_parts` would give ``obj``, without encoding it."""
    if type(obj) is bytes and len(obj) >= BYTES_INLINE_LIMIT:
        return BYTES
    if is_plain(obj):
        return PLAIN
    if type(obj) in _CONTAINERS or type(obj) is int:
        return CONTAINER
    return codec_for(obj)[0]


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


class _Decoder:
    """One decode call's state: the received buffers and msgpack's ext hook.

    A class rather than nested closures so that a decode creates no reference
    cycle: received memory is released as soon as the caller drops the decoded
    object, without waiting for the cycle collector (transports recycle buffers
    and shm segments on release).
    """

    __slots__ = ("buffers",)

    def __init__(self, buffers: list[Any]) -> None:
        self.buffers = buffers

    def unpack(self, data: Any) -> Any:
        return msgpack.unpackb(data, ext_hook=self.ext_hook, raw=False, strict_map_key=False)

    def ext_hook(self, code: int, data: bytes) -> Any:
        if code == _EXT_OBJECT:
            buffers = self.buffers
            name, meta, first, count = self.unpack(data)
            if not (first >= 0 and count >= 0 and first + count <= len(buffers)):
                raise CodecError(
                    f"header refers to buffers {first}..{first + count - 1} "
                    f"but {len(buffers)} arrived"
                )
            return decode_parts(name, meta, buffers[first : first + count])
        if code == _EXT_TUPLE:
            return tuple(self.unpack(data))
        if code == _EXT_BIGINT:
            return int(data)
        raise CodecError(f"unknown msgpack extension code {code} in codec header")


def decode(header: bytes | bytearray | memoryview, buffers: list[Any]) -> Any:
    """Decode what :func:`encode` produced, wrapping ``buffers`` without copying.

    ``buffers`` may be any buffer-protocol objects (e.g. memoryviews from a
    transport) or device arrays. Creates no reference cycle: the buffers live
    exactly as long as the decoded objects that wrap them. Raises CodecError on
    any malformed input: transports rely on that to close only the offending link.
    """
    decoder = _Decoder(buffers)
    try:
        return decoder.unpack(header)
    except CodecError:
        raise
    except Exception as exc:
        size = len(header) if isinstance(header, bytes | bytearray | memoryview) else "?"
        raise CodecError(f"malformed codec header ({size} bytes): {exc!r}") from exc
