"""The per-process side of one offload channel: pairs, demultiplexing, tokens.

A :class:`Hub` exists once per logical process and per channel-token label
(the controller's module label, or the follower source's label). Senders and
receivers find it two ways: at configuration time by that label (they
register their :class:`~actors.distributed.protocol.PairSpec` in ``declare``,
so the handshake at ``begin_job`` knows every pair), and per event through
the :class:`ChannelToken` product, which carries the hub itself and the event
key.

Demultiplexing: one reader task per link puts every DATA message into
``inbox[(key, instance)]``; the receiver of that pair and event awaits it.
Whoever comes first (message or receiver) creates the future, so arrival
order across events, instances and streams does not matter.

Loop rules: everything here runs on the event loop of the process (senders and
receivers are async modules). Not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DistributedError
from .endpoints import LinkTable, current_links
from .protocol import PairSpec

if TYPE_CHECKING:
    from ._peer import Peer

__all__ = ["ChannelToken", "Hub", "hub_for"]

#: decoded DATA header, buffers, and the link (peer) the message came in on
Delivery = tuple[list[Any], list[Any], "Peer"]


@dataclass(frozen=True, slots=True)
class ChannelToken:
    """Per-event product of a controller / follower source (and copies by senders/receivers).

    ``key`` identifies the event on the channel (unique per controller job);
    ``hub`` is the process-local channel object. Not serialisable on purpose:
    it never leaves its process (drop it from output files: ``drop ChannelToken_*``).
    """

    hub: Hub
    key: int

    def __repr__(self) -> str:
        return f"ChannelToken({self.hub.label!r}, key={self.key})"


class Hub:
    """Pairs and inbox of one channel in one process (base of both roles)."""

    role = "?"

    def __init__(self, label: str) -> None:
        self.label = label
        self.providers: dict[int, Callable[[], PairSpec]] = {}
        self.inbox: dict[tuple[int, int], asyncio.Future[Delivery]] = {}
        self.error: BaseException | None = None
        self.started = False
        self.has_event_done = False
        self.handled: dict[int, set[int]] = {}  # key -> instances sent/received (EventDone)
        #: (key, instance) -> who waits for that message, while it has not arrived
        self.waiting: dict[tuple[int, int], Any] = {}
        #: settings checked at the handshake (:func:`~actors.distributed._handshake.job_settings`)
        self.settings: dict[str, Any] = {}
        self._schema: dict[int, PairSpec] | None = None

    # -- configuration (declare time)
    def register(self, instance: int, role: str, module: str, spec: Callable[[], PairSpec]) -> None:
        """Register a sender/receiver pair end; ConfigError if ``instance`` is taken."""
        old = self.providers.get(instance)
        if old is not None:
            other = old()
            if other.module != module or other.role != role:
                raise ConfigError(
                    f"channel {self.label!r}: instance {instance} is used by both "
                    f"{other.module!r} ({other.role}) and {module!r} ({role}); "
                    "each sender/receiver needs its own instance"
                )
            return
        self.providers[instance] = spec

    def schema(self) -> dict[int, PairSpec]:
        """Every registered pair end, resolved (call once the process is built)."""
        return {i: make() for i, make in sorted(self.providers.items())}

    def schema_cache(self) -> dict[int, PairSpec]:
        """:meth:`schema`, computed once (valid once the process is built)."""
        if self._schema is None:
            self._schema = self.schema()
        return self._schema

    # -- inbox
    def _future(self, key: int, instance: int) -> asyncio.Future[Delivery]:
        fut = self.inbox.get((key, instance))
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            if self.error is not None:
                fut.set_exception(self.error)
            self.inbox[(key, instance)] = fut
        return fut

    def deliver(
        self, key: int, instance: int, msg: list[Any], buffers: list[Any], source: Peer
    ) -> None:
        """Called by a reader: hand a DATA message that came in on ``source``
        to its (future) receiver."""
        if not self.accept_delivery(key, instance):
            return
        fut = self._future(key, instance)
        if not fut.done():
            fut.set_result((msg, buffers, source))

    def accept_delivery(self, key: int, instance: int) -> bool:
        """Hook: False drops the message (a duplicate after a resend)."""
        return True

    async def receive(self, key: int, instance: int, waiter: Any = None) -> Delivery:
        """The DATA message of ``(key, instance)``; raises the channel's error if it failed.

        ``waiter`` (e.g. ``(module label, event id)``) names who waits, in
        :attr:`waiting` while the message has not arrived (stall report).
        """
        fut = self._future(key, instance)
        if not fut.done():
            self.waiting[(key, instance)] = waiter
        try:
            return await fut
        finally:
            self.inbox.pop((key, instance), None)
            self.waiting.pop((key, instance), None)
            self.received(key, instance)

    def received(self, key: int, instance: int) -> None:
        """Hook: a receiver consumed ``(key, instance)``."""

    async def send_data(self, key: int, header: bytes, buffers: list[Any]) -> None:
        raise NotImplementedError

    def event_done(self, key: int) -> None:
        """Hook: the event-done module saw event ``key`` finish in this process."""

    def fail(self, error: BaseException) -> None:
        """Record the channel's fatal error and wake every waiter with it."""
        if self.error is None:
            self.error = error
        for fut in self.inbox.values():
            if not fut.done():
                fut.set_exception(self.error)
                fut.exception()  # mark retrieved: a waiter may be gone already
        self.wake_all()

    def wake_all(self) -> None:
        """Hook: wake role-specific waiters after ``fail``."""

    async def close(self) -> None:
        """Close the channel's links (idempotent); the base hub has none."""

    def check(self) -> None:
        if self.error is not None:
            raise self.error


