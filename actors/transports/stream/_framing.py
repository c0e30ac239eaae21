"""The wire format shared by ``tcp://`` and the ``shm://`` control channel.

One frame::

    prefix   12 bytes  <4s B B H I   magic b"HAF1", version, kind, buffer count, header length
    table    16 bytes per buffer  <Q I I   size, flags, aux
    header   header-length bytes
    buffers  the bytes of each buffer whose flags say INLINE, in table order

All integers are little-endian. ``kind`` is DATA for a user message; the shm
backend also uses ACK/DROP control frames (their table entries carry segment
ids in ``aux`` and size 0). ``flags``: DEVICE - the buffer was device memory on
the sending side (the receiver copies it back to a device); SHM - the bytes
live in shared-memory segment ``aux`` instead of on the stream; SHM_NEW - this
frame brings that segment's file descriptor.

Every field is validated by :func:`parse_prefix` / :func:`parse_table` before
anything is allocated: a bad magic, version, kind, count, unknown flags, a
SHM_NEW without SHM, a control frame with a header, sizes or flags, or a total
above the link's ``max_message_size`` raises :class:`~actors.errors.ProtocolError`.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ...errors import ProtocolError

__all__ = [
    "ENTRY",
    "FLAG_DEVICE",
    "FLAG_SHM",
    "FLAG_SHM_NEW",
    "KIND_ACK",
    "KIND_DATA",
    "KIND_DROP",
    "MAGIC",
    "MAX_BUFFERS",
    "PREFIX",
    "VERSION",
    "Entry",
    "Preamble",
    "encode_preamble",
    "parse_prefix",
    "parse_table",
]

MAGIC = b"HAF1"
VERSION = 1
PREFIX = struct.Struct("<4sBBHI")
ENTRY = struct.Struct("<QII")
_PREFIX_ONE = struct.Struct("<4sBBHIQII")  # prefix + one table entry, the common case

KIND_DATA = 0
KIND_ACK = 1
KIND_DROP = 2
_KINDS = (KIND_DATA, KIND_ACK, KIND_DROP)

FLAG_DEVICE = 1
FLAG_SHM = 2
FLAG_SHM_NEW = 4
_KNOWN_FLAGS = FLAG_DEVICE | FLAG_SHM | FLAG_SHM_NEW

#: Most buffers one message may carry (the width of the count field).
MAX_BUFFERS = 0xFFFF


class Entry(NamedTuple):
    """One row of the buffer table."""

    size: int
    flags: int = 0
    aux: int = 0


class Preamble(NamedTuple):
    """What :func:`parse_prefix` learnt from the fixed prefix."""

    kind: int
    nbuffers: int
    header_len: int

    @property
    def rest(self) -> int:
        """Bytes of table + header that follow the prefix."""
        return self.nbuffers * ENTRY.size + self.header_len


def encode_preamble(kind: int, header: bytes, entries: list[Entry]) -> bytes:
    """Prefix + table + header as one ``bytes`` (the buffers follow separately)."""
    if not entries:
        return PREFIX.pack(MAGIC, VERSION, kind, 0, len(header)) + header
    if len(entries) == 1:
        size, flags, aux = entries[0]
        return _PREFIX_ONE.pack(MAGIC, VERSION, kind, 1, len(header), size, flags, aux) + header
    if len(entries) > MAX_BUFFERS:
        raise ValueError(f"a message carries at most {MAX_BUFFERS} buffers, not {len(entries)}")
    parts = [PREFIX.pack(MAGIC, VERSION, kind, len(entries), len(header))]
    parts.extend(ENTRY.pack(e.size, e.flags, e.aux) for e in entries)
    parts.append(header)
    return b"".join(parts)


def parse_prefix(
    data: bytes | bytearray | memoryview, max_message_size: int, peer: str, offset: int = 0
) -> Preamble:
    """Validate the fixed prefix at ``data[offset:]``; raises ProtocolError naming ``peer``."""
    magic, version, kind, nbuf, hlen = PREFIX.unpack_from(data, offset)
    if magic != MAGIC:
        raise ProtocolError(f"bad frame magic {bytes(magic)!r} from {peer}")
    if version != VERSION:
        raise ProtocolError(f"frame version {version} from {peer}; this side speaks {VERSION}")
    if kind not in _KINDS:
        raise ProtocolError(f"unknown frame kind {kind} from {peer}")
    if kind != KIND_DATA and hlen:
        raise ProtocolError(f"control frame (kind {kind}) from {peer} carries a header")
    if hlen + nbuf * ENTRY.size > max_message_size:
        raise ProtocolError(
            f"frame from {peer} announces a {hlen}-byte header and {nbuf} buffers, "
            f"above max_message_size={max_message_size}"
        )
    return Preamble(kind, nbuf, hlen)


def parse_table(
    data: bytes | memoryview, pre: Preamble, max_message_size: int, peer: str
) -> list[Entry]:
    """Decode and validate the buffer table; raises ProtocolError naming ``peer``."""
    if not pre.nbuffers:
        return []
    if pre.nbuffers == 1:
        entries = [Entry._make(ENTRY.unpack_from(data))]
    else:
        entries = [Entry._make(row) for row in ENTRY.iter_unpack(data[: pre.nbuffers * ENTRY.size])]
    total = pre.header_len
    for e in entries:
        if e.flags & ~_KNOWN_FLAGS:
            raise ProtocolError(f"unknown buffer flags {e.flags:#x} in frame from {peer}")
        if e.flags & FLAG_SHM_NEW and not e.flags & FLAG_SHM:
            raise ProtocolError(f"buffer flags {e.flags:#x} (SHM_NEW without SHM) from {peer}")
        if pre.kind != KIND_DATA and (e.size or e.flags):
            raise ProtocolError(f"control frame (kind {pre.kind}) from {peer} carries data")
        total += e.size
    if total > max_message_size:
        raise ProtocolError(
            f"message of {total} bytes from {peer} exceeds max_message_size={max_message_size}"
        )
    return entries
