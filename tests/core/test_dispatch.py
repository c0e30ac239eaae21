"""Dispatching actors: plain receive inline or in threads, concurrency, post, cancel."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import pytest

from actors import Actor, ActorDead, ActorError, ActorFailed, ActorSystem
from actors.core.ref import NOT_HERE


class Inline(Actor):
    """A plain receive: runs on the loop; ("raise", exc) raises; ("later", x) is async."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def receive(self, message: Any) -> Any:  # type: ignore[override]
        self.seen.append(message)
        if isinstance(message, tuple) and message[0] == "raise":
            raise message[1]
        if isinstance(message, tuple) and message[0] == "later":
            return _later(message[1])
        return (message, threading.get_ident())


async def _later(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


class Concurrent(Actor):
    """Async receive that blocks on a gate; counts how many run at once."""

    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate
        self.running = 0
        self.most = 0

    async def receive(self, message: Any) -> Any:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        return message


async def test_plain_receive_runs_inline_in_post_and_in_threads_with_executor() -> None:
    async with ActorSystem("t") as system:
        inline = system.spawn(Inline, name="inline")
        await inline.ask("warm-up", timeout=5)  # the instance exists once on_start ran
        got: list[Any] = []
        inline.post("now", lambda result, error: got.append((result, error)))  # type: ignore[attr-defined]
        assert got == [(("now", threading.get_ident()), None)]  # before post returned
        assert await inline.ask(("later", 7), timeout=5) == 7  # an awaitable result
        threaded = system.spawn(Inline, name="threaded", executor=True)
        _, ident = await threaded.ask("x", timeout=5)
        assert ident != threading.get_ident()


async def test_ask_error_reaches_the_asker_and_the_actor_keeps_running() -> None:
    async with ActorSystem("t") as system:
        ref = system.spawn(Inline, name="i", executor=True)
        with pytest.raises(KeyError, match="boom"):
            await ref.ask(("raise", KeyError("boom")), timeout=5)
        assert (await ref.ask("after", timeout=5))[0] == "after"


async def test_concurrency_limits_the_messages_running_at_once() -> None:
    gate = asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Concurrent, gate, name="c", concurrency=3)
        asks = [asyncio.create_task(ref.ask(i, timeout=5)) for i in range(5)]
        for _ in range(20):
            await asyncio.sleep(0)
        actor = ref._cell.instance  # type: ignore[attr-defined]
        assert actor.running == 3 and ref._cell.mailbox.qsize() == 2  # type: ignore[attr-defined]
        gate.set()
        assert await asyncio.gather(*asks) == [0, 1, 2, 3, 4]
        assert actor.most == 3


async def test_post_raises_when_the_mailbox_is_full_and_actor_dead_once_stopped() -> None:
    gate = asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Concurrent, gate, name="c", concurrency=2, mailbox_size=1)
        await asyncio.sleep(0)  # on_start
        replies: list[Any] = []
        for i in range(3):  # two run, one waits
            ref.post(i, lambda result, error: replies.append(result))  # type: ignore[attr-defined]
        with pytest.raises(ActorError, match="mailbox of actor 'c' is full"):
            ref.post(3, lambda result, error: None)  # type: ignore[attr-defined]
        gate.set()
        await ref.stop()
        assert sorted(replies) == [0, 1, 2]
        with pytest.raises(ActorDead, match="'c'"):
            ref.post(4, lambda result, error: None)  # type: ignore[attr-defined]


async def test_cancel_cancels_running_async_messages_and_fails_their_replies() -> None:
    gate = asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Concurrent, gate, name="c", concurrency=2)
        await asyncio.sleep(0)  # on_start
        outcomes: list[Any] = []
        for i in range(3):  # two run in worker tasks, one waits
            ref.post(i, lambda result, error: outcomes.append(error))  # type: ignore[attr-defined]
        for _ in range(20):
            await asyncio.sleep(0)
        ref.cancel()  # type: ignore[attr-defined]
        await asyncio.wait_for(ref.stop(), 5)
        assert len(outcomes) == 3 and all(isinstance(o, ActorError) for o in outcomes), outcomes
        assert not ref.is_alive


