"""Peer-death and connect-timeout scenarios over ``mpi://`` (a script run under mpiexec).

    mpiexec -n 1 python tests/transports/mpi_peer.py server <port-file>
    mpiexec -n 1 python tests/transports/mpi_peer.py victim <port-file>
    mpiexec -n 1 python tests/transports/mpi_peer.py noserver <port-file>
    mpiexec -n 3 python tests/transports/mpi_peer.py multi
    mpiexec -n 1 python tests/transports/mpi_peer.py echo <port-file>
    mpiexec -n 1 python tests/transports/mpi_peer.py hub <port-file> <port-file>
    mpiexec -n 2 python tests/transports/mpi_peer.py closers

``server`` accepts one link, receives one message, then waits in ``recv`` while
the ``victim`` SIGKILLs itself; it prints JSON with the exception type, message
and the seconds until it came (also for the next ``send``). ``noserver``
connects to a port file nobody writes and prints the error. ``multi``: rank 0
accepts links from ranks 1 and 2, which exchange messages with it at the same
time; every side checks that nothing mixes. ``hub`` connects to two ``echo``
listeners *at the same time* (as a controller with two port-file links does),
exchanges messages with both, and closes; it is the regression check of a
segmentation fault: two MPI ``Connect`` calls running at once in two threads.
``closers``: rank 0 closes its link first, rank 1 when its ``recv`` says so; rank
0 reports how its close-time drain ended and after how many seconds.
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

from actors.errors import PeerLost
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


async def echo(url: str) -> None:
    """Accept one link; send every message back until the peer closes."""
    async with await listen(url) as listener:
        link = await listener.accept()
        count = 0
        try:
            while True:
                header, bufs = await link.recv()
                await link.send(header, bufs)
                count += 1
        except PeerLost:
            pass
        await link.close()
    report(role="echo", echoed=count)


async def hub(urls: list[str]) -> None:
    """Connect to every url at once, then round trips on all links together."""
    links = await asyncio.gather(*(connect(url, timeout=30) for url in urls))

    async def talk(link: Link, k: int) -> None:
        for i in range(100):
            payload = np.full(100 + 1000 * i, k, np.uint8)
            await link.send(f"{k}:{i}".encode(), [payload, b"x" * 10])
            header, bufs = await link.recv()
            assert header == f"{k}:{i}".encode(), (header, k, i)
            assert np.array_equal(np.asarray(bufs[0]), payload) and bytes(bufs[1]) == b"x" * 10

    async with asyncio.TaskGroup() as tg:
        for k, link in enumerate(links):
            tg.create_task(talk(link, k))
    for link in links:
        await link.close()
    report(role="hub", links=len(links))


async def closers() -> None:
    from mpi4py import MPI

    from actors.transports.mpi import _drain

    if MPI.COMM_WORLD.Get_rank() == 1:
        link = await connect("mpi://rank/0", timeout=30)
        await link.send(b"ready")
        outcome = await _outcome(link.recv())
        await link.close()
        report(rank=1, recv=outcome)
        return
    async with await listen("mpi://rank/0") as listener:
        link = await listener.accept()
        assert (await link.recv())[0] == b"ready"
        start = time.monotonic()
        await link.close()
        drains = list(_drain._draining)
        done, _ = await asyncio.wait(drains, timeout=8) if drains else (set(), set())
        report(
            rank=0,
            drains=len(drains),
            ended=len(done),
            exceptions=[repr(t.exception()) for t in done if t.exception() is not None],
            left_for_exit=len(_drain._at_exit),
            seconds=round(time.monotonic() - start, 3),
        )


def main(argv: list[str]) -> None:
    whole_job = {"multi": multi, "closers": closers}.get(argv[0])  # every rank, no URL
    if whole_job is not None:
        asyncio.run(whole_job())
        return
    urls = [f"mpi://port-file/{Path(arg).absolute()}" for arg in argv[1:]]
    if argv[0] == "hub":
        asyncio.run(hub(urls))
        return
    url = urls[0]
    if argv[0] == "echo":
        asyncio.run(echo(url))
        return
    asyncio.run({"server": server, "victim": victim, "noserver": noserver}[argv[0]](url))


if __name__ == "__main__":
    main(sys.argv[1:])
