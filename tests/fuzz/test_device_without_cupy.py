"""Regression: a peer flagging device (GPU) buffers to a process without cupy.

The stream links (tcp://, shm://) used to raise BackendUnavailable from
``recv`` for every such message: an error meant for local misuse (asking for
a device array without cupy), reported for something a peer sent. The
transports now agree with the ``Link`` contract (and with mpi:// and ucx://,
which did so already): device-flagged buffers are delivered in host memory
when cupy is missing (logged once per link, naming the peer), and what really
needs cupy - decoding a cupy array - raises CodecError saying this process
cannot accept device arrays. A served actor answers such an ask with that
CodecError and keeps serving; the link and the process's other links go on.
cupy is made unavailable here by monkeypatching, so these run everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import numpy as np
import pytest

from actors import Actor, ActorSystem
from actors.codecs import decode
from actors.core import _wire
from actors.errors import CodecError
from actors.transports import connect, listen
from actors.transports.stream._framing import FLAG_DEVICE, KIND_DATA, Entry, encode_preamble
from tests.fake_device import FakeDevice, hide_cupy, staged
from tests.fuzz._support import BOUND_S, linked_pair, sentinel_round_trip, stream_pair

_EXT_OBJECT = 1
#: the codec header of a cupy float32 array of 2 elements (one 8-byte buffer)
CUPY_BODY = msgpack.packb(
    msgpack.ExtType(_EXT_OBJECT, msgpack.packb(["cupy.ndarray", ["<f4", [2]], 0, 1]))
)


@pytest.fixture(autouse=True)
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process has no cupy (whether or not it is installed)."""
    hide_cupy(monkeypatch)


# -- the link: host memory, no BackendUnavailable --------------------------------------


async def test_stream_link_delivers_device_flagged_buffers_in_host_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sentinel = await linked_pair()
    link, peer = stream_pair()
    payload = np.arange(2, dtype="<f4").tobytes()
    frame = encode_preamble(KIND_DATA, CUPY_BODY, [Entry(8, FLAG_DEVICE)]) + payload
    plain = encode_preamble(KIND_DATA, b"plain", [Entry(3, 0)]) + b"abc"
    try:
        with caplog.at_level(logging.WARNING, logger="actors.transports"):
            peer.sendall(frame + frame + plain)
            async with asyncio.timeout(BOUND_S):
                got = [await link.recv() for _ in range(3)]
        for header, bufs in got[:2]:
            assert header == CUPY_BODY and bytes(bufs[0]) == payload
            with pytest.raises(CodecError, match="cannot accept device arrays"):
                decode(header, bufs)
        assert got[2][0] == b"plain" and bytes(got[2][1][0]) == b"abc"
        warnings = [r.getMessage() for r in caplog.records if "device" in r.getMessage()]
        assert len(warnings) == 1 and "fuzz-peer" in warnings[0], warnings
        assert not link.closed
        await sentinel_round_trip(sentinel)
    finally:
        peer.close()
        await link.close()
        for other in sentinel:
            await other.close()


# -- a served actor: answers CodecError, keeps serving ---------------------------------


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


@pytest.fixture
async def server() -> AsyncIterator[tuple[ActorSystem, str]]:
    async with ActorSystem("gpu-less") as system:
        system.spawn(Echo, name="echo")
        yield system, await system.serve("tcp://127.0.0.1:0")


async def _ask(link: Any, corr: int, body: bytes, buffers: list[Any]) -> tuple[int, bytes]:
    await link.send(_wire.pack_header(_wire.ASK, "echo", corr, body), buffers)
    async with asyncio.timeout(BOUND_S):
        header, _ = await link.recv()
    kind, _, got_corr, reply = _wire.unpack_header(header, "test")
    assert got_corr == corr
    return kind, reply


