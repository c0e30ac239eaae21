"""Device (GPU) memory stand-ins for tests that run without cupy.

:class:`FakeDevice` looks like a device array to :func:`actors.buffers.is_device`
(it has ``__cuda_array_interface__``) while its memory is host memory;
:func:`staged` is the device-to-host staging copy a transport makes of it
(cupy's, without cupy); :func:`hide_cupy` makes this process behave as one
without cupy, whether or not cupy is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from actors.errors import BackendUnavailable

__all__ = ["FakeDevice", "hide_cupy", "staged"]


class FakeDevice:
    """A stand-in device array over host memory: ``array`` keeps the dtype and
    shape it was made from (bytes make a ``uint8`` array), ``data`` is its bytes."""

    def __init__(self, array: np.ndarray | bytes) -> None:
        if isinstance(array, bytes):
            array = np.frombuffer(array, np.uint8).copy()
        self.array = np.ascontiguousarray(array)
        self.data = self.array.view(np.uint8).reshape(-1)
        self.nbytes = self.data.nbytes

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {
            "shape": (self.nbytes,),
            "typestr": "|u1",
            "data": (self.data.ctypes.data, False),
            "version": 3,
        }


def staged(buf: FakeDevice, out: Any = None) -> np.ndarray:
    """The sender's device-to-host staging copy of ``buf`` (into ``out`` when given)."""
    if out is None:
        return buf.data.copy()
    host = np.frombuffer(out, np.uint8)
    host[:] = buf.data
    return host


def hide_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make cupy unavailable to the buffers and the array codecs for this test."""

    def missing(name: str, extra: str) -> Any:
        raise BackendUnavailable(name, extra, f"No module named {name!r}")

    monkeypatch.setattr("actors.buffers.optional_module", missing)
    monkeypatch.setattr("actors.codecs._arrays.optional_module", missing)
