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
    assert isinstance(meta[0], str) and meta[1] == 4
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
