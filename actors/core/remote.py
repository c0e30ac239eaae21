"""Location transparency: serving a system's actors on a link, and remote refs.

``await system.serve(url)`` listens with :func:`actors.transports.listen`;
every accepted link gets a reader task (requests in) and a writer task
(replies out). ``await system.remote(url, name)`` connects once per URL and
returns a :class:`RemoteActorRef` whose ``tell``/``ask``/``stop`` become
frames on that link (see :mod:`actors.core._wire` for the frame layout); payloads
and replies are encoded by :mod:`actors.codecs`, so arrays travel as raw
buffers.

Backpressure: frames leave through a bounded per-link outbox, and the serving
side's reader awaits mailbox space before it reads the next frame; so a full
remote mailbox stalls the reader, the transport's buffers fill, and the
sender's ``tell`` waits. One full mailbox thus slows every request on that
link (one link per pair of systems and direction); asks in flight on one
served link are bounded by ``max_inflight``.

Failures: a lost link (peer died, closed, sent garbage) fails the asks
pending on it with :class:`~actors.PeerLost` at once, and later
tells/asks/stops through refs on it raise ``PeerLost``; call
``system.remote`` again to reconnect. Tells still queued in the outbox when
the link dies are lost (logged). The ask timeout covers the whole round trip.
A tell to an actor that does not exist (any more) on the serving side makes
later calls through that ref raise :class:`~actors.ActorDead`.

Stall reports: every hub registers with :mod:`actors.core.remote_stall`;
per link session it reports the peer, the requests pending with their age,
the outbox depth and whether the reader and writer are alive (calling side
here, serving side in :mod:`actors.core._serving`).

Loop rules: everything here runs on the owning system's event loop.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

from ..codecs import decode, encode
from ..errors import ActorDead, AskTimeout, CodecError, PeerLost, ProtocolError, TransportError
from ..settings import ASK_SPIN_US
from ..transports import Link, Listener, connect, listen, loop_spinner
from ..transports.session import Session
from . import _wire, remote_stall
from ._deadlines import Deadlines
from ._serving import MAX_INFLIGHT, ServedLink
from .ref import ActorRef

if TYPE_CHECKING:
    from .system import ActorSystem

__all__ = ["RemoteActorRef", "RemoteHub"]

log = logging.getLogger("actors.core.remote")

#: Frames waiting to be sent on one client link before tell/ask wait.
OUTBOX_SIZE = 64

#: A pending request: target, reply future, frame kind, time.monotonic() at the start.
_Pending = tuple[str, "asyncio.Future[Any]", int, float]


def _expire(url: str, pending: dict[int, _Pending], corr: int, timeout: float) -> None:
    """Fail a pending request past its deadline (not a method: no cycle through the link)."""
    target, fut, _kind, _started = pending[corr]
    if not fut.done():
        fut.set_exception(
            AskTimeout(f"no reply from actor {target!r} at {url} within {timeout:g} s")
        )


class _ClientLink:
    """The calling side of one link to a serving system."""

    def __init__(self, url: str, link: Link) -> None:
        self.url = url
        self.link = link
        self.lost: BaseException | None = None
        self.dead_targets: set[str] = set()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        #: the pending requests' timeouts, behind one timer of the loop
        self._deadlines = Deadlines(self._pending, functools.partial(_expire, url, self._pending))
        self.session = Session(link, f"actor link to {url}", outbox_size=OUTBOX_SIZE)
        #: keeps the loop awake while a reply is due (ACTORS_ASK_SPIN_US)
        self._spinner = loop_spinner(asyncio.get_running_loop(), ASK_SPIN_US)
        self.session.start(self._on_frame, self._lose)

    def _lose(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
            log.info("link to %s lost: %s", self.url, exc)
        self._deadlines.clear()
        pending = list(self._pending.values())
        self._pending.clear()  # (shared with the deadlines)
        for target, fut, _kind, _started in pending:
            if not fut.done():
                fut.set_exception(self._lost_error(target))

    async def _enqueue(
        self,
        frame: bytes,
        buffers: list[Any],
        target: str,
        abandon: asyncio.Future[Any] | None = None,
    ) -> bool:
        """Queue a frame; False when ``abandon`` ended the wait for room first."""
        try:
            return await self.session.put(frame, buffers, abandon=abandon)
        except TransportError as exc:  # lost (or closed) before or while we waited for room
            lost = exc
        self._lose(lost)
        raise self._lost_error(target)

    def _lost_error(self, target: str) -> PeerLost:
        err = PeerLost(f"link to {self.url} lost (actor {target!r}): {self.lost}")
        err.__cause__ = self.lost
        return err

    def check(self, target: str) -> None:
        if self.lost is not None:
            raise self._lost_error(target)
        if target in self.dead_targets:
            raise ActorDead(f"actor {target!r} at {self.url} is stopped")

    def _on_frame(self, header: bytes, buffers: list[Any]) -> None:
        kind, target, corr, body = _wire.unpack_header(header, self.url)
        if kind == _wire.ERROR and corr == 0:
            self.dead_targets.add(target)
            return
        if kind not in (_wire.REPLY, _wire.ERROR):  # aborts the link: every ask fails
            raise ProtocolError(f"unexpected frame kind {kind} from server {self.url}")
        entry = self._pending.pop(corr, None)
        if entry is None or entry[1].done():
            return  # the asker timed out or was cancelled
        fut = entry[1]
        self._spinner.kick()  # the asker may ask again at once
        if kind == _wire.REPLY:
            try:
                fut.set_result(decode(body, buffers))
            except CodecError as exc:
                fut.set_exception(exc)
        else:
            fut.set_exception(_wire.exception_from_wire(body, f"actor {target!r} at {self.url}"))

    async def tell(self, target: str, message: Any) -> None:
        self.check(target)
        body, buffers = encode(message)
        await self._enqueue(_wire.pack_header(_wire.TELL, target, 0, body), buffers, target)

    async def request(self, kind: int, target: str, message: Any, timeout: float | None) -> Any:
        """Send a request frame and await its reply; the timeout covers the round trip.

        Raises AskTimeout past ``timeout`` (waiting for room in the outbox
        included), PeerLost when the link is lost, the remote error otherwise.
        """
        self.check(target)
        body, buffers = encode(message)
        corr = next(self._ids)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[corr] = (target, fut, kind, time.monotonic())
        if timeout is not None:
            self._deadlines.add(loop, corr, timeout)
        header = _wire.pack_header(kind, target, corr, body)
        try:
            if await self._enqueue(header, buffers, target, fut):
                self._spinner.kick()
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                fut.exception()  # expired as the asker was cancelled: nothing to log
            raise
        finally:
            self._pending.pop(corr, None)

    async def close(self) -> None:
        await self.session.close()
        self._lose(PeerLost(f"link to {self.url} closed"))

    def describe_stall(self, system: str) -> list[str]:
        """This link's line and one per pending request, oldest first (stall report)."""
        pending = sorted(self._pending.items(), key=lambda item: item[1][3])
        head = (
            f"system {system!r} calls {self.url} (peer {self.link.peer}): "
            f"{len(pending)} request(s) pending, "
            + remote_stall.session_state(self.session, self.lost)
        )
        requests = [
            (corr, _wire.KIND_NAMES.get(kind, str(kind)), target, started)
            for corr, (target, _fut, kind, started) in pending
        ]
        return [head, *remote_stall.request_lines(requests, "pending", time.monotonic())]


