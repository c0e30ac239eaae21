"""The built-in codecs load their module (numpy, awkward) on first use, then stand as themselves."""

from __future__ import annotations

import numpy as np

from actors.codecs import _registry, decode, encode
from actors.codecs._arrays import NumpyCodec
from actors.codecs._builtin import LazyCodec
from tests.snippets import last_line


def test_numpy_arrays_and_scalars_round_trip_through_the_stand_ins() -> None:
    obj = {"hits": np.arange(6, dtype=">f4").reshape(2, 3), "n": np.int16(-3)}
    header, buffers = encode(obj)
    back = decode(header, buffers)
    np.testing.assert_array_equal(back["hits"], obj["hits"])
    assert back["hits"].dtype == np.dtype(">f4")
    assert back["n"] == -3 and back["n"].dtype == np.int16


def test_the_first_use_registers_the_real_codec_by_exact_type() -> None:
    encode(np.zeros(3))
    name, codec = _registry.codec_for(np.zeros(3))
    assert name == "numpy.ndarray"
    assert isinstance(codec, NumpyCodec)
    assert _registry._by_type[np.ndarray][1] is codec
    assert isinstance(_registry.codec_by_name("numpy.ndarray"), NumpyCodec)


def test_a_stand_in_loads_once_and_delegates() -> None:
    lazy = LazyCodec("._arrays", "NumpyScalarCodec", "numpy.scalar")
    first = lazy.load()
    assert lazy.load() is first
    meta, buffers = lazy.encode(np.float32(2.5))
    assert lazy.decode(meta, buffers) == np.float32(2.5)


def test_numpy_subclasses_are_found_once_numpy_is_loaded() -> None:
    class Tagged(np.ndarray):
        pass

    arr = np.arange(4).view(Tagged)
    back = decode(*encode(arr))
    assert type(back) is np.ndarray
    np.testing.assert_array_equal(back, np.arange(4))


def test_importing_the_codecs_loads_neither_numpy_nor_awkward() -> None:
    code = (
        "import sys\n"
        "from actors.codecs import decode, encode\n"
        "assert decode(*encode(('echo', 1, None, b'x'))) == ('echo', 1, None, b'x')\n"
        "print(sorted(m for m in ('numpy', 'awkward') if m in sys.modules))\n"
    )
    assert last_line(code) == "[]"
