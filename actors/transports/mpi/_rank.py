"""``mpi://rank/N``: links between ranks of one ``mpiexec`` job (``COMM_WORLD``).

Setup of one link, connector rank C to listener rank L:

1. C opens a one-shot side listener (TCP) and sends a *hello* to L on
   ``COMM_WORLD`` with tag :data:`HELLO_TAG`: JSON with the side address and a
   random token. A hello sent before L listens waits in L's MPI queue, so
   connect may precede listen.
2. L's listener matches hellos from any source (one at a time), dials C's side
   listener, runs the mutual secret handshake there (L as listener, see
   ``_side.side_accept``), then sends ``{"token", "ok"}``.
3. Both call ``COMM_WORLD.Create_group`` on the group ``{C, L}`` (collective
   over these two ranks only; run in a worker thread) with tag
   ``GROUP_TAG + (L > C)``, so that the two links a pair of ranks may hold (each
   listening once) never share a creation. The new communicator is the link's.

A listener on rank L accepts one link per connecting rank at a time; a rank may
connect to the same listener again after closing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

from ...errors import AuthenticationError, ConfigError, PeerLost, ProtocolError
from .._base import Capabilities, Link, QueuedListener
from ._link import MPILink
from ._runtime import cuda_aware, load_mpi, poller
from ._side import (
    MAX_LINE,
    SideChannel,
    advertised,
    bind_host,
    dial,
    read_json,
    side_accept,
    side_connect,
    write_json,
)

__all__ = ["GROUP_TAG", "HELLO_TAG", "RankListener", "connect_rank", "parse_rank"]

log = logging.getLogger("actors.transports.mpi")

HELLO_TAG = 32711  # below the smallest TAG_UB MPI guarantees (32767)
GROUP_TAG = 32712
SETUP_TIMEOUT_S = 30.0


def parse_rank(rest: str, size: int) -> int:
    """Rank ``N`` of ``mpi://rank/N``; ConfigError if malformed or out of range."""
    try:
        rank = int(rest)
    except ValueError:
        raise ConfigError(f"mpi://rank/{rest}: expected an integer rank") from None
    if not 0 <= rank < size:
        raise ConfigError(f"mpi://rank/{rank}: COMM_WORLD has ranks 0..{size - 1}")
    return rank


async def _pair_comm(mpi: Any, listener: int, connector: int, timeout: float) -> Any:
    """The private two-rank communicator of one link (blocking call in a thread)."""
    world = mpi.COMM_WORLD
    group = world.Get_group().Incl(sorted({listener, connector}))
    tag = GROUP_TAG + (1 if listener > connector else 0)
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(world.Create_group, group, tag)
    finally:
        group.Free()


def _remote_index(me: int, other: int) -> int:
    return 0 if other < me else (1 if other > me else 0)


