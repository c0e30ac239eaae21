"""Runs and luminosity blocks: framework-side contexts and the views modules get.

Each run and lumi in flight has one context; a module instance sees it
through a :class:`Run` / :class:`Lumi` view that carries the instance's slot,
so ``state`` is private to that instance and that run/lumi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .event import LumiID, ProcessEntry

__all__ = ["Lumi", "LumiContext", "Run", "RunContext"]


class RunContext:
    """Framework-side state of one run in flight (not for modules)."""

    __slots__ = ("number", "process_history", "states")

    def __init__(self, number: int, process_history: tuple[ProcessEntry, ...]) -> None:
        self.number = number
        self.process_history = process_history
        self.states: dict[int, Any] = {}


class LumiContext:
    """Framework-side state of one luminosity block in flight (not for modules)."""

    __slots__ = ("id", "run", "states")

    def __init__(self, lumi_id: LumiID, run: RunContext) -> None:
        self.id = lumi_id
        self.run = run
        self.states: dict[int, Any] = {}


class Run:
    """A module's view of a run: number, process history and its per-run state.

    ``state`` is private to the module instance and to this run: set it in
    ``begin_run``, read it from events (``event.run.state``) and in ``end_run``.
    """

    __slots__ = ("_ctx", "_slot")

    def __init__(self, ctx: RunContext, slot: int) -> None:
        self._ctx = ctx
        self._slot = slot

    @property
    def number(self) -> int:
        return self._ctx.number

    @property
    def process_history(self) -> tuple[ProcessEntry, ...]:
        """Process names and configuration hashes, oldest first, this process last."""
        return self._ctx.process_history

    @property
    def state(self) -> Any:
        return self._ctx.states.get(self._slot)

    @state.setter
    def state(self, value: Any) -> None:
        self._ctx.states[self._slot] = value

    def __repr__(self) -> str:
        return f"Run({self.number})"


class Lumi:
    """A module's view of a luminosity block: ID and its per-lumi state.

    ``state`` is private to the module instance and this lumi (several lumis may
    be in flight at once): set it in ``begin_lumi``, update it from events
    (``event.lumi.state``), read it in ``end_lumi``. A STREAM module has one
    instance per stream, so its per-lumi state sees only that stream's events.
    """

    __slots__ = ("_ctx", "_slot")

    def __init__(self, ctx: LumiContext, slot: int) -> None:
        self._ctx = ctx
        self._slot = slot

    @property
    def id(self) -> LumiID:
        return self._ctx.id

    @property
    def number(self) -> int:
        return self._ctx.id.lumi

    @property
    def run(self) -> Run:
        return Run(self._ctx.run, self._slot)

    @property
    def state(self) -> Any:
        return self._ctx.states.get(self._slot)

    @state.setter
    def state(self, value: Any) -> None:
        self._ctx.states[self._slot] = value

    def __repr__(self) -> str:
        return f"Lumi({self._ctx.id})"
