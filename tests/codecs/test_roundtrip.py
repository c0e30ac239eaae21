"""Round trips: property tests over dtypes, shapes and nesting, plus the plain-data rules."""

from __future__ import annotations

from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.codecs import codec_name_of, decode_parts, encode, encode_parts

from .helpers import as_received, assert_same, roundtrip

dtypes = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?"),
    hnp.complex_number_dtypes(endianness="?"),
    hnp.datetime64_dtypes(endianness="?"),
    hnp.timedelta64_dtypes(endianness="?"),
    hnp.byte_string_dtypes(endianness="?"),
    hnp.unicode_string_dtypes(endianness="?"),
    hnp.array_dtypes(
        subtype_strategy=st.one_of(
            hnp.integer_dtypes(endianness="?"), hnp.floating_dtypes(endianness="?")
        ),
        min_size=1,
    ),
)
arrays = hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0))


@settings(max_examples=200)
@given(arrays)
def test_numpy_roundtrip_any_dtype_and_shape(arr: np.ndarray[Any, Any]) -> None:
    out = roundtrip(arr)
    assert_same(arr, out)
    assert out.dtype.byteorder == arr.dtype.byteorder


@settings(max_examples=80)
@given(arrays, st.integers(min_value=1, max_value=3), st.booleans())
def test_non_contiguous_views_roundtrip(
    arr: np.ndarray[Any, Any], step: int, transpose: bool
) -> None:
    view = arr[..., ::step] if arr.ndim else arr
    if transpose:
        view = view.T
    out = roundtrip(view)
    assert out.shape == view.shape and out.dtype == view.dtype
    assert out.tobytes() == view.tobytes()


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(max_dims=2, min_side=0)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5) | st.integers(-(2**40), 2**40), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=200)
@given(plain)
def test_nested_plain_data_with_arrays_roundtrip(obj: Any) -> None:
    assert_same(obj, roundtrip(obj))


@settings(max_examples=100)
@given(plain)
def test_encode_parts_roundtrip_and_name(obj: Any) -> None:
    name, meta, buffers = encode_parts(obj)
    assert name == codec_name_of(obj)
    assert_same(obj, decode_parts(name, meta, as_received(buffers)))


def test_tuples_stay_tuples_at_every_level() -> None:
    obj = ((), (1,), [(2, (3, [4]))], {"t": (5.0, "x")}, {(1, 2): "tuple key"})
    out = roundtrip(obj)
    assert_same(obj, out)
    assert out[4][(1, 2)] == "tuple key"


def test_dict_keys_of_any_msgpack_type() -> None:
    obj = {1: "one", -2: b"two", 3.5: None, "s": 1, b"b": 2, None: 4}
    assert_same(obj, roundtrip(obj))


def test_integers_beyond_64_bits() -> None:
    values = [2**64, -(2**63) - 1, 2**80, -(2**70), [2**64, (2**100,)], {2**65: 1}]
    assert_same(values, roundtrip(values))
    assert_same(2**90, roundtrip(2**90))
    assert encode_parts(2**90)[0] == "container"
    assert encode_parts(2**63)[0] == "plain"


@pytest.mark.parametrize(
    "value",
    [
        np.float32(1.5),
        np.float64(2.5),
        np.int16(-3),
        np.uint64(2**64 - 1),
        np.bool_(True),
        np.complex64(1 + 2j),
        np.datetime64("2020-01-01T12:00", "m"),
        np.timedelta64(5, "ns"),
        np.str_("muon"),
    ],
)
def test_numpy_scalars_keep_their_type(value: Any) -> None:
    out = roundtrip(value)
    assert type(out) is type(value) and out == value
    assert codec_name_of(value) == "numpy.scalar"


def test_array_subclass_without_own_codec_travels_as_ndarray() -> None:
    class Tagged(np.ndarray):
        pass

    arr = np.arange(4.0).view(Tagged)
    out = roundtrip(arr)
    assert type(out) is np.ndarray and np.array_equal(out, arr)


def test_headers_are_small() -> None:
    header, buffers = encode({"hits": np.zeros(1_000_000, "f4"), "run": 1})
    assert len(header) < 80 and len(buffers) == 1


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        (None, "plain"),
        (1, "plain"),
        ("x", "plain"),
        (b"x", "plain"),
        ([1], "container"),
        ((1,), "container"),
        ({"a": 1}, "container"),
        (np.zeros(2), "numpy.ndarray"),
    ],
)
def test_codec_name_of(obj: Any, name: str) -> None:
    assert codec_name_of(obj) == name
