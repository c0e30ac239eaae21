"""A running job's module actors answer remote refs: its system serves them over tcp://.

The local version is test_module_actors.py. Here the job runs in a system that
serves its actors on loopback (``system.serve``), and a second system - another
process as far as the actors are concerned: it reaches them only through a
link - lists the job's module actors and asks them for timing and state while
events flow.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import ActorDead, ActorSystem
from actors.errors import FrameworkError
from actors.framework import run_process

from .test_module_actors import EVENTS, MODULE_ACTORS, job_process


async def test_module_actors_answer_remote_refs_while_events_flow() -> None:
    seen: dict[str, Any] = {}
    flowing = asyncio.Event()
    done = [0]

    def progress(n: int) -> None:
        done.append(n)
        if n == 10:
            flowing.set()

    async def watch(address: str, observer: ActorSystem) -> None:
        await flowing.wait()  # 10 events done, 190 to go
        job = await observer.remote(address, "job-ACT")
        seen["modules"] = await job.ask("modules", timeout=5)
        x = await observer.remote(address, "job-ACT/x#0")
        slow = await observer.remote(address, "job-ACT/slow#1")
        seen["x"] = await x.ask("state", timeout=5)
        seen["slow"] = await slow.ask("timing", timeout=5)
        seen["job timing"] = await job.ask("timing", timeout=5)
        seen["events"] = done[-1]
        with pytest.raises(FrameworkError, match="answers 'timing' and 'state'"):
            await x.ask("what else?", timeout=5)  # the module actor's own error, by type
        seen["x again"] = await x.ask("state", timeout=5)  # and it goes on answering
        seen["refs"] = (x, slow)

    async with ActorSystem("job-side") as system:  # shared: the job joins it
        address = await system.serve("tcp://127.0.0.1:0")
        async with ActorSystem("observer", shared=False) as observer:
            watcher = asyncio.create_task(watch(address, observer))
            report = await run_process(job_process(), progress=progress)
            await asyncio.wait_for(watcher, 10)
            # the job has ended: its module actors are gone, and remote refs say so
            x, _slow = seen["refs"]
            with pytest.raises(ActorDead):
                await x.ask("state", timeout=5)
            with pytest.raises(ActorDead):
                await observer.remote(address, "job-ACT/x#0")
    assert report.events == EVENTS
    assert seen["modules"] == MODULE_ACTORS
    state = seen["x"]
    assert isinstance(state, dict) and state["label"] == "x" and state["calls"] >= 10
    assert state["type"] == seen["x again"]["type"]
    assert isinstance(seen["events"], int) and seen["events"] < EVENTS  # asked while running
    timing = seen["slow"]
    assert isinstance(timing, dict) and timing["label"] == "slow" and timing["calls"] >= 1
    assert set(seen["job timing"]) == {"source", "x", "slow"}
