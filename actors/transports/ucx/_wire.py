"""Wire format of ``ucx://`` links: message prefixes (and the handshake's tag extra).

Pure Python (struct), no ucxx: the parsing and validation rules can be tested
without UCX.

Handshake, on the endpoint's *stream* channel right after connect: the one
mutual challenge-response of :mod:`actors.transports._handshake` (context
:data:`CONTEXT`); each side's extra is its receive tag (:data:`TAG`, 8 bytes),
bound by both MACs. A tag is random: it is the UCX tag the *peer* sends to,
unique per link, because UCX matches tags per worker, not per endpoint.

Messages, on the tag channel: one *prefix* frame of at most
:data:`PREFIX_CAPACITY` bytes, then one frame per out-of-line buffer, all sent
with the receiver's tag::

    version(1) flags(1) reserved(2) nbufs(4) header_len(8)
    nbufs x [size(8) kind(1)]
    header bytes           (when flags & HEADER_INLINE, else a frame of its own)
    inline buffers' bytes  (kind INLINE, in order)

A *goodbye* prefix (flags & GOODBYE, no buffers, no header) is the last
message a link sends when it is closed: UCX may report the peer's endpoint
closed before its last messages are out of the shared-memory queue (its
disconnect travels on another channel), so a receiver takes messages until
the goodbye, and treats a link lost without one as gone only after a grace
period (see :class:`~actors.transports.ucx._link.UCXLink`).

Kinds: HOST and DEVICE buffers travel as frames of their own, received into a
preallocated numpy / cupy buffer; INLINE (small host buffers) ride in the
prefix, so a small message is one UCX message. The receiver parses exactly the
bytes it received for a prefix (the link learns the length from a tag probe),
and a prefix's layout must fill them exactly.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import ProtocolError

__all__ = [
    "CONTEXT",
    "DEVICE",
    "GOODBYE",
    "GOODBYE_PREFIX",
    "HEADER_INLINE",
    "HOST",
    "INLINE",
    "INLINE_LIMIT",
    "PREFIX_CAPACITY",
    "TAG",
    "Layout",
    "header_only",
    "header_prefix",
    "pack_prefix",
    "parse_prefix",
]

#: Handshake context (see :mod:`actors.transports._handshake`) and the tag extra.
CONTEXT = b"ucx"
TAG = struct.Struct("<Q")

VERSION = 1
HEADER_INLINE = 1
GOODBYE = 2
HOST, DEVICE, INLINE = 0, 1, 2
_FIXED = struct.Struct("<BBHIQ")
_ENTRY = struct.Struct("<QB")
#: The prefix a link sends last, when it is closed.
GOODBYE_PREFIX = _FIXED.pack(VERSION, GOODBYE, 0, 0, 0)
#: Largest prefix frame (receive buffer preallocated per link).
PREFIX_CAPACITY = 64 << 10
#: Host buffers travel inside the prefix while the prefix stays within this many
#: bytes: below the eager threshold that :mod:`._library` sets within a host (64 KiB),
#: so that a message of a few products is one eager UCX message. A buffer sent as a
#: frame of its own costs the receiver a task, a probe and a wake-up more (a 32 KiB
#: echo between sleeping loops: 192 against 276 µs a round trip, 2026-12-07).
INLINE_LIMIT = 56 << 10
#: Most buffers one message may carry (their table must fit in the prefix).
MAX_BUFFERS = (PREFIX_CAPACITY - _FIXED.size) // _ENTRY.size


@dataclass(frozen=True)
class Layout:
    """What a prefix announces: sizes and kinds, and where inline data sits."""

    header_len: int
    header_inline: bool
    sizes: tuple[int, ...]
    kinds: tuple[int, ...]
    data_offset: int  # offset of the inline header/buffers in the prefix
    goodbye: bool = False  # the peer closed the link: no message follows

    @property
    def total(self) -> int:
        return self.header_len + sum(self.sizes)


def header_prefix(header: bytes) -> bytes | None:
    """The prefix frame of a message without buffers (what :func:`pack_prefix`
    builds for it, with less work: most messages are such): None when the
    header does not fit in a prefix."""
    if len(header) > PREFIX_CAPACITY - _FIXED.size:
        return None
    return _FIXED.pack(VERSION, HEADER_INLINE, 0, 0, len(header)) + header


def pack_prefix(
    header: bytes,
    sizes: Sequence[int],
    device: Sequence[bool],
    inline: Sequence[bytes | memoryview | None],
) -> tuple[bytes, bool, list[int]]:
    """Build the prefix frame.

    ``inline[i]`` is the host buffer (bytes-like, flat) when the caller offers
    it for inlining, else None; offered buffers are copied into the prefix in
    order while it stays within :data:`INLINE_LIMIT` bytes. Returns ``(prefix,
    header_inline, indexes of buffers sent as frames of their own)``. Raises
    ProtocolError when there are more than :data:`MAX_BUFFERS` buffers.
    """
    if len(sizes) > MAX_BUFFERS:
        raise ProtocolError(f"{len(sizes)} buffers in one message; ucx:// carries {MAX_BUFFERS}")
    table = _FIXED.size + _ENTRY.size * len(sizes)
    header_inline = len(header) <= PREFIX_CAPACITY - table
    room = INLINE_LIMIT - table - (len(header) if header_inline else 0)
    parts: list[bytes | memoryview] = [header] if header_inline else []
    entries = []
    separate = []
    for i, size in enumerate(sizes):
        data = inline[i]
        if data is not None and size <= room and not device[i]:
            room -= size
            parts.append(data)
            entries.append(_ENTRY.pack(size, INLINE))
        else:
            separate.append(i)
            entries.append(_ENTRY.pack(size, DEVICE if device[i] else HOST))
    flags = HEADER_INLINE if header_inline else 0
    fixed = _FIXED.pack(VERSION, flags, 0, len(sizes), len(header))
    return b"".join([fixed, *entries, *parts]), header_inline, separate


def header_only(prefix: memoryview, max_message_size: int) -> bytes | None:
    """The header of a message without buffers, read from its prefix (the
    frame :func:`header_prefix` builds, exactly); None for any other prefix,
    which :func:`parse_prefix` then reads (and rejects when malformed)."""
    if len(prefix) < _FIXED.size:
        return None
    version, flags, _, nbufs, header_len = _FIXED.unpack_from(prefix)
    if (
        version != VERSION
        or flags != HEADER_INLINE
        or nbufs
        or header_len > max_message_size
        or _FIXED.size + header_len != len(prefix)
    ):
        return None
    return bytes(prefix[_FIXED.size :])


def parse_prefix(prefix: memoryview, max_message_size: int, peer: str) -> Layout:
    """Parse and validate a prefix before anything is allocated.

    ``prefix`` holds exactly the bytes received for this prefix frame (not
    the link's whole receive buffer, whose tail holds older prefixes). Raises
    ProtocolError (naming ``peer``) for a wrong version, unknown kind, a
    message announcing more than ``max_message_size`` bytes, or a declared
    layout (table, inline header and buffers) that does not fill the
    received bytes exactly: a table or inline data past them, or bytes left
    over (:func:`pack_prefix` never writes either).
    """
    if len(prefix) < _FIXED.size:
        raise ProtocolError(f"truncated message prefix from {peer}")
    version, flags, _, nbufs, header_len = _FIXED.unpack_from(prefix)
    if version != VERSION:
        raise ProtocolError(f"unknown ucx:// frame version {version} from {peer}")
    offset = _FIXED.size
    if flags & GOODBYE:
        if nbufs or header_len or len(prefix) != offset:
            raise ProtocolError(f"goodbye prefix from {peer} carries a message")
        return Layout(0, True, (), (), offset, goodbye=True)
    if nbufs > MAX_BUFFERS or offset + nbufs * _ENTRY.size > len(prefix):
        raise ProtocolError(f"prefix from {peer} announces {nbufs} buffers; too many")
    sizes, kinds = [], []
    for _ in range(nbufs):
        size, kind = _ENTRY.unpack_from(prefix, offset)
        offset += _ENTRY.size
        if kind not in (HOST, DEVICE, INLINE):
            raise ProtocolError(f"unknown buffer kind {kind} in a frame from {peer}")
        sizes.append(size)
        kinds.append(kind)
    layout = Layout(header_len, bool(flags & HEADER_INLINE), tuple(sizes), tuple(kinds), offset)
    if layout.total > max_message_size:
        raise ProtocolError(
            f"message of {layout.total} bytes from {peer} exceeds "
            f"max_message_size={max_message_size}"
        )
    inline = (header_len if layout.header_inline else 0) + sum(
        s for s, k in zip(sizes, kinds, strict=True) if k == INLINE
    )
    if offset + inline > len(prefix):
        raise ProtocolError(f"inline data of a frame from {peer} runs past its prefix")
    if offset + inline != len(prefix):
        raise ProtocolError(
            f"prefix from {peer} holds {len(prefix)} bytes but its layout declares "
            f"{offset + inline}"
        )
    return layout
