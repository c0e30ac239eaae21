"""One test per failure rule of actors.Actor (each runs on asyncio and uvloop)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from actors import Actor, ActorDead, ActorFailed, ActorSystem, SupervisorPolicy

from .actors_for_tests import Counter, Echo, Gate


async def test_ask_exception_is_raised_in_caller_and_actor_keeps_running() -> None:
    error = KeyError("missing")
    async with ActorSystem("t") as system:
        ref = system.spawn(Echo, name="echo")
        with pytest.raises(KeyError) as info:
            await ref.ask(("raise", error), timeout=5)
        assert info.value is error
        assert await ref.ask("still here", timeout=5) == "still here"
    assert system.failures == []


async def test_tell_exception_goes_to_supervisor_as_actor_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="actors")
    with pytest.raises(ActorFailed) as info:
        async with ActorSystem("t") as system:
            ref = system.spawn(Counter, name="counter")
            await ref.tell("fail")
            await asyncio.sleep(10)  # cancelled by the escalation
    failure = info.value
    assert failure.actor == "counter"
    assert failure.failed_message == "fail"
    assert isinstance(failure.__cause__, ValueError)
    assert system.failures == [failure]
    logged = [r for r in caplog.records if "'counter'" in r.getMessage()]
    assert logged and "'fail'" in logged[0].getMessage()
    assert logged[0].exc_info is not None


async def test_policy_restart_builds_new_instance_and_keeps_mailbox() -> None:
    Counter.instances.clear()
    async with ActorSystem("t") as system:
        ref = system.spawn(Counter, 5, name="c", supervisor_policy="restart")
        _, first_id, _ = await ref.ask("get", timeout=5)
        await ref.tell(1)
        await ref.tell("fail")
        await ref.tell(2)  # queued behind the failure: kept across the restart
        count, second_id, start = await ref.ask("get", timeout=5)
        assert second_id != first_id
        assert start == 5  # same factory arguments
        assert count == 6  # the new instance processed the message kept in the mailbox
        assert len(Counter.instances) == 2
    assert system.failures == []


async def test_policy_restart_gives_up_after_budget_and_escalates() -> None:
    policy = SupervisorPolicy.restart(max_restarts=2, window=60)
    with pytest.raises(ActorFailed) as info:
        async with ActorSystem("t") as system:
            ref = system.spawn(Counter, name="c", supervisor_policy=policy)
            for _ in range(3):
                await ref.tell("fail")
            await asyncio.sleep(10)
    assert info.value.actor == "c"
    assert not ref.is_alive


async def test_policy_stop_stops_actor_and_later_asks_raise_actor_dead() -> None:
    async with ActorSystem("t") as system:
        ref = system.spawn(Counter, name="c", supervisor_policy=SupervisorPolicy.stop())
        await ref.tell("fail")
        with pytest.raises(ActorDead, match="'c'"):
            await ref.ask("get", timeout=5)
        with pytest.raises(ActorDead):
            await ref.tell(1)
    assert system.failures == []


async def test_policy_escalate_surfaces_from_aexit() -> None:
    body_finished = False
    with pytest.raises(ActorFailed) as info:
        async with ActorSystem("t") as system:
            ref = system.spawn(Echo, name="e", supervisor_policy="escalate")
            await ref.tell(("raise", RuntimeError("bad event")))
            await asyncio.sleep(10)
            body_finished = True
    assert not body_finished
    assert info.value.actor == "e"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert system.failures == [info.value]


async def test_escalate_with_shutdown_api_raises_from_shutdown() -> None:
    system = await ActorSystem("t").start()
    ref = system.spawn(Echo, name="e")
    await ref.tell(("raise", RuntimeError("bad")))
    with pytest.raises(ActorDead):
        for _ in range(100):
            await ref.ask("sync", timeout=5)
            await asyncio.sleep(0.01)
    with pytest.raises(ActorFailed):
        await system.shutdown()


async def test_on_start_failure_is_a_failure_under_the_policy() -> None:
    class Broken(Actor):
        async def on_start(self) -> None:
            raise OSError("cannot open input")

    with pytest.raises(ActorFailed, match="on_start") as info:
        async with ActorSystem("t") as system:
            system.spawn(Broken, name="b")
            await asyncio.sleep(10)
    assert isinstance(info.value.__cause__, OSError)


async def test_stop_makes_pending_asks_raise_actor_dead() -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Gate, gate, started, name="g")
        first = asyncio.create_task(ref.ask(1, timeout=5))
        pending = [asyncio.create_task(ref.ask(i, timeout=5)) for i in range(2, 5)]
        await started.wait()
        stopper = asyncio.create_task(ref.stop())
        await asyncio.sleep(0)
        gate.set()
        await stopper
        assert await first == 1  # the message in progress finishes
        for task in pending:
            with pytest.raises(ActorDead, match="stopped before processing"):
                await task
        with pytest.raises(ActorDead):
            await ref.ask(5, timeout=5)
        await ref.stop()  # idempotent


async def test_cancelled_error_is_never_swallowed() -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    async with ActorSystem("t", shutdown_timeout=0.1) as system:
        ref = system.spawn(Gate, gate, started, name="g")
        asker = asyncio.create_task(ref.ask("blocked"))
        await started.wait()
        skipped = asyncio.create_task(ref.ask("never"))
        await asyncio.sleep(0)
        skipped.cancel()
        with pytest.raises(asyncio.CancelledError):
            await skipped
        asker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asker
        # The actor is still blocked in receive; shutdown cancels it after
        # shutdown_timeout and its CancelledError ends the task (no failure).
    assert system.failures == []
    actor = ref._cell.task  # type: ignore[attr-defined]
    assert actor.cancelled()


async def test_receive_raising_cancelled_error_ends_actor_not_as_failure() -> None:
    class Cancels(Actor):
        async def receive(self, message: object) -> None:
            raise asyncio.CancelledError()

    async with ActorSystem("t") as system:
        ref = system.spawn(Cancels, name="c")
        with pytest.raises(ActorDead):
            await ref.ask("x", timeout=5)
        assert not ref.is_alive
    assert system.failures == []