async def test_served_actor_answers_a_device_payload_with_codec_error(
    server: tuple[ActorSystem, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, address = server
    monkeypatch.setattr("actors.transports.stream._link.device_to_host", staged)
    device_buffer = FakeDevice(np.arange(2, dtype="<f4").tobytes())
    async with await connect(address) as raw:  # sends FakeDevice flagged as device
        with caplog.at_level(logging.ERROR, logger="actors"):
            kind, reply = await _ask(raw, 1, CUPY_BODY, [device_buffer])
        assert kind == _wire.ERROR
        error = _wire.exception_from_wire(reply, "actor 'echo'")
        assert isinstance(error, CodecError), error
        assert "cannot accept device arrays" in str(error) and "cupy" in str(error)
        assert any("undecodable" in r.getMessage() for r in caplog.records)
        # the same link goes on: a plain ask is answered
        body = msgpack.packb("still here")
        assert await _ask(raw, 2, body, []) == (_wire.REPLY, body)
    # and another link of the process too
    async with ActorSystem("client") as client:
        echo = await client.remote(address, "echo")
        assert await echo.ask("hello", timeout=BOUND_S) == "hello"


# -- mpi:// with a CUDA-aware MPI but no cupy -----------------------------------------


def test_mpi_link_receives_device_flagged_buffers_into_host_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CUDA-aware MPI (or ACTORS_MPI_CUDA_AWARE=1) without cupy: the link used
    to call device_empty for a device-flagged buffer and raise BackendUnavailable
    from recv after the header was taken, leaving the body unmatched."""
    from actors.transports.mpi._devices import LinkDevices
    from actors.transports.mpi._frame import DEVICE

    devices = LinkDevices("rank 1", cuda_aware=True)  # the allocation path only: no MPI
    with caplog.at_level(logging.WARNING, logger="actors.transports.mpi"):
        bufs = [devices.allocate(16, DEVICE), devices.allocate(8, DEVICE)]
        out = devices.deliver(bufs, bytes([DEVICE, DEVICE]))
    assert [memoryview(b).nbytes for b in out] == [16, 8]
    assert not any(hasattr(b, "__cuda_array_interface__") for b in out)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "rank 1" in warnings[0], warnings


# -- ucx:// without cupy ---------------------------------------------------------------


@pytest.mark.ucx
async def test_ucx_link_receives_device_flagged_frames_into_host_memory(
    caplog: pytest.LogCaptureFixture, ucx_ready: None
) -> None:
    """ucx:// delivered them in host memory already, but logged every such
    buffer, without naming the peer: now once per link, naming it."""
    from actors.transports.ucx import _wire as wire
    from actors.transports.ucx._link import _array

    payload = np.arange(2, dtype="<f4").tobytes()
    prefix = wire.pack_prefix(CUPY_BODY, [len(payload)], [True], [None])[0]
    async with await listen("ucx://:0") as lst:
        accepted = asyncio.ensure_future(lst.accept())
        client = await connect(lst.address, timeout=10)
        server = await asyncio.wait_for(accepted, 10)
        async with server, client:
            with caplog.at_level(logging.WARNING, logger="actors.transports"):
                for frame in [prefix, payload] * 3:  # what a peer with cupy sends
                    arr = _array(frame)
                    req = client._ep.tag_send(arr, client._send_tag)  # type: ignore[attr-defined]
                    client._eng.track(req, None, arr)  # type: ignore[attr-defined]
                async with asyncio.timeout(BOUND_S):
                    got = [await server.recv() for _ in range(3)]
            for header, bufs in got:
                assert header == CUPY_BODY and bytes(bufs[0]) == payload
                assert not hasattr(bufs[0], "__cuda_array_interface__")
                with pytest.raises(CodecError, match="cannot accept device arrays"):
                    decode(header, bufs)
            warnings = [r.getMessage() for r in caplog.records if "device" in r.getMessage()]
            assert len(warnings) == 1 and server.peer in warnings[0], warnings
            await client.send(b"plain", [b"abc"])  # the link goes on
            header, bufs = await server.recv()
            assert (header, bytes(bufs[0])) == (b"plain", b"abc")
