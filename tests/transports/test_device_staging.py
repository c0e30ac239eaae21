"""Device buffers over tcp/shm: staged through host memory, one copy each way.

A stand-in device array (``__cuda_array_interface__`` over host memory) and
counting copy functions replace cupy, so the staging contract is checked on
machines without a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from actors.transports import connect, listen
from tests.fake_device import FakeDevice, staged
from tests.transports.schemes import LISTEN_URLS, params, require


class Copies:
    def __init__(self) -> None:
        self.to_host = 0
        self.to_device = 0

    def device_to_host(self, buf: FakeDevice, out: Any = None) -> np.ndarray:
        self.to_host += 1
        return staged(buf, out)

    def host_to_device(self, buf: Any) -> FakeDevice:
        self.to_device += 1
        return FakeDevice(bytes(buf))


@pytest.mark.parametrize("scheme", params(("tcp", "shm")))
async def test_device_buffers_staged_once_each_way(
    scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(scheme)
    copies = Copies()
    for module in ("actors.transports.stream._link", "actors.transports.stream.shm"):
        monkeypatch.setattr(f"{module}.device_to_host", copies.device_to_host)
    monkeypatch.setattr("actors.transports.stream._link.host_to_device", copies.host_to_device)
    small, big = np.arange(100, dtype=np.uint8), np.arange(1 << 20, dtype=np.uint32)
    async with await listen(LISTEN_URLS[scheme]()) as lst:
        client = await connect(lst.address)
        server = await lst.accept()
        async with client, server:
            await client.send(b"dev", [FakeDevice(small), b"host", FakeDevice(big)])
            header, bufs = await server.recv()
    assert header == b"dev"
    assert isinstance(bufs[0], FakeDevice) and isinstance(bufs[2], FakeDevice)
    assert not isinstance(bufs[1], FakeDevice) and bytes(bufs[1]) == b"host"
    assert np.array_equal(bufs[0].data, small)
    assert np.array_equal(bufs[2].data.view(np.uint32), big)
    assert (copies.to_host, copies.to_device) == (2, 2)
