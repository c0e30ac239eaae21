"""Sources and the transitions they yield.

A source is the first module of a process: it yields transitions in order::

    BeginRun(1)
      BeginLumi(1, 1)
        EventTransition(EventID(1, 1, 1), products={"": value, ("float64", "x"): 1.0})
        ...
      EndLumi(1, 1)
      BeginLumi(1, 2) ... EndLumi(1, 2)
    EndRun(1)

Contracts:

* ``transitions()`` returns a sync iterator or an async iterator. A sync
  iterator is advanced on the event loop unless the class sets
  ``blocking = True`` (then each ``next`` runs in a worker thread, for sources
  that read files); an async iterator must not block the loop.
* Transitions nest properly: events only inside an open lumi, lumis only
  inside an open run, every Begin closed by the matching End (the framework
  raises FrameworkError naming the source otherwise). When the job stops
  early (``events=N`` reached, an error), the framework closes the iterator
  (``close``/``aclose``) and ends the open lumis and runs itself.
* Event products are keyed by instance name (type taken from the
  declaration) or by ``(type, instance)``; every key must have been declared
  with ``d.produces`` in ``declare``. A value may be a
  :class:`~actors.framework.event.Product` to keep the provenance it had
  elsewhere (a follower replaying products received over a link).
* ``BeginRun.process_history`` carries the history of upstream processes (a
  follower replaying a run); this process appends its own entry.
* Parameters come as keyword arguments of ``__init__``; ``self.label``
  (default ``"source"``), ``self.process_name`` and (before ``begin_job``)
  ``self.job_options`` are set by the framework.
  Hooks ``begin_job``/``end_job`` and ``close`` are available as on modules
  (the source's ``close`` runs after every module's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .event import EventID, ProcessEntry
from .module import Declarer

if TYPE_CHECKING:
    from .process import Options

__all__ = [
    "BeginLumi",
    "BeginRun",
    "EndLumi",
    "EndRun",
    "EventTransition",
    "Source",
    "Transition",
]


@dataclass(frozen=True, slots=True)
class BeginRun:
    """Start of run ``run``; ``process_history`` lists upstream processes."""

    run: int
    process_history: tuple[ProcessEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class BeginLumi:
    """Start of luminosity block ``lumi`` of run ``run``."""

    run: int
    lumi: int


@dataclass(frozen=True, slots=True)
class EventTransition:
    """One event and the products the source provides for it."""

    id: EventID
    products: Mapping[Any, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndLumi:
    """End of luminosity block ``lumi`` of run ``run``."""

    run: int
    lumi: int


@dataclass(frozen=True, slots=True)
class EndRun:
    """End of run ``run``."""

    run: int


Transition = BeginRun | BeginLumi | EventTransition | EndLumi | EndRun


class Source:
    """Base class of sources; subclasses implement :meth:`transitions`."""

    blocking: ClassVar[bool] = False
    label: str = "source"
    process_name: str = ""
    job_options: Options | None = None

    def declare(self, d: Declarer) -> None:
        """Declare the products events will carry (``d.produces``); default none."""

    def transitions(self) -> Iterator[Transition] | AsyncIterator[Transition]:
        """The transitions of this job, in order (sync or async iterator)."""
        raise NotImplementedError(f"{type(self).__name__}.transitions")

    @classmethod
    def job_runner(cls, params: Mapping[str, Any]) -> Callable[..., Awaitable[Any]] | None:
        """Hook: a function that runs a process with this source instead of one schedule.

        ``params`` are the source's configuration parameters. Default None (one
        schedule). A runner is ``async def runner(process, run_schedule, *,
        events, threads, streams, max_concurrent_lumis, progress) -> JobReport``;
        ``run_schedule(process, *, pool=None, **same options)`` runs one
        schedule (never the hook again), on ``pool`` (a ThreadPoolExecutor)
        when given. Used by sources that start several independent schedules
        in one process (a follower serving several controllers).
        """
        return None

    def begin_job(self) -> Any:
        return None

    def end_job(self) -> Any:
        return None

    def close(self) -> Any:
        """Release outside resources at the end of every job (as on modules)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"