# -- registry: one hub per (link table, label), i.e. per logical process

_hubs: dict[tuple[int, str], Hub] = {}


def hub_for(label: str, factory: Callable[[str], Hub] | None = None) -> Hub:
    """The hub of channel ``label`` in the current logical process.

    With ``factory`` (the controller or follower source) a hub of that class is
    made, replacing a stale one from a finished job; without (senders,
    receivers) a placeholder is made if the owner was not declared yet and is
    adopted by the owner later.
    """
    table: LinkTable = current_links()
    key = (id(table), label)
    hub = _hubs.get(key)
    if hub is not None and hub.started:
        hub = None  # left over from an earlier job of this process
    if factory is not None and (hub is None or type(hub) is Hub):
        new = factory(label)
        if hub is not None:
            new.providers.update(hub.providers)
            new.has_event_done = hub.has_event_done
        hub = new
    elif hub is None:
        hub = Hub(label)
    _hubs[key] = hub
    return hub


def resolve_hub(label: str, token: ChannelToken | None = None) -> Hub:
    """The hub to use at run time; DistributedError if no controller/source owns ``label``."""
    hub = token.hub if token is not None else hub_for(label)
    if type(hub) is Hub:
        raise DistributedError(
            f"{label!r} is not a Controller or FollowerSource of this process; "
            "upstream must name one"
        )
    return hub


async def close_channels() -> None:
    """Close every channel of the current logical process (links, tasks).

    The framework closes a job's channels itself at its end, whatever the
    outcome (the Controller's and FollowerSource's ``close()``); this is for
    code that runs processes in-process (tests, notebooks, the embedded
    launcher) and stops a job before its driver started, or wants every
    channel of the logical process closed at once (idempotent).
    """
    table = current_links()
    for (table_id, _), hub in list(_hubs.items()):
        if table_id == id(table):
            await hub.close()
            forget(hub)


def live_hubs() -> list[Hub]:
    """Every channel of every logical process in this OS process (stall report)."""
    return list(_hubs.values())


def forget(hub: Hub) -> None:
    """Remove ``hub`` from the registry (end of job)."""
    for key, value in list(_hubs.items()):
        if value is hub:
            del _hubs[key]
