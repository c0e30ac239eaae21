"""Fuzz target: the codec decoder (``actors.codecs.decode``), as a receiver calls it.

Headers are generated as raw bytes, arbitrary msgpack, or codec extension
objects naming every registered codec (numpy arrays and scalars, bytes,
awkward, cupy, masked arrays, pickle, a structure-of-arrays layout, unknown
names) with hostile meta - dtype descriptions (object, zero-size, giant,
structured), shapes (negative, huge, wrong rank), buffer indexes - and
buffers of arbitrary sizes. ``decode`` must return a value or raise
CodecError, nothing else, within 2 s; pickle is never unpickled (this process
did not opt in), and nothing is allocated from announced shapes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import tracemalloc
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.codecs import decode, encode, pickle_allowed, register_layout
from actors.errors import CodecError
from tests.fuzz._support import BOUND_S, SLOW_TIMEOUT_S, fuzz_settings

with contextlib.suppress(ImportError):  # imported once here, not timed in an example
    import awkward  # noqa: F401

_EXT_OBJECT, _EXT_TUPLE, _EXT_BIGINT = 1, 2, 3


@register_layout(name="fuzz.Hits")
@dataclasses.dataclass
class Hits:
    x: np.ndarray
    n: int


NAMES = [
    "numpy.ndarray",
    "numpy.scalar",
    "bytes",
    "awkward.Array",
    "cupy.ndarray",
    "numpy.ma.MaskedArray",
    "pickle",
    "fuzz.Hits",
    "plain",
    "container",
    "no.such.codec",
]
DESCRS = [
    "<f8",
    "|u1",
    "|b1",
    "<c16",
    "<M8[ns]",
    "|O",
    "|V0",
    "<U1000000000",
    "|S0",
    "V8",
    "",
    [["a", "<i4"], ["b", "|O"]],
    [["a", "<i4", [2, 3]]],
    [["a", "<i4", [1 << 40]]],
    {"names": ["a"], "formats": ["<i4"], "itemsize": 1 << 62},
    ["x"],
    7,
]
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=6),
    st.binary(max_size=8),
)
_value = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4), max_leaves=10)
_shape = st.lists(
    st.one_of(st.integers(-2, 8), st.sampled_from([1 << 31, 1 << 62, (1 << 63) - 1])), max_size=4
)


@st.composite
def meta(draw: st.DrawFn, name: str) -> Any:
    if name in ("numpy.ndarray", "cupy.ndarray"):
        return [draw(st.sampled_from(DESCRS)), draw(_shape)]
    if name == "numpy.scalar":
        return [draw(st.sampled_from(DESCRS)), draw(st.binary(max_size=16))]
    if name == "awkward.Array":
        form = draw(
            st.sampled_from(
                [
                    '{"class": "NumpyArray", "primitive": "float64", "form_key": "node0"}',
                    '{"class": "ListOffsetArray", "offsets": "i64", "content": '
                    '{"class": "NumpyArray",'
                    ' "primitive": "int32", "form_key": "node1"}, "form_key": "node0"}',
                    '{"class": "RegularArray", "size": 0, "content": {"class": "NumpyArray",'
                    ' "primitive": "int8", "form_key": "node1"}, "form_key": "node0"}',
                    '{"class": "EmptyArray"}',
                    "{",
                    '{"class": "Nope"}',
                ]
            )
        )
        length = draw(st.one_of(st.integers(-1, 8), st.sampled_from([1 << 40, 1 << 62])))
        keys = draw(
            st.lists(
                st.sampled_from(["node0-data", "node0-offsets", "node1-data", "x"]), max_size=3
            )
        )
        return [form, length, keys]
    if name == "fuzz.Hits":
        return [
            [["x", "numpy.ndarray", [draw(st.sampled_from(DESCRS)), draw(_shape)], 1]],
            {"n": draw(_leaf)},
        ]
    if name == "pickle":
        return b"\x80\x05cos\nsystem\n(S'echo pwned'\ntR."
    return draw(_value)


@st.composite
def message(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    buffers: list[Any] = [
        np.frombuffer(draw(st.binary(max_size=64)), np.uint8)
        for _ in range(draw(st.integers(0, 3)))
    ]
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=64)), buffers
    if choice == 1:
        return msgpack.packb(draw(_value)), buffers
    if choice == 2:  # a tuple or big int extension with arbitrary payload
        code = draw(st.sampled_from([_EXT_TUPLE, _EXT_BIGINT, 9]))
        payload = draw(st.one_of(st.binary(max_size=32), st.just(b"9" * 5000)))
        return msgpack.packb(msgpack.ExtType(code, payload)), buffers
    name = draw(st.sampled_from(NAMES))
    first = draw(st.one_of(st.integers(0, 3), st.integers(-5, 1 << 40)))
    count = draw(st.one_of(st.integers(0, 3), st.integers(-5, 1 << 40)))
    item = msgpack.ExtType(_EXT_OBJECT, msgpack.packb([name, draw(meta(name)), first, count]))
    top = draw(st.sampled_from(["bare", "list", "dict"]))
    value: Any = item if top == "bare" else [1, item] if top == "list" else {"k": item}
    return msgpack.packb(value), buffers


def check(msg: tuple[bytes, list[Any]]) -> None:
    assert not pickle_allowed()
    header, buffers = msg
    start = time.monotonic()
    tracemalloc.start()
    try:
        with contextlib.suppress(CodecError):
            decode(header, buffers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < BOUND_S
    assert peak < 16 << 20, f"{peak} bytes allocated decoding {len(header)} header bytes"


@fuzz_settings(slow=False)
@given(msg=message())
def test_codec_decode(msg: tuple[bytes, list[Any]]) -> None:
    check(msg)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
@fuzz_settings(slow=True)
@given(msg=message())
def test_codec_decode_slow(msg: tuple[bytes, list[Any]]) -> None:
    check(msg)


def test_round_trip_still_works() -> None:
    header, buffers = encode({"x": np.arange(5.0), "h": Hits(np.arange(3), 3), "t": (1, 2**70)})
    out = decode(header, buffers)
    assert out["x"].tolist() == [0, 1, 2, 3, 4] and out["t"] == (1, 2**70)
    assert out["h"].n == 3 and out["h"].x.tolist() == [0, 1, 2]
