"""Structure-of-arrays layouts: each array column is its own buffer."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from actors import CodecError
from actors.codecs import codec_name_of, decode, encode, register_layout

from .helpers import as_received, roundtrip

Array = np.ndarray[Any, Any]


@register_layout
@dataclasses.dataclass
class MuonSoA:
    pt: Array
    eta: Array
    phi: Array
    n: int


@register_layout(name="tests.codecs.Jets")
@dataclasses.dataclass(frozen=True)
class Jets:
    energy: Array
    scale: np.float32
    labels: list[str]
    meta: dict[str, Any]
    cached: Array = dataclasses.field(init=False, default_factory=lambda: np.zeros(0))


def muons(n: int) -> MuonSoA:
    return MuonSoA(np.linspace(0, 1, n, dtype="f4"), np.zeros(n, "f4"), np.full(n, 3.0, "f4"), n)


@pytest.mark.parametrize("n", [0, 1, 17, 10_000])
def test_soa_columns_are_separate_buffers_sharing_memory(n: int) -> None:
    soa = muons(n)
    header, buffers = encode(soa)
    assert len(buffers) == 3
    for buf, column in zip(buffers, (soa.pt, soa.eta, soa.phi), strict=True):
        assert np.shares_memory(np.asarray(buf), column) or n == 0
    assert len(header) < 200
    received = as_received(buffers)
    out = decode(header, received)
    assert isinstance(out, MuonSoA) and out.n == n
    for name in ("pt", "eta", "phi"):
        assert getattr(out, name).dtype == np.float32
        assert np.array_equal(getattr(out, name), getattr(soa, name))
    if n:
        assert np.shares_memory(out.pt, np.frombuffer(received[0], dtype="u1"))
    assert codec_name_of(soa) == f"{__name__}.MuonSoA"


def test_layout_with_named_type_scalars_containers_and_non_init_field() -> None:
    jets = Jets(np.arange(5.0), np.float32(1.25), ["a", "b"], {"run": (1, 2)})
    object.__setattr__(jets, "cached", np.ones(3, "i2"))
    assert codec_name_of(jets) == "tests.codecs.Jets"
    out = roundtrip(jets)
    assert type(out.scale) is np.float32 and out.scale == jets.scale
    assert out.labels == ["a", "b"] and out.meta == {"run": (1, 2)}
    assert np.array_equal(out.energy, jets.energy)
    assert out.cached.dtype == np.int16 and np.array_equal(out.cached, jets.cached)


def test_layouts_nest_inside_containers() -> None:
    batch = {"muons": [muons(3), muons(4)], "run": 7}
    header, buffers = encode(batch)
    assert len(buffers) == 6
    out = decode(header, as_received(buffers))
    assert [m.n for m in out["muons"]] == [3, 4]


class Opaque:
    pass


def test_field_without_codec_names_layout_and_field() -> None:
    @register_layout
    @dataclasses.dataclass
    class Holder:
        thing: Any

    with pytest.raises(CodecError, match=r"field 'thing' of layout .*Holder.*Opaque"):
        encode(Holder(Opaque()))


def test_layout_buffer_count_mismatch_is_codec_error() -> None:
    header, buffers = encode(muons(4))
    with pytest.raises(CodecError):
        decode(header, buffers[:2])


def test_layout_requires_a_dataclass_type() -> None:
    with pytest.raises(TypeError, match="dataclass"):
        register_layout(int)
    with pytest.raises(TypeError, match="dataclass"):
        register_layout(muons(1))  # type: ignore[arg-type]
