"""Peer-death and connect-timeout scenarios over ``mpi://`` (a script run under mpiexec).

    mpiexec -n 1 python tests/transports/mpi_peer.py server <port-file>
    mpiexec -n 1 python tests/transports/mpi_peer.py victim <port-file>
    mpiexec -n 1 python tests/transports/mpi_peer.py noserver <port-file>
    mpiexec -n 3 python tests/transports/mpi_peer.py multi

``server`` accepts one link, receives one message, then waits in ``recv`` while
the ``victim`` SIGKILLs itself; it prints JSON with the exception type, message
and the seconds until it came (also for the next ``send``). ``noserver``
connects to a port file nobody writes and prints the error. ``multi``: rank 0
accepts links from ranks 1 and 2, which exchange messages with it at the same
time; every side checks that nothing mixes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from actors.transports import Link, connect, listen
from tests.transports.mpi_checks import emit


def report(**fields: object) -> None:
    emit(fields)


async def _outcome(coro: object) -> dict[str, object]:
    start = time.monotonic()
    try:
        async with asyncio.timeout(20):
            await coro  # type: ignore[misc]
    except Exception as exc:
        return {
            "error": type(exc).__name__,
            "message": str(exc),
            "seconds": round(time.monotonic() - start, 3),
        }
    return {"error": None, "seconds": round(time.monotonic() - start, 3)}


async def server(url: str) -> None:
    async with await listen(url) as listener:
        link = await listener.accept()
        header, _ = await link.recv()
        assert header == b"hello"
        await link.send(b"die now")
        recv = await _outcome(link.recv())
        send = await _outcome(link.send(b"still there?"))
        report(recv=recv, send=send)
        await link.close()


async def victim(url: str) -> None:
    link = await connect(url, timeout=30)
    await link.send(b"hello")
    assert (await link.recv())[0] == b"die now"
    await asyncio.sleep(0.2)  # let the server enter recv
    os.kill(os.getpid(), signal.SIGKILL)


async def noserver(url: str) -> None:
    report(**await _outcome(connect(url, timeout=1.5)))


async def _talk(link: Link, me: int, other: int) -> None:
    async def sender() -> None:
        for i in range(200):
            await link.send(f"{me}:{i}".encode(), [np.full(1000 + i, me, np.uint8)])

    async def receiver() -> None:
        for i in range(200):
            header, bufs = await link.recv()
            assert header == f"{other}:{i}".encode(), (header, other, i)
            assert bufs[0].nbytes == 1000 + i and set(np.asarray(bufs[0]).tolist()) == {other}

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sender())
        tg.create_task(receiver())


async def multi() -> None:
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    if rank == 0:
        async with await listen("mpi://rank/0") as listener:
            links = [await listener.accept(), await listener.accept()]
            peers = []
            for link in links:  # learn which rank is behind each link
                header, _ = await link.recv()
                peers.append(int(header))
            assert sorted(peers) == [1, 2], peers
            async with asyncio.TaskGroup() as tg:
                for link, peer in zip(links, peers, strict=True):
                    tg.create_task(_talk(link, 0, peer))
            for link in links:
                await link.close()
    else:
        link = await connect("mpi://rank/0", timeout=30)
        await link.send(str(rank).encode())
        await _talk(link, rank, 0)
        await link.close()
    report(rank=rank, ok=True)


def main(argv: list[str]) -> None:
    if argv[0] == "multi":
        asyncio.run(multi())
        return
    url = f"mpi://port-file/{Path(argv[1]).absolute()}"
    asyncio.run({"server": server, "victim": victim, "noserver": noserver}[argv[0]](url))


if __name__ == "__main__":
    main(sys.argv[1:])
