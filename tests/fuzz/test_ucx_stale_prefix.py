"""Regression: a ``ucx://`` prefix is parsed from its own bytes only.

The link receives every prefix frame into one preallocated
:data:`~actors.transports.ucx._wire.PREFIX_CAPACITY`-byte buffer. It used to
hand the whole buffer to ``parse_prefix``, so a short prefix whose layout
declares more bytes than it carries was completed with stale bytes of an
earlier, longer message: a peer could make the receiver deliver old data as a
new message. The link now learns each prefix's length (through a tag probe:
ucxx's tag receive does not report it) and parses exactly those bytes, and
``parse_prefix`` refuses a layout that does not fill them exactly.

The same holds for the out-of-line frames a prefix announces (large buffers,
a large header): each used to be received by a posted tag receive, which does
not report how many bytes arrived, so a frame shorter than announced left the
rest of its ``np.empty`` buffer uninitialised in the message delivered, and a
longer one failed without naming the peer. Frames are now taken through probes
too, and a frame of another length is a ProtocolError naming the peer that
closes that link only.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from actors.errors import PeerLost, ProtocolError
from actors.transports import Link, connect, listen
from actors.transports.ucx import _wire as wire
from tests.fuzz._support import BOUND_S

_FIXED = struct.Struct("<BBHIQ")
_LONG_HEADER = b"stale header bytes " * 60  # 1140 bytes, inline in the prefix


def _short_prefix(header_len: int) -> bytes:
    """A 16-byte prefix announcing an inline header of ``header_len`` bytes it lacks."""
    return _FIXED.pack(1, wire.HEADER_INLINE, 0, 0, header_len)


# -- parse_prefix: no UCX needed ------------------------------------------------------


def _received(*prefixes: bytes) -> tuple[bytearray, int]:
    """The link's buffer after receiving ``prefixes`` in turn; length of the last."""
    buf = bytearray(wire.PREFIX_CAPACITY)
    for p in prefixes:
        buf[: len(p)] = p
    return buf, len(prefixes[-1])


def test_short_prefix_after_a_long_one_is_refused() -> None:
    long_prefix = wire.pack_prefix(_LONG_HEADER, [], [], [])[0]
    buf, n = _received(long_prefix, _short_prefix(len(_LONG_HEADER)))
    with pytest.raises(ProtocolError, match="runs past") as info:
        wire.parse_prefix(memoryview(buf)[:n], 1 << 30, "peer-x")
    assert "peer-x" in str(info.value)


def test_short_prefix_after_a_long_one_parses_its_own_bytes() -> None:
    long_prefix = wire.pack_prefix(_LONG_HEADER, [], [], [])[0]
    short = wire.pack_prefix(b"new", [2], [False], [b"ok"])[0]
    buf, n = _received(long_prefix, short)
    layout = wire.parse_prefix(memoryview(buf)[:n], 1 << 30, "peer-x")
    data = bytes(buf[layout.data_offset : n])
    assert (layout.header_len, layout.sizes, data) == (3, (2,), b"newok")


def test_bytes_beyond_the_declared_layout_are_refused() -> None:
    prefix = wire.pack_prefix(b"hdr", [], [], [])[0]
    with pytest.raises(ProtocolError, match="holds 20 bytes but its layout declares 19"):
        wire.parse_prefix(memoryview(prefix + b"x"), 1 << 30, "peer-x")


# -- a real link: raw frames from the peer --------------------------------------------


async def _pair(lst: Any) -> tuple[Link, Link]:
    accepted = asyncio.ensure_future(lst.accept())
    client = await connect(lst.address, timeout=10)
    return await asyncio.wait_for(accepted, 10), client


@pytest.fixture
async def links(ucx_ready: None) -> AsyncIterator[tuple[Link, Link, Link, Link]]:
    """Two link pairs (server, client, sentinel server, sentinel client)."""
    async with await listen("ucx://:0") as lst:
        server, client = await _pair(lst)
        other_server, other_client = await _pair(lst)
        async with server, client, other_server, other_client:
            yield server, client, other_server, other_client


def _send_raw(link: Link, frame: bytes) -> asyncio.Future[None]:
    """Post ``frame`` as one tagged UCX message, as the link's own frames go;
    the future of its completion (a large frame completes once received)."""
    from actors.transports.ucx._link import _array

    arr = _array(frame)
    req = link._ep.tag_send(arr, link._send_tag)  # type: ignore[attr-defined]
    sent: asyncio.Future[None] = link._eng.track(req, None, arr)  # type: ignore[attr-defined]
    return sent


async def _still_works(server: Link, client: Link) -> None:
    async with asyncio.timeout(BOUND_S):
        await client.send(b"ping", [b"sentinel"])
        header, bufs = await server.recv()
        assert (header, bytes(bufs[0])) == (b"ping", b"sentinel")


