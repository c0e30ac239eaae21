"""The transport conformance suite: one fixture parametrised over every scheme.

The two-sided checks live in :mod:`tests.transports.conformance` (shared with
the mpiexec runner); this module runs them in one process and adds the checks
that need a listener, several links, another process or raw bytes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.errors import AuthenticationError, PeerLost, ProtocolError
from actors.transports import Link, Listener, connect, listen, split_url
from actors.transports import testing as conformance
from actors.transports._handshake import client_handshake
from actors.transports._spin import loop_spinner
from actors.transports.stream._framing import ENTRY, MAGIC, PREFIX, VERSION
from tests.transports.schemes import CROSS_PROCESS, LISTEN_URLS, MARKS, params, require

PEER_SCRIPT = Path(__file__).with_name("peer.py")
MAX = conformance.MAX_MESSAGE_SIZE


def peer_script_url(listener: Listener) -> str:
    """The URL a peer process uses to reach ``listener`` (scheme-aware hook)."""
    return listener.address


def _raw_tcp(rest: str) -> socket.socket:
    from actors.transports.stream.tcp import parse_host_port

    return socket.create_connection(parse_host_port(rest), timeout=10)


def _raw_shm(rest: str) -> socket.socket:
    from actors.transports.stream.shm import _socket_name

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(_socket_name(rest))
    return sock


#: scheme -> open a plain (blocking, 10 s timeout) socket to a listener's address.
#: Schemes without a byte stream one can write garbage to (inproc) are absent.
RAW_CONNECT: dict[str, Callable[[str], socket.socket]] = {"tcp": _raw_tcp, "shm": _raw_shm}


def raw_connect(address: str) -> socket.socket:
    scheme, rest = split_url(address)
    return RAW_CONNECT[scheme](rest)


# -- fixtures -------------------------------------------------------------------------


def _resources() -> tuple[set[str], int]:
    """Open socket/memfd descriptors of this process, and hep-actors memfd mappings."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:") or "hep-actors" in target:
            fds.add(f"{fd}->{target}")
    with open("/proc/self/maps") as maps:
        mapped = sum("memfd:hep-actors" in line for line in maps)
    return fds, mapped


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Each test closes every socket, descriptor and segment mapping it made."""
    fds_before, maps_before = _resources()
    yield
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0.01)
    fds_after, maps_after = _resources()
    assert fds_after <= fds_before, f"descriptors left open: {sorted(fds_after - fds_before)}"
    assert maps_after <= maps_before, "shared-memory segments still mapped"


@pytest.fixture(params=params())
def scheme(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return str(request.param)


@pytest.fixture
async def listener(scheme: str) -> AsyncIterator[Listener]:
    async with await listen(LISTEN_URLS[scheme](), max_message_size=MAX) as lst:
        yield lst


async def _pair(listener: Listener, **kw: object) -> tuple[Link, Link]:
    client = await connect(listener.address, max_message_size=MAX, **kw)  # type: ignore[arg-type]
    server = await asyncio.wait_for(listener.accept(), 10)
    return server, client


# -- the shared two-sided checks ------------------------------------------------------


@pytest.mark.parametrize("check", conformance.CHECKS, ids=[c[0] for c in conformance.CHECKS])
async def test_two_sided(listener: Listener, check: conformance.Check) -> None:
    server, client = await _pair(listener)
    await conformance.run_check(check, server, client)


# -- listener-level checks ------------------------------------------------------------


async def test_sixteen_concurrent_links(listener: Listener) -> None:
    async def client(i: int) -> None:
        async with await connect(listener.address) as link:
            for k in range(50):
                await link.send(b"%d:%d" % (i, k), [np.full(1000 * (i + 1), i, np.uint8)])
            header, _ = await link.recv()
            assert header == b"done %d" % i

    async def server() -> None:
        async with asyncio.TaskGroup() as tg:
            for _ in range(16):
                tg.create_task(serve_one(await listener.accept()))

    async def serve_one(link: Link) -> None:
        async with link:
            first = None
            for k in range(50):
                header, bufs = await link.recv()
                i, seq = (int(x) for x in header.split(b":"))
                first = i if first is None else first
                assert (i, seq) == (first, k), "messages of two links mixed or reordered"
                assert bytes(bufs[0]) == bytes([i]) * 1000 * (i + 1)
            await link.send(b"done %d" % first)

    async with asyncio.timeout(60), asyncio.TaskGroup() as tg:
        tg.create_task(server())
        for i in range(16):
            tg.create_task(client(i))


async def test_wrong_secret_refused(scheme: str) -> None:
    async with await listen(LISTEN_URLS[scheme](), secret=b"right") as lst:
        with pytest.raises(AuthenticationError):
            await connect(lst.address, secret=b"wrong", timeout=5)
        with pytest.raises(AuthenticationError):
            await connect(lst.address, timeout=5)
        server, client = await _pair(lst, secret="right")
        async with server, client:
            await client.send(b"authenticated")
            assert (await server.recv())[0] == b"authenticated"


async def test_oversized_message_refused(scheme: str) -> None:
    async with await listen(LISTEN_URLS[scheme](), max_message_size=1 << 20) as lst:
        client = await connect(lst.address)
        server = await lst.accept()
        async with server, client:
            try:
                await client.send(b"big", [np.zeros(2 << 20, np.uint8)])
            except ProtocolError:
                return  # refused on the sending side (the limit is shared, e.g. inproc)
            with pytest.raises(ProtocolError, match="max_message_size"):
                await asyncio.wait_for(server.recv(), 5)
            assert server.closed
            with pytest.raises(PeerLost):
                await asyncio.wait_for(client.recv(), 5)


async def test_connect_to_nobody_raises_peer_lost(scheme: str) -> None:
    async with await listen(LISTEN_URLS[scheme]()) as lst:
        address = lst.address
    with pytest.raises(PeerLost, match=re.escape(address)):
        await connect(address, timeout=0.3)


async def test_closed_listener_stops_accept(listener: Listener) -> None:
    pending = asyncio.ensure_future(listener.accept())
    await asyncio.sleep(0.01)
    await listener.close()
    with pytest.raises(PeerLost):
        await asyncio.wait_for(pending, 5)
    assert [link async for link in listener] == []


# -- a peer process killed with SIGKILL -----------------------------------------------


def _spawn_peer(listener: Listener, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(PEER_SCRIPT), peer_script_url(listener), mode])


@pytest.mark.parametrize("mode", ["idle", "flood"])
@pytest.mark.parametrize("kill_scheme", params(CROSS_PROCESS))
async def test_killed_peer_raises_peer_lost(kill_scheme: str, mode: str) -> None:
    require(kill_scheme)
    async with await listen(LISTEN_URLS[kill_scheme]()) as lst:
        proc = _spawn_peer(lst, mode)
        try:
            link = await asyncio.wait_for(lst.accept(), 30)
            async with link:
                assert (await link.recv())[0] == b"hello"
                if mode == "flood":
                    for _ in range(20):
                        await link.recv()  # mid-stream
                pending = asyncio.ensure_future(_drain(link))
                await asyncio.sleep(0.05)
                proc.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                async with asyncio.timeout(2):
                    with pytest.raises(PeerLost):
                        await pending
                    with pytest.raises(PeerLost):
                        await link.send(b"after", [np.zeros(4 << 20, np.uint8)])
                assert time.monotonic() - killed < 2
        finally:
            proc.kill()
            proc.wait(10)


async def _drain(link: Link) -> None:
    while True:
        await link.recv()


@pytest.mark.parametrize("kill_scheme", params(CROSS_PROCESS))
async def test_killed_peer_next_send_raises(kill_scheme: str) -> None:
    """No recv pending: the next (large) send still raises PeerLost within 2 s."""
    require(kill_scheme)
    async with await listen(LISTEN_URLS[kill_scheme]()) as lst:
        proc = _spawn_peer(lst, "idle")
        try:
            link = await asyncio.wait_for(lst.accept(), 30)
            async with link:
                assert (await link.recv())[0] == b"hello"
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                async with asyncio.timeout(2):
                    with pytest.raises(PeerLost):
                        for _ in range(8):  # the OS may buffer the first one
                            await link.send(b"x", [np.zeros(16 << 20, np.uint8)])
        finally:
            proc.kill()
            proc.wait(10)


# -- raw bytes at a listener ----------------------------------------------------------


@pytest.fixture(params=params(tuple(RAW_CONNECT)))
async def raw_listener(request: pytest.FixtureRequest) -> AsyncIterator[Listener]:
    require(request.param)
    async with await listen(LISTEN_URLS[request.param](), max_message_size=1 << 20) as lst:
        yield lst


def _read_to_eof(sock: socket.socket) -> bytes:
    """Everything the listener sends until it hangs up (a reset counts as hanging up)."""
    data = b""
    with sock:
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    return data


async def _assert_good_client(listener: Listener) -> None:
    server, client = await _pair(listener)
    async with server, client:
        await client.send(b"still serving", [b"ok"])
        header, bufs = await server.recv()
        assert (header, bytes(bufs[0])) == (b"still serving", b"ok")


async def test_garbage_connection_refused(
    raw_listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    sock = raw_connect(raw_listener.address)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(200))
    await asyncio.to_thread(_read_to_eof, sock)  # the listener hangs up
    assert any("ProtocolError" in r.getMessage() for r in caplog.records)
    await _assert_good_client(raw_listener)


async def test_silent_connection_dropped(
    raw_listener: Listener, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("actors.transports.stream._listen.HANDSHAKE_TIMEOUT", 0.2)
    caplog.set_level(logging.WARNING, "actors.transports")
    sock = raw_connect(raw_listener.address)
    await asyncio.to_thread(_read_to_eof, sock)
    assert any("handshake not finished" in r.getMessage() for r in caplog.records)
    await _assert_good_client(raw_listener)


async def _handshaken_raw(listener: Listener) -> socket.socket:
    sock = raw_connect(listener.address)
    sock.setblocking(False)
    await client_handshake(sock, None, listener.address)
    return sock


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"XXXX" * 8, id="bad-magic"),
        pytest.param(PREFIX.pack(MAGIC, VERSION + 7, 0, 0, 0), id="bad-version"),
        pytest.param(PREFIX.pack(MAGIC, VERSION, 0, 1, 0) + ENTRY.pack(1 << 40, 0, 0), id="huge"),
        pytest.param(PREFIX.pack(MAGIC, VERSION, 0, 0, 1 << 30), id="huge-header"),
        pytest.param(PREFIX.pack(MAGIC, VERSION, 0, 1, 0) + ENTRY.pack(8, 1 << 9, 0), id="flags"),
    ],
)
async def test_malformed_frame_closes_only_that_link(raw_listener: Listener, frame: bytes) -> None:
    other_server, other_client = await _pair(raw_listener)
    sock = await _handshaken_raw(raw_listener)
    link = await asyncio.wait_for(raw_listener.accept(), 10)
    async with link, other_server, other_client:
        await asyncio.get_running_loop().sock_sendall(sock, frame)
        with pytest.raises(ProtocolError):
            await asyncio.wait_for(link.recv(), 5)
        assert link.closed
        with pytest.raises(PeerLost):
            await link.recv()
        sock.setblocking(True)
        assert await asyncio.to_thread(_read_to_eof, sock) == b""
        await other_client.send(b"unharmed")
        assert (await other_server.recv())[0] == b"unharmed"
    await _assert_good_client(raw_listener)


_SPIN_CASES = [
    pytest.param(setting, scheme, id=f"{scheme}-{setting}", marks=MARKS.get(scheme, []))
    for setting, schemes in (
        ("ACTORS_STREAM_SPIN_US", ("tcp", "shm")),
        ("ACTORS_LOOP_SPIN_US", ("tcp", "shm", "ucx")),  # mpi://: tests/transports/mpi_checks
    )
    for scheme in schemes
]


@pytest.mark.parametrize(("setting", "spin_scheme"), _SPIN_CASES)
async def test_spinning_keeps_the_contract(
    spin_scheme: str, setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ACTORS_STREAM_SPIN_US set, recv polls first; with ACTORS_LOOP_SPIN_US, traffic
    (sent or received, on every transport) keeps the loop awake until the link is quiet:
    same messages, same PeerLost."""
    require(spin_scheme)
    # a loop spin long enough that a busy machine's scheduling cannot end it
    # between the last message and the check (300 us did, beside two busy processes)
    loop_spin = setting == "ACTORS_LOOP_SPIN_US"
    monkeypatch.setenv(setting, "100000" if loop_spin else "300")
    spinner = loop_spinner(asyncio.get_running_loop())
    async with await listen(LISTEN_URLS[spin_scheme]()) as lst:
        server, client = await _pair(lst)
        async with server:
            for i in range(200):
                await client.send(b"%d" % i, [np.full(i * 1000, i % 256, np.uint8)])
                header, bufs = await server.recv()
                assert header == b"%d" % i and bytes(bufs[0]) == bytes([i % 256]) * i * 1000
            assert spinner.spinning == loop_spin
            await asyncio.sleep(0.3)
            assert not spinner.spinning
            await client.close()
            with pytest.raises(PeerLost):
                await asyncio.wait_for(server.recv(), 5)


