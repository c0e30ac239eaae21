"""Baseline over raw ucxx (tag send/recv), server and client in two processes.

``ucxx.init(progress_mode=...)`` with ``extra.progress_mode`` (default
``polling``: measured fastest on small machines; ``thread`` costs ~10x in
latency here). The transports UCX may use come from the environment
(``UCX_TLS``; the driver sets ``tcp,sm,self`` unless the user set it).
Protocol: ``(size, reps)`` as two int64 before each batch, ``(0, 0)`` ends.
With ``--device gpu`` the buffers are cupy arrays.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from ..pingpong import emit, measure_async
from ._common import Args, alloc, main


async def _server(args: Args) -> None:
    import ucxx

    done = asyncio.Event()
    back = alloc(max(args.sizes), args.device)

    async def handler(ep: Any) -> None:
        cmd = np.zeros(2, np.int64)
        try:
            while True:
                await ep.recv(cmd)
                size, reps = int(cmd[0]), int(cmd[1])
                if reps == 0:
                    break
                for _ in range(reps):
                    await ep.recv(back[:size])
                    await ep.send(back[:size])
        finally:
            await ep.close()
            done.set()

    listener = ucxx.create_listener(handler, port=0)
    emit(ready=f"127.0.0.1:{listener.port}")
    try:
        async with asyncio.timeout(args.extra.get("server_timeout", 600)):
            await done.wait()
    finally:
        listener.close()


async def _client(args: Args) -> list[dict[str, Any]]:
    import ucxx

    assert args.address is not None
    host, port = args.address.rsplit(":", 1)
    ep = await ucxx.create_endpoint(host, int(port))
    out, back = alloc(max(args.sizes), args.device, 1), alloc(max(args.sizes), args.device)

    async def start(size: int, reps: int) -> None:
        await ep.send(np.array([size, reps], np.int64))

    async def iteration(size: int) -> None:
        await ep.send(out[:size])
        await ep.recv(back[:size])

    series = await measure_async(args.sizes, args.budget, start, iteration)
    await start(0, 0)
    await ep.close()
    return series


def run(args: Args) -> None:
    import ucxx

    ucxx.init(progress_mode=args.extra.get("progress_mode", "polling"))
    if args.role == "server":
        asyncio.run(_server(args))
    else:
        emit(series=asyncio.run(_client(args)))


if __name__ == "__main__":
    main(run)
