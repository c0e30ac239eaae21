"""Baselines over raw mpi4py, two ranks of one ``mpiexec -n 2`` job.

Variants:

``blocking``
    ``Send``/``Recv`` ping-pong on ``COMM_WORLD`` with preallocated buffers
    (what ``python -m mpi4py.bench pingpong`` measures).
``asyncio``
    ``Isend``/``Irecv`` on both ranks, completed by polling ``Test()`` from an
    event loop (``await asyncio.sleep(0)`` between polls; uvloop unless
    ``extra.loop`` says ``asyncio``) - the floor for an asyncio MPI transport.

Rank 0 measures and prints the JSON line; rank 1 echoes. Before each batch
rank 0 sends ``(size, reps)``; ``(0, 0)`` ends the run. With ``--device gpu``
the buffers are cupy arrays (needs a CUDA-aware MPI library).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from ..pingpong import emit, measure_async, measure_sync, run_loop
from ._common import Args, alloc, main, synchronize

CMD_TAG, DATA_TAG = 1, 2


def _blocking(comm: Any, args: Args, out: Any, back: Any) -> None:
    cmd = np.zeros(2, np.int64)
    if comm.Get_rank() == 1:
        while True:
            comm.Recv(cmd, source=0, tag=CMD_TAG)
            size, reps = int(cmd[0]), int(cmd[1])
            if reps == 0:
                return
            for _ in range(reps):
                comm.Recv(back[:size], source=0, tag=DATA_TAG)
                comm.Send(back[:size], dest=0, tag=DATA_TAG)

    def start(size: int, reps: int) -> None:
        comm.Send(np.array([size, reps], np.int64), dest=1, tag=CMD_TAG)

    def iteration(size: int) -> None:
        comm.Send(out[:size], dest=1, tag=DATA_TAG)
        comm.Recv(back[:size], source=1, tag=DATA_TAG)

    synchronize(args.device)
    series = measure_sync(args.sizes, args.budget, start, iteration)
    start(0, 0)
    emit(series=series)


async def _wait(req: Any) -> None:
    while not req.Test():  # noqa: ASYNC110 (polling MPI is the point of this baseline)
        await asyncio.sleep(0)


async def _polling(comm: Any, args: Args, out: Any, back: Any) -> list[dict[str, Any]] | None:
    cmd = np.zeros(2, np.int64)
    if comm.Get_rank() == 1:
        while True:
            await _wait(comm.Irecv(cmd, source=0, tag=CMD_TAG))
            size, reps = int(cmd[0]), int(cmd[1])
            if reps == 0:
                return None
            for _ in range(reps):
                await _wait(comm.Irecv(back[:size], source=0, tag=DATA_TAG))
                await _wait(comm.Isend(back[:size], dest=0, tag=DATA_TAG))

    async def start(size: int, reps: int) -> None:
        await _wait(comm.Isend(np.array([size, reps], np.int64), dest=1, tag=CMD_TAG))

    async def iteration(size: int) -> None:
        recv = comm.Irecv(back[:size], source=1, tag=DATA_TAG)
        await _wait(comm.Isend(out[:size], dest=1, tag=DATA_TAG))
        await _wait(recv)

    series = await measure_async(args.sizes, args.budget, start, iteration)
    await start(0, 0)
    return series


def run(args: Args) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_size() != 2:
        raise RuntimeError(f"raw mpi4py baseline needs exactly 2 ranks, got {comm.Get_size()}")
    biggest = max(args.sizes)
    out, back = alloc(biggest, args.device, 1), alloc(biggest, args.device)
    if args.variant == "blocking":
        _blocking(comm, args, out, back)
    else:
        series = run_loop(_polling(comm, args, out, back), args.extra.get("loop", "uvloop"))
        if series is not None:
            emit(series=series)
    comm.Barrier()


if __name__ == "__main__":
    main(run)
