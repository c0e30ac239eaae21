"""The FollowerSource: the source of a remote process, replaying a controller's transitions.

Configuration::

    [source]
    type = "actors.distributed:FollowerSource"
    link = "offload"
    window = 256            # events the controller may queue here ahead of us
    # controllers = 2       # default: the clients the topology links here, else 1

At ``begin_job`` it listens on the link (by name), accepts the controller and
answers its handshake (schemas compared on both sides; a mismatch raises
SchemaMismatch here and there, before any event). ``transitions()`` then
yields exactly what the controller forwards - same run/lumi/event numbers,
same order of boundaries - each event carrying the same
:class:`~actors.distributed.hub.ChannelToken` key as on the controller.

The first run fixes the controller's process history; a later run with a
different history is refused (DistributedError naming both). When the
controller ends the job the iterator ends, the framework finishes the events
in flight, and ``end_job`` tells the controller (FINISHED). When the
controller disappears the iterator raises DistributedError naming the link,
so the job stops with a clear error (non-zero exit) at once, whatever it was
waiting for; under the launcher it also prints a marker line, so that the
launcher neither restarts this process nor counts it as a lost follower.
When this job stops early (``events`` reached) the events in flight still
finish and answer; ``end_job`` then closes the link, and the controller
reports the events it is missing. After a failed job the source's
``close()`` (run by the framework at the end of every job) closes the link.

Set this process's ``max_concurrent_lumis`` at least as high as the
controller's: the follower receives lumi boundaries in the controller's order.

Several controllers (several client jobs sharing this server): with
``controllers = N``, or when the launcher links N client processes to this
link, the process accepts N controllers and runs one schedule per connection
(:mod:`actors.distributed.shared`); each replays exactly its own controller's
transitions, so two jobs that both have run 1 never mix.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

from ..errors import ConfigError, DistributedError, PeerLost
from ..framework import (
    BeginLumi,
    BeginRun,
    Declarer,
    EndLumi,
    EndRun,
    EventID,
    EventTransition,
    ProcessEntry,
    Source,
    Transition,
)
from ..transports import Link
from ._failover import announce, launcher_name
from ._handshake import answer_controller, job_settings
from ._peer import Peer
from .endpoints import listen_named
from .hub import ChannelToken, Hub, forget, hub_for
from .protocol import (
    CREDIT,
    DATA,
    END,
    ERROR,
    FINISHED,
    T_BEGIN_LUMI,
    T_BEGIN_RUN,
    T_END_LUMI,
    T_END_RUN,
    T_EVENT,
    TRANS,
    pack,
)
from .shared import controller_count, handed_link, run_shared

__all__ = ["FollowerHub", "FollowerSource"]

_DONE: Any = object()


class FollowerHub(Hub):
    """Follower side of a channel: one controller, a queue of transitions, credits."""

    role = "follower"

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.peer: Peer | None = None
        self.queue: deque[Any] = deque()
        self.wake = asyncio.Event()
        self.ended = False
        self.controller = "?"
        self.history: tuple[ProcessEntry, ...] | None = None
        self.window = 256
        self._unacked = 0

    async def start(self, link_name: str, process: str, timeout: float) -> None:
        """Listen, accept one controller, handshake; raises before any event on mismatch.

        A link already accepted for this schedule
        (:data:`~actors.distributed.shared.handed_link`, set by the runner of a
        follower serving several controllers) is used as is.
        """
        self.started = True
        link = handed_link.get()
        if link is None:
            link = await self._accept(link_name, timeout)
        try:
            self.controller = await answer_controller(
                link, link_name, self.schema(), process, self.window, timeout, self.settings
            )
        except BaseException:
            await link.close()
            raise
        self.peer = Peer(link_name, link, TRANS)
        self.peer.process = f"process {self.controller!r}"
        self.peer.start(self._on_message, self._on_lost)

    async def _accept(self, link_name: str, timeout: float) -> Link:
        listener = await listen_named(link_name)
        try:
            async with asyncio.timeout(timeout):
                link = await listener.accept()
        except TimeoutError:
            raise DistributedError(
                f"follower source {self.label!r}: no controller connected on link "
                f"{link_name!r} ({listener.address}) within {timeout:.0f} s"
            ) from None
        finally:
            await listener.close()
        return link

    # -- messages from the controller
    def _on_message(self, peer: Peer, msg: list[Any], buffers: list[Any]) -> None:
        kind = msg[0]
        if kind == TRANS:
            self.queue.extend(msg[1])
            self.wake.set()
        elif kind == DATA:
            self.deliver(int(msg[1]), int(msg[2]), msg, buffers, peer)
        elif kind == END:
            self.ended = True
            self.queue.append(_DONE)
            self.wake.set()
        elif kind == ERROR:
            self.fail(
                DistributedError(
                    f"follower source {self.label!r}: the controller {self.controller!r} "
                    f"failed:\n{msg[1]}"
                )
            )
        else:
            self._on_lost(peer, DistributedError(f"unexpected message {msg[0]} from controller"))

    def _on_lost(self, peer: Peer, exc: BaseException) -> None:
        if self.ended and not self.queue:
            return
        self.fail(
            DistributedError(
                f"follower source {self.label!r}: the controller {self.controller!r} on "
                f"{peer.who} disappeared before ending the job: {exc}"
            )
        )
        # tells the launcher that this process ends because of its controller, not
        # on its own: it is then neither restarted nor taken for a follower lost
        announce(
            "controller-lost",
            str(self.error),
            quiet=True,
            link=peer.name,
            process=launcher_name(peer.name),
        )

    def wake_all(self) -> None:
        self.wake.set()

    async def wait(self) -> None:
        """Until the queue holds a transition (or _DONE); raises the channel's error."""
        while not self.queue:
            self.check()
            self.wake.clear()
            await self.wake.wait()

    def consumed_event(self) -> None:
        self._unacked += 1
        if self._unacked * 4 >= self.window and self.peer is not None:
            self.peer.queue_message(pack(CREDIT, self._unacked))
            self._unacked = 0

    async def send_data(self, key: int, header: bytes, buffers: list[Any]) -> None:
        """Send a DATA message to the controller; raises the channel's error.

        A link found lost or closed here counts as the controller's loss, as
        when the reader sees it first: the error names the controller.
        """
        self.check()
        peer = self.peer
        assert peer is not None
        try:
            await peer.send(header, buffers)
        except PeerLost as exc:
            self._on_lost(peer, exc)
            if self.error is None:  # lost after the job's end: nothing to name
                raise
            raise self.error from exc

    async def finish(self, events: int) -> None:
        """Tell the controller every event is done, then close."""
        try:
            if self.peer is not None and self.error is None:
                self.peer.queue_message(pack(FINISHED, events))
                await self.peer.flush()
        finally:
            await self.close()

    async def close(self) -> None:
        if self.peer is not None:
            await self.peer.close()
        forget(self)


