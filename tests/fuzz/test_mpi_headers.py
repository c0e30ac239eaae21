"""Fuzz target: ``mpi://`` header messages (``_frame.unpack_header`` / ``unpack_prefix``).

MPI itself cannot run inside a pytest process, so this drives the exact parsing
functions the link uses on its always-posted header receive
(``Inbox.parse(max) = unpack_header(buffer of INLINE bytes, max, received count)``).
Every generated header message either raises ProtocolError or yields a result
that is safe to act on: buffer count and flags agree, the announced total is
within the limit, inlined bytes and the header lie inside what was received,
a long-header announcement is the only kind that defers its size - within 2 s
each, and nothing is allocated from announced sizes (tracemalloc).
"""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import ProtocolError
from actors.transports.mpi._frame import (
    INLINE,
    INLINED,
    KIND_BYE,
    KIND_LONG,
    KIND_MESSAGE,
    MAGIC,
    MAX_BUFFERS,
    PREFIX,
    pack_header,
    unpack_header,
    unpack_prefix,
)
from tests.fuzz._support import BOUND_S, FUZZ_MAX, SLOW_TIMEOUT_S, fuzz_settings

_size = st.one_of(
    st.integers(0, 64),
    st.sampled_from([FUZZ_MAX, FUZZ_MAX + 1, 1 << 32, 1 << 60, (1 << 64) - 1]),
    st.integers(0, (1 << 64) - 1),
)


@st.composite
def header_message(draw: st.DrawFn) -> bytes:
    """A header message built by pack_header, then possibly corrupted or cut."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=INLINE))
    n = draw(st.integers(0, 6))
    sizes = draw(st.lists(_size, min_size=n, max_size=n))
    flags = draw(st.lists(st.integers(0, 255), min_size=n, max_size=n))
    header = draw(st.binary(max_size=32))
    kind = draw(st.sampled_from([KIND_MESSAGE, KIND_BYE, KIND_LONG]))
    inline = [b"z" * min(s, 64) for s, f in zip(sizes, flags, strict=True) if f & INLINED]
    data = bytearray(pack_header(kind, header, [s % (1 << 64) for s in sizes], flags, inline))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):  # fields the packer never writes
        fields = list(PREFIX.unpack_from(data))
        index = draw(st.integers(0, 4))
        if index == 0:
            fields[0] = draw(st.one_of(st.just(MAGIC), st.binary(min_size=4, max_size=4)))
        else:
            fields[index] = draw(st.one_of(st.integers(0, 3), st.integers(0, (1 << 32) - 1)))
        data[: PREFIX.size] = PREFIX.pack(*fields)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data[:INLINE])


def check(message: bytes) -> None:
    received = bytearray(INLINE)  # the link's always-posted header receive
    received[: len(message)] = message
    start = time.monotonic()
    tracemalloc.start()
    try:
        try:
            kind, header, sizes, flags, offset = unpack_header(received, FUZZ_MAX, len(message))
        except ProtocolError:
            return
        finally:
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert time.monotonic() - start < BOUND_S
    assert peak < 1 << 20
    if kind == KIND_LONG:  # its real header message (size ``offset``) follows
        assert (header, sizes, flags) == (b"", [], b"")
        return
    assert len(sizes) == len(flags) <= MAX_BUFFERS
    assert len(header) + sum(sizes) <= FUZZ_MAX
    inlined = sum(s for s, f in zip(sizes, flags, strict=True) if f & INLINED)
    assert offset == PREFIX.size + 9 * len(sizes) + len(header)
    assert offset + inlined <= len(message)
    assert unpack_prefix(message)[:2] == (kind, len(sizes))


@fuzz_settings(slow=False)
@given(message=header_message())
def test_mpi_header_messages(message: bytes) -> None:
    check(message)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
@fuzz_settings(slow=True)
@given(message=header_message())
def test_mpi_header_messages_slow(message: bytes) -> None:
    check(message)


def test_announcing_2_to_the_60_is_refused() -> None:
    message = pack_header(KIND_MESSAGE, b"", [1 << 60], [0])
    with pytest.raises(ProtocolError, match="exceeds max_message_size"):
        unpack_header(message, 8 << 30)