# -- the shipped suite as a third-party backend would run it -----------------------------


async def _inproc_pair() -> tuple[Link, Link]:
    lst = await listen("inproc://check-link-" + os.urandom(4).hex(), max_message_size=MAX)
    try:
        client = await connect(lst.address, max_message_size=MAX)
        return await asyncio.wait_for(lst.accept(), 10), client
    finally:
        await lst.close()


async def test_check_link_runs_every_check() -> None:
    ran = await conformance.check_link(_inproc_pair)
    assert ran == [name for name, _, _ in conformance.CHECKS]


class _LossyLink(Link):
    """A broken backend: drops the 500th message it sends."""

    def __init__(self, inner: Link) -> None:
        self.inner, self.sent = inner, 0
        self.capabilities, self.peer = inner.capabilities, inner.peer

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        self.sent += 1
        if self.sent != 500:
            await self.inner.send(header, buffers)

    async def recv(self) -> tuple[bytes, list[Any]]:
        return await self.inner.recv()

    async def close(self) -> None:
        await self.inner.close()

    @property
    def closed(self) -> bool:
        return self.inner.closed


async def test_check_link_names_the_check_a_broken_backend_fails() -> None:
    async def lossy_pair() -> tuple[Link, Link]:
        server, client = await _inproc_pair()
        return server, _LossyLink(client)

    with pytest.raises(AssertionError, match="conformance check 'ordered_10000' failed"):
        await conformance.check_link(lossy_pair)
