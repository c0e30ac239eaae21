"""Mailboxes: bounded (backpressure), ask timeouts, stop while tells wait."""

from __future__ import annotations

import asyncio

import pytest

from actors import ActorDead, ActorSystem, AskTimeout

from .actors_for_tests import Counter, Echo, Gate


async def test_full_mailbox_blocks_tell_until_space_and_stays_bounded() -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Gate, gate, started, name="g", mailbox_size=3)
        await ref.tell("first")  # taken by the actor, which then blocks
        await started.wait()
        for i in range(3):
            await ref.tell(i)  # fills the mailbox without blocking
        blocked = asyncio.create_task(ref.tell("overflow"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not blocked.done()
        assert ref._cell.mailbox.qsize() == 3  # type: ignore[attr-defined]
        gate.set()  # the actor drains; the blocked tell gets in
        await asyncio.wait_for(blocked, 5)
        assert await ref.ask("last", timeout=5) == "last"
        actor = ref._cell.instance  # type: ignore[attr-defined]
        assert actor.seen == ["first", 0, 1, 2, "overflow", "last"]


async def test_tell_blocked_on_full_mailbox_raises_actor_dead_when_actor_stops() -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Gate, gate, started, name="g", mailbox_size=1)
        await ref.tell("busy")
        await started.wait()
        await ref.tell("queued")
        blocked = asyncio.create_task(ref.tell("blocked"))
        await asyncio.sleep(0)
        stopper = asyncio.create_task(ref.stop())
        await asyncio.sleep(0)
        gate.set()
        await stopper
        with pytest.raises(ActorDead, match="'g'"):
            await blocked


async def test_ask_timeout_raises_ask_timeout_a_timeout_error() -> None:
    gate = asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Gate, gate, name="g")
        with pytest.raises(AskTimeout, match="'g'") as info:
            await ref.ask("slow", timeout=0.05)
        assert isinstance(info.value, TimeoutError)
        gate.set()
        assert await ref.ask("fast", timeout=5) == "fast"


async def test_ask_timeout_covers_waiting_for_mailbox_space() -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Gate, gate, started, name="g", mailbox_size=1)
        await ref.tell("busy")
        await started.wait()
        await ref.tell("fills the mailbox")
        with pytest.raises(AskTimeout, match="mailbox stayed full"):
            await ref.ask("no room", timeout=0.05)
        gate.set()


async def test_ask_given_up_before_processing_is_skipped() -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Gate, gate, started, name="g")
        await ref.tell("busy")
        await started.wait()
        with pytest.raises(AskTimeout):
            await ref.ask("gave up", timeout=0.01)
        gate.set()
        assert await ref.ask("next", timeout=5) == "next"
        assert ref._cell.instance.seen == ["busy", "next"]  # type: ignore[attr-defined]


async def test_messages_are_processed_in_order_one_at_a_time() -> None:
    async with ActorSystem("t") as system:
        ref = system.spawn(Counter, name="c", mailbox_size=8)
        for i in range(1000):
            await ref.tell(i)
        count, _, _ = await ref.ask("get", timeout=5)
        assert count == 1000


async def test_spawn_rejects_duplicate_names_and_bad_mailbox_size() -> None:
    async with ActorSystem("t") as system:
        system.spawn(Echo, name="x")
        with pytest.raises(ValueError, match="'x' already exists"):
            system.spawn(Echo, name="x")
        with pytest.raises(ValueError, match="mailbox_size"):
            system.spawn(Echo, name="y", mailbox_size=0)
        with pytest.raises(ActorDead, match="no actor named 'nope' in system 't'"):
            system.lookup("nope")
        assert system.lookup("x") == system.lookup("x")
