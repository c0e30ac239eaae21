"""shm:// specifics: zero-copy views, segment reuse, flow control, cleanup."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator

import numpy as np
import pytest

from actors.errors import ConfigError, PeerLost, ProtocolError
from actors.transports import Link, connect, listen
from actors.transports.stream import shm as shm_module

BIG = 1 << 20  # above INLINE_MAX: travels in a segment


def _hep_segments_mapped() -> int:
    with open("/proc/self/maps") as maps:
        return sum("memfd:hep-actors" in line for line in maps)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Link, Link]]:
    async with await listen("shm://") as lst:
        client = await connect(lst.address)
        server = await lst.accept()
        async with client, server:
            yield server, client


async def test_large_buffer_is_a_zero_copy_view_of_a_segment(pair: tuple[Link, Link]) -> None:
    server, client = pair
    await client.send(b"h", [np.arange(BIG, dtype=np.uint8), b"small"])
    _, (big, small) = await server.recv()
    arr = np.frombuffer(big, np.uint8)
    assert arr.base is not None and not arr.flags.owndata
    assert np.array_equal(arr, np.arange(BIG, dtype=np.uint8))
    assert bytes(small) == b"small"
    arr[0] = 42  # received views are writable
    assert client.capabilities == server.capabilities
    assert not client.capabilities.crosses_nodes


async def test_segments_are_reused_after_views_are_dropped(pair: tuple[Link, Link]) -> None:
    server, client = pair
    pool = client._pool  # type: ignore[attr-defined]
    for i in range(20):
        await client.send(b"h", [np.full(BIG, i, np.uint8)])
        _, bufs = await server.recv()
        assert np.frombuffer(bufs[0], np.uint8)[-1] == i
        del bufs
        gc.collect()
        for _ in range(50):  # the ACK crosses the link
            if pool.busy_bytes == 0:
                break
            await asyncio.sleep(0.01)
    assert pool._next_id <= 3, "a new segment was created for every message"


async def test_held_views_stay_valid_and_bound_memory(
    pair: tuple[Link, Link], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = pair
    monkeypatch.setattr(shm_module, "MAX_BUSY_BYTES", 3 * BIG)
    held = []
    for i in range(3):
        await client.send(b"h", [np.full(BIG, i, np.uint8)])
        held.append((await server.recv())[1][0])
    blocked = asyncio.ensure_future(client.send(b"h", [np.full(BIG, 3, np.uint8)]))
    await asyncio.sleep(0.1)
    assert not blocked.done(), "send did not wait for the receiver to free a segment"
    assert [np.frombuffer(v, np.uint8)[0] for v in held] == [0, 1, 2]
    del held[0]
    gc.collect()
    await asyncio.wait_for(blocked, 5)
    _, bufs = await server.recv()
    assert np.frombuffer(bufs[0], np.uint8)[0] == 3
    assert [np.frombuffer(v, np.uint8)[0] for v in held] == [1, 2]


async def test_views_survive_close_and_nothing_is_left() -> None:
    before = _hep_segments_mapped()
    async with await listen("shm://") as lst:
        client = await connect(lst.address)
        server = await lst.accept()
        await client.send(b"h", [np.full(BIG, 7, np.uint8)])
        _, bufs = await server.recv()
        await client.close()
        await server.close()
    assert np.frombuffer(bufs[0], np.uint8).sum() == 7 * BIG
    del bufs
    gc.collect()
    assert _hep_segments_mapped() == before
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("hep-actors-")]


async def test_name_in_use_is_a_config_error() -> None:
    async with await listen("shm://") as lst:
        with pytest.raises(ConfigError, match=lst.address):
            await listen(lst.address)


async def test_idle_segments_beyond_the_limit_are_dropped_on_both_sides(
    pair: tuple[Link, Link], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = pair
    monkeypatch.setattr(shm_module, "MAX_IDLE_BYTES", 0)
    maps = server._maps._maps  # type: ignore[attr-defined]
    for i in range(5):
        await client.send(b"h", [np.full(BIG + i, i, np.uint8)])
        _, bufs = await server.recv()
        assert np.frombuffer(bufs[0], np.uint8)[-1] == i
        del bufs
        gc.collect()
        for _ in range(100):  # ACK one way, DROP the other
            if not maps:
                break
            await asyncio.sleep(0.01)
        assert not maps, "the receiver still maps a segment the sender dropped"
    assert client._pool.busy_bytes == 0  # type: ignore[attr-defined]


async def test_failed_send_gives_its_segments_back(pair: tuple[Link, Link]) -> None:
    server, client = pair
    bad = np.zeros((512, 512), np.uint8)[:, ::2]  # not contiguous: refused after a good one
    with pytest.raises(ValueError, match="contiguous"):
        await client.send(b"h", [np.ones(BIG, np.uint8), bad])
    assert client._pool.busy_bytes == 0  # type: ignore[attr-defined]
    await client.send(b"h", [np.full(BIG, 5, np.uint8)])  # the segment is announced again
    _, bufs = await server.recv()
    assert np.frombuffer(bufs[0], np.uint8)[0] == 5


async def test_a_peer_beyond_the_segment_limit_aborts_that_link_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTORS_SHM_MAX_SEGMENTS", "2")
    before = _hep_segments_mapped()
    async with await listen("shm://") as lst:
        client = await connect(lst.address)
        server = await lst.accept()
        async with client, server:
            held = []  # each view keeps its segment busy: the third send needs a new one
            for i in range(2):
                await client.send(b"h", [np.full(BIG, i, np.uint8)])
                held.append((await server.recv())[1][0])
            await client.send(b"h", [np.full(BIG, 2, np.uint8)])
            with pytest.raises(ProtocolError) as refused:
                await server.recv()
            message = str(refused.value)
            assert lst.address in message
            assert "announced segment 3 beyond the limit of 2 mapped segments" in message
            assert "ACTORS_SHM_MAX_SEGMENTS" in message
            with pytest.raises(PeerLost):
                await asyncio.wait_for(client.recv(), 5)
            assert [np.frombuffer(v, np.uint8)[0] for v in held] == [0, 1]
            async with await connect(lst.address) as other, await lst.accept() as peer:
                await other.send(b"still", [np.ones(BIG, np.uint8)])
                header, bufs = await peer.recv()
                assert header == b"still" and np.frombuffer(bufs[0], np.uint8).all()
                del bufs
    del held
    gc.collect()
    assert _hep_segments_mapped() == before


async def test_a_bad_limit_is_a_config_error_at_listen_and_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTORS_SHM_MAX_SEGMENTS", "0")
    with pytest.raises(ConfigError, match="ACTORS_SHM_MAX_SEGMENTS='0'"):
        await listen("shm://")
    monkeypatch.setenv("ACTORS_SHM_MAX_SEGMENTS", "10")
    monkeypatch.setenv("ACTORS_SHM_MAX_MAPPED_BYTES", "lots")
    with pytest.raises(ConfigError, match="ACTORS_SHM_MAX_MAPPED_BYTES='lots'"):
        await connect("shm://nobody-listens-here")
