"""Fuzz target: ``ucx://`` message prefixes (``ucx/_wire.parse_prefix``).

The link receives every message's prefix into its preallocated
:data:`PREFIX_CAPACITY`-byte buffer and calls ``parse_prefix`` on the received
bytes before allocating anything; the result sizes the buffers it then
allocates. Every generated prefix either raises ProtocolError or gives a
layout that is safe to act on (total within the limit, table and inline data
inside the prefix, known kinds), within 2 s and without allocating from the
announced sizes.
"""

from __future__ import annotations

import struct
import time
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import ProtocolError
from actors.transports.ucx._wire import (
    DEVICE,
    HOST,
    INLINE,
    PREFIX_CAPACITY,
    pack_prefix,
    parse_prefix,
)
from tests.fuzz._support import BOUND_S, FUZZ_MAX, SLOW_TIMEOUT_S, fuzz_settings

_FIXED = struct.Struct("<BBHIQ")
_ENTRY = struct.Struct("<QB")


@st.composite
def prefix(draw: st.DrawFn) -> bytes:
    """A prefix from pack_prefix, or hand-built with hostile fields, possibly cut."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=512))
    if draw(st.booleans()):
        sizes = draw(st.lists(st.integers(0, 100), max_size=5))
        device = [draw(st.booleans()) for _ in sizes]
        inline = [
            b"i" * s if not d and draw(st.booleans()) else None
            for s, d in zip(sizes, device, strict=True)
        ]
        data = bytearray(pack_prefix(draw(st.binary(max_size=40)), sizes, device, inline)[0])
    else:
        entries = draw(
            st.lists(
                st.tuples(
                    st.one_of(st.integers(0, 64), st.integers(0, (1 << 64) - 1)),
                    st.one_of(st.sampled_from([HOST, DEVICE, INLINE]), st.integers(0, 255)),
                ),
                max_size=6,
            )
        )
        nbufs = draw(st.one_of(st.just(len(entries)), st.integers(0, (1 << 32) - 1)))
        hlen = draw(st.one_of(st.integers(0, 64), st.integers(0, (1 << 64) - 1)))
        data = bytearray(
            _FIXED.pack(draw(st.integers(0, 3)), draw(st.integers(0, 255)), 0, nbufs, hlen)
        )
        data += b"".join(_ENTRY.pack(*e) for e in entries) + draw(st.binary(max_size=200))
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data[:PREFIX_CAPACITY])


def check(data: bytes) -> None:
    received = bytearray(PREFIX_CAPACITY)  # the link's preallocated prefix buffer
    received[: len(data)] = data
    view = memoryview(received)[: len(data)]
    start = time.monotonic()
    tracemalloc.start()
    try:
        try:
            layout = parse_prefix(view, FUZZ_MAX, "fuzz-peer")
        except ProtocolError as exc:
            assert "fuzz-peer" in str(exc)
            return
        finally:
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert time.monotonic() - start < BOUND_S
    assert peak < 1 << 20
    assert layout.total <= FUZZ_MAX
    assert set(layout.kinds) <= {HOST, DEVICE, INLINE}
    assert layout.data_offset == _FIXED.size + _ENTRY.size * len(layout.sizes)
    inline = (layout.header_len if layout.header_inline else 0) + sum(
        s for s, k in zip(layout.sizes, layout.kinds, strict=True) if k == INLINE
    )
    assert layout.data_offset + inline <= len(data)


@fuzz_settings(slow=False)
@given(data=prefix())
def test_ucx_prefixes(data: bytes) -> None:
    check(data)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
@fuzz_settings(slow=True)
@given(data=prefix())
def test_ucx_prefixes_slow(data: bytes) -> None:
    check(data)


def test_announcing_2_to_the_60_is_refused() -> None:
    data = _FIXED.pack(1, 0, 0, 1, 0) + _ENTRY.pack(1 << 60, HOST)
    with pytest.raises(ProtocolError, match="exceeds max_message_size"):
        parse_prefix(memoryview(data), 8 << 30, "p")