class FollowerSource(Source):
    """Replays the transitions of a remote controller (see module doc)."""

    #: events come from the controller: the launcher gives --events/--input elsewhere
    replays_transitions: ClassVar[bool] = True

    def __init__(
        self,
        *,
        link: str,
        window: int = 256,
        accept_timeout: float = 300.0,
        controllers: int | None = None,
    ) -> None:
        if not isinstance(link, str) or not link:
            raise ConfigError("FollowerSource needs link = NAME", key="link")
        if not isinstance(window, int) or window < 4:
            raise ConfigError(f"window must be an integer >= 4, not {window!r}", key="window")
        controller_count(link, controllers)  # validates
        self.link = link
        self.window = window
        self.accept_timeout = float(accept_timeout)
        self.hub: FollowerHub | None = None
        self.events = 0

    @classmethod
    def job_runner(cls, params: Mapping[str, Any]) -> Callable[..., Awaitable[Any]] | None:
        """:func:`~actors.distributed.shared.run_shared` when serving several controllers."""
        try:
            count = controller_count(params.get("link"), params.get("controllers"))
        except ConfigError:
            return None  # the constructor reports it, with the source's label
        return None if count == 1 else run_shared

    def declare(self, d: Declarer) -> None:
        hub = hub_for(self.label, FollowerHub)
        assert isinstance(hub, FollowerHub)
        hub.window = self.window
        self.hub = hub
        d.produces("ChannelToken")

    def _hub(self) -> FollowerHub:
        assert self.hub is not None, "declare() was not called"
        return self.hub

    async def begin_job(self) -> None:
        self._hub().settings = job_settings(self.job_options)
        await self._hub().start(self.link, self.process_name, self.accept_timeout)

    async def transitions(self) -> AsyncIterator[Transition]:
        hub = self._hub()
        queue = hub.queue
        while True:
            if not queue:  # (a queued transition costs no await: they come in batches)
                await hub.wait()
            if hub.error is not None:
                raise hub.error
            raw = queue.popleft()
            if raw is _DONE:
                return
            if raw[0] == T_EVENT:  # the common case, here: no call to _convert
                hub.consumed_event()
                self.events += 1
                yield EventTransition(
                    EventID(raw[1], raw[2], raw[3]), {"": ChannelToken(hub, raw[4])}
                )
            else:
                yield self._convert(hub, raw)

    def _convert(self, hub: FollowerHub, raw: list[Any]) -> Transition:
        kind = raw[0]
        if kind == T_BEGIN_LUMI:
            return BeginLumi(raw[1], raw[2])
        if kind == T_END_LUMI:
            return EndLumi(raw[1], raw[2])
        if kind == T_END_RUN:
            return EndRun(raw[1])
        if kind == T_BEGIN_RUN:
            history = tuple(ProcessEntry(str(n), str(h)) for n, h in raw[2])
            self._check_history(hub, raw[1], history)
            return BeginRun(raw[1], history)
        raise DistributedError(f"follower source {self.label!r}: unknown transition {raw!r}")

    def _check_history(self, hub: FollowerHub, run: int, history: tuple[ProcessEntry, ...]) -> None:
        if hub.history is None:
            hub.history = history
            return
        if history != hub.history:
            raise DistributedError(
                f"follower source {self.label!r}: run {run} arrives with process history "
                f"{_fmt(history)}, but this job follows {_fmt(hub.history)} "
                f"(controller {hub.controller!r}); refusing it"
            )

    async def end_job(self) -> None:
        await self._hub().finish(self.events)

    async def close(self) -> None:
        """Close the link (idempotent): after a failed job the controller sees the loss at once."""
        if self.hub is not None:
            await self.hub.close()


def _fmt(history: tuple[ProcessEntry, ...]) -> str:
    return " -> ".join(f"{e.name}[{e.config_hash[:8]}]" for e in history) or "(empty)"
