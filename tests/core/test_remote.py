"""Location transparency: remote refs over inproc, tcp and shm links."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors import (
    Actor,
    ActorDead,
    ActorRef,
    ActorSystem,
    AskTimeout,
    ConfigError,
    PeerLost,
    RemoteError,
)
from actors.settings import ASK_SPIN_US
from actors.transports import loop_spinner
from tests.transports import schemes

from .actors_for_tests import Echo, Gate

PEER_SCRIPT = Path(__file__).with_name("remote_peer.py")
REPO = Path(__file__).resolve().parents[2]


class Custom(Exception):
    pass


class Thrower(Actor):
    async def receive(self, message: Any) -> Any:
        kind = message
        if kind == "builtin":
            raise KeyError("no such key")
        if kind == "ours":
            raise ConfigError("bad value", file="run.toml", line=3, key="events")
        raise Custom("custom failure")


class Stats(Actor):
    """Sums the arrays it is told; ask "sum" for the total."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.total = 0.0
        self.count = 0
        self.gate = gate

    async def receive(self, message: Any) -> Any:
        if isinstance(message, str) and message == "sum":
            return self.total, self.count
        if self.gate is not None:
            await self.gate.wait()
        self.total += float(np.sum(message))
        self.count += 1
        return None


@pytest.fixture(params=schemes.params(("inproc", "tcp")))
def url(request: pytest.FixtureRequest) -> str:
    scheme: str = request.param
    schemes.require(scheme)
    return schemes.LISTEN_URLS[scheme]()


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[ActorSystem, ActorSystem, str]]:
    async with ActorSystem("server") as server, ActorSystem("client") as client:
        address = await server.serve(url)
        yield server, client, address


async def test_remote_tell_and_ask_carry_numpy_arrays(
    pair: tuple[ActorSystem, ActorSystem, str],
) -> None:
    server, client, address = pair
    server.spawn(Echo, name="echo")
    server.spawn(Stats, name="stats")
    echo = await client.remote(address, "echo")
    stats = await client.remote(address, "stats")
    assert isinstance(echo, ActorRef)
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    back = await echo.ask(array, timeout=5)
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.float32 and back.shape == (3, 4)
    assert await echo.ask({"run": 1, "lumi": [2, 3]}, timeout=5) == {"run": 1, "lumi": [2, 3]}
    for i in range(100):
        await stats.tell(np.full(1000, i, dtype=np.int64))
    assert tuple(await stats.ask("sum", timeout=5)) == (1000 * sum(range(100)), 100)


async def test_remote_ask_exceptions_keep_their_type_or_become_remote_error(
    pair: tuple[ActorSystem, ActorSystem, str],
) -> None:
    server, client, address = pair
    server.spawn(Thrower, name="thrower")
    ref = await client.remote(address, "thrower")
    with pytest.raises(KeyError, match="no such key") as builtin:
        await ref.ask("builtin", timeout=5)
    assert "raise KeyError" in "".join(builtin.value.__notes__)  # remote traceback
    with pytest.raises(ConfigError, match=r"run\.toml:3: events: bad value"):
        await ref.ask("ours", timeout=5)
    with pytest.raises(RemoteError) as custom:
        await ref.ask("custom", timeout=5)
    assert custom.value.remote_type.endswith("Custom")
    assert custom.value.remote_message == "custom failure"
    assert "raise Custom" in custom.value.remote_traceback
    with pytest.raises(KeyError):  # the actor kept running
        await ref.ask("builtin", timeout=5)


async def test_unknown_remote_actor_is_refused_naming_actor_and_system(
    pair: tuple[ActorSystem, ActorSystem, str],
) -> None:
    _server, client, address = pair
    with pytest.raises(ActorDead, match="no actor named 'ghost' in system 'server'"):
        await client.remote(address, "ghost")


async def test_remote_stop_then_calls_raise_actor_dead(
    pair: tuple[ActorSystem, ActorSystem, str],
) -> None:
    server, client, address = pair
    local = server.spawn(Echo, name="echo")
    ref = await client.remote(address, "echo")
    await ref.stop()
    assert not local.is_alive and not ref.is_alive
    with pytest.raises(ActorDead):
        await ref.ask(1, timeout=5)
    other = server.spawn(Echo, name="other")
    ref2 = await client.remote(address, "other")
    await other.stop()
    await ref2.tell("to a dead actor")  # refused by the server with a notice
    with pytest.raises(ActorDead, match="'other'"):
        await ref2.ask(1, timeout=5)
    for _ in range(100):
        if not ref2.is_alive:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(ActorDead):
        await ref2.tell("again")


async def test_remote_ask_timeout_is_end_to_end(
    pair: tuple[ActorSystem, ActorSystem, str],
) -> None:
    server, client, address = pair
    gate = asyncio.Event()
    server.spawn(Gate, gate, name="gate")
    ref = await client.remote(address, "gate")
    with pytest.raises(AskTimeout, match="'gate'"):
        await ref.ask("slow", timeout=0.1)
    gate.set()
    assert await ref.ask("fast", timeout=5) == "fast"