@pytest.mark.ucx
async def test_link_refuses_a_short_prefix_after_a_long_message(
    links: tuple[Link, Link, Link, Link],
) -> None:
    server, client, other_server, other_client = links
    await client.send(_LONG_HEADER, [b"x" * 100])
    header, bufs = await server.recv()
    assert header == _LONG_HEADER and bytes(bufs[0]) == b"x" * 100
    await client.send(b"short", [b"y"])  # an honest short one: its own bytes only
    header, bufs = await server.recv()
    assert header == b"short" and bytes(bufs[0]) == b"y"
    await client.send(_LONG_HEADER)
    assert (await server.recv())[0] == _LONG_HEADER
    await _send_raw(client, _short_prefix(len(_LONG_HEADER)))
    with pytest.raises(ProtocolError, match="runs past") as info:
        async with asyncio.timeout(BOUND_S):
            await server.recv()  # the old link returned the stale header as a message
    assert server.peer in str(info.value)
    assert server.closed
    with pytest.raises(PeerLost):
        await server.recv()
    await _still_works(other_server, other_client)


@pytest.mark.ucx
async def test_link_refuses_a_prefix_frame_over_its_capacity(
    links: tuple[Link, Link, Link, Link],
) -> None:
    server, client, other_server, other_client = links
    sent = _send_raw(client, bytes(wire.PREFIX_CAPACITY + 1))
    with pytest.raises(ProtocolError) as info:
        async with asyncio.timeout(BOUND_S):
            await server.recv()
    assert server.peer in str(info.value)
    await asyncio.wait([sent], timeout=BOUND_S)
    assert server.closed
    await _still_works(other_server, other_client)


# -- out-of-line frames: exactly the announced length ---------------------------------

_BIG = wire.INLINE_LIMIT + (1 << 10)  # above wire.INLINE_LIMIT: a frame of its own


def _announce(sizes: list[int], header: bytes = b"hdr") -> bytes:
    """A prefix announcing host buffers of ``sizes`` as frames of their own."""
    n = len(sizes)
    prefix, header_inline, separate = wire.pack_prefix(header, sizes, [False] * n, [None] * n)
    assert header_inline and separate == list(range(n))
    return prefix


async def _refused(server: Link, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        async with asyncio.timeout(BOUND_S):
            await server.recv()  # the old link delivered the short frame's buffer
    assert server.peer in str(info.value)
    assert server.closed
    with pytest.raises(PeerLost):
        await server.recv()


@pytest.mark.ucx
async def test_link_refuses_a_frame_shorter_than_announced(
    links: tuple[Link, Link, Link, Link],
) -> None:
    server, client, other_server, other_client = links
    await client.send(b"honest", [np.full(_BIG, 7, np.uint8)])  # an honest one first
    header, bufs = await server.recv()
    assert header == b"honest" and bytes(bufs[0]) == bytes([7]) * _BIG
    _send_raw(client, _announce([_BIG]))
    _send_raw(client, b"s" * 1000)
    await _refused(server, f"carries 1000 bytes but its prefix announced {_BIG}")
    await _still_works(other_server, other_client)


@pytest.mark.ucx
async def test_link_refuses_a_frame_longer_than_announced(
    links: tuple[Link, Link, Link, Link],
) -> None:
    server, client, other_server, other_client = links
    _send_raw(client, _announce([_BIG]))
    sent = _send_raw(client, bytes(_BIG + 1))
    await _refused(server, f"carries {_BIG + 1} bytes but its prefix announced {_BIG}")
    await asyncio.wait([sent], timeout=BOUND_S)
    await _still_works(other_server, other_client)


@pytest.mark.ucx
async def test_a_short_frame_takes_no_frame_of_the_next_message(
    links: tuple[Link, Link, Link, Link],
) -> None:
    """The second of two announced frames is short, and the next message's
    prefix follows: it is not taken as a frame, the link is refused."""
    server, client, other_server, other_client = links
    _send_raw(client, _announce([_BIG, _BIG]))
    _send_raw(client, b"a" * _BIG)
    _send_raw(client, b"b" * 10)
    await client.send(b"next", [b"n" * 100])
    await _refused(server, "frame 2 of 2 of a message from .* carries 10 bytes")
    await _still_works(other_server, other_client)


@pytest.mark.ucx
async def test_a_short_out_of_line_header_is_refused(
    links: tuple[Link, Link, Link, Link],
) -> None:
    server, client, other_server, other_client = links
    header = b"h" * wire.PREFIX_CAPACITY  # too large for the prefix: a frame of its own
    prefix, header_inline, _ = wire.pack_prefix(header, [], [], [])
    assert not header_inline
    _send_raw(client, prefix)
    _send_raw(client, header[:-1])
    await _refused(server, f"carries {len(header) - 1} bytes but its prefix announced")
    await _still_works(other_server, other_client)
