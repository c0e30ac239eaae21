"""Every failure is a CodecError that names what went wrong; pickle needs opt-in on both sides."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
    register_codec,
)

from .helpers import assert_same, roundtrip


@pytest.fixture
def pickle_on() -> Iterator[None]:
    allow_pickle(True)
    try:
        yield
    finally:
        allow_pickle(False)


class Unregistered:
    def __init__(self, value: Any = None) -> None:
        self.value = value


def test_unregistered_type_names_type_and_how_to_register() -> None:
    with pytest.raises(CodecError) as info:
        encode({"x": [Unregistered()]})
    text = str(info.value)
    assert f"{__name__}.Unregistered" in text
    assert "register_codec" in text and "register_layout" in text and "allow_pickle" in text
    with pytest.raises(CodecError, match="Unregistered"):
        codec_name_of(Unregistered())


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize("obj", [Colour.RED, {1, 2}, frozenset(), bytearray(b"x"), 1j])
def test_subclasses_and_other_builtins_are_not_silently_converted(obj: Any) -> None:
    with pytest.raises(CodecError, match=type(obj).__qualname__):
        encode(obj)


def test_object_dtype_refused() -> None:
    with pytest.raises(CodecError, match="object"):
        encode(np.array([object()]))


def test_masked_array_refused_instead_of_losing_its_mask() -> None:
    with pytest.raises(CodecError, match="mask"):
        encode(np.ma.masked_array([1.0, 2.0], mask=[False, True]))


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


class PointCodec:
    def encode(self, obj: Point) -> tuple[Any, list[Any]]:
        return [obj.x, obj.y], []

    def decode(self, meta: Any, buffers: list[Any]) -> Point:
        return Point(*meta)


class SpecialPoint(Point):
    pass


def test_user_codec_by_stable_name_and_mro_lookup() -> None:
    register_codec(Point, PointCodec(), "tests.Point")
    out = roundtrip([Point(1.0, 2.0), SpecialPoint(3.0, 4.0)])
    assert all(type(p) is Point for p in out)
    assert [(p.x, p.y) for p in out] == [(1.0, 2.0), (3.0, 4.0)]
    assert codec_name_of(SpecialPoint(0, 0)) == "tests.Point"


class Envelope:
    def __init__(self, inner: Any) -> None:
        self.inner = inner


class ReentrantCodec:
    """A codec that encodes its contents with actors.codecs itself."""

    def encode(self, obj: Envelope) -> tuple[Any, list[Any]]:
        return encode(obj.inner)

    def decode(self, meta: Any, buffers: list[Any]) -> Envelope:
        return Envelope(decode(meta, buffers))


def test_codec_may_call_encode_itself() -> None:
    register_codec(Envelope, ReentrantCodec(), "tests.Envelope")
    inner = {"b": (np.ones(2), 2**70)}
    obj = {"a": np.arange(3), "e": Envelope(inner), "c": np.zeros(1)}
    header, buffers = encode(obj)
    assert len(buffers) == 3
    out = decode(header, buffers)
    assert_same(out["e"].inner, inner)
    assert_same(out["c"], obj["c"])


class Broken:
    pass


class BrokenCodec:
    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        raise AttributeError("bug in user codec")

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        raise KeyError("bug in user codec")


def test_failing_user_codec_becomes_codec_error_naming_it() -> None:
    register_codec(Broken, BrokenCodec(), "tests.Broken")
    with pytest.raises(CodecError, match=r"tests\.Broken.*bug in user codec"):
        encode([Broken()])
    with pytest.raises(CodecError, match=r"tests\.Broken.*bug in user codec"):
        decode_parts("tests.Broken", None, [])


def test_unknown_codec_name_on_decode() -> None:
    with pytest.raises(CodecError, match=r"unknown codec 'nobody\.Knows'"):
        decode_parts("nobody.Knows", None, [])
    header, buffers = encode({"a": np.zeros(2)})
    forged = header.replace(b"numpy.ndarray", b"numpy.nowhere")
    with pytest.raises(CodecError, match=r"numpy\.nowhere"):
        decode(forged, buffers)


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xc1",
        b"\xc7\x05\x01abc",
        b"\x92\x01",
        b"\xd4\x07\x00",
        b"\xc7\x01\x03x",
        b"\x91" * 5000,
    ],
)
def test_garbage_header_is_codec_error(garbage: bytes) -> None:
    with pytest.raises(CodecError):
        decode(garbage, [])


def test_header_of_wrong_type_is_codec_error() -> None:
    with pytest.raises(CodecError):
        decode(None, [])  # type: ignore[arg-type]


def test_header_pointing_past_buffers_is_codec_error() -> None:
    header, _ = encode(np.zeros(3))
    with pytest.raises(CodecError, match="buffers"):
        decode(header, [])


def test_buffer_of_wrong_size_is_codec_error_naming_sizes() -> None:
    header, _ = encode(np.zeros((2, 3)))
    with pytest.raises(CodecError, match="40 bytes"):
        decode(header, [bytes(40)])


def test_zero_size_items_with_a_huge_shape_allocate_nothing() -> None:
    """A header naming 2**31 items of zero bytes each (found by the slow decode fuzzer):
    np.empty widened |S0 to one byte per item and allocated 2 GiB."""
    header = b"\xc7\x1c\x01\x94\xadnumpy.ndarray\x92\xa3|S0\x91\xce\x80\x00\x00\x00\x00\x01"
    tracemalloc.start()
    try:
        arr = decode(header, [np.array([], dtype=np.uint8)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert arr.shape == (2**31,) and arr.nbytes == 0
    assert peak < 1 << 20, f"{peak} bytes allocated"


def test_zero_size_structured_items_round_trip() -> None:
    sent = np.zeros((4, 2), dtype=[])
    back = roundtrip(sent)
    assert back.dtype == sent.dtype and back.shape == (4, 2)


@settings(max_examples=300)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=3))
def test_random_bytes_never_raise_anything_but_codec_error(data: bytes, nbuf: int) -> None:
    try:
        decode(data, [bytes(8)] * nbuf)
    except CodecError as exc:  # anything else (or a crash) fails the test
        assert str(exc)


_SAMPLE = {"a": np.arange(6, dtype="<i4").reshape(2, 3), "t": (1, "x", 2**70), "f": 1.5}


@settings(max_examples=300)
@given(st.data())
def test_corrupted_headers_never_raise_anything_but_codec_error(data: st.DataObject) -> None:
    header, buffers = encode(_SAMPLE)
    position = data.draw(st.integers(0, len(header) - 1))
    value = data.draw(st.integers(0, 255))
    corrupted = header[:position] + bytes([value]) + header[position + 1 :]
    try:
        decode(corrupted, buffers)
    except CodecError as exc:  # anything else (or a crash) fails the test
        assert str(exc)


def test_pickle_is_opt_in_on_both_sides() -> None:
    with pytest.raises(CodecError, match="allow_pickle"):
        encode(Unregistered())
    allow_pickle(True)
    try:
        arr = np.arange(1000.0)
        header, buffers = encode({"obj": Unregistered(arr)})
        assert codec_name_of(Unregistered()) == "pickle"
    finally:
        allow_pickle(False)
    with pytest.raises(CodecError, match="did not opt into pickle"):
        decode(header, buffers)


def test_pickle_keeps_arrays_out_of_band(pickle_on: None) -> None:
    arr = np.arange(1000.0)
    header, buffers = encode({"obj": Unregistered(arr)})
    assert len(buffers) == 1 and np.shares_memory(np.asarray(buffers[0]), arr)
    assert len(header) < 400
    out = decode(header, buffers)
    assert isinstance(out["obj"], Unregistered) and np.array_equal(out["obj"].value, arr)


def test_registered_codecs_win_over_pickle(pickle_on: None) -> None:
    assert codec_name_of(np.zeros(1)) == "numpy.ndarray"


def test_pickle_opt_in_by_environment_variable() -> None:
    code = (
        "from actors.codecs import encode, decode, pickle_allowed\n"
        "import fractions\n"
        "h, b = encode(fractions.Fraction(1, 3))\n"
        "assert decode(h, b) == fractions.Fraction(1, 3) and pickle_allowed()\n"
    )
    env = {**os.environ, "ACTORS_ALLOW_PICKLE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_encode_and_decode_from_many_threads() -> None:
    def work(i: int) -> bool:
        obj = {"i": i, "a": np.full(i % 7 + 1, i), "t": (i, [np.arange(i % 3)])}
        for _ in range(50):
            header, buffers = encode(obj)
            out = decode(header, buffers)
            assert_same(obj, out)
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(work, range(64)))
