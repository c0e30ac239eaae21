"""The root guardian: the parent of every top-level actor of a system.

Internal. It lets a cell talk only to its parent: a top-level actor spawns,
escalates and ends through the guardian exactly as a child does through its
parent cell. The guardian holds the top of the actor tree (lookups walk down
from it) and hands failures that reach the top to the system.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ActorDead, ActorFailed
from ._cell import Parent

if TYPE_CHECKING:
    from .system import ActorSystem

__all__ = ["RootGuardian"]


class RootGuardian(Parent):
    """Parent of a system's top-level actors (loop thread only).

    ``on_failure(failure)`` receives every failure escalated to the top.
    """

    def __init__(self, system: ActorSystem, on_failure: Callable[[ActorFailed], None]) -> None:
        super().__init__()
        self.system = system
        self.name = ""
        self.parent = None
        self.ref = None
        self.dead = False
        self._on_failure = on_failure

    def close(self) -> None:
        """Refuse further spawns (the system is shutting down)."""
        self.dead = True

    def check_can_spawn(self) -> None:
        if self.dead:
            raise ActorDead(f"actor system {self.system.name!r} is shutting down; cannot spawn")

    def escalate_to(self, failure: ActorFailed) -> None:
        self._on_failure(failure)