class RankListener(QueuedListener):
    """Accepts links from other ranks at ``mpi://rank/<this rank>`` (queue and
    ``accept`` from :class:`~actors.transports._base.QueuedListener`)."""

    def __init__(self, caps: Capabilities, secret: bytes | None, max_message_size: int) -> None:
        super().__init__()
        self._mpi = load_mpi()
        self._rank = self._mpi.COMM_WORLD.Get_rank()
        self.address = f"mpi://rank/{self._rank}"
        self._caps = caps
        self._secret = secret
        self._max = max_message_size
        self._task = asyncio.get_running_loop().create_task(self._serve(), name=self.address)

    async def close(self) -> None:
        """Stop serving hellos, close the links nobody accepted. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._task.cancel()
        # gather: the task's own CancelledError is collected, a cancellation of
        # this close() still propagates
        await asyncio.gather(self._task, return_exceptions=True)
        await self._close_queue()

    async def _serve(self) -> None:
        world = self._mpi.COMM_WORLD
        while True:
            fut = poller().probe(world, self._mpi.ANY_SOURCE, HELLO_TAG)
            try:
                msg, count, source = await fut
            finally:
                fut.cancel()
            data = bytearray(count)
            msg.Recv([data, self._mpi.BYTE])
            try:
                link = await self._admit(bytes(data), source)
            except (OSError, TimeoutError, PeerLost, ProtocolError, ValueError) as exc:
                log.warning("%s: dropped hello from rank %d: %s", self.address, source, exc)
                continue
            if link is not None:
                self._deliver(link)

    async def _admit(self, data: bytes, source: int) -> Link | None:
        what = f"{self.address}: hello from rank {source}"
        if len(data) > MAX_LINE:
            raise ProtocolError(f"{what} is {len(data)} bytes")
        hello = json.loads(data)
        token = str(hello["token"])
        reader, writer = await dial(hello["side"], timeout=5.0)
        try:
            await side_accept(reader, writer, self._secret, what)
        except AuthenticationError as exc:
            writer.close()
            log.warning("%s", exc)
            return None
        except BaseException:
            writer.close()
            raise
        await write_json(writer, {"token": token, "ok": True})
        try:
            comm = await _pair_comm(self._mpi, self._rank, source, SETUP_TIMEOUT_S)
        except BaseException:
            writer.close()
            raise
        peer = f"rank {source} (connected to {self.address})"
        return _make_link(self, comm, _remote_index(self._rank, source), peer, reader, writer)


def _make_link(
    owner: RankListener | None,
    comm: Any,
    remote: int,
    peer: str,
    reader: asyncio.StreamReader,
    writer: Any,
    *,
    caps: Capabilities | None = None,
    max_message_size: int = 0,
) -> MPILink:
    if owner is not None:
        caps, max_message_size = owner._caps, owner._max
    assert caps is not None
    link = MPILink(load_mpi(), poller(), comm, remote, peer, caps, max_message_size, cuda_aware())
    link.attach(SideChannel(reader, writer, peer, link.on_side_event, link.on_side_message))
    return link


async def connect_rank(
    rest: str, caps: Capabilities, secret: bytes | None, timeout: float, max_message_size: int
) -> Link:
    """Connect to the listener on rank ``rest``; PeerLost if none accepts in time."""
    mpi = load_mpi()
    world = mpi.COMM_WORLD
    me = world.Get_rank()
    target = parse_rank(rest, world.Get_size())
    url = f"mpi://rank/{target}"
    if target == me:
        raise ConfigError(f"{url} is this process's own rank; use inproc:// within a process")
    token = secrets.token_hex(16)
    answered: asyncio.Future[tuple[asyncio.StreamReader, Any, dict[str, Any]]]
    answered = asyncio.get_running_loop().create_future()

    async def on_side(reader: asyncio.StreamReader, writer: Any) -> None:
        try:
            await side_connect(reader, writer, secret, f"{url} side channel")
            async with asyncio.timeout(5.0):
                reply = await read_json(reader, f"{url} side channel")
        except AuthenticationError as exc:
            writer.close()
            if not answered.done():
                answered.set_exception(exc)
            return
        except (OSError, TimeoutError, PeerLost, ProtocolError):
            writer.close()
            return
        if reply.get("token") != token or answered.done():
            writer.close()  # a stranger, or a late duplicate
            return
        answered.set_result((reader, writer, reply))

    server = await asyncio.start_server(on_side, bind_host(), 0, limit=MAX_LINE)
    try:
        port = server.sockets[0].getsockname()[1]
        hello = json.dumps({"token": token, "side": advertised(port)})
        data = hello.encode()
        poller().submit([world.Isend([data, mpi.BYTE], target, HELLO_TAG)], data)
        try:
            async with asyncio.timeout(timeout):
                reader, writer, reply = await answered
        except TimeoutError:
            raise PeerLost(
                f"nobody accepted at {url} within {timeout:g} s (is rank {target} listening?)"
            ) from None
    finally:
        server.close()
    if not reply.get("ok"):
        writer.close()
        raise AuthenticationError(f"{url}: {reply.get('error', 'refused')}")
    try:
        comm = await _pair_comm(mpi, target, me, SETUP_TIMEOUT_S)
    except BaseException:
        writer.close()
        raise
    return _make_link(
        None,
        comm,
        _remote_index(me, target),
        url,
        reader,
        writer,
        caps=caps,
        max_message_size=max_message_size,
    )
