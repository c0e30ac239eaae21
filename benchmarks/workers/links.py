"""Our transports through the public API: ``listen``/``connect``/``Link``.

Variant = the transport: ``inproc`` (role ``client`` runs both ends on one
loop), ``tcp``, ``shm``, ``ucx``, ``mpi-portfile`` (server and
client each under their own ``mpiexec -n 1``) or ``mpi-rank`` (role ``rank``,
one ``mpiexec -n 2`` job: rank 0 listens on ``mpi://rank/0`` and echoes, rank 1
connects and measures). ``extra.url`` is the listen URL, ``extra.loop`` the
event loop (``uvloop`` by default).

A message is an empty header plus one buffer of ``size`` bytes (numpy, or cupy
with ``--device gpu``); the server sends back what it received, as received
(zero-copy views where the transport gives them).
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors.errors import PeerLost
from actors.transports import Link, connect, listen

from ..pingpong import emit, measure_async, run_loop
from ._common import Args, alloc, main


async def echo(link: Link) -> None:
    """Send every message back until the peer goes away.

    Each message is dropped before the next receive, as the raw baselines reuse
    one receive buffer: a link can then hand the same pooled or cached memory
    out again (holding it made mpi:// alternate between two 16 MiB buffers, and
    the cache misses cost 4-12% of its bandwidth, docs/benchmarks.md)."""
    try:
        while True:
            header, buffers = await link.recv()
            await link.send(header, buffers)
            del header, buffers
    except PeerLost:
        pass
    finally:
        await link.close()


async def measure_link(link: Link, args: Args) -> list[dict[str, Any]]:
    """Ping-pong over ``link`` for every size (the peer runs :func:`echo`); with
    ``extra.gap_us``, both ends idle that long (untimed) before every round trip."""
    payload = alloc(max(args.sizes), args.device, 1)
    gap_s = float(args.extra.get("gap_us", 0)) * 1e-6

    async def start(size: int, reps: int) -> None:
        return None

    async def iteration(size: int) -> None:
        await link.send(b"", [payload[:size]])
        await link.recv()

    async def pause() -> None:
        await asyncio.sleep(gap_s)

    try:
        return await measure_async(
            args.sizes, args.budget, start, iteration, pause if gap_s > 0 else None
        )
    finally:
        await link.close()


async def _server(args: Args) -> None:
    async with await listen(args.extra["url"]) as listener:
        emit(ready=listener.address)
        link = await listener.accept()
    await echo(link)


async def _client(args: Args) -> None:
    assert args.address is not None
    link = await connect(args.address, timeout=30)
    emit(series=await measure_link(link, args))


async def _inproc(args: Args) -> None:
    """Both ends in this process, on this event loop (variant ``inproc``)."""
    async with await listen(args.extra["url"]) as listener:
        link = await connect(listener.address)
        server = asyncio.create_task(echo(await listener.accept()))
        try:
            emit(series=await measure_link(link, args))
        finally:
            await server  # ends with PeerLost once measure_link has closed its end


async def _rank(args: Args) -> None:
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        async with await listen("mpi://rank/0") as listener:
            link = await listener.accept()
        await echo(link)
    else:
        link = await connect("mpi://rank/0", timeout=30)
        emit(series=await measure_link(link, args))


def run(args: Args) -> None:
    if args.variant == "inproc":
        coro = _inproc(args)
    else:
        coro = {"server": _server, "client": _client, "rank": _rank}[args.role](args)
    run_loop(coro, args.extra.get("loop", "uvloop"))


if __name__ == "__main__":
    main(run)
