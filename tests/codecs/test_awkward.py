"""awkward arrays through ak.to_buffers: one buffer per awkward buffer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from actors.codecs import codec_name_of, decode, encode, encode_parts

from .helpers import as_received, roundtrip

ak = pytest.importorskip("awkward", reason="awkward not installed (extra [hep])")


def test_jagged_array_roundtrip_with_separate_buffers() -> None:
    jagged = ak.Array([[1.0, 2.0], [], [3.5], [4.0, 5.0, 6.0]])
    name, meta, buffers = encode_parts(jagged)
    assert name == codec_name_of(jagged) == "awkward.Array"
    assert len(buffers) == 2  # offsets and content
    assert meta[0] == "ListOffsetArray"  # a jagged list of numbers: no form JSON
    out = roundtrip(jagged)
    assert isinstance(out, ak.Array)
    assert out.type == jagged.type and ak.to_list(out) == ak.to_list(jagged)


def test_records_options_and_strings_roundtrip() -> None:
    data: list[Any] = [
        {"pt": [1.0, 2.0], "q": [1, -1], "name": "mu", "iso": None},
        {"pt": [], "q": [], "name": "", "iso": 0.5},
    ]
    arr = ak.Array(data)
    out = roundtrip(arr)
    assert out.type == arr.type and ak.to_list(out) == data


def test_awkward_inside_a_container_and_decode_over_received_memory() -> None:
    jagged = ak.Array([[1, 2, 3], [4]])
    header, buffers = encode({"muons": jagged, "weights": np.ones(2)})
    out = decode(header, as_received(buffers))
    assert ak.to_list(out["muons"]) == [[1, 2, 3], [4]]
    assert np.array_equal(out["weights"], np.ones(2))


def test_empty_awkward_array() -> None:
    empty = ak.Array([[1.0]])[:0]
    out = roundtrip(empty)
    assert len(out) == 0 and out.type == empty.type


@pytest.mark.parametrize(
    "value",
    [
        ak.Array([[45.1, 38.2], [1.0]])[0],  # one event of a jagged branch: NumpyArray
        ak.Array(np.arange(5, dtype=np.int32)),
        ak.Array([[1, 2], [], [3]])[1:],  # offsets not starting at 0
    ],
)
def test_plain_numbers_travel_without_form_json(value: Any) -> None:
    _, meta, _ = encode_parts(value)
    assert meta[0] in ("NumpyArray", "ListOffsetArray")
    out = roundtrip(value)
    assert isinstance(out, ak.Array) and out.type == value.type
    assert ak.to_list(out) == ak.to_list(value)


def test_parameters_keep_the_form_json_path() -> None:
    strings = ak.Array(["mu", "e"])  # ListOffsetArray of chars: has parameters
    _, meta, _ = encode_parts(strings)
    assert meta[0].startswith("{")
    assert ak.to_list(roundtrip(strings)) == ["mu", "e"]


def test_inconsistent_direct_offsets_raise_codec_error() -> None:
    from actors.codecs import decode_parts
    from actors.errors import CodecError

    offsets = np.array([0, 5], dtype=np.int64).view(np.uint8)
    content = np.ones(2).view(np.uint8)
    with pytest.raises(CodecError, match="offsets"):
        decode_parts("awkward.Array", ["ListOffsetArray", "<i8", "<f8"], [offsets, content])


def test_small_offsets_are_checked_against_every_content_and_not_kept() -> None:
    """One event's jagged product: its offsets repeat from event to event (cached by
    value), yet each decode checks them against its own content, and the cache keeps
    no received buffer alive."""
    import gc
    import weakref

    from actors.codecs import decode_parts
    from actors.errors import CodecError

    meta = ["ListOffsetArray", "<i8", "<f8"]
    first = decode_parts("awkward.Array", meta, [_u8([0, 3]), _u8f([1.0, 2.0, 3.0])])
    again = decode_parts("awkward.Array", meta, [_u8([0, 3]), _u8f([4.0, 5.0, 6.0])])
    assert ak.to_list(first) == [[1.0, 2.0, 3.0]] and ak.to_list(again) == [[4.0, 5.0, 6.0]]
    with pytest.raises(CodecError, match="2 offsets do not describe 2 values"):
        decode_parts("awkward.Array", meta, [_u8([0, 3]), _u8f([1.0, 2.0])])
    with pytest.raises(CodecError, match="3 offsets do not describe 3 values"):
        decode_parts("awkward.Array", meta, [_u8([0, 2, 1]), _u8f([1.0, 2.0, 3.0])])
    gc.disable()
    try:
        offsets, content = _u8([0, 1, 3]), _u8f([7.0, 8.0, 9.0])
        gone_offsets, gone_content = weakref.ref(offsets), weakref.ref(content)
        out = decode_parts("awkward.Array", meta, [offsets, content])
        del offsets, content
        assert gone_offsets() is None  # the array's offsets are the cache's private copy
        assert ak.to_list(out) == [[7.0], [8.0, 9.0]]
        del out
        assert gone_content() is None  # released with the array, without the collector
    finally:
        gc.enable()


def _u8(values: list[int]) -> np.ndarray[Any, Any]:
    return np.array(values, dtype=np.int64).view(np.uint8)


def _u8f(values: list[float]) -> np.ndarray[Any, Any]:
    return np.array(values, dtype=np.float64).view(np.uint8)
