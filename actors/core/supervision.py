"""Supervision policies: what happens when an actor's ``receive`` raises on a tell.

A policy belongs to one actor and is chosen at spawn time::

    system.spawn(Worker, supervisor_policy="restart")
    system.spawn(Worker, supervisor_policy=SupervisorPolicy.restart(max_restarts=3, window=10))

Directives (see :class:`~actors.Actor` for the full failure rules):

``restart``
    A new instance is built from the same class and arguments; the mailbox
    (and every message waiting in it) is kept. The old instance's children
    are stopped and its ``on_stop`` runs first. More than ``max_restarts``
    restarts within ``window`` seconds turn the failure into an escalation, so
    that a poisoned actor cannot restart forever.
``stop``
    The actor stops; pending and later asks raise :class:`~actors.ActorDead`.
``escalate`` (the default)
    The actor stops and its :class:`~actors.ActorFailed` goes to the parent,
    which handles it as its own failure under its own policy. At the top, the
    :class:`~actors.ActorSystem` records it in ``system.failures``, cancels the
    body of its ``async with`` block and raises it from ``__aexit__``.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["Directive", "RestartBudget", "SupervisorPolicy"]


class Directive(enum.StrEnum):
    """What a supervisor does with a failed actor."""

    RESTART = "restart"
    STOP = "stop"
    ESCALATE = "escalate"


@dataclass(frozen=True)
class SupervisorPolicy:
    """One actor's supervision policy.

    ``directive``: restart, stop or escalate. ``max_restarts`` / ``window``
    (seconds) bound restarts: the failure that would exceed them escalates
    instead. Build one with :meth:`restart`, :meth:`stop`, :meth:`escalate`,
    or :meth:`of` (which also accepts the strings ``"restart"``, ``"stop"``,
    ``"escalate"``).
    """

    directive: Directive = Directive.ESCALATE
    max_restarts: int = 10
    window: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "directive", Directive(self.directive))
        if self.max_restarts < 0 or self.window <= 0:
            raise ValueError(
                f"SupervisorPolicy needs max_restarts >= 0 and window > 0, "
                f"got max_restarts={self.max_restarts}, window={self.window}"
            )

    @classmethod
    def restart(cls, max_restarts: int = 10, window: float = 60.0) -> SupervisorPolicy:
        """Restart on failure, at most ``max_restarts`` times per ``window`` s."""
        return cls(Directive.RESTART, max_restarts, window)

    @classmethod
    def stop(cls) -> SupervisorPolicy:
        """Stop the actor on failure."""
        return cls(Directive.STOP)

    @classmethod
    def escalate(cls) -> SupervisorPolicy:
        """Stop the actor and hand the failure to its parent (the default)."""
        return cls(Directive.ESCALATE)

    @classmethod
    def of(cls, policy: SupervisorPolicy | str | None) -> SupervisorPolicy:
        """Normalise a policy given as an object, a directive name or None.

        Raises ``ValueError`` naming the accepted values for an unknown string.
        """
        if policy is None:
            return cls()
        if isinstance(policy, SupervisorPolicy):
            return policy
        try:
            return cls(Directive(policy))
        except ValueError:
            known = ", ".join(repr(d.value) for d in Directive)
            raise ValueError(f"unknown supervisor policy {policy!r}; use one of {known}") from None


class RestartBudget:
    """Counts restarts in a sliding window for one actor (not thread-safe)."""

    def __init__(self, policy: SupervisorPolicy) -> None:
        self._policy = policy
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        """Record one restart and say whether it stays within the budget."""
        now = time.monotonic()
        while self._times and now - self._times[0] > self._policy.window:
            self._times.popleft()
        if len(self._times) >= self._policy.max_restarts:
            return False
        self._times.append(now)
        return True
