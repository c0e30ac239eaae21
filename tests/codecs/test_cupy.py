"""cupy arrays stay in device memory; host-staged buffers are copied to the device once."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from actors import BackendUnavailable, CodecError
from actors.codecs import _arrays, codec_name_of, decode, decode_parts, encode


def test_host_staged_cupy_array_without_cupy_names_the_gpu_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str, extra: str) -> None:
        raise BackendUnavailable(name, extra, "not installed")

    monkeypatch.setattr(_arrays, "optional_module", missing)
    with pytest.raises(CodecError, match=r"hep-actors\[gpu\]"):
        decode_parts("cupy.ndarray", ["<f4", [2]], [bytes(8)])


def _cupy_or_skip() -> Any:
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("cupy not installed (extra [gpu])")
    import cupy

    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy present but no driver/GPU
        pytest.skip(f"no usable GPU: {exc}")
    return cupy


@pytest.mark.gpu
def test_cupy_roundtrip_stays_on_device() -> None:
    cp = _cupy_or_skip()
    arr = cp.arange(1000, dtype="f4").reshape(10, 100)
    assert codec_name_of(arr) == "cupy.ndarray"
    header, buffers = encode(arr)
    assert hasattr(buffers[0], "__cuda_array_interface__")
    assert buffers[0].data.ptr == arr.data.ptr
    out = decode(header, buffers)
    assert isinstance(out, cp.ndarray) and out.data.ptr == arr.data.ptr
    assert out.shape == arr.shape and bool((out == arr).all())


@pytest.mark.gpu
def test_cupy_non_contiguous_and_nested() -> None:
    cp = _cupy_or_skip()
    arr = cp.arange(100, dtype="f8").reshape(10, 10)[:, ::3]
    header, buffers = encode({"gpu": arr, "cpu": np.ones(3)})
    out = decode(header, buffers)
    assert isinstance(out["gpu"], cp.ndarray) and bool((out["gpu"] == arr).all())
    assert isinstance(out["cpu"], np.ndarray)


@pytest.mark.gpu
def test_cupy_received_through_host_memory_is_copied_to_device() -> None:
    cp = _cupy_or_skip()
    arr = cp.arange(64, dtype="i8")
    header, buffers = encode(arr)
    staged = memoryview(cp.asnumpy(buffers[0]))
    out = decode(header, [staged])
    assert isinstance(out, cp.ndarray) and bool((out == arr).all())


@pytest.mark.gpu
def test_numpy_array_received_in_device_memory_comes_back_to_host() -> None:
    cp = _cupy_or_skip()
    arr = np.arange(10.0)
    header, buffers = encode(arr)
    out = decode(header, [cp.asarray(np.asarray(buffers[0]))])
    assert isinstance(out, np.ndarray) and np.array_equal(out, arr)
