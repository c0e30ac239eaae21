"""Plain awkward arrays built by copying what awkward's constructors make."""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from actors.codecs._akplain import PlainArrays

from .helpers import roundtrip

ak = pytest.importorskip("awkward", reason="awkward not installed (extra [hep])")

DTYPES = ["float32", "float64", "int8", "int32", "int64", "uint16", "bool", "complex128"]


def _same_as_constructed(made: Any, constructed: Any, data_key: str) -> None:
    assert type(made) is type(constructed)
    assert vars(made).keys() == vars(constructed).keys()
    for key, value in vars(constructed).items():
        if key != data_key:
            assert vars(made)[key] is value, key


@pytest.mark.parametrize("dtype", DTYPES)
def test_copies_hold_what_the_constructors_make(dtype: str) -> None:
    plain = PlainArrays(ak)
    data = np.arange(4).astype(dtype)
    layout = plain.numpy_layout(data)
    _same_as_constructed(layout, ak.contents.NumpyArray(data), "_data")
    assert layout.data is data
    array = plain.array(layout)
    _same_as_constructed(array, ak.Array(ak.contents.NumpyArray(data)), "_layout")
    assert array.layout is layout
    assert plain._numpy[np.dtype(dtype)] is not None  # copied, not constructed
    assert plain._arrays[ak.contents.NumpyArray] is not None


def test_copied_arrays_behave_as_constructed_ones() -> None:
    plain = PlainArrays(ak)
    pt = plain.numpy_array(np.array([45.5, 38.25, 7.0]))
    jagged = plain.array(
        ak.contents.ListOffsetArray(
            ak.index.Index64(np.array([0, 2, 3])), plain.numpy_layout(np.array([1, 2, 3]))
        )
    )
    assert pt.type == ak.Array([45.5, 38.25, 7.0]).type
    assert ak.to_list(pt[np.argsort(-np.asarray(pt))[:2]]) == [45.5, 38.25]
    assert float(ak.sum(pt)) == 90.75 and ak.to_list(pt * 2) == [91.0, 76.5, 14.0]
    assert ak.to_list(ak.num(jagged)) == [2, 1] and ak.to_list(jagged[0]) == [1, 2]
    assert ak.to_list(pickle.loads(pickle.dumps(jagged))) == [[1, 2], [3]]
    assert str(pt.type) == "3 * float64" and "45.5" in repr(pt)


def test_decoded_events_products_are_copies() -> None:
    one_event = ak.Array([[45.1, 38.2], [1.0]])[0]
    out = roundtrip(one_event)
    _same_as_constructed(out, ak.Array(out.layout), "_layout")
    assert ak.to_list(out) == ak.to_list(one_event)


def test_parameters_and_other_layouts_keep_the_constructor() -> None:
    plain = PlainArrays(ak)
    chars = ak.Array(["mu"]).layout  # ListOffsetArray with parameters
    assert ak.to_list(plain.array(chars)) == ["mu"]
    records = ak.Array([{"x": 1}]).layout
    assert ak.to_list(plain.array(records)) == [{"x": 1}]
    assert plain._arrays[type(records)] is None


def test_a_dtype_awkward_rejects_raises_awkwards_error() -> None:
    plain = PlainArrays(ak)
    data = np.zeros(2, dtype="V8")
    with pytest.raises(TypeError) as constructed:
        ak.contents.NumpyArray(data)
    with pytest.raises(TypeError) as copied:
        plain.numpy_layout(data)
    assert str(copied.value) == str(constructed.value)
    assert plain._numpy[data.dtype] is None


class _PerInstanceState:
    """An ak.Array stand-in that keeps a fresh object per instance: never copied."""

    def __init__(self, layout: Any) -> None:
        self._layout = layout
        self._cache: list[Any] = []


class _FixedState:
    def __init__(self, layout: Any) -> None:
        self._layout = layout
        self._cache = None


@pytest.mark.parametrize(("cls", "copied"), [(_PerInstanceState, False), (_FixedState, True)])
def test_a_class_with_per_instance_state_is_constructed(cls: type, copied: bool) -> None:
    fake = SimpleNamespace(Array=cls, contents=ak.contents, index=ak.index)
    plain = PlainArrays(fake)
    layout = ak.contents.NumpyArray(np.ones(2))
    made = plain.array(layout)
    assert type(made) is cls and made._layout is layout
    assert (plain._arrays[ak.contents.NumpyArray] is not None) is copied
    if not copied:
        assert made._cache == [] and made._cache is not plain.array(layout)._cache


def test_the_public_builder_is_the_codecs_own() -> None:
    from actors.codecs import plain_awkward_arrays
    from actors.codecs._akplain import shared_plain_arrays

    plain = plain_awkward_arrays()
    assert plain is shared_plain_arrays()
    made = plain.numpy_array(np.array([3, 1], dtype=np.int16))
    assert ak.to_list(made) == [3, 1] and str(made.type) == "2 * int16"