class RemoteActorRef(ActorRef):
    """A ref to an actor of another system, reached through a link.

    Same contract as :class:`~actors.ActorRef`, plus :class:`~actors.PeerLost`
    when the link is lost. Exceptions raised by the remote ``receive`` come
    back as their own type when builtin or from :mod:`actors.errors`, else as
    :class:`~actors.RemoteError`; the remote traceback is in a note.
    """

    def __init__(self, client: _ClientLink, name: str) -> None:
        self._client = client
        self.name = name

    @property
    def is_alive(self) -> bool:
        return self._client.lost is None and self.name not in self._client.dead_targets

    @property
    def queued(self) -> int:
        return self._client.session.queued

    async def tell(self, message: Any) -> None:
        await self._client.tell(self.name, message)

    async def ask(self, message: Any, timeout: float | None = None) -> Any:
        return await self._client.request(_wire.ASK, self.name, message, timeout)

    async def stop(self) -> None:
        if self.name in self._client.dead_targets:
            return
        await self._client.request(_wire.STOP, self.name, None, None)
        self._client.dead_targets.add(self.name)

    def __repr__(self) -> str:
        return f"<RemoteActorRef {self.name!r} at {self._client.url}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RemoteActorRef)
            and other._client is self._client
            and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((id(self._client), self.name))


class RemoteHub:
    """A system's listeners, served links and client links (made on first use)."""

    def __init__(self, system: ActorSystem, max_inflight: int = MAX_INFLIGHT) -> None:
        self.system = system
        self.max_inflight = max_inflight
        self._listeners: list[tuple[Listener, asyncio.Task[None]]] = []
        self._served: dict[ServedLink, asyncio.Task[None]] = {}
        self._clients: dict[str, _ClientLink] = {}
        remote_stall.track(self)

    async def serve(self, url: str, *, secret: bytes | str | None) -> str:
        listener = await listen(url, secret=secret)
        task = asyncio.get_running_loop().create_task(
            self._accept(listener), name=f"actor listener {listener.address}"
        )
        self._listeners.append((listener, task))
        log.info("system %r serves its actors at %s", self.system.name, listener.address)
        return listener.address

    async def _accept(self, listener: Listener) -> None:
        async for link in listener:
            served = ServedLink(self.system, link, self.max_inflight)
            task = asyncio.get_running_loop().create_task(
                served.run(), name=f"actor served link {link.peer}"
            )
            self._served[served] = task
            task.add_done_callback(functools.partial(self._forget_served, served))

    def _forget_served(self, served: ServedLink, _task: asyncio.Task[None]) -> None:
        self._served.pop(served, None)

    async def remote(
        self, url: str, name: str, *, secret: bytes | str | None, timeout: float
    ) -> RemoteActorRef:
        client = self._clients.get(url)
        if client is None or client.lost is not None:
            link = await connect(url, secret=secret, timeout=timeout)
            client = self._clients[url] = _ClientLink(url, link)
        try:
            await client.request(_wire.LOOKUP, name, None, timeout)
        except AskTimeout:
            raise PeerLost(f"no answer from {url} within {timeout:g} s") from None
        return RemoteActorRef(client, name)

    async def close_servers(self) -> None:
        for listener, _task in self._listeners:
            await listener.close()
        tasks = [t for _l, t in self._listeners] + list(self._served.values())
        for served in list(self._served):
            await served.close()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._listeners.clear()

    def describe_stall(self) -> list[str]:
        """Lines about every listener, served link and client link (stall report)."""
        name = self.system.name
        lines = [f"system {name!r} serves at {listener.address}" for listener, _ in self._listeners]
        for served in list(self._served):
            lines += served.describe_stall(name)
        for client in list(self._clients.values()):
            lines += client.describe_stall(name)
        return lines

    async def close_clients(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.close()
