"""Helpers for the two kinds of memory regions that travel: host and device.

A *buffer* is any object exposing the Python buffer protocol (host memory:
``bytes``, ``bytearray``, ``memoryview``, numpy arrays, ...) or
``__cuda_array_interface__`` (device memory: cupy arrays, numba device arrays,
...). Codecs produce them, transports move them; neither concatenates them.

Nothing here imports cupy: device helpers import it lazily and raise
:class:`~actors.errors.BackendUnavailable` naming the ``gpu`` extra.
"""

from __future__ import annotations

from typing import Any

from ._optional import optional_module

__all__ = [
    "as_host_view",
    "device_empty",
    "device_to_host",
    "host_to_device",
    "is_device",
    "nbytes",
]


def is_device(buf: Any) -> bool:
    """True if ``buf`` lives in GPU memory (has ``__cuda_array_interface__``)."""
    return hasattr(buf, "__cuda_array_interface__")


def nbytes(buf: Any) -> int:
    """Size of a host or device buffer in bytes."""
    if is_device(buf):
        n = getattr(buf, "nbytes", None)
        if n is not None:
            return int(n)
        iface: dict[str, Any] = buf.__cuda_array_interface__
        count = 1
        for dim in iface["shape"]:
            count *= int(dim)
        import numpy as np

        return count * int(np.dtype(iface["typestr"]).itemsize)
    return memoryview(buf).nbytes


def as_host_view(buf: Any) -> memoryview:
    """A flat, byte-typed ``memoryview`` over a host buffer, without copying.

    Raises ``ValueError`` if the buffer is not C-contiguous (codecs hand out
    contiguous buffers only) and ``TypeError`` for a device buffer.
    """
    if is_device(buf) and not _has_buffer_protocol(buf):
        raise TypeError("device buffer has no host view; use device_to_host()")
    view = memoryview(buf)
    if not view.c_contiguous:
        raise ValueError(
            f"a {type(buf).__name__} buffer that is not C-contiguous (strided or "
            f"Fortran-ordered) cannot be sent: pass numpy.ascontiguousarray(buf), or send "
            f"the object through actors.codecs, which does"
        )
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _has_buffer_protocol(obj: Any) -> bool:
    try:
        memoryview(obj)
    except TypeError:
        return False
    return True


def device_empty(size: int) -> Any:
    """Allocate ``size`` bytes of device memory (a cupy ``uint8`` array)."""
    return optional_module("cupy", "gpu").empty(size, dtype="uint8")


def device_to_host(buf: Any, out: Any = None) -> Any:
    """Copy a device buffer into host memory (one copy); returns a numpy array.

    With ``out`` (a writable host buffer of the right size) the copy lands there.
    """
    cp = optional_module("cupy", "gpu")
    arr = cp.asarray(buf).reshape(-1).view("uint8")
    if out is None:
        return cp.asnumpy(arr)
    import numpy as np

    host = np.frombuffer(out, dtype="uint8")
    arr.get(out=host)
    return host


def host_to_device(buf: Any) -> Any:
    """Copy a host buffer into newly allocated device memory (one copy)."""
    cp = optional_module("cupy", "gpu")
    import numpy as np

    return cp.asarray(np.frombuffer(as_host_view(buf), dtype="uint8"))
