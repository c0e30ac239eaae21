"""One peer framework's workloads in a fresh process: ``python -m benchmarks.workers.peers NAME``.

Prints one JSON line: ``{"peer": NAME, "results": {...}}``, or ``{"peer": NAME,
"skipped": REASON}`` when the framework is not installed. Every peer runs the
same workloads through its framework's recommended API, the actor in a second
process (ours: a served ActorSystem in a child process forked after
``actors.preload``; Ray: an actor in a Ray worker; Dask: an actor on a
one-worker ``LocalCluster``; xoscar: an actor in the sub-pool of a one-process
actor pool):

Ours runs twice per transport: with the defaults, and with ``ACTORS_LOOP_SPIN_US=100``
("loop spin", the opt-in that keeps an idle event loop polling for 100 µs after traffic).

- ``startup_s``: from this process's start (before importing the framework)
  to the first reply from the actor in the other process (``--startup-only``:
  that figure alone, the actor then stopped);
- ``small_ask_per_s``: sequential asks of one small integer;
- ``outstanding_ask_per_s``: 1,000 asks outstanding at once, then all replies;
- ``tell_per_s``: 10,000 one-way messages, then one ask that follows them
  (the actor counts them; the count is checked);
- ``echo_64MiB_GBps``: a 64 MiB float64 array there and back, bandwidth
  ``size / (round trip / 2)`` as in the transports part;
- ``sum_back_64MiB_GBps``: the array there, its sum back: ``size / time``.

Each figure is the median of ``--repeat`` rounds after one warm-up round.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any framework import: the start-up clock

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

SMALL_ASKS = 2_000
#: ACTORS_LOOP_SPIN_US of our "loop spin" series
SPIN_US = 100.0
OUTSTANDING = 1_000
TELLS = 10_000
BIG = 64 << 20

Array = np.ndarray[Any, Any]


class Workloads:
    """The workloads' sizes and the figures they produce (one round each)."""

    def __init__(self, quick: bool, startup_only: bool = False) -> None:
        #: measure the start-up and stop (the part runs several such processes)
        self.startup_only = startup_only
        self.small = SMALL_ASKS // 10 if quick else SMALL_ASKS
        self.outstanding = OUTSTANDING
        self.tells = TELLS // 10 if quick else TELLS
        self.array = np.ones(BIG // 8, np.float64)
        self.expected_sum = float(self.array.size)

    def figures(self, elapsed: dict[str, float]) -> dict[str, float]:
        """Rates from one round's elapsed seconds (a workload not run is left out)."""
        work = {
            "small": self.small,
            "outstanding": self.outstanding,
            "tells": self.tells,
            "echo": 2 * BIG / 1e9,
            "sum": BIG / 1e9,
        }
        names = {
            "small": "small_ask_per_s",
            "outstanding": "outstanding_ask_per_s",
            "tells": "tell_per_s",
            "echo": "echo_64MiB_GBps",
            "sum": "sum_back_64MiB_GBps",
        }
        return {names[k]: work[k] / elapsed[k] for k in names if k in elapsed}


def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


# -- ours: hep-actors, a served ActorSystem in a child process ----------------------------


def _serve_ours(url: str, conn: Any, parents_end: Any) -> None:
    """The server process: serve an Echo actor, send its address, run until ``conn`` closes.

    ``parents_end`` is the parent's end of the pipe, which the fork copied: closed here
    first, else ``conn`` never reaches its end and the server outlives the client (the
    parent then waited out its 10 s join and killed it).
    """
    parents_end.close()
    from actors import Actor, ActorSystem

    class Echo(Actor):
        count = 0

        async def receive(self, message: Any) -> Any:
            kind, payload = message
            if kind == "echo":
                return payload
            if kind == "sum":
                return float(np.sum(payload))
            if kind == "tell":
                self.count += 1
                return None
            return self.count

    async def main() -> None:
        async with ActorSystem("peer-server") as system:
            system.spawn(Echo, name="echo")
            conn.send(await system.serve(url))
            with contextlib.suppress(EOFError):
                await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


def _ours(scheme: str, work: Workloads, repeat: int, spin_us: float = 0.0) -> dict[str, float]:
    """The server process is forked from this one (as Thespian's and multiprocessing's are).

    ``spin_us``: ``ACTORS_LOOP_SPIN_US`` of both processes (the opt-in that keeps an event
    loop awake after traffic; 0 = the default, off).
    """
    import actors

    actors.preload(scheme)  # before the fork, as docs/actors.md says for forked servers

    os.environ["ACTORS_LOOP_SPIN_US"] = str(spin_us)

    url = {"tcp": "tcp://127.0.0.1:0", "shm": "shm://"}[scheme]
    fork = multiprocessing.get_context("fork")
    mine, theirs = fork.Pipe()
    server = fork.Process(target=_serve_ours, args=(url, theirs, mine), daemon=True)
    server.start()
    theirs.close()
    try:
        address = mine.recv()
        figures = asyncio.run(_ours_client(address, work, repeat))
    finally:
        mine.close()
        server.join(10)
        if server.is_alive():
            server.kill()
            server.join()
    if server.exitcode != 0:
        raise RuntimeError(
            f"the {scheme}:// server process ended with exit code {server.exitcode} "
            "(-9: killed after 10 s, it did not stop when the client closed the pipe)"
        )
    return figures


async def _ours_client(address: str, work: Workloads, repeat: int) -> dict[str, float]:
    from actors import ActorSystem

    async with ActorSystem("peer-client") as system:
        ref = await system.remote(address, "echo", timeout=30)
        await ref.ask(("count", None), timeout=30)
        startup = time.perf_counter() - STARTED
        if work.startup_only:
            return {"startup_s": startup}

        async def one_round() -> dict[str, float]:
            elapsed = {}
            t = time.perf_counter()
            for i in range(work.small):
                await ref.ask(("echo", i), timeout=30)
            elapsed["small"] = time.perf_counter() - t
            t = time.perf_counter()
            await asyncio.gather(
                *(ref.ask(("echo", i), timeout=60) for i in range(work.outstanding))
            )
            elapsed["outstanding"] = time.perf_counter() - t
            before = await ref.ask(("count", None), timeout=30)
            t = time.perf_counter()
            for i in range(work.tells):
                await ref.tell(("tell", i))
            after = await ref.ask(("count", None), timeout=60)
            elapsed["tells"] = time.perf_counter() - t
            assert after - before == work.tells, f"{after - before} tells arrived"
            t = time.perf_counter()
            back = await ref.ask(("echo", work.array), timeout=60)
            elapsed["echo"] = time.perf_counter() - t
            assert back.nbytes == BIG
            del back
            t = time.perf_counter()
            total = await ref.ask(("sum", work.array), timeout=60)
            elapsed["sum"] = time.perf_counter() - t
            assert total == work.expected_sum
            return work.figures(elapsed)

        await one_round()  # warm-up
        rounds = [await one_round() for _ in range(repeat)]
    return {"startup_s": startup, **_medians(rounds)}


# -- Ray: an actor in a Ray worker process ------------------------------------------------


def _ray(work: Workloads, repeat: int) -> dict[str, float]:
    ray: Any = importlib.import_module("ray")  # Any: typed or not, installed or not

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        actor = ray.remote(_PlainEcho).remote()
        ray.get(actor.count.remote())
        startup = time.perf_counter() - STARTED
        if work.startup_only:
            return {"startup_s": startup}

        def one_round() -> dict[str, float]:
            elapsed = {}
            t = time.perf_counter()
            for i in range(work.small):
                ray.get(actor.echo.remote(i))
            elapsed["small"] = time.perf_counter() - t
            t = time.perf_counter()
            ray.get([actor.echo.remote(i) for i in range(work.outstanding)])
            elapsed["outstanding"] = time.perf_counter() - t
            before = ray.get(actor.count.remote())
            t = time.perf_counter()
            for i in range(work.tells):
                actor.tell.remote(i)
            after = ray.get(actor.count.remote())
            elapsed["tells"] = time.perf_counter() - t
            assert after - before == work.tells
            t = time.perf_counter()
            back = ray.get(actor.echo.remote(work.array))
            elapsed["echo"] = time.perf_counter() - t
            assert back.nbytes == BIG
            del back
            t = time.perf_counter()
            assert ray.get(actor.sum.remote(work.array)) == work.expected_sum
            elapsed["sum"] = time.perf_counter() - t
            return work.figures(elapsed)

        one_round()
        rounds = [one_round() for _ in range(repeat)]
        return {"startup_s": startup, **_medians(rounds)}
    finally:
        ray.shutdown()


# -- Dask distributed: an actor on a one-worker LocalCluster --------------------------------


class _PlainEcho:
    """The echo actor of the peers whose actors are plain classes (Ray, Dask)."""

    def __init__(self) -> None:
        self.n = 0

    def echo(self, x: Any) -> Any:
        return x

    def sum(self, x: Array) -> float:
        return float(np.sum(x))

    def tell(self, x: Any) -> None:
        self.n += 1

    def count(self) -> int:
        return self.n


def _dask(work: Workloads, repeat: int) -> dict[str, float]:
    dask: Any = importlib.import_module("distributed")

    cluster = dask.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, dask.Client(cluster) as client:
        actor = client.submit(_PlainEcho, actor=True).result()
        actor.count().result()
        startup = time.perf_counter() - STARTED
        if work.startup_only:
            return {"startup_s": startup}

        def one_round() -> dict[str, float]:
            elapsed = {}
            t = time.perf_counter()
            for i in range(work.small):
                actor.echo(i).result()
            elapsed["small"] = time.perf_counter() - t
            t = time.perf_counter()
            futures = [actor.echo(i) for i in range(work.outstanding)]
            for f in futures:
                f.result()
            elapsed["outstanding"] = time.perf_counter() - t
            before = actor.count().result()
            t = time.perf_counter()
            for i in range(work.tells):  # Dask actors have no one-way call: replies are dropped
                actor.tell(i)
            after = actor.count().result()
            elapsed["tells"] = time.perf_counter() - t
            assert after - before == work.tells
            t = time.perf_counter()
            back = actor.echo(work.array).result()
            elapsed["echo"] = time.perf_counter() - t
            assert back.nbytes == BIG
            del back
            t = time.perf_counter()
            assert actor.sum(work.array).result() == work.expected_sum
            elapsed["sum"] = time.perf_counter() - t
            return work.figures(elapsed)

        one_round()
        rounds = [one_round() for _ in range(repeat)]
        return {"startup_s": startup, **_medians(rounds)}


# -- xoscar: an actor in the sub-pool of a one-process actor pool ---------------------------


async def _xoscar(work: Workloads, repeat: int) -> dict[str, float]:
    xo: Any = importlib.import_module("xoscar")

    class Echo(xo.Actor):  # type: ignore[misc,unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        async def echo(self, x: Any) -> Any:
            return x

        async def sum(self, x: Array) -> float:
            return float(np.sum(x))

        async def tell(self, x: Any) -> None:
            self.n += 1

        async def count(self) -> int:
            return self.n

    pool = await xo.create_actor_pool("127.0.0.1", n_process=1)
    async with pool:
        actor = await xo.create_actor(
            Echo,
            uid="echo",
            address=pool.external_address,
            allocate_strategy=xo.allocate_strategy.RandomSubPool(),
        )
        await actor.count()
        startup = time.perf_counter() - STARTED
        if work.startup_only:
            return {"startup_s": startup}

        async def one_round() -> dict[str, float]:
            elapsed = {}
            t = time.perf_counter()
            for i in range(work.small):
                await actor.echo(i)
            elapsed["small"] = time.perf_counter() - t
            t = time.perf_counter()
            await asyncio.gather(*(actor.echo(i) for i in range(work.outstanding)))
            elapsed["outstanding"] = time.perf_counter() - t
            before = await actor.count()
            t = time.perf_counter()
            for i in range(work.tells):
                await actor.tell.tell(i)
            after = await actor.count()
            elapsed["tells"] = time.perf_counter() - t
            assert after - before == work.tells
            t = time.perf_counter()
            back = await actor.echo(work.array)
            elapsed["echo"] = time.perf_counter() - t
            assert back.nbytes == BIG
            del back
            t = time.perf_counter()
            assert await actor.sum(work.array) == work.expected_sum
            elapsed["sum"] = time.perf_counter() - t
            return work.figures(elapsed)

        await one_round()
        rounds = [await one_round() for _ in range(repeat)]
        return {"startup_s": startup, **_medians(rounds)}


# -- Thespian: an actor in a multiprocTCPBase actor system ---------------------------------

try:
    from thespian.actors import Actor as _ThespianActor
except ImportError:  # the peer is then reported as skipped
    _ThespianActor = object


class _ThespianEcho(_ThespianActor):  # type: ignore[misc,unused-ignore]
    n = 0

    def receiveMessage(self, message: Any, sender: Any) -> None:
        if not isinstance(message, tuple):
            return  # system messages
        kind, payload = message
        if kind == "echo":
            self.send(sender, payload)
        elif kind == "sum":
            self.send(sender, float(np.sum(payload)))
        elif kind == "tell":
            self.n += 1
        else:
            self.send(sender, self.n)


def _thespian(work: Workloads, repeat: int) -> dict[str, float]:
    from thespian.actors import ActorSystem

    system = ActorSystem("multiprocTCPBase")
    try:
        actor = system.createActor(_ThespianEcho)
        system.ask(actor, ("count", None), 30)
        startup = time.perf_counter() - STARTED
        if work.startup_only:
            return {"startup_s": startup}

        def one_round() -> dict[str, float]:
            elapsed = {}
            t = time.perf_counter()
            for i in range(work.small):
                system.ask(actor, ("echo", i), 30)
            elapsed["small"] = time.perf_counter() - t
            t = time.perf_counter()
            for i in range(work.outstanding):
                system.tell(actor, ("echo", i))
            for _ in range(work.outstanding):
                system.listen(30)
            elapsed["outstanding"] = time.perf_counter() - t
            before = system.ask(actor, ("count", None), 30)
            t = time.perf_counter()
            for i in range(work.tells):
                system.tell(actor, ("tell", i))
            after = system.ask(actor, ("count", None), 60)
            elapsed["tells"] = time.perf_counter() - t
            assert after - before == work.tells
            # 64 MiB: Thespian's ask gives None after its timeout (a ValueError on the
            # array inside its TCP transport), so these two workloads are not measured
            return work.figures(elapsed)

        one_round()
        rounds = [one_round() for _ in range(repeat)]
        return {"startup_s": startup, **_medians(rounds)}
    finally:
        system.shutdown()


#: peer name -> (module that must import, runner)
PEERS: dict[str, tuple[str, Callable[[Workloads, int], dict[str, float] | Awaitable[Any]]]] = {
    "hep-actors tcp": ("actors", lambda w, r: _ours("tcp", w, r)),
    "hep-actors shm": ("actors", lambda w, r: _ours("shm", w, r)),
    "hep-actors tcp, loop spin": ("actors", lambda w, r: _ours("tcp", w, r, SPIN_US)),
    "hep-actors shm, loop spin": ("actors", lambda w, r: _ours("shm", w, r, SPIN_US)),
    "ray": ("ray", _ray),
    "dask": ("distributed", _dask),
    "xoscar": ("xoscar", _xoscar),
    "thespian": ("thespian", _thespian),
}


def run_peer(name: str, quick: bool, repeat: int, startup_only: bool = False) -> dict[str, Any]:
    """One peer's figures (only ``startup_s`` with ``startup_only``), or a skip with the reason."""
    module, runner = PEERS[name]
    try:
        __import__(module)
    except ImportError as exc:
        return {
            "peer": name,
            "skipped": f"{module} is not installed ({exc}); pip install 'hep-actors[peers]'",
        }
    work = Workloads(quick, startup_only)
    result = runner(work, repeat)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return {"peer": name, "results": result}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.workers.peers")
    ap.add_argument("peer", choices=sorted(PEERS))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--startup-only", action="store_true", help="measure the start-up only")
    args = ap.parse_args(argv)
    print(json.dumps(run_peer(args.peer, args.quick, args.repeat, args.startup_only)), flush=True)


if __name__ == "__main__":
    main()
