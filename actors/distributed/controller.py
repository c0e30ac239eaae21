"""The Controller: forwards a process's transitions to its follower(s).

Configuration (a producer, usually first on every path that offloads)::

    [modules.offload]
    type = "actors.distributed:Controller"
    link = "offload"                  # or links = ["gpu1", "gpu2"]
    policy = "round-robin"            # or "least-loaded"
    on_follower_loss = "fail"         # or "resend"

At ``begin_job`` it connects every link (by name, see
:mod:`actors.distributed.endpoints`) and does the handshake: both sides
compare their sender/receiver pairs and a mismatch raises
:class:`~actors.errors.SchemaMismatch` with a diff, before the first event
(the protocol version, the process names and the settings both sides must
agree on are checked too, on both sides: see :mod:`actors.distributed._handshake`).
Begin/end run and lumi are broadcast to every follower; each event goes to one
follower (``policy``) and gets a :class:`~actors.distributed.hub.ChannelToken`
product. ``end_job`` tells the followers to finish and waits for them.

Flow control: a follower grants credits (events it may have queued); a
controller without credit for the chosen follower waits. ``least-loaded``
picks the follower with most credit left, i.e. the fewest events waiting.

Failure: a lost follower (process killed, link closed) fails the job with a
DistributedError naming the link, the peer and the events in flight on it -
or, with ``on_follower_loss = "resend"`` and another follower alive, those
events go again to a survivor (with the products already sent for them);
messages arriving twice for an event are dropped, so the output holds every
event once. Resend needs the controller to know when an event is finished:
its receivers (all of them got their message) or an
:class:`~actors.distributed.EventDone` module on an end path.

Rejoin: when the launcher restarts a lost follower (``restarts = N`` in the
topology; the link endpoint carries the count) and the policy is
``resend``, the controller connects to the replacement again (handshake and
schema check as at start), sends it the run and lumis open now (its history
check runs again) and routes events to it. While no follower is alive but a
replacement is expected, events wait for it (those in flight included), at
most ``connect_timeout`` seconds. ``end_job`` waits for replacements on their
way, so that each gets END and exits cleanly. With ``resend``, a follower
that does not join at the start (killed before its handshake) is given up
after ``connect_timeout`` and the job goes on with the others. Each loss and
rejoin is logged (under the launcher: a marker line for its summary, see
:mod:`actors.distributed._failover`). The hub doing all this is
:class:`~actors.distributed._controller_hub.ControllerHub`. When this job
fails, the Controller's ``close()`` (run by the framework at the end of every
job) closes its links, so the followers see the loss at once, also when the
process goes on (a notebook, an in-process test).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar

from ..errors import ConfigError
from ..framework import Concurrency, Declarer, Event, Lumi, Producer, Run
from ._controller_hub import ControllerHub
from ._failover import FAILOVER_MARK
from ._handshake import job_settings
from .hub import ChannelToken, hub_for
from .protocol import T_BEGIN_LUMI, T_BEGIN_RUN, T_END_LUMI, T_END_RUN

__all__ = ["FAILOVER_MARK", "Controller", "ControllerHub"]

_POLICIES = ("round-robin", "least-loaded")
_LOSS = ("fail", "resend")


class Controller(Producer):
    """Forwards transitions to followers and puts a ChannelToken per event (see module doc)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED
    #: ``produce`` runs on the loop and completes at once while the chosen follower
    #: has credit; only without credit does it wait (its awaitable slow path)
    run_on_loop: ClassVar[bool] = True

    def __init__(
        self,
        *,
        link: str | None = None,
        links: list[str] | None = None,
        policy: str = "round-robin",
        on_follower_loss: str = "fail",
        connect_timeout: float = 60.0,
        finish_timeout: float = 600.0,
    ) -> None:
        super().__init__()
        names = ([link] if link else []) + list(links or [])
        if not names:
            raise ConfigError("Controller needs link = NAME or links = [NAME, ...]", key="link")
        if len(set(names)) != len(names):
            raise ConfigError(f"Controller links repeat a name: {names}", key="links")
        if policy not in _POLICIES:
            raise ConfigError(f"policy must be one of {_POLICIES}, not {policy!r}", key="policy")
        if on_follower_loss not in _LOSS:
            raise ConfigError(
                f"on_follower_loss must be one of {_LOSS}, not {on_follower_loss!r}",
                key="on_follower_loss",
            )
        self.names = names
        self.policy = policy
        self.resend = on_follower_loss == "resend"
        self.connect_timeout = float(connect_timeout)
        self.finish_timeout = float(finish_timeout)
        self.hub: ControllerHub | None = None

    def declare(self, d: Declarer) -> None:
        hub = hub_for(self.label, ControllerHub)
        assert isinstance(hub, ControllerHub)
        hub.policy, hub.resend = self.policy, self.resend
        self.hub = hub
        d.produces("ChannelToken")

    def _hub(self) -> ControllerHub:
        assert self.hub is not None, "declare() was not called"
        return self.hub

    async def begin_job(self) -> None:
        self._hub().settings = job_settings(self.job_options)
        await self._hub().start(self.names, self.process_name, self.connect_timeout)

    async def begin_run(self, run: Run) -> None:
        history = [list(entry) for entry in run.process_history]
        self._hub().broadcast([T_BEGIN_RUN, run.number, history])

    async def begin_lumi(self, lumi: Lumi) -> None:
        self._hub().broadcast([T_BEGIN_LUMI, lumi.id.run, lumi.id.lumi])

    def produce(self, event: Event) -> Awaitable[None] | None:
        hub = self._hub()
        key = hub.try_dispatch(event.id)
        if key is None:
            return self._produce_after_credit(event)
        event.put(ChannelToken(hub, key))
        return None

    async def _produce_after_credit(self, event: Event) -> None:
        hub = self._hub()
        key = await hub.dispatch(event.id)
        event.put(ChannelToken(hub, key))

    async def end_lumi(self, lumi: Lumi) -> None:
        self._hub().broadcast([T_END_LUMI, lumi.id.run, lumi.id.lumi])

    async def end_run(self, run: Run) -> None:
        self._hub().broadcast([T_END_RUN, run.number])

    async def end_job(self) -> None:
        hub = self._hub()
        try:
            await hub.finish(self.finish_timeout)
        finally:
            await hub.close()

    async def close(self) -> None:
        """Close the links (idempotent): after a failed job the followers see the loss at once."""
        if self.hub is not None:
            await self.hub.close()
