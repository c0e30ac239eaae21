"""Wire format of ``mpi://`` header messages (pure functions, no MPI).

All little endian. A message is one *header message* on :data:`TAG_HEADER`
followed by its buffers on :data:`TAG_DATA`::

    header message = b"HAM2" | kind u32 | nbufs u32 | hlen u32 | seq u32
                     | size u64 * nbufs | flags u8 * nbufs | header (hlen bytes)
                     | inlined buffers (their bytes, in order)

``kind`` is :data:`KIND_MESSAGE`, :data:`KIND_BYE` (graceful close: the last
message the closing side sends) or :data:`KIND_LONG` (the real header message
is larger than the always-posted receive and follows on the long tag; ``hlen``
gives its size). ``flags``: bit 0 (:data:`DEVICE`) device memory, bit 1
(:data:`INLINED`) the buffer's bytes ride at the end of the header message
instead of travelling as their own MPI message. ``seq`` numbers the messages
of one direction of a link (from 0, modulo 2**32): a small message may travel
on the side channel instead (:mod:`actors.transports.mpi._sidelane`), and the
receiver delivers the two lanes in ``seq`` order.

The structs are compiled once (one per buffer count, cached), so framing a
message is a few C calls; :func:`unpack_header` validates everything a peer
controls before anything is allocated from it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ...errors import ProtocolError

__all__ = [
    "CHUNK",
    "DEVICE",
    "INLINE",
    "INLINED",
    "KIND_BYE",
    "KIND_LONG",
    "KIND_MESSAGE",
    "MAGIC",
    "MAX_BUFFERS",
    "PREFIX",
    "SEQ_FIELD",
    "SEQ_MASK",
    "SEQ_OFFSET",
    "SMALL",
    "TAG_DATA",
    "TAG_HEADER",
    "TAG_LONG",
    "header_seq",
    "long_header_limit",
    "pack_announcement",
    "pack_header",
    "unpack_header",
    "unpack_prefix",
]

TAG_HEADER = 1  # header messages (and KIND_LONG announcements)
TAG_DATA = 2  # buffers, in chunks of at most CHUNK bytes
TAG_LONG = 3  # header messages longer than INLINE
INLINE = 128 << 10  # bytes of the always-active header receive
CHUNK = 1 << 30  # bytes per Isend/Irecv: stays below the 2 GiB count limit of MPI-3
SMALL = 32 << 10  # host buffers up to this size travel inside the header message
MAGIC = b"HAM2"
KIND_MESSAGE, KIND_BYE, KIND_LONG = 0, 1, 2
MAX_BUFFERS = 1 << 16
DEVICE = 1
INLINED = 2
PREFIX = struct.Struct("<4sIIII")
SEQ_MASK = 0xFFFFFFFF
SEQ_FIELD = struct.Struct("<I")
SEQ_OFFSET = 16  # of the seq field in PREFIX
_KINDS = (KIND_MESSAGE, KIND_BYE, KIND_LONG)


@lru_cache(maxsize=64)
def _layout(n: int) -> struct.Struct:
    """Prefix, sizes and flags of a header message with ``n`` buffers, as one struct."""
    return struct.Struct(f"<4sIIII{n}Q{n}s")


_LAYOUTS = tuple(_layout(n) for n in range(17))
_ONE = struct.Struct("<Q1s")  # size and flags of a one-buffer message, after the prefix


def pack_header(
    kind: int,
    header: bytes,
    sizes: Sequence[int],
    flags: Sequence[int] | bytes,
    inline: Sequence[Any] = (),
    seq: int = 0,
) -> bytes:
    """The header message of one message, number ``seq`` of its direction;
    ``inline`` holds the bytes-like buffers flagged :data:`INLINED`, in order."""
    n = len(sizes)
    layout = _LAYOUTS[n] if n <= 16 else _layout(n)
    head = layout.pack(MAGIC, kind, n, len(header), seq, *sizes, bytes(flags))
    if inline:
        return b"".join((head, header, *inline))
    return head + header if header else head


def pack_announcement(size: int, seq: int = 0) -> bytes:
    """The :data:`KIND_LONG` header message announcing a long header message of
    ``size`` bytes, number ``seq`` of its direction."""
    return PREFIX.pack(MAGIC, KIND_LONG, 0, size, seq)


def header_seq(data: Any, length: int) -> int | None:
    """The ``seq`` of a header message of which ``length`` bytes are in
    ``data``; None when it is too short to hold one (its parse will say why)."""
    if length < PREFIX.size:
        return None
    return int(SEQ_FIELD.unpack_from(data, SEQ_OFFSET)[0])


def long_header_limit(max_size: int) -> int:
    """Largest long header message (:data:`KIND_LONG`) a receiver with
    ``max_message_size=max_size`` accepts: a prefix, the table of
    :data:`MAX_BUFFERS` buffers and ``max_size`` bytes of header and inlined
    buffers. Checked before the long header message is allocated."""
    return max_size + PREFIX.size + 9 * MAX_BUFFERS


def unpack_prefix(data: Any) -> tuple[int, int, int]:
    """``(kind, nbufs, hlen)`` of a header message; ProtocolError if malformed."""
    if len(data) < PREFIX.size:
        raise ProtocolError(f"header message of {len(data)} bytes is too short")
    magic, kind, n, hlen, _ = PREFIX.unpack_from(data)
    if magic != MAGIC or kind not in _KINDS:
        raise ProtocolError(f"bad header message (magic {bytes(magic)!r}, kind {kind})")
    if n > MAX_BUFFERS:
        raise ProtocolError(f"header message announces {n} buffers (limit {MAX_BUFFERS})")
    return kind, n, hlen


def unpack_header(
    data: Any, max_size: int, length: int | None = None
) -> tuple[int, bytes, list[int], bytes, int]:
    """``(kind, header, sizes, flags, offset of the inlined bytes)``.

    ``data`` is a bytes-like object of which ``length`` bytes were received
    (default: all). For :data:`KIND_LONG` the result is ``(KIND_LONG, b"", [],
    b"", size of the long header message)``. Raises ProtocolError if the
    message is malformed, or announces more than ``max_size`` bytes in all.
    """
    if length is None:
        length = len(data)
    if length < PREFIX.size:
        raise ProtocolError(f"header message of {length} bytes is too short")
    magic, kind, n, hlen, _ = PREFIX.unpack_from(data)
    if magic != MAGIC or kind not in _KINDS:
        raise ProtocolError(f"bad header message (magic {bytes(magic)!r}, kind {kind})")
    if kind == KIND_LONG:
        return kind, b"", [], b"", hlen
    if n > MAX_BUFFERS:
        raise ProtocolError(f"header message announces {n} buffers (limit {MAX_BUFFERS})")
    end = PREFIX.size + 9 * n
    if end + hlen > length:
        raise ProtocolError(
            f"header message announces {n} buffers and {hlen} header bytes but holds {length} bytes"
        )
    flags: bytes
    if n == 1:  # the common case, without loops
        size, flags = _ONE.unpack_from(data, PREFIX.size)
        sizes = [size]
        total = hlen + size
        inlined = size if flags[0] & INLINED else 0
    else:
        fields = (_LAYOUTS[n] if n <= 16 else _layout(n)).unpack_from(data)
        sizes = list(fields[5:-1])
        flags = fields[-1]
        total = hlen + sum(sizes)
        inlined = 0
        if n and flags.count(0) != n:
            for size, flag in zip(sizes, flags, strict=True):
                if flag & INLINED:
                    inlined += size
    if total > max_size:
        raise ProtocolError(f"message of {total} bytes exceeds max_message_size={max_size}")
    if end + hlen + inlined > length:
        raise ProtocolError(f"header message announces {inlined} inlined bytes it does not hold")
    return kind, bytes(data[end : end + hlen]) if hlen else b"", sizes, flags, end + hlen
