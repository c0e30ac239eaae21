"""Run the two-sided link checks over ``mpi://`` (a script, started under mpiexec).

Rank mode (both sides in one job)::

    mpiexec -n 2 python tests/transports/mpi_conformance.py rank

Port-file mode (each side under its own mpiexec)::

    mpiexec -n 1 python tests/transports/mpi_conformance.py server <port-file>
    mpiexec -n 1 python tests/transports/mpi_conformance.py client <port-file>

Each check gets a fresh link. Every side reports one JSON row per check,
``{"side", "check", "ok", "error"}`` (see ``mpi_checks.emit``: a file per process
under ``$MPI_RESULTS_DIR``, else stdout), and exits 1 if any check failed. The checks
are the shipped conformance suite (:mod:`actors.transports.testing`) and the
two MPI-specific ones of tests/transports/mpi_checks.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from actors.transports import Link, connect, listen
from actors.transports import testing as conformance
from tests.transports import mpi_checks

CHECK_TIMEOUT_S = 60.0


def _normalise(entry: Any) -> tuple[str, Any, Any]:
    if len(entry) == 3:
        return str(entry[0]), entry[1], entry[2]
    server, client = entry
    return getattr(server, "__name__", "check"), server, client


def all_checks() -> list[tuple[str, Any, Any]]:
    """The shipped conformance suite, then the two MPI-specific checks."""
    shared = [(f"shared:{n}", s, c) for n, s, c in map(_normalise, conformance.CHECKS)]
    return shared + [_normalise(c) for c in mpi_checks.CHECKS]


async def _run_side(side: str, name: str, fn: Any, link: Link) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await fn(link)
    except Exception as exc:  # report every failure, go on with the next check
        error = f"{exc!r}\n{traceback.format_exc()}"
        ok = False
    else:
        error, ok = "", True
    finally:
        await link.close()
    mpi_checks.emit({"side": side, "check": name, "ok": ok, "error": error})
    return ok


async def serve(url: str) -> bool:
    ok = True
    async with await listen(url, max_message_size=mpi_checks.MAX_MESSAGE_SIZE) as listener:
        for name, server_side, _ in all_checks():
            link = await listener.accept()
            ok &= await _run_side("server", name, server_side, link)
    return ok


async def client(url: str) -> bool:
    ok = True
    for name, _, client_side in all_checks():
        link = await connect(url, timeout=30, max_message_size=mpi_checks.MAX_MESSAGE_SIZE)
        ok &= await _run_side("client", name, client_side, link)
    return ok


async def main(argv: list[str]) -> bool:
    """Run the side(s) named by ``argv`` (see the module docstring)."""
    if argv[0] == "rank":
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
        return await (serve("mpi://rank/0") if rank == 0 else client("mpi://rank/0"))
    url = f"mpi://port-file/{argv[1]}"
    return await (serve(url) if argv[0] == "server" else client(url))


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) > 1:
        args[1] = os.path.abspath(args[1])
    sys.exit(0 if asyncio.run(main(args)) else 1)