class Stubborn(Actor):
    """Async receive that waits on a gate; ("swallow", x) ignores a cancellation and
    answers x; a plain ("later", ...) is not handled here."""

    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate
        self.started = asyncio.Event()

    async def receive(self, message: Any) -> Any:
        self.started.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            if isinstance(message, tuple) and message[0] == "swallow":
                return message[1]
            raise
        return message


async def _ask_in_a_task(ref: Any, message: Any) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(ref.ask(message))
    for _ in range(20):
        await asyncio.sleep(0)
    return task


async def _spawn_and_ask(
    system: ActorSystem, factory: Any, *args: Any, name: str, message: Any, concurrency: int = 1
) -> tuple[Any, asyncio.Task[Any]]:
    """Spawn an actor and, once it started, ask it ``message`` in a task of its own."""
    ref = system.spawn(factory, *args, name=name, concurrency=concurrency)
    await asyncio.sleep(0)  # on_start
    return ref, await _ask_in_a_task(ref, message)


async def _expect_stopped(asker: asyncio.Task[Any], name: str) -> None:
    with pytest.raises(ActorError, match=f"'{name}' was stopped while processing the message"):
        await asyncio.wait_for(asker, 5)


async def test_cancel_ends_an_ask_run_in_its_askers_task_with_actor_error() -> None:
    gate = asyncio.Event()
    async with ActorSystem("t") as system:
        ref, asker = await _spawn_and_ask(
            system, Stubborn, gate, name="s", message="stuck", concurrency=2
        )
        assert not asker.done()
        ref.cancel()
        await _expect_stopped(asker, "s")
        assert asker.cancelling() == 0  # the cancellation was withdrawn, not left pending
        await asyncio.wait_for(ref.stop(), 5)


async def test_cancel_of_an_ask_in_its_askers_task_that_swallows_it_returns_the_reply() -> None:
    gate = asyncio.Event()
    async with ActorSystem("t") as system:
        ref = system.spawn(Stubborn, gate, name="s", concurrency=2)
        await asyncio.sleep(0)  # on_start

        async def ask_then_wait() -> tuple[Any, int]:
            reply = await ref.ask(("swallow", 7))
            await asyncio.sleep(0.01)  # no cancellation left pending in this task
            return reply, asyncio.current_task().cancelling()  # type: ignore[union-attr]

        asker = asyncio.ensure_future(ask_then_wait())
        for _ in range(20):
            await asyncio.sleep(0)
        ref.cancel()  # type: ignore[attr-defined]
        assert await asyncio.wait_for(asker, 5) == (7, 0)
        await asyncio.wait_for(ref.stop(), 5)


async def test_cancel_reaches_a_message_that_asked_its_own_actor_in_the_same_task() -> None:
    gate = asyncio.Event()

    class AsksItself(Actor):
        async def receive(self, message: Any) -> Any:
            if message == "inner":
                return "inner done"
            assert await self.self_ref.ask("inner") == "inner done"  # run in this task too
            await gate.wait()
            return message

    async with ActorSystem("t") as system:
        ref, asker = await _spawn_and_ask(
            system, AsksItself, name="a", message="outer", concurrency=2
        )
        ref.cancel()
        await _expect_stopped(asker, "a")
        await asyncio.wait_for(ref.stop(), 5)


async def test_an_askers_own_cancellation_wins_over_cancel() -> None:
    gate = asyncio.Event()
    async with ActorSystem("t") as system:
        ref, asker = await _spawn_and_ask(
            system, Stubborn, gate, name="s", message="stuck", concurrency=2
        )
        ref.cancel()
        asker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asker, 5)
        await asyncio.wait_for(ref.stop(), 5)


async def test_cancel_ends_the_awaited_rest_of_a_plain_receive_run_in_the_askers_task() -> None:
    gate = asyncio.Event()

    class PlainThenAwait(Actor):
        def receive(self, message: Any) -> Any:  # type: ignore[override]
            return gate.wait()  # the plain receive's awaitable: awaited in the asker's task

    async with ActorSystem("t") as system:
        ref, asker = await _spawn_and_ask(system, PlainThenAwait, name="p", message="stuck")
        ref.cancel()
        await _expect_stopped(asker, "p")
        await asyncio.wait_for(ref.stop(), 5)


