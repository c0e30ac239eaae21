"""Stall reports show remote actor links: an ask that is never answered.

The serving system's actor blocks in ``receive`` forever; the calling side's
ask waits. The report (:func:`actors.framework.stall.report`, the one
``SIGUSR1`` prints) must name, per link session, the peer, the pending ask
with its target and age, the outbox depth and the reader/writer state - on
the calling side and on the serving side.
"""

from __future__ import annotations

import asyncio
import re
import uuid

from actors import ActorSystem
from actors.core.remote_stall import describe_remote_links
from actors.framework import stall

from .actors_for_tests import Gate


async def test_unanswered_remote_ask_shows_in_the_stall_report() -> None:
    url = f"inproc://stall-{uuid.uuid4().hex[:8]}"
    gate, started = asyncio.Event(), asyncio.Event()
    async with ActorSystem("server") as server, ActorSystem("client") as client:
        server.spawn(Gate, gate, started, name="sleeper")
        address = await server.serve(url)
        ref = await client.remote(address, "sleeper")
        ask = asyncio.ensure_future(ref.ask("hello"))
        try:
            async with asyncio.timeout(10):
                await started.wait()
            await asyncio.sleep(0.15)  # let the ask age a little
            text = stall.report()
        finally:
            gate.set()
            await ask
    assert "  remote actor links:" in text, text
    calling = re.search(
        rf"system 'client' calls {re.escape(address)} \(peer [^)]*\): 1 request\(s\) pending, "
        r"outbox 0 frame\(s\), reader alive, writer alive\n"
        r"\s+ask to actor 'sleeper' pending for (\d+\.\d) s \(request \d+\)",
        text,
    )
    assert calling is not None, text
    assert float(calling.group(1)) >= 0.1, text
    serving = re.search(
        r"system 'server' serves peer [^:]+://[^:]*: 1 request\(s\) in progress, "
        r"outbox 0 frame\(s\), reader alive, writer alive\n"
        r"\s+ask to actor 'sleeper' in progress for \d+\.\d s \(request \d+\)",
        text,
    )
    assert serving is not None, text
    assert f"system 'server' serves at {address}" in text, text


async def test_answered_and_closed_links_leave_the_report() -> None:
    url = f"inproc://stall-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Event()
    gate.set()
    async with ActorSystem("server") as server, ActorSystem("client") as client:
        server.spawn(Gate, gate, name="quick")
        ref = await client.remote(await server.serve(url), "quick")
        assert await ref.ask(1) == 1
        lines = describe_remote_links()
        mine = [line for line in lines if url in line]
        assert any("0 request(s) pending" in line for line in mine), lines
        assert not any("ask to actor 'quick'" in line for line in lines), lines
    assert not [line for line in describe_remote_links() if url in line]
