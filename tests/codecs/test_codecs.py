"""Codec round trips (property-based), zero-copy guarantees and error cases."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import CodecError
from actors.codecs import (
    allow_pickle,
    codec_name_of,
    decode,
    decode_parts,
    encode,
    encode_parts,
    register_codec,
    register_layout,
)


def roundtrip(obj: Any) -> Any:
    header, buffers = encode(obj)
    assert isinstance(header, bytes)
    # what a transport hands back: byte memoryviews over (copies of) the memory
    received = [memoryview(bytearray(memoryview(b).cast("B"))) for b in buffers]
    return decode(header, received)


def assert_same(a: Any, b: Any) -> None:
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
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


dtypes = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?"),
    hnp.complex_number_dtypes(endianness="?"),
    hnp.datetime64_dtypes(endianness="?"),
    hnp.array_dtypes(
        subtype_strategy=st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes()), min_size=1
    ),
)
arrays = hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0))


@settings(max_examples=150, deadline=None)
@given(arrays)
def test_numpy_roundtrip_any_dtype_and_shape(arr: np.ndarray[Any, Any]) -> None:
    assert_same(arr, roundtrip(arr))


@settings(max_examples=50, deadline=None)
@given(arrays, st.integers(min_value=1, max_value=3))
def test_non_contiguous_view_roundtrip(arr: np.ndarray[Any, Any], step: int) -> None:
    view = arr[..., ::step] if arr.ndim else arr
    out = roundtrip(view)
    assert out.shape == view.shape and out.tobytes() == view.tobytes()


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | hnp.arrays(dtype=hnp.floating_dtypes(), shape=hnp.array_shapes(max_dims=2, min_side=0)),
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=5) | st.integers(-5, 5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(plain)
def test_nested_plain_data_with_arrays_roundtrip(obj: Any) -> None:
    assert_same(obj, roundtrip(obj))


def test_nested_arrays_travel_as_separate_buffers() -> None:
    a, b = np.arange(10.0), np.ones((2, 3), "i4")
    header, buffers = encode({"a": a, "nested": [(1, b)]})
    assert len(buffers) == 2
    assert len(header) < 200
    out = decode(header, buffers)
    assert isinstance(out["nested"][0], tuple)
    assert np.array_equal(out["a"], a) and np.array_equal(out["nested"][0][1], b)


def test_encode_does_not_copy_array_memory() -> None:
    arr = np.arange(1000, dtype="f8")
    _, (buf,) = encode(arr)
    assert np.shares_memory(np.asarray(buf), arr)


def test_decode_wraps_received_memory_without_copy() -> None:
    arr = np.arange(1000, dtype="f8")
    header, (buf,) = encode(arr)
    received = bytearray(memoryview(buf).cast("B"))
    out = decode(header, [memoryview(received)])
    received[0:8] = np.float64(42).tobytes()
    assert out[0] == 42.0


def test_non_contiguous_array_is_made_contiguous_once() -> None:
    arr = np.arange(100.0)[::2]
    _, (buf,) = encode(arr)
    assert memoryview(buf).c_contiguous and memoryview(buf).nbytes == 50 * 8


def test_numpy_scalars_keep_their_type() -> None:
    for value in (np.float32(1.5), np.int16(-3), np.bool_(True), np.datetime64("2020-01-01")):
        out = roundtrip(value)
        assert type(out) is type(value) and out == value


def test_integers_beyond_64_bits_roundtrip() -> None:
    values = [2**80, -(2**70), [2**64, (2**100,)]]
    assert roundtrip(values) == values


@register_layout
@dataclasses.dataclass
class MuonSoA:
    pt: np.ndarray[Any, Any]
    eta: np.ndarray[Any, Any]
    phi: np.ndarray[Any, Any]
    n: int


def test_soa_layout_columns_are_separate_regions() -> None:
    n = 17
    soa = MuonSoA(
        np.linspace(0, 1, n, dtype="f4"), np.zeros(n, "f4"), np.full(n, 3.0, "f4"), n
    )
    header, buffers = encode(soa)
    assert len(buffers) == 3
    assert np.shares_memory(np.asarray(buffers[0]), soa.pt)
    out = decode(header, buffers)
    assert isinstance(out, MuonSoA) and out.n == n
    for name in ("pt", "eta", "phi"):
        assert np.array_equal(getattr(out, name), getattr(soa, name))
    assert codec_name_of(soa).endswith("MuonSoA")


def test_layout_requires_dataclass() -> None:
    with pytest.raises(TypeError, match="dataclass"):
        register_layout(int)


def test_awkward_jagged_roundtrip() -> None:
    ak = pytest.importorskip("awkward", reason="awkward not installed (extra [hep])")
    jagged = ak.Array([[1.0, 2.0], [], [3.5], [4.0, 5.0, 6.0]])
    name, meta, buffers = encode_parts(jagged)
    assert name == "awkward.Array" and len(buffers) >= 2
    out = roundtrip(jagged)
    assert ak.to_list(out) == ak.to_list(jagged)
    records = ak.Array([{"pt": [1.0, 2.0], "q": [1, -1]}, {"pt": [], "q": []}])
    assert ak.to_list(roundtrip(records)) == ak.to_list(records)


class Unregistered:
    pass


def test_unregistered_type_names_type_and_how_to_register() -> None:
    with pytest.raises(CodecError) as info:
        encode({"x": Unregistered()})
    text = str(info.value)
    assert "Unregistered" in text and "register_codec" in text and "allow_pickle" in text


def test_object_dtype_refused() -> None:
    with pytest.raises(CodecError, match="object"):
        encode(np.array([object()]))


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


class PointCodec:
    def encode(self, obj: Point) -> tuple[Any, list[Any]]:
        return [obj.x, obj.y], []

    def decode(self, meta: Any, buffers: list[Any]) -> Point:
        return Point(*meta)


def test_user_codec_by_stable_name() -> None:
    register_codec(Point, PointCodec(), "tests.Point")
    out = roundtrip([Point(1.0, 2.0)])
    assert isinstance(out[0], Point) and (out[0].x, out[0].y) == (1.0, 2.0)
    assert codec_name_of(Point(0, 0)) == "tests.Point"


def test_unknown_codec_name_on_decode() -> None:
    with pytest.raises(CodecError, match="unknown codec 'nobody.Knows'"):
        decode_parts("nobody.Knows", None, [])


@pytest.mark.parametrize("garbage", [b"\xc1", b"\xc7\x05\x01abc", b"\x92\x01", b"\xd4\x07\x00"])
def test_garbage_header_is_codec_error(garbage: bytes) -> None:
    with pytest.raises(CodecError):
        decode(garbage, [])


def test_header_pointing_past_buffers_is_codec_error() -> None:
    header, _ = encode(np.zeros(3))
    with pytest.raises(CodecError, match="buffers"):
        decode(header, [])


def test_pickle_is_opt_in_on_both_sides() -> None:
    with pytest.raises(CodecError, match="allow_pickle"):
        encode(Unregistered())
    allow_pickle(True)
    try:
        header, buffers = encode({"obj": Unregistered(), "arr": np.arange(4)})
        out = decode(header, buffers)
        assert isinstance(out["obj"], Unregistered)
    finally:
        allow_pickle(False)
    with pytest.raises(CodecError, match="did not opt into pickle"):
        decode(header, buffers)


@pytest.mark.gpu
def test_cupy_roundtrip_stays_on_device() -> None:
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("cupy not installed (extra [gpu])")
    import cupy as cp

    try:
        arr = cp.arange(1000, dtype="f4").reshape(10, 100)
    except Exception as exc:  # no GPU / driver
        pytest.skip(f"no usable GPU: {exc}")
    header, buffers = encode(arr)
    assert hasattr(buffers[0], "__cuda_array_interface__")
    out = decode(header, buffers)
    assert isinstance(out, cp.ndarray) and bool((out == arr).all())
    staged = decode(header, [cp.asnumpy(buffers[0])])
    assert isinstance(staged, cp.ndarray) and bool((staged == arr).all())
