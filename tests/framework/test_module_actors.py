"""A running job's source and modules are actors of the process's ActorSystem."""

from __future__ import annotations

import asyncio

from actors import ActorSystem
from actors.framework import Process, run_process

from .mods import M

EVENTS = 200
#: the actors of the job of :func:`job_process`, parents first
MODULE_ACTORS = ["job-ACT/source", "job-ACT/x#0", "job-ACT/x#1", "job-ACT/slow#0", "job-ACT/slow#1"]


def job_process() -> Process:
    """Two streams; an async module (worker tasks) and a plain one (thread pool)."""
    p = Process("ACT")
    p.set_source(f"{M}:CountingSource", lumis=4, events=EVENTS // 4)
    p.options.streams = 2
    p.add_module("x", f"{M}:AsyncAdd")
    p.add_module("slow", f"{M}:BusyStream", sleep=0.002)
    p.add_path("p", ["x", "slow"])
    return p


async def test_module_actors_answer_timing_and_state_while_events_flow() -> None:
    seen: dict[str, object] = {}
    flowing = asyncio.Event()

    async def watch(system: ActorSystem) -> None:
        await flowing.wait()  # 10 events done, 190 to go
        seen["modules"] = await system.lookup("job-ACT").ask("modules", timeout=5)
        seen["x"] = await system.lookup("job-ACT/x#0").ask("state", timeout=5)
        seen["slow"] = await system.lookup("job-ACT/slow#1").ask("timing", timeout=5)
        seen["events"] = events_done[-1]

    events_done = [0]

    def progress(n: int) -> None:
        events_done.append(n)
        if n == 10:
            flowing.set()

    async with ActorSystem("notebook") as system:
        watcher = asyncio.create_task(watch(system))
        report = await run_process(job_process(), progress=progress)
        await asyncio.wait_for(watcher, 5)
        assert not [n for n in system.actor_names if n.startswith("job-ACT")]  # all stopped
    assert report.events == EVENTS
    assert seen["modules"] == MODULE_ACTORS
    state = seen["x"]
    assert isinstance(state, dict) and state["label"] == "x" and state["calls"] >= 10
    assert isinstance(seen["events"], int) and seen["events"] < EVENTS  # asked while running
    timing = seen["slow"]
    assert isinstance(timing, dict) and timing["label"] == "slow"
