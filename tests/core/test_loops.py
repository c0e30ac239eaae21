"""Where a system can run: asyncio.run, uvloop, an already running loop; no leftovers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from actors import ActorSystem

from .actors_for_tests import Echo, Gate
from .conftest import LOOP_FACTORIES


async def test_system_in_the_test_loop_leaves_no_task_behind() -> None:
    before = asyncio.all_tasks()
    gate = asyncio.Event()
    async with ActorSystem("t", shutdown_timeout=0.05) as system:
        refs = [system.spawn(Echo) for _ in range(10)]
        busy = system.spawn(Gate, gate, name="busy")
        await busy.tell("never finishes")
        for ref in refs:
            await ref.tell("unprocessed")
        assert await refs[0].ask("hi", timeout=5) == "hi"
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before
    assert system.actor_names == []


@pytest.mark.parametrize("factory", LOOP_FACTORIES.values(), ids=list(LOOP_FACTORIES))
def test_system_started_inside_a_loop_run_by_another_coroutine(
    factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def notebook_cell() -> object:
        async with ActorSystem("nb") as system:
            ref = system.spawn(Echo, name="e")
            return await ref.ask({"x": 1}, timeout=5)

    async def kernel() -> object:
        # like Jupyter: a loop already runs; the cell is a task inside it
        return await asyncio.create_task(notebook_cell())

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(kernel()) == {"x": 1}


async def test_system_refuses_use_from_another_loop() -> None:
    async with ActorSystem("t") as system:
        errors: list[BaseException] = []

        def other_thread() -> None:
            async def use() -> None:
                system.spawn(Echo)

            try:
                asyncio.run(use())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
        assert "another event loop" in str(errors[0])


async def test_start_and_shutdown_span_notebook_cells() -> None:
    system = ActorSystem("nb")
    await system.start()
    ref = system.spawn(Echo, name="e")
    assert await ref.ask(1, timeout=5) == 1
    await system.shutdown()
    assert not ref.is_alive
    await system.shutdown()  # idempotent
