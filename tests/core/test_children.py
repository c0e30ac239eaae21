"""Children: spawned by an actor, supervised by it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import Actor, ActorFailed, ActorRef, ActorSystem

from .actors_for_tests import Counter, Echo


class Parent(Actor):
    """Spawns a Counter child on start; forwards ("child", msg) to it."""

    starts = 0
    stopped: list[str] = []

    def __init__(self, child_policy: str = "escalate") -> None:
        self.child_policy = child_policy
        self.child: ActorRef | None = None

    async def on_start(self) -> None:
        Parent.starts += 1
        self.child = self.spawn(Counter, name="child", supervisor_policy=self.child_policy)

    async def on_stop(self) -> None:
        assert self.child is not None
        Parent.stopped.append(f"parent saw child alive={self.child.is_alive}")

    async def receive(self, message: Any) -> Any:
        assert self.child is not None
        if message == "child-ref":
            return self.child
        return await self.child.ask(message, timeout=5)


async def test_child_is_named_under_parent_and_stops_before_parent() -> None:
    Parent.stopped.clear()
    async with ActorSystem("t") as system:
        parent = system.spawn(Parent, name="p")
        child = await parent.ask("child-ref", timeout=5)
        assert child.name == "p/child"
        assert system.lookup("p/child") == child
        await parent.stop()
        assert not child.is_alive
    assert Parent.stopped == ["parent saw child alive=False"]


async def test_child_failure_escalates_to_parent_whose_policy_restarts_it() -> None:
    Parent.starts = 0
    async with ActorSystem("t") as system:
        parent = system.spawn(Parent, name="p", supervisor_policy="restart")
        old_child = await parent.ask("child-ref", timeout=5)
        await old_child.tell("fail")  # child escalates; parent restarts
        for _ in range(200):
            if Parent.starts == 2:
                break
            await asyncio.sleep(0.01)
        assert Parent.starts == 2
        assert not old_child.is_alive
        new_child = await parent.ask("child-ref", timeout=5)
        assert new_child.is_alive and new_child.name == "p/child"
    assert system.failures == []


async def test_child_failure_escalates_through_parent_to_system() -> None:
    with pytest.raises(ActorFailed) as info:
        async with ActorSystem("t") as system:
            parent = system.spawn(Parent, name="p")
            child = await parent.ask("child-ref", timeout=5)
            await child.tell("fail")
            await asyncio.sleep(10)
    assert info.value.actor == "p/child"
    assert not parent.is_alive


async def test_child_with_restart_policy_is_restarted_by_itself() -> None:
    async with ActorSystem("t") as system:
        parent = system.spawn(Parent, "restart", name="p")
        child = await parent.ask("child-ref", timeout=5)
        await child.tell("fail")
        count, _, _ = await parent.ask("get", timeout=5)
        assert count == 0 and child.is_alive


async def test_actor_knows_its_name_system_and_self_ref_in_init() -> None:
    class Introspect(Actor):
        def __init__(self) -> None:
            self.seen = (self.name, self.system.name, self.self_ref.name, self.parent)

        async def receive(self, message: Any) -> Any:
            return self.seen

    async with ActorSystem("node") as system:
        ref = system.spawn(Introspect, name="i")
        assert await ref.ask(None, timeout=5) == ("i", "node", "i", None)
        echo = system.spawn(Echo)
        assert echo.name.startswith("Echo-")


async def test_stop_from_inside_the_actor_or_a_child_does_not_deadlock() -> None:
    class Quitter(Actor):
        async def receive(self, message: Any) -> Any:
            if message == "quit":
                await self.self_ref.stop()
            elif message == "child-quits-parent":
                child = self.spawn(StopsParent, name="c")
                await child.tell(self.self_ref)
            return message

    class StopsParent(Actor):
        async def receive(self, message: Any) -> Any:
            await message.stop()

    async with ActorSystem("t") as system:
        one = system.spawn(Quitter, name="one")
        assert await one.ask("quit", timeout=5) == "quit"
        await one.stop()
        two = system.spawn(Quitter, name="two")
        await two.tell("child-quits-parent")
        await asyncio.wait_for(two.stop(), 5)
        assert not two.is_alive
