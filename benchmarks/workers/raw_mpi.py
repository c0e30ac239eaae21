"""Baselines over raw mpi4py: two ranks of one job, or two jobs joined by a port.

Variants:

``blocking``
    ``Send``/``Recv`` ping-pong with preallocated buffers (what
    ``python -m mpi4py.bench pingpong`` measures).
``asyncio``
    ``Isend``/``Irecv`` on both sides, completed by polling ``Test()`` from an
    event loop (``await asyncio.sleep(0)`` between polls; uvloop unless
    ``extra.loop`` says ``asyncio``) - the floor for an asyncio MPI transport.

Roles (how the two sides meet):

``rank``
    two ranks of one ``mpiexec -n 2`` job, on ``COMM_WORLD``; rank 0 measures,
    rank 1 echoes.
``server`` / ``client``
    two separately started ``mpiexec -n 1`` jobs, launched like the
    ``mpi-portfile`` series of :mod:`benchmarks.workers.links`: the server
    opens a port (``MPI.Open_port``), writes its name to the file
    ``extra.portfile`` (atomically), prints ``{"ready": <that path>}`` and
    ``Accept``\\ s; the client reads the file and ``Connect``\\ s. The ping-pong
    runs on the resulting inter-communicator (the peer is remote rank 0); the
    client measures, the server echoes. This is the raw baseline for
    ``mpi://port-file``: whatever MPI does differently between two jobs than
    between two ranks of one job is in it too.

Before each batch the measuring side sends ``(size, reps)``; ``(0, 0)`` ends
the run. With ``--device gpu`` the buffers are cupy arrays (needs a CUDA-aware
MPI library).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..pingpong import emit, measure_async, measure_sync, run_loop
from ._common import Args, alloc, main, synchronize

CMD_TAG, DATA_TAG = 1, 2
PORT_WAIT_S = 30.0


def _blocking(comm: Any, peer: int, measures: bool, args: Args, out: Any, back: Any) -> None:
    cmd = np.zeros(2, np.int64)
    if not measures:
        while True:
            comm.Recv(cmd, source=peer, tag=CMD_TAG)
            size, reps = int(cmd[0]), int(cmd[1])
            if reps == 0:
                return
            for _ in range(reps):
                comm.Recv(back[:size], source=peer, tag=DATA_TAG)
                comm.Send(back[:size], dest=peer, tag=DATA_TAG)

    def start(size: int, reps: int) -> None:
        comm.Send(np.array([size, reps], np.int64), dest=peer, tag=CMD_TAG)

    def iteration(size: int) -> None:
        comm.Send(out[:size], dest=peer, tag=DATA_TAG)
        comm.Recv(back[:size], source=peer, tag=DATA_TAG)

    synchronize(args.device)
    series = measure_sync(args.sizes, args.budget, start, iteration)
    start(0, 0)
    emit(series=series)


async def _wait(req: Any) -> None:
    while not req.Test():  # noqa: ASYNC110 (polling MPI is the point of this baseline)
        await asyncio.sleep(0)


async def _polling(
    comm: Any, peer: int, measures: bool, args: Args, out: Any, back: Any
) -> list[dict[str, Any]] | None:
    cmd = np.zeros(2, np.int64)
    if not measures:
        while True:
            await _wait(comm.Irecv(cmd, source=peer, tag=CMD_TAG))
            size, reps = int(cmd[0]), int(cmd[1])
            if reps == 0:
                return None
            for _ in range(reps):
                await _wait(comm.Irecv(back[:size], source=peer, tag=DATA_TAG))
                await _wait(comm.Isend(back[:size], dest=peer, tag=DATA_TAG))

    async def start(size: int, reps: int) -> None:
        await _wait(comm.Isend(np.array([size, reps], np.int64), dest=peer, tag=CMD_TAG))

    async def iteration(size: int) -> None:
        recv = comm.Irecv(back[:size], source=peer, tag=DATA_TAG)
        await _wait(comm.Isend(out[:size], dest=peer, tag=DATA_TAG))
        await _wait(recv)

    series = await measure_async(args.sizes, args.budget, start, iteration)
    await start(0, 0)
    return series


def _accept(MPI: Any, path: Path) -> Any:
    """Server side: open a port, publish it in ``path``, accept one client."""
    port = MPI.Open_port()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(port + "\n")
    os.replace(tmp, path)
    emit(ready=str(path))
    try:
        return MPI.COMM_SELF.Accept(port)
    finally:
        MPI.Close_port(port)


def _connect(MPI: Any, path: str) -> Any:
    """Client side: wait for the port file, connect to the port named in it."""
    deadline = time.monotonic() + PORT_WAIT_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no port file {path} after {PORT_WAIT_S:.0f} s")
        time.sleep(0.01)
    port = Path(path).read_text().split("\n", 1)[0]
    return MPI.COMM_SELF.Connect(port)


def run(args: Args) -> None:
    from mpi4py import MPI

    if args.role == "rank":
        comm = MPI.COMM_WORLD
        if comm.Get_size() != 2:
            raise RuntimeError(f"raw mpi4py baseline needs exactly 2 ranks, got {comm.Get_size()}")
        measures, peer = comm.Get_rank() == 0, 1 - comm.Get_rank()
    elif args.role == "server":
        comm, measures, peer = _accept(MPI, Path(args.extra["portfile"])), False, 0
    else:
        assert args.address is not None
        comm, measures, peer = _connect(MPI, args.address), True, 0
    biggest = max(args.sizes)
    out, back = alloc(biggest, args.device, 1), alloc(biggest, args.device)
    if args.variant == "blocking":
        _blocking(comm, peer, measures, args, out, back)
    else:
        series = run_loop(
            _polling(comm, peer, measures, args, out, back), args.extra.get("loop", "uvloop")
        )
        if series is not None:
            emit(series=series)
    if args.role == "rank":
        comm.Barrier()
    else:
        comm.Disconnect()


if __name__ == "__main__":
    main(run)
