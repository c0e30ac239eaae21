"""cupy arrays stay in device memory; host-staged buffers are copied to the device once."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace
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


def _numpy_as_cupy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stand numpy in for cupy in the codec; returns the modules it was asked for."""
    asked: list[str] = []

    def fake(name: str, extra: str) -> Any:
        asked.append(name)
        return SimpleNamespace(asarray=np.asarray, uint8=np.uint8)

    monkeypatch.setattr(_arrays, "optional_module", fake)
    return asked


@pytest.mark.parametrize(
    ("meta", "size", "message"),
    [
        (["|S0", [2**31]], 0, "hold only bool and numeric"),  # np.empty gave 2 GiB
        (["|V0", [2**40]], 0, "hold only bool and numeric"),
        ([[], [2**40]], 0, "hold only bool and numeric"),
        (["<M8[s]", [1]], 8, "hold only bool and numeric"),
        (["<f4", [3]], 8, r"shape \[3\] \(12 bytes\) from a buffer of 8 bytes"),
        (["<f4", [-1]], 8, "not a list of counts"),
        (["<f4", [True]], 4, "not a list of counts"),
        (["<f4"], 8, "cannot rebuild a cupy array from meta"),
    ],
)
def test_hostile_cupy_meta_is_refused_before_cupy_or_the_device(
    monkeypatch: pytest.MonkeyPatch, meta: Any, size: int, message: str
) -> None:
    asked = _numpy_as_cupy(monkeypatch)
    with pytest.raises(CodecError, match=message):
        decode_parts("cupy.ndarray", meta, [bytes(size)])
    assert asked == []


@pytest.mark.parametrize("shape", [[0], [2, 0, 3], [5], [2, 3]])
def test_host_staged_cupy_array_is_viewed_with_its_shape(
    monkeypatch: pytest.MonkeyPatch, shape: list[int]
) -> None:
    asked = _numpy_as_cupy(monkeypatch)
    sent = np.arange(int(np.prod(shape)), dtype="<i8").reshape(shape)
    out = decode_parts("cupy.ndarray", ["<i8", shape], [memoryview(sent.tobytes())])
    assert asked == ["cupy"]
    assert out.dtype == np.dtype("<i8") and np.array_equal(out, sent)


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
