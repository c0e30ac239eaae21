"""Products through the whole path: encode -> link send -> recv -> decode, both ways.

Kinds (built identically on both sides; the SoA layout is registered at import):

``numpy``     a dict of 4 float32/int32 arrays, ~1 MiB in all
``soa``       a registered structure-of-arrays layout (``MuonSoA``), ~1 MiB of columns
``awkward``   a jagged ``awkward`` array of ~1 MiB (skipped without awkward)
``objects``   200 small plain-data records (msgpack only, no buffers)
``many``      one event of 100 products (small arrays and scalars)

For each kind the client times ``encode; send; recv; decode`` while the server
runs ``recv; decode; encode; send`` (a full receiver path). Beside it, in the
same processes, ``bare`` sends the same number of bytes as one buffer, so the
ratio products/bare is the cost of the codecs and of many small regions.
Variant = transport (``tcp``, ``shm``, ``ucx``, ``mpi-rank``), ``extra.url`` as
in :mod:`.links`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.codecs import decode, encode, register_layout
from actors.transports import Link, connect, listen

from ..pingpong import emit, measure_async, run_loop
from ._common import Args, main


@register_layout
@dataclass
class MuonSoA:
    """A CMS-like SoA product: one column per field."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray
    n: int


def make_products() -> dict[str, Any]:
    """The products by kind (deterministic)."""
    rng = np.random.default_rng(7)
    n = 1 << 16
    kinds: dict[str, Any] = {
        "numpy": {
            "x": rng.random(n, np.float32),
            "y": rng.random(n, np.float32),
            "z": rng.random(n, np.float32),
            "id": np.arange(n, dtype=np.int32),
        },
        "soa": MuonSoA(
            pt=rng.random(n, np.float32),
            eta=rng.random(n, np.float32),
            phi=rng.random(n, np.float32),
            charge=np.ones(n, np.int32),
            n=n,
        ),
        "objects": [
            {"run": 1, "lumi": i // 50, "event": i, "label": f"hlt_{i}", "weights": [0.5, 1.0, 2.0]}
            for i in range(200)
        ],
        "many": {
            f"product{i}": (np.full(64 + i, i, np.float32) if i % 2 else i * 1.5)
            for i in range(100)
        },
    }
    try:
        import awkward as ak
    except ImportError:
        return kinds
    counts = rng.integers(0, 8, 1 << 15)
    kinds["awkward"] = ak.unflatten(rng.random(int(counts.sum()), np.float32), counts)
    return kinds


def _nbytes(buffers: list[Any]) -> int:
    return sum(memoryview(b).nbytes for b in buffers)


async def echo(link: Link) -> None:
    """Decode and re-encode everything that arrives (``bare`` messages flagged b"B")."""
    from actors.errors import PeerLost

    try:
        while True:
            header, buffers = await link.recv()
            if header == b"B":
                await link.send(header, buffers)
            else:
                await link.send(*encode(decode(header, buffers)))
    except PeerLost:
        pass
    finally:
        await link.close()


async def measure(link: Link, args: Args) -> list[dict[str, Any]]:
    products = make_products()
    names = list(products)
    sizes = {
        name: _nbytes(encode(products[name])[1]) + len(encode(products[name])[0]) for name in names
    }
    bare = {name: np.ones(max(sizes[name], 1), np.uint8) for name in names}
    out = []
    for mode in ("products", "bare"):

        async def iteration(i: int, mode: str = mode) -> None:
            name = names[i]
            if mode == "bare":
                await link.send(b"B", [bare[name]])
                await link.recv()
            else:
                await link.send(*encode(products[name]))
                decode(*await link.recv())

        async def start(size: int, reps: int) -> None:
            return None

        for i, rec in enumerate(
            await measure_async(list(range(len(names))), args.budget, start, iteration)
        ):
            rec.update(product=names[i], mode=mode, size=sizes[names[i]])
            out.append(rec)
    await link.close()
    return out


async def _server(args: Args) -> None:
    async with await listen(args.extra["url"]) as listener:
        emit(ready=listener.address)
        link = await listener.accept()
    await echo(link)


async def _client(args: Args) -> None:
    assert args.address is not None
    emit(series=await measure(await connect(args.address, timeout=30), args))


async def _rank(args: Args) -> None:
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        async with await listen("mpi://rank/0") as listener:
            link = await listener.accept()
        await echo(link)
    else:
        emit(series=await measure(await connect("mpi://rank/0", timeout=30), args))


def run(args: Args) -> None:
    coro = {"server": _server, "client": _client, "rank": _rank}[args.role](args)
    run_loop(coro, args.extra.get("loop", "uvloop"))


if __name__ == "__main__":
    main(run)
