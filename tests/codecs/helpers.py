"""Shared helpers of the codec tests: a transport-like round trip and deep equality."""

from __future__ import annotations

from typing import Any

import numpy as np

from actors.codecs import decode, encode


def as_received(buffers: list[Any]) -> list[memoryview]:
    """What a copying transport hands to decode: byte memoryviews over fresh memory."""
    return [memoryview(bytearray(np.asarray(b).tobytes())) for b in buffers]


def roundtrip(obj: Any) -> Any:
    header, buffers = encode(obj)
    assert isinstance(header, bytes)
    return decode(header, as_received(buffers))


def assert_same(a: Any, b: Any) -> None:
    """Equal values AND equal types all the way down (tuples stay tuples)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b