async def test_an_ask_to_an_idle_actor_runs_in_the_askers_task() -> None:
    class WhichTask(Actor):
        async def receive(self, message: Any) -> Any:
            return asyncio.current_task()

    async with ActorSystem("t") as system:
        ref = system.spawn(WhichTask, name="w", concurrency=2)
        await asyncio.sleep(0)  # on_start
        assert await ref.ask("which?", timeout=5) is asyncio.current_task()
        got: list[Any] = []
        ref.post("which?", lambda result, error: got.append(result))  # type: ignore[attr-defined]
        await ref.stop()
        assert got and got[0] is not asyncio.current_task()  # a post runs in a worker


async def test_caller_processes_a_message_in_the_caller_only_when_the_actor_is_idle() -> None:
    gate = asyncio.Event()

    class Slow(Actor):
        """Plain receive: "wait" returns an awaitable that ends when the gate opens."""

        def receive(self, message: Any) -> Any:  # type: ignore[override]
            if message == "wait":
                return gate.wait()
            if message == "raise":
                raise KeyError("boom")
            return ("done", message)

    async with ActorSystem("t") as system:
        ref = system.spawn(Slow, name="s")
        await ref.ask("warm-up", timeout=5)  # the instance exists once on_start ran
        call = ref.caller()  # type: ignore[attr-defined]
        assert call("x") == ("done", "x")  # processed before the call returned
        with pytest.raises(KeyError, match="boom"):
            call("raise")
        assert call("y") == ("done", "y")  # the error freed the slot
        rest = call("wait")
        assert inspect.iscoroutine(rest)  # it holds the slot until it ends
        waiting = asyncio.create_task(asyncio.wait_for(rest, 5))
        await asyncio.sleep(0)
        assert call("z") is NOT_HERE  # busy: nothing done, the caller asks instead
        queued = asyncio.create_task(ref.ask("z", timeout=5))
        await asyncio.sleep(0)
        assert not queued.done()
        gate.set()
        assert await waiting is True
        assert await queued == ("done", "z")  # the queued ask started when the slot was freed
        gate.clear()
        cancelled = asyncio.create_task(asyncio.wait_for(call("wait"), 5))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert call("after") == ("done", "after")  # cancelling the awaiter freed the slot
        threaded = system.spawn(Slow, name="threaded", executor=True)
        await threaded.ask("warm-up", timeout=5)
        assert threaded.caller()("x") is NOT_HERE  # type: ignore[attr-defined]
        await ref.stop()
        assert call("x") is NOT_HERE  # stopped: ask raises ActorDead
        with pytest.raises(ActorDead):
            await ref.ask("x")


async def test_failed_tell_of_a_dispatching_actor_follows_its_policy() -> None:
    async with ActorSystem("t") as system:
        ref = system.spawn(Inline, name="r", supervisor_policy="restart")
        first = await ref.ask("a", timeout=5)
        await ref.tell(("raise", ValueError("bad tell")))
        old = ref._cell.instance  # type: ignore[attr-defined]
        for _ in range(50):
            await asyncio.sleep(0)
            if ref._cell.instance is not old:  # type: ignore[attr-defined]
                break
        assert ref._cell.instance is not old  # type: ignore[attr-defined]
        assert (await ref.ask("b", timeout=5))[0] == "b" and first[0] == "a"
    with pytest.raises(ActorFailed, match="bad tell"):
        async with ActorSystem("t") as system:
            ref = system.spawn(Inline, name="e")
            await ref.tell(("raise", ValueError("bad tell")))
            await asyncio.sleep(5)


async def test_root_guardian_lookup_names_and_the_running_system() -> None:
    class Parent(Actor):
        async def on_start(self) -> None:
            self.spawn(Inline, name="kid", executor=True)

        async def receive(self, message: Any) -> Any:
            return self.parent

    assert ActorSystem.running() is None
    async with ActorSystem("t") as system:
        assert ActorSystem.running() is system
        ref = system.spawn(Parent, name="p")
        assert await ref.ask("parent?", timeout=5) is None  # top level: no parent ref
        kid = system.lookup("p/kid")
        assert (await kid.ask("hi", timeout=5))[0] == "hi"
        assert system.actor_names == ["p", "p/kid"]
        with pytest.raises(ActorDead, match="'p/nope'"):
            system.lookup("p/nope")
    assert ActorSystem.running() is None
