"""Running several logical processes in one Python process over inproc:// links."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from actors.distributed import LinkEndpoint, LinkTable, close_channels, use_links
from actors.framework import JobReport, Process, run_process

_names = itertools.count()


def inproc_tables(links: dict[str, tuple[str, str]], processes: list[str]) -> dict[str, LinkTable]:
    """Link tables for ``links = {name: (server process, client process)}``."""
    tag = next(_names)
    tables: dict[str, dict[str, LinkEndpoint]] = {p: {} for p in processes}
    for name, (server, client) in links.items():
        url = f"inproc://dist-{tag}-{name}"
        tables[server][name] = LinkEndpoint(name, "server", url, peer=client)
        tables[client][name] = LinkEndpoint(name, "client", url, peer=server)
    return {p: LinkTable(t) for p, t in tables.items()}


def shared_tables(
    links: dict[str, tuple[str, list[str]]], processes: list[str]
) -> dict[str, LinkTable]:
    """Link tables for ``links = {name: (server, [client, ...])}``: several clients per link."""
    tag = next(_names)
    tables: dict[str, dict[str, LinkEndpoint]] = {p: {} for p in processes}
    for name, (server, clients) in links.items():
        url = f"inproc://dist-{tag}-{name}"
        tables[server][name] = LinkEndpoint(
            name, "server", url, peer=",".join(clients), clients=len(clients)
        )
        for client in clients:
            tables[client][name] = LinkEndpoint(name, "client", url, peer=server)
    return {p: LinkTable(t) for p, t in tables.items()}


async def _one(process: Process, table: LinkTable, kwargs: dict[str, Any]) -> JobReport:
    with use_links(table):
        try:
            return await run_process(process, **kwargs)
        finally:
            await close_channels()


async def run_all(
    jobs: dict[str, tuple[Process, LinkTable, dict[str, Any]]],
    timeout: float = 60.0,
    grace: float = 5.0,
) -> dict[str, JobReport | BaseException]:
    """Run every job concurrently; returns each one's report or exception.

    When one job fails the others get ``grace`` seconds to end on their own
    (a follower noticing its controller is gone), then they are cancelled.
    """
    tasks = {name: asyncio.ensure_future(_one(p, t, kw)) for name, (p, t, kw) in jobs.items()}
    async with asyncio.timeout(timeout):
        pending = set(tasks.values())
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() is not None for t in done) and pending:
                # like the launcher: the others get a grace period, then are stopped
                _done2, pending = await asyncio.wait(pending, timeout=grace)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                pending = set()
    out: dict[str, JobReport | BaseException] = {}
    for name, task in tasks.items():
        if task.cancelled():
            out[name] = asyncio.CancelledError(f"{name} stopped after another job failed")
        else:
            out[name] = task.exception() or task.result()
    return out
