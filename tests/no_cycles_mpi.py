"""mpi:// half of tests/test_no_cycles.py: ``mpiexec -n 2 python tests/no_cycles_mpi.py``.

Rank 0 sends one float64 array per size of ``SIZES``; rank 1 receives and
decodes each with the cycle collector disabled, drops it and checks with
:func:`tests.test_no_cycles.leaks` that the received memory was released. Rank 1
prints ``<size> released`` per size, or the problem, and exits 1 on any problem.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from actors.codecs import decode, encode
from actors.transports import connect, listen
from tests.test_no_cycles import SIZES, leaks, watch

URL = "mpi://rank/0"


async def send_side() -> bool:
    async with await listen(URL) as listener, await listener.accept() as link:
        for n in SIZES:
            await link.send(*encode(np.arange(n, dtype="f8")))
        await link.recv()  # rank 1 is done
    return True


async def receive_side() -> bool:
    ok = True
    async with await connect(URL, timeout=30) as link:
        gc.disable()
        for n in SIZES:
            received = decode(*await link.recv())
            good = received[-1] == n - 1
            watched = watch(received)
            del received
            await asyncio.sleep(0)
            problem = leaks(watched) if good else "wrong values"
            print(f"{n} released" if problem is None else f"{n}: {problem}", flush=True)
            ok &= problem is None
        gc.enable()
        await link.send(b"done", [])
    return ok


def main() -> int:
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    return 0 if asyncio.run(send_side() if rank == 0 else receive_side()) else 1


if __name__ == "__main__":
    sys.exit(main())
