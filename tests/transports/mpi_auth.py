"""The mutual secret handshake over ``mpi://`` side channels (a script run under mpiexec).

    mpiexec -n 2 python tests/transports/mpi_auth.py rank
    mpiexec -n 1 python tests/transports/mpi_auth.py server <port-file>
    mpiexec -n 1 python tests/transports/mpi_auth.py client <port-file>

The listener (rank 0, or ``server``) holds the secret ``right`` and accepts
exactly one link; the connector first tries a wrong and a missing secret (each
must raise AuthenticationError), then the right one, and both sides exchange
one message. Each side emits one JSON row with what it saw.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from actors.errors import AuthenticationError
from actors.transports import connect, listen
from tests.transports.mpi_checks import emit

SECRET = b"right"


async def serve(url: str) -> None:
    async with await listen(url, secret=SECRET) as listener:
        async with asyncio.timeout(60):
            link = await listener.accept()
            header, _ = await link.recv()
            await link.send(header + b" back")
            await link.close()
    emit({"side": "server", "got": header.decode()})


async def dial(url: str) -> None:
    refused = []
    for secret in (b"wrong", None):
        try:
            link = await connect(url, secret=secret, timeout=20)
        except AuthenticationError as exc:
            refused.append(str(exc))
        else:
            await link.close()
    link = await connect(url, secret=SECRET, timeout=20)
    await link.send(b"hello")
    header, _ = await link.recv()
    await link.close()
    emit({"side": "client", "refused": refused, "got": header.decode()})


def main() -> None:
    mode = sys.argv[1]
    if mode == "rank":
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:
            asyncio.run(serve("mpi://rank/0"))
        else:
            asyncio.run(dial("mpi://rank/0"))
        return
    url = f"mpi://port-file/{sys.argv[2]}"
    asyncio.run(serve(url) if mode == "server" else dial(url))


if __name__ == "__main__":
    main()