async def test_remote_tell_has_backpressure(pair: tuple[ActorSystem, ActorSystem, str]) -> None:
    server, client, address = pair
    gate = asyncio.Event()
    server.spawn(Stats, gate, name="stats", mailbox_size=4)
    ref = await client.remote(address, "stats")
    # 32 KiB messages: more than socket buffers and link queues can hold in total
    total = 5_000
    payload = np.zeros(4096)
    payload[0] = 1.0
    sent = 0

    async def produce() -> None:
        nonlocal sent
        for _ in range(total):
            await ref.tell(payload)
            sent += 1

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.3)
    assert not producer.done() and sent < total  # blocked: buffers are bounded
    gate.set()
    await asyncio.wait_for(producer, 60)
    assert tuple(await ref.ask("sum", timeout=30)) == (total, total)


async def test_remote_ask_times_out_while_the_outbox_is_full(
    pair: tuple[ActorSystem, ActorSystem, str],
) -> None:
    server, client, address = pair
    gate = asyncio.Event()
    server.spawn(Stats, gate, name="stats", mailbox_size=4)
    ref = await client.remote(address, "stats")
    total = 5_000
    payload = np.ones(4096)  # 32 KiB tells: they fill every buffer while the gate is shut

    async def produce() -> None:
        for _ in range(total):
            await ref.tell(payload)

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.3)
    assert not producer.done()
    started = asyncio.get_running_loop().time()
    with pytest.raises(AskTimeout, match=r"'stats' at .* within 0.2 s"):
        await ref.ask("sum", timeout=0.2)  # its frame never left the client's outbox
    assert asyncio.get_running_loop().time() - started < 5
    gate.set()
    await asyncio.wait_for(producer, 60)
    assert tuple(await ref.ask("sum", timeout=30)) == (4096 * total, total)  # every tell arrived


async def test_lost_link_fails_pending_asks_and_later_calls_with_peer_lost(url: str) -> None:
    gate = asyncio.Event()
    async with ActorSystem("client") as client:
        server = await ActorSystem("server", shutdown_timeout=0.05).start()
        server.spawn(Gate, gate, name="gate")
        ref = await client.remote(await server.serve(url), "gate")
        pending = asyncio.create_task(ref.ask("never answered"))
        await asyncio.sleep(0.05)
        await server.shutdown()
        async with asyncio.timeout(2):
            with pytest.raises(PeerLost):
                await pending
        with pytest.raises(PeerLost):
            await ref.tell("later")
        assert not ref.is_alive


async def test_tell_blocked_by_backpressure_raises_peer_lost_when_link_dies(url: str) -> None:
    gate = asyncio.Event()
    async with ActorSystem("client") as client:
        server = await ActorSystem("server", shutdown_timeout=0.05).start()
        server.spawn(Stats, gate, name="stats", mailbox_size=1)
        ref = await client.remote(await server.serve(url), "stats")

        async def produce() -> None:
            while True:
                await ref.tell(1)

        producer = asyncio.create_task(produce())
        await asyncio.sleep(0.3)
        assert not producer.done()
        await server.shutdown()
        async with asyncio.timeout(2):
            with pytest.raises(PeerLost):
                await producer


@pytest.mark.parametrize("scheme", schemes.params(("tcp", "shm")))
async def test_remote_peer_killed_pending_ask_raises_peer_lost_within_2s(scheme: str) -> None:
    schemes.require(scheme)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEER_SCRIPT),
        schemes.LISTEN_URLS[scheme](),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            address = (await proc.stdout.readline()).decode().strip()
        async with ActorSystem("client") as client:
            echo = await client.remote(address, "echo")
            sleeper = await client.remote(address, "sleeper")
            assert await echo.ask(np.ones(4), timeout=10) is not None
            pending = asyncio.create_task(sleeper.ask("wait forever"))
            await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGKILL)
            async with asyncio.timeout(2):
                with pytest.raises(PeerLost):
                    await pending
            with pytest.raises(PeerLost):
                await echo.tell("after death")
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@pytest.mark.parametrize("spin_us", ["200", "0"])
async def test_an_ask_keeps_the_loop_awake_for_the_reply_and_the_next_ask(
    url: str, spin_us: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACTORS_ASK_SPIN_US: an ask and its reply kick the loop's ask spinner; a tell does not."""
    monkeypatch.setenv("ACTORS_ASK_SPIN_US", spin_us)
    spinner = loop_spinner(asyncio.get_running_loop(), ASK_SPIN_US)
    async with ActorSystem("server") as server, ActorSystem("client") as client:
        server.spawn(Echo, name="echo")
        echo = await client.remote(await server.serve(url), "echo")
        await asyncio.sleep(0.01)
        assert not spinner.spinning
        await echo.tell("one way")
        assert not spinner.spinning
        assert await echo.ask("there and back", timeout=5) == "there and back"
        assert spinner.spinning == (spin_us != "0")
        await asyncio.sleep(0.01)
        assert not spinner.spinning
