"""Running several logical processes in one Python process over inproc:// links."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from actors.distributed import LinkEndpoint, LinkTable, close_channels, use_links
from actors.framework import JobReport, Process, run_process

_names = itertools.count()


def inproc_tables(
    links: dict[str, tuple[str, str]], processes: list[str]
) -> dict[str, LinkTable]:
    """Link tables for ``links = {name: (server process, client process)}``."""
    tag = next(_names)
    tables: dict[str, dict[str, LinkEndpoint]] = {p: {} for p in processes}
    for name, (server, client) in links.items():
        url = f"inproc://dist-{tag}-{name}"
        tables[server][name] = LinkEndpoint(name, "server", url, peer=client)
        tables[client][name] = LinkEndpoint(name, "client", url, peer=server)
    return {p: LinkTable(t) for p, t in tables.items()}


async def _one(process: Process, table: LinkTable, kwargs: dict[str, Any]) -> JobReport:
    with use_links(table):
        try:
            return await run_process(process, **kwargs)
        finally:
            await close_channels()


async def run_all(
    jobs: dict[str, tuple[Process, LinkTable, dict[str, Any]]], timeout: float = 60.0
) -> dict[str, JobReport | BaseException]:
    """Run every job concurrently; returns each one's report or exception."""
    names = list(jobs)
    async with asyncio.timeout(timeout):
        results = await asyncio.gather(
            *(_one(p, t, kw) for p, t, kw in jobs.values()), return_exceptions=True
        )
    return dict(zip(names, results, strict=True))
