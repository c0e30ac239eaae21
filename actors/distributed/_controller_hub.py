"""The controller's side of a channel: followers, routing, credits, failover.

:class:`ControllerHub` is what a :class:`~actors.distributed.Controller`
module and its senders/receivers share in one process (one per channel
label): the follower links with their credit and events in flight, the
routing of each event to one follower, the outbox kept for resends, and the
failure rules described in :mod:`actors.distributed.controller` (lost
followers, resend, rejoin of restarted followers, end of job).

Loop rules: the job's event loop only (no locking).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from ..errors import ConfigError, DistributedError, PeerLost, TransportError
from ..framework import EventID
from ._failover import OpenTransitions, announce, launcher_name, reconnect, replacement_expected
from ._follower_peer import FollowerPeer
from ._handshake import greet_follower
from ._peer import Peer
from .endpoints import connect_named
from .hub import Hub, forget
from .protocol import CREDIT, DATA, END, ERROR, FINISHED, T_EVENT, PairSpec, pack

__all__ = ["ControllerHub"]


class ControllerHub(Hub):
    """Controller side of a channel: several followers, routing, credits, failure."""

    role = "controller"

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.followers: list[FollowerPeer] = []
        self.route: dict[int, FollowerPeer] = {}
        self.keys = itertools.count(1)
        self.policy = "round-robin"
        self.resend = False
        self.outbox: dict[int, list[tuple[bytes, list[Any]]]] = {}
        self.delivered: dict[int, set[int]] = {}
        self._recv: frozenset[int] = frozenset()
        self._rr = itertools.count()
        self.process = "?"
        self._background: set[asyncio.Task[None]] = set()
        self.timeout = 60.0
        self.open = OpenTransitions()
        self.orphans: list[tuple[int, EventID]] = []  # waiting for a replacement follower
        self.restarts: dict[str, int] = {}  # link -> replacements still expected
        self.rejoining: dict[str, asyncio.Task[None]] = {}
        self.joined = asyncio.Event()  # a replacement joined, or gave up
        self.finishing = False

    # -- start-up
    async def start(self, names: list[str], process: str, timeout: float) -> None:
        """Connect and handshake every link; SchemaMismatch/PeerLost before any event."""
        self.started = True
        self.process = process
        self.timeout = timeout
        self.restarts = {n: replacement_expected(n) if self.resend else 0 for n in names}
        schema = self.schema()
        self._recv = frozenset(i for i, s in schema.items() if s.role == "recv")
        if self.resend and not (self._recv or self.has_event_done):
            raise ConfigError(
                f"controller {self.label!r}: on_follower_loss = 'resend' needs to know when "
                "an event is finished: add a Receiver or an EventDone module for it"
            )
        lost: list[PeerLost] = []
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._first_connect(n, schema, lost)) for n in names]
        except BaseExceptionGroup as eg:
            await self.close()
            raise eg.exceptions[0] from None
        self.followers = [f for t in tasks if (f := t.result()) is not None]
        if not self.followers:
            raise lost[0]
        for f in self.followers:
            f.start(self._on_message, self._on_lost)

    async def _first_connect(
        self, name: str, schema: dict[int, PairSpec], lost: list[PeerLost]
    ) -> FollowerPeer | None:
        """Connect at start; with resend a follower that never came is absorbed (None).

        A link whose server the launcher restarts is connected like a rejoin
        (a dead server's address file is read again).
        """
        try:
            return await self._connect(
                name, schema, self.timeout, "" if self.restarts.get(name) else None
            )
        except PeerLost as exc:
            if not self.resend:
                raise
            lost.append(exc)
            announce(
                "lost",
                f"controller {self.label!r}: the follower on link {name!r} did not join "
                f"at the start: {exc}; going on without it",
                link=name,
                process=launcher_name(name),
                resent=0,
            )
            return None

    async def _connect(
        self, name: str, schema: dict[int, PairSpec], timeout: float, dead: str | None = None
    ) -> FollowerPeer:
        """Connect and handshake link ``name`` (again, when its server at ``dead`` was lost)."""
        if dead is not None:
            link = await reconnect(name, timeout, dead)
        else:
            link = await connect_named(name, timeout=timeout)
        follower = FollowerPeer(name, link)
        try:
            body = await greet_follower(link, name, schema, self.process, timeout, self.settings)
            follower.credits = int(body.get("window", 64))
            follower.name_process(body.get("process", "?"))
        except BaseException:
            await link.close()
            raise
        return follower

    # -- transitions
    def broadcast(self, item: list[Any]) -> None:
        self.check()
        self.open.note(item)
        for f in self.followers:
            if f.lost is None:
                f.queue(item)

    async def dispatch(self, event_id: EventID) -> int:
        """Send one event to a follower; returns its key. Waits for credit."""
        follower = await self._choose()
        key = next(self.keys)
        follower.credits -= 1
        self._assign(follower, key, event_id)
        return key

    def try_dispatch(self, event_id: EventID) -> int | None:
        """:meth:`dispatch` without waiting: the key, or None when no credit is at hand.

        Raises the channel's error (and DistributedError when no follower is left).
        """
        follower = self._pick()
        if follower is None or follower.credits <= 0:
            return None
        key = next(self.keys)
        follower.credits -= 1
        self._assign(follower, key, event_id)
        return key

    def _assign(self, follower: FollowerPeer, key: int, event_id: EventID) -> None:
        self.route[key] = follower
        follower.inflight[key] = event_id
        follower.events += 1
        follower.queue([T_EVENT, event_id.run, event_id.lumi, event_id.event, key])

    async def _choose(self) -> FollowerPeer:
        while True:
            follower = self._pick()
            if follower is not None and follower.credits > 0:
                return follower
            wake = self.joined if follower is None else follower.credit_wake
            wake.clear()
            await wake.wait()

    def _pick(self) -> FollowerPeer | None:
        """The follower the policy picks next (it may have no credit).

        None while no follower is alive but a replacement is on its way.
        """
        self.check()
        alive = [f for f in self.followers if f.lost is None]
        if not alive:
            if self.rejoining:
                return None
            raise DistributedError(f"controller {self.label!r}: no follower left")
        if self.policy == "least-loaded":
            return max(alive, key=lambda f: f.credits)
        return alive[next(self._rr) % len(alive)]

    # -- data
    async def send_data(self, key: int, header: bytes, buffers: list[Any]) -> None:
        self.check()
        follower = self.route.get(key)
        if follower is None:
            raise DistributedError(f"controller {self.label!r}: unknown event key {key}")
        if self.resend:
            self.outbox.setdefault(key, []).append((header, buffers))
            if follower.lost is not None:
                return  # waits in the outbox for the event's next follower
        try:
            await follower.send(header, buffers)
        except TransportError as exc:
            self._on_lost(follower, exc)
            if not self.resend:
                raise self.error or exc from exc
            # the resend path re-sent this message from the outbox

    def accept_delivery(self, key: int, instance: int) -> bool:
        if not self.resend:
            return True
        seen = self.delivered.setdefault(key, set())
        if instance in seen:
            return False
        seen.add(instance)
        return True

    def received(self, key: int, instance: int) -> None:
        if self.has_event_done or not self._recv:
            return
        seen = self.delivered.get(key) if self.resend else None
        if seen is None:
            seen = self.delivered.setdefault(key, set())
            seen.add(instance)
        if self._recv <= seen:
            self.event_done(key)

    def event_done(self, key: int) -> None:
        follower = self.route.pop(key, None)
        if follower is not None:
            follower.inflight.pop(key, None)
        self.outbox.pop(key, None)
        self.delivered.pop(key, None)
        if self.orphans:  # its result came from the lost follower after all: not resent
            self.orphans = [(k, e) for k, e in self.orphans if k != key]

    # -- messages from followers
    def _on_message(self, peer: Peer, msg: list[Any], buffers: list[Any]) -> None:
        follower = peer
        assert isinstance(follower, FollowerPeer)
        kind = msg[0]
        if kind == DATA:
            self.deliver(int(msg[1]), int(msg[2]), msg, buffers, peer)
        elif kind == CREDIT:
            follower.credits += int(msg[1])
            follower.credit_wake.set()
            if not self._recv and not self.has_event_done:
                for key in list(follower.inflight)[: int(msg[1])]:
                    self.event_done(key)
        elif kind == FINISHED:
            if not follower.finished.done():
                follower.finished.set_result(int(msg[1]))
        elif kind == ERROR:
            self.fail(
                DistributedError(
                    f"controller {self.label!r}: the follower on {follower.who} failed:\n{msg[1]}"
                )
            )
        else:
            self._on_lost(follower, DistributedError(f"unexpected message {msg[0]} from follower"))

    def _on_lost(self, peer: Peer, exc: BaseException) -> None:
        follower = peer
        assert isinstance(follower, FollowerPeer)
        if follower.lost is not None or follower.finished.done():
            return
        follower.lost = exc
        follower.credit_wake.set()
        survivors = [f for f in self.followers if f.lost is None]
        replaced = self.restarts.get(follower.name, 0) > 0 and self.error is None
        if not (self.resend and (survivors or replaced)):
            self.fail(
                DistributedError(
                    f"controller {self.label!r}: lost the follower on {follower.who}: {exc}; "
                    f"{follower.describe_inflight()}"
                )
            )
            return
        follower.finished.set_result(0)  # absorbed: end_job no longer waits for it
        moved = list(follower.inflight.items())
        follower.inflight.clear()
        if replaced:
            self._expect_replacement(follower.name, follower.link.peer)
        if survivors:
            self._resend(moved, survivors)
        else:
            self.orphans.extend(moved)
        where = ", ".join(repr(f.name) for f in survivors) or "its replacement"
        announce(
            "lost",
            f"controller {self.label!r}: lost the follower on {follower.who}: {exc}; "
            f"{len(moved)} event(s) in flight on it go again to {where}",
            link=follower.name,
            process=launcher_name(follower.name),
            resent=len(moved),
        )

    def _resend(self, moved: list[tuple[int, EventID]], targets: list[FollowerPeer]) -> None:
        for n, (key, event_id) in enumerate(moved):
            target = targets[n % len(targets)]
            target.credits -= 1
            self._assign(target, key, event_id)
            for header, buffers in self.outbox.get(key, ()):
                task = asyncio.get_running_loop().create_task(
                    self._resend_one(target, header, buffers), name=f"resend {key}"
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _resend_one(self, target: FollowerPeer, header: bytes, buffers: list[Any]) -> None:
        try:
            await target.send(header, buffers)
        except TransportError as exc:
            self._on_lost(target, exc)

    def _expect_replacement(self, name: str, dead: str) -> None:
        self.restarts[name] -= 1
        task = asyncio.get_running_loop().create_task(
            self._rejoin(name, dead), name=f"rejoin {name}"
        )
        self.rejoining[name] = task

    async def _rejoin(self, name: str, dead: str) -> None:
        """Connect the replacement of link ``name``'s follower (was at ``dead``), route to it."""
        try:
            follower = await self._connect(name, self.schema(), self.timeout, dead)
        except (TransportError, DistributedError) as exc:
            self.rejoining.pop(name, None)
            self._replacement_failed(name, exc)
            return
        finally:
            self.joined.set()
        self.rejoining.pop(name, None)
        if self.error is not None:
            await follower.close()
            return
        for item in self.open.replay():
            follower.queue(item)
        self.followers.append(follower)
        follower.start(self._on_message, self._on_lost)
        orphans, self.orphans = self.orphans, []
        self._resend(orphans, [follower])
        announce(
            "rejoined",
            f"controller {self.label!r}: the replacement follower on {follower.who} joined "
            f"(handshake done); {len(orphans)} waiting event(s) sent to it",
            link=name,
            process=launcher_name(name),
            resent=len(orphans),
        )

    def _replacement_failed(self, name: str, exc: BaseException) -> None:
        alive = [f for f in self.followers if f.lost is None]
        if alive and not self.orphans:
            announce(
                "rejoin-failed",
                f"controller {self.label!r}: the replacement follower on link {name!r} did not "
                f"join: {exc}; going on with {', '.join(repr(f.name) for f in alive)}",
                link=name,
                process=launcher_name(name),
            )
            return
        if alive:
            orphans, self.orphans = self.orphans, []
            self._resend(orphans, alive)
            return
        self.fail(
            DistributedError(
                f"controller {self.label!r}: lost the follower on link {name!r} "
                f"(process {launcher_name(name)!r}) and its replacement did not join within "
                f"{self.timeout:.0f} s: {exc}; {len(self.orphans)} event(s) were waiting for it"
            )
        )

    def wake_all(self) -> None:
        self.joined.set()
        for f in self.followers:
            f.credit_wake.set()
            if not f.finished.done():
                f.finished.set_exception(self.error or DistributedError("failed"))
                f.finished.exception()

    # -- end of job
    async def finish(self, timeout: float) -> int:
        """Tell every follower the job ended and wait for them; returns events done.

        Replacements still on their way are waited for (each gets END too); a
        follower lost meanwhile is absorbed like during the job.
        """
        self.check()
        self.finishing = True
        ended: set[int] = set()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self.check()
                    for f in self.followers:
                        if f.lost is None and id(f) not in ended:
                            ended.add(id(f))
                            f.queue_message(pack(END))
                    waits: list[asyncio.Future[Any]] = [
                        f.finished for f in self.followers if not f.finished.done()
                    ]
                    waits += self.rejoining.values()
                    if not waits:
                        break
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise DistributedError(
                f"controller {self.label!r}: followers did not finish within {timeout:.0f} s"
            ) from None
        self.check()
        return sum(f.finished.result() for f in self.followers)

    async def close(self) -> None:
        """Close every link and stop the tasks (idempotent)."""
        rejoins = list(self.rejoining.values())
        for task in rejoins:
            task.cancel()
        if rejoins:
            await asyncio.wait(rejoins)
        for f in self.followers:
            await f.close()
        forget(self)
