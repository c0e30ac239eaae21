"""The codec never copies memory: encode hands out the arrays' own memory, decode wraps."""

from __future__ import annotations

import numpy as np

from actors.buffers import as_host_view
from actors.codecs import decode, encode


def test_encode_buffer_is_the_array_memory() -> None:
    arr = np.arange(1000, dtype="f8")
    _, (buf,) = encode(arr)
    assert np.shares_memory(np.asarray(buf), arr)
    assert as_host_view(buf).nbytes == arr.nbytes


def test_nested_arrays_are_separate_buffers_sharing_memory() -> None:
    a, b = np.arange(10.0), np.ones((2, 3), "i4")
    header, buffers = encode({"a": a, "nested": [(1, b)], "again": a})
    assert len(buffers) == 3
    assert np.shares_memory(np.asarray(buffers[0]), a)
    assert np.shares_memory(np.asarray(buffers[1]), b)
    out = decode(header, buffers)
    assert isinstance(out["nested"][0], tuple)
    assert np.array_equal(out["a"], a) and np.array_equal(out["nested"][0][1], b)


def test_decode_wraps_received_memoryview_without_copy() -> None:
    arr = np.arange(1000, dtype="f8").reshape(10, 100)
    header, (buf,) = encode(arr)
    received = bytearray(np.asarray(buf).tobytes())
    view = memoryview(received)
    out = decode(header, [view])
    assert np.shares_memory(out, np.frombuffer(view, dtype="u1"))
    received[0:8] = np.float64(42).tobytes()
    assert out[0, 0] == 42.0


def test_non_contiguous_array_is_made_contiguous_once() -> None:
    arr = np.arange(100.0)[::2]
    _, (buf,) = encode(arr)
    view = as_host_view(buf)
    assert view.c_contiguous and view.nbytes == 50 * 8
    assert not np.shares_memory(np.asarray(buf), arr)


def test_bytes_travel_inside_the_header() -> None:
    header, buffers = encode(b"abc")
    assert buffers == [] and decode(header, []) == b"abc"


def test_large_bytes_travel_as_their_own_buffer() -> None:
    payload = bytes(range(256)) * 1024
    header, buffers = encode(payload)
    assert len(header) < 40 and len(buffers) == 1 and buffers[0] is payload
    assert decode(header, [memoryview(payload)]) == payload
    assert type(decode(header, buffers)) is bytes
