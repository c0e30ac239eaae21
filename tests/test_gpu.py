"""GPU memory end to end (marker ``gpu``): cupy arrays over every transport.

Each test encodes with :mod:`actors.codecs`, moves the message over a real
link and decodes it on the other side, and checks that the result is a cupy
array in device memory with the same content. ``ucx://`` moves device memory
directly (``device_memory`` capability); tcp/shm stage through host memory
with one copy each side. ``mpi://`` needs ranks started by mpiexec and is not
run from here. Skips, with the reason, without cupy or without a GPU.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.codecs import decode, encode
from actors.errors import BackendUnavailable
from actors.transports import Link, connect, get_backend, listen

pytestmark = pytest.mark.gpu

SCHEMES = {
    "inproc": lambda: f"inproc://gpu-{uuid.uuid4().hex[:12]}",
    "tcp": lambda: "tcp://127.0.0.1:0",
    "shm": lambda: f"shm://gpu-{uuid.uuid4().hex[:12]}",
    "ucx": lambda: "ucx://127.0.0.1:0",
}
MARKS = {"ucx": [pytest.mark.ucx]}


def _params(schemes: tuple[str, ...]) -> list[Any]:
    return [pytest.param(s, id=s, marks=MARKS.get(s, [])) for s in schemes]


@pytest.fixture(scope="module")
def cp() -> Any:
    cupy = pytest.importorskip("cupy", reason="cupy is not installed (extra [gpu])")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device
        pytest.skip(f"no usable CUDA device: {exc!r}")
    if count < 1:
        pytest.skip("no CUDA device visible")
    return cupy


async def _link_pair(url: str) -> tuple[Any, Link, Link]:
    lst = await listen(url)
    accepted = asyncio.ensure_future(lst.accept())
    client = await connect(lst.address, timeout=30)
    return lst, await asyncio.wait_for(accepted, 30), client


@pytest.fixture
async def links(request: pytest.FixtureRequest, cp: Any) -> AsyncIterator[tuple[Link, Link]]:
    scheme = request.param
    try:
        get_backend(scheme)
    except (BackendUnavailable, ImportError) as exc:
        pytest.skip(f"{scheme}:// backend unavailable: {exc}")
    lst, server, client = await _link_pair(SCHEMES[scheme]())
    try:
        yield server, client
    finally:
        await client.close()
        await server.close()
        await lst.close()


async def _transfer(server: Link, client: Link, obj: Any) -> Any:
    header, buffers = encode(obj)
    sending = asyncio.ensure_future(client.send(header, buffers))
    got_header, got_buffers = await server.recv()
    await sending
    return decode(got_header, got_buffers)


@pytest.mark.parametrize("links", _params(tuple(SCHEMES)), indirect=True)
async def test_cupy_arrays_round_trip_in_device_memory(links: tuple[Link, Link], cp: Any) -> None:
    server, client = links
    event = {
        "pt": cp.arange(100_000, dtype=cp.float32),
        "ids": cp.arange(12, dtype=cp.int64).reshape(3, 4),
        "empty": cp.empty(0, dtype=cp.float64),
        "run": 7,
    }
    got = await _transfer(server, client, event)
    assert got["run"] == 7
    for key in ("pt", "ids", "empty"):
        assert isinstance(got[key], cp.ndarray), f"{key} arrived as {type(got[key])}"
        assert got[key].dtype == event[key].dtype and got[key].shape == event[key].shape
        assert bool(cp.array_equal(got[key], event[key]))
    # and back, the other way
    back = await _transfer(client, server, {"pt": got["pt"] * 2})
    assert bool(cp.array_equal(back["pt"], event["pt"] * 2))


@pytest.mark.slow
@pytest.mark.parametrize("links", _params(("ucx", "tcp")), indirect=True)
async def test_one_gib_device_buffer(links: tuple[Link, Link], cp: Any) -> None:
    server, client = links
    data = cp.arange(1 << 28, dtype=cp.uint32)  # 1 GiB
    got = await _transfer(server, client, data)
    assert isinstance(got, cp.ndarray) and got.nbytes == 1 << 30
    assert bool(cp.array_equal(got, data))


@pytest.mark.ucx
async def test_ucx_receives_device_frames_as_device_arrays(cp: Any) -> None:
    """Below the codecs: a raw device buffer arrives as a cupy array (no staging)."""
    try:
        get_backend("ucx")
    except (BackendUnavailable, ImportError) as exc:
        pytest.skip(f"ucx:// backend unavailable: {exc}")
    lst, server, client = await _link_pair(SCHEMES["ucx"]())
    try:
        assert server.capabilities.device_memory
        payload = cp.arange(1 << 20, dtype=cp.uint8)
        await client.send(b"dev", [payload, b"host"])
        header, (dev, host) = await server.recv()
        assert header == b"dev" and bytes(host) == b"host"
        assert hasattr(dev, "__cuda_array_interface__")
        assert bool(cp.array_equal(cp.asarray(dev), payload))
    finally:
        await client.close()
        await server.close()
        await lst.close()
