"""No reference cycle on any per-message path: received memory is freed on drop.

With the cycle collector disabled, a received array is sent through a link and
the codec, through a remote actor ask/tell, and through the distributed
Sender -> Receiver transfer; once the receiving side drops the decoded object
(and the event loop has run once), every object between the decoded array and
the transport's allocation must be gone. The allocation itself is either gone
too or held by the transport's pool (tcp's receive cache, a mapped shm
segment), never by garbage: a ``gc.collect()`` afterwards must free nothing of
what was watched. ``mpi://`` runs the link check under mpiexec
(tests/no_cycles_mpi.py).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from actors import Actor, ActorSystem
from actors.codecs import decode, encode
from actors.framework import Analyzer, Concurrency, Declarer, Event, Process, Producer
from actors.transports import connect, listen
from tests.transports import schemes

REPO = Path(__file__).resolve().parents[1]
#: small (inline in most transports) and large (out of line: caches, segments, frames)
SIZES = (16, 1 << 18)

Watched = list[tuple[str, "weakref.ref[Any]"]]


@pytest.fixture(autouse=True)
def _no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def memory_chain(obj: Any) -> list[Any]:
    """The objects under ``obj`` that keep its memory alive (``.base`` / ``memoryview.obj``)."""
    chain: list[Any] = []
    seen: set[int] = {id(obj)}
    under = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
    while under is not None and id(under) not in seen:
        seen.add(id(under))
        chain.append(under)
        under = under.obj if isinstance(under, memoryview) else getattr(under, "base", None)
    return chain


def watch(obj: Any) -> Watched:
    """Weak references to every weak-referenceable object under ``obj``."""
    watched: Watched = []
    for under in memory_chain(obj):
        try:
            watched.append((type(under).__name__, weakref.ref(under)))
        except TypeError:  # bytes, bytearray, mmap... hold no reference themselves
            continue
    return watched


def leaks(watched: Watched) -> str | None:
    """What was not released (None when all is well); call after dropping the object.

    Everything but the last watched object must be gone; the last one (the
    transport's allocation) may live on in a pool. Then a collection must free
    nothing: anything it frees sat in a reference cycle.
    """
    alive = [ref() is not None for _, ref in watched]
    names = [name for name, _ in watched]
    if any(alive[:-1]):
        return f"still alive after drop: {names} -> {alive}"
    gc.collect()
    after = [ref() is not None for _, ref in watched]
    if after != alive:
        return f"only the cycle collector freed: {names} -> {alive} then {after}"
    return None


def _array(n: int) -> np.ndarray[Any, Any]:
    return np.arange(n, dtype="f8")


# ---------------------------------------------------------------- link + codec


@pytest.mark.parametrize("scheme", schemes.params())
@pytest.mark.parametrize("n", SIZES)
async def test_link_and_codec_release_received_memory(scheme: str, n: int) -> None:
    schemes.require(scheme)
    async with (
        await listen(schemes.LISTEN_URLS[scheme]()) as listener,
        await connect(listener.address, timeout=10) as client,
        await listener.accept() as server,
    ):
        header, buffers = encode(_array(n))
        await client.send(header, buffers)
        del header, buffers  # inproc hands over the sender's own memory
        received = decode(*await server.recv())
        assert received[-1] == n - 1
        watched = watch(received)
        del received
        await asyncio.sleep(0)
        if n > 1000:
            assert watched, f"{scheme}: nothing under a received array to watch"
        assert leaks(watched) is None


# ---------------------------------------------------------------- actors


class Probe(Actor):
    """Watches what it is told; ``"leaks"`` answers :func:`leaks` of the last one."""

    def __init__(self) -> None:
        self.watched: Watched = []

    async def receive(self, message: Any) -> Any:
        if isinstance(message, str):
            await asyncio.sleep(0)
            return leaks(self.watched)
        self.watched = watch(message)
        return None


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


@pytest.mark.parametrize("scheme", schemes.params())
@pytest.mark.parametrize("n", SIZES)
async def test_remote_ask_and_tell_release_received_memory(scheme: str, n: int) -> None:
    schemes.require(scheme)
    async with ActorSystem("server") as server, ActorSystem("client") as client:
        address = await server.serve(schemes.LISTEN_URLS[scheme]())
        server.spawn(Probe, name="probe")
        server.spawn(Echo, name="echo")
        probe = await client.remote(address, "probe")
        echo = await client.remote(address, "echo")
        await probe.tell(_array(n))
        assert await probe.ask("leaks", timeout=10) is None  # the server side of a tell
        await probe.ask(_array(n), timeout=10)
        assert await probe.ask("leaks", timeout=10) is None  # the server side of an ask
        back = await echo.ask(_array(n), timeout=10)
        assert back[-1] == n - 1
        watched = watch(back)
        del back
        await asyncio.sleep(0)
        assert leaks(watched) is None  # the client side: the reply


class Measure(Actor):
    """An async receive: with ``concurrency`` its messages run in the dispatcher's workers."""

    async def receive(self, message: Any) -> Any:
        await asyncio.sleep(0)
        return len(message)


async def test_actor_worker_keeps_nothing_of_its_last_message() -> None:
    """A worker parked after its call, then cancelled at stop, holds nothing of that call.

    The distributed Receiver runs in such workers: the parked one's frame kept its last
    event, in a cycle (task -> CancelledError -> traceback -> frame -> task) once stopped.
    """
    async with ActorSystem("workers") as system:
        measure = system.spawn(Measure, name="measure", concurrency=2)
        message = _array(16)
        watched = weakref.ref(message)
        assert await measure.ask(message, timeout=10) == 16
        del message
        await asyncio.sleep(0)
        assert watched() is None  # the worker is parked, waiting for the next call
        message = _array(16)
        watched = weakref.ref(message)
        await measure.tell(message)
        del message
    assert watched() is None  # stopped: the parked worker was cancelled


# ---------------------------------------------------------------- distributed transfer

_SEEN: list[Watched] = []
D = "actors.distributed"
HERE = "tests.test_no_cycles"


class Big(Producer):
    """Puts a float64 array of ``n`` values as ``hits``."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, n: int) -> None:
        self.n = n

    def declare(self, d: Declarer) -> None:
        d.produces("numpy.ndarray", "hits")

    def produce(self, event: Event) -> None:
        event.put(_array(self.n), "hits")


class Keep(Analyzer):
    """Watches the received ``hits`` of every event (into ``_SEEN``)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def declare(self, d: Declarer) -> None:
        self.hits = d.consumes("hits")

    def analyze(self, event: Event) -> None:
        _SEEN.append(watch(event.get(self.hits)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _url(scheme: str) -> str:
    if scheme == "tcp":
        return f"tcp://127.0.0.1:{_free_port()}"
    return f"{scheme}://nocycles-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("scheme", schemes.params(("inproc", "tcp", "shm")))
@pytest.mark.parametrize("n", SIZES)
async def test_distributed_transfer_releases_received_products(scheme: str, n: int) -> None:
    from actors.distributed import LinkEndpoint, LinkTable
    from tests.distributed.helpers import run_all

    schemes.require(scheme)
    _SEEN.clear()
    url = _url(scheme)
    local = Process("LOCAL")
    local.set_source("actors.framework.sources.synthetic:SyntheticSource", events_per_lumi=20)
    local.add_module("offload", f"{D}:Controller", link="offload")
    local.add_module("big", f"{HERE}:Big", n=n)
    local.add_module("tosend", f"{D}:Sender", upstream="offload", instance=1, products=["big"])
    local.add_path("p", ["offload", "big", "tosend"])
    remote = Process("REMOTE")
    remote.set_source(f"{D}:FollowerSource", link="offload")
    remote.add_module(
        "hits",
        f"{D}:Receiver",
        upstream="source",
        instance=1,
        products=[{"type": "numpy.ndarray", "label": "big", "instance": "hits"}],
    )
    remote.add_module("keep", f"{HERE}:Keep")
    remote.add_path("p", ["hits", "keep"])
    tables = {
        "local": LinkTable({"offload": LinkEndpoint("offload", "client", url, peer="remote")}),
        "remote": LinkTable({"offload": LinkEndpoint("offload", "server", url, peer="local")}),
    }
    results = await run_all(
        {
            "local": (local, tables["local"], {"streams": 2}),
            "remote": (remote, tables["remote"], {"streams": 2}),
        }
    )
    for result in results.values():
        if isinstance(result, BaseException):
            raise result
    await asyncio.sleep(0)
    assert len(_SEEN) == 20
    if n > 1000:
        assert all(_SEEN), f"{scheme}: nothing under a received product to watch"
    # With gc disabled, every event's products were released when the job dropped them (the
    # last event a Receiver worker ran too: a parked worker keeps nothing of its last call).
    problems = [p for p in map(leaks, _SEEN) if p is not None]
    assert not problems, problems[:3]


# ---------------------------------------------------------------- mpi


@pytest.mark.mpi
def test_mpi_link_and_codec_release_received_memory() -> None:
    pytest.importorskip("mpi4py", reason="mpi4py not installed (extra [mpi])")
    mpiexec = Path(sys.executable).with_name("mpiexec")
    if not mpiexec.exists():
        pytest.skip("no mpiexec next to the interpreter")
    proc = subprocess.Popen(
        [str(mpiexec), "-n", "2", sys.executable, str(REPO / "tests" / "no_cycles_mpi.py")],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec did not finish in 90 s\n{out}\n{err[-3000:]}")
    assert proc.returncode == 0, f"{out}\n{err[-3000:]}"
    assert out.count("released") == len(SIZES), out
