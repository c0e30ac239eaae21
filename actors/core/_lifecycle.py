"""The life of one actor's instances: start, restart, stop, under its supervision policy.

Internal. Each :class:`~actors.core._cell.ActorCell` holds one
:class:`Lifecycle`; the cell runs messages, the lifecycle owns the current
instance and everything that happens between two messages when something
went wrong:

* :meth:`Lifecycle.start` builds an instance from the actor's class and
  arguments and runs its ``on_start``; :meth:`Lifecycle.stop_instance` stops
  the cell's children, then runs ``on_stop`` (only a started instance gets it);
* a failure (a tell that raised, a failing start, a child's escalated
  failure) is handled by the policy (:mod:`actors.core.supervision`): restart
  (within the restart budget), stop, or escalate to the parent;
* failures that arrive while messages run wait here (:meth:`Lifecycle.queue`)
  until the cell's task is between two messages (:meth:`Lifecycle.handle_queued`);
  those still waiting when the actor dies go to its parent
  (:meth:`Lifecycle.pass_on`).

All methods run on the system's event loop, in the cell's task but for
:meth:`Lifecycle.queue`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..errors import ActorFailed
from .actor import Actor, bind_instance
from .supervision import Directive, RestartBudget, SupervisorPolicy

if TYPE_CHECKING:
    from ._cell import ActorCell

__all__ = ["ON_START", "Lifecycle"]

log = logging.getLogger("actors")


class _Marker:
    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


#: The "message" of an ActorFailed raised by a constructor or on_start.
ON_START = _Marker("<on_start>")


class Lifecycle:
    """Instances and supervision of one actor (the cell ``cell``)."""

    __slots__ = (
        "_args",
        "_budget",
        "_class",
        "_escalated",
        "_kwargs",
        "_own",
        "cell",
        "instance",
        "policy",
    )

    def __init__(
        self,
        cell: ActorCell,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: SupervisorPolicy,
    ) -> None:
        self.cell = cell
        self.policy = policy
        #: The started instance (None before the first start, during a restart, once stopped).
        self.instance: Actor | None = None
        self._class = actor_class
        self._args = args
        self._kwargs = kwargs
        self._budget = RestartBudget(policy)
        self._own: list[ActorFailed] = []  # dispatched tells that raised
        self._escalated: list[ActorFailed] = []  # children's failures

    # -- instances ------------------------------------------------------------------

    async def start(self) -> bool:
        """Build an instance and run on_start; on failure apply the policy.

        True when the actor carries on (started, or restarted after a failed
        start), False when it must stop.
        """
        cls = self._class
        try:
            instance = bind_instance(cls, self.cell)
            cls.__init__(instance, *self._args, **self._kwargs)
            await instance.on_start()
        except Exception as exc:
            return await self.failed(ActorFailed(self.cell.name, ON_START, exc))
        self.instance = instance  # only a started instance gets on_stop
        return True

    async def stop_instance(self) -> None:
        """Stop the children, then run the current instance's on_stop (errors logged)."""
        children = list(self.cell.children.values())
        for child in children:
            child.request_stop()
        if children:
            await asyncio.wait([c.task for c in children])
        instance, self.instance = self.instance, None
        if instance is None:
            return
        try:
            await instance.on_stop()
        except Exception:
            log.exception("on_stop of actor %r raised", self.cell.name)

    # -- failures -------------------------------------------------------------------

    async def failed(self, failure: ActorFailed) -> bool:
        """A tell (or start) failed here: log it and apply the policy."""
        log.error(
            "actor %r in system %r failed on message %r",
            self.cell.name,
            self.cell.system.name,
            failure.failed_message,
            exc_info=failure.__cause__,
        )
        return await self.apply_policy(failure)

    async def apply_policy(self, failure: ActorFailed) -> bool:
        """True if the actor carries on (restarted), False if it must stop."""
        directive = self.policy.directive
        if directive is Directive.RESTART:
            if self._budget.allow():
                log.warning("restarting actor %r after: %s", self.cell.name, failure)
                await self.stop_instance()
                return await self.start()
            log.error(
                "actor %r exceeded %d restarts in %g s; escalating",
                self.cell.name,
                self.policy.max_restarts,
                self.policy.window,
            )
            directive = Directive.ESCALATE
        if directive is Directive.ESCALATE:
            self.cell.parent.escalate_to(failure)
        return False

    def queue(self, failure: ActorFailed, *, own: bool) -> None:
        """Keep ``failure`` until :meth:`handle_queued` (loop thread; any task).

        ``own``: a dispatched tell of this actor that raised (already logged);
        else a child's escalated failure.
        """
        (self._own if own else self._escalated).append(failure)

    async def handle_queued(self) -> bool:
        """Apply the policy to the queued failures, own first; False when the actor must stop."""
        while self._own:
            if not await self.apply_policy(self._own.pop(0)):
                return False
        while self._escalated:
            failure = self._escalated.pop(0)
            log.warning(
                "actor %r handles a failure escalated by a child: %s", self.cell.name, failure
            )
            if not await self.apply_policy(failure):
                return False
        return True

    def pass_on(self) -> None:
        """The actor died: hand the queued failures to the parent.

        Children's failures always go up; the actor's own only under the
        ``escalate`` directive (under the others they end with the actor).
        """
        if self.policy.directive is Directive.ESCALATE:
            self._escalated += self._own
        self._own.clear()
        for failure in self._escalated:  # arrived while stopping: pass them on
            self.cell.parent.escalate_to(failure)
        self._escalated.clear()
