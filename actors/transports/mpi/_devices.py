"""How device (GPU) buffers cross one ``mpi://`` link.

A CUDA-aware MPI library sends and receives device memory directly; otherwise
a device buffer is staged through host memory once on each side (one copy
out, one copy in). A receiver without cupy keeps the peer's device buffers in
host memory and says so once (decoding a cupy array from them then raises
CodecError). Host buffers are received into memory from
:mod:`actors.transports.mpi._pool`. Loop rules: the link's loop only.
"""

from __future__ import annotations

import logging
from typing import Any

from ...buffers import device_empty, device_to_host, host_to_device
from ...errors import BackendUnavailable
from .._base import warn_no_device
from ._frame import DEVICE
from ._pool import pool

__all__ = ["CUDA_INTERFACE", "LinkDevices"]

log = logging.getLogger("actors.transports.mpi")

#: the attribute that marks a device buffer
CUDA_INTERFACE = "__cuda_array_interface__"


class LinkDevices:
    """Device-buffer handling of the link to ``peer``; ``cuda_aware``: the MPI
    library moves device memory itself."""

    def __init__(self, peer: str, cuda_aware: bool) -> None:
        self._peer = peer
        self._cuda_aware = cuda_aware
        self._device_ok = True  # until a device allocation finds no cupy here

    def outgoing(self, buf: Any) -> Any:
        """What to send for device buffer ``buf``: itself as bytes (CUDA-aware
        MPI) or a host copy."""
        if not self._cuda_aware:
            return memoryview(device_to_host(buf)).cast("B")  # the one staging copy
        import cupy

        cupy.cuda.get_current_stream().synchronize()
        return cupy.asarray(buf).reshape(-1).view(cupy.uint8)

    def allocate(self, size: int, flag: int) -> Any:
        """A receive buffer of ``size`` bytes for a buffer flagged ``flag``."""
        if flag & DEVICE and self._cuda_aware and self._device_ok:
            try:
                return device_empty(size)
            except BackendUnavailable as exc:  # a peer's flag, not our misuse: host memory
                self._no_device(exc)
        return pool().take(size)

    def deliver(self, out: list[Any], flags: bytes) -> list[Any]:
        """The received buffers ``out``, those flagged DEVICE in device memory
        (staged: the one copy on this side) when this process can."""
        result = []
        for buf, flag in zip(out, flags, strict=True):
            if flag & DEVICE and self._device_ok and not hasattr(buf, CUDA_INTERFACE):
                try:
                    buf = host_to_device(buf)
                except BackendUnavailable as exc:
                    self._no_device(exc)
            result.append(buf)
        return result

    def _no_device(self, exc: BackendUnavailable) -> None:
        """The peer sent device buffers but this process has no cupy: they stay
        in host memory (decoding a cupy array from them raises CodecError)."""
        self._device_ok = False
        warn_no_device(log, self._peer, exc)
