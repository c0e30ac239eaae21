"""Module base classes: Producer, Filter, Analyzer, OutputModule.

Writing a module::

    class MuonPairMass(Producer):
        concurrency = Concurrency.STREAM

        def __init__(self, *, muons: str = "muons") -> None:
            super().__init__()
            self.muons_label = muons

        def declare(self, d: Declarer) -> None:
            self.muons = d.consumes(self.muons_label)
            d.produces("float64")

        def produce(self, event: Event) -> None:
            event.put(compute(event.get(self.muons)))

Contracts:

* Parameters from the configuration arrive as keyword arguments of
  ``__init__``; an unknown or missing one is a ConfigError naming the module
  label and key. The framework sets ``self.label`` (module label) and
  ``self.process_name`` after construction, before ``declare``, and
  ``self.job_options`` (the job's :class:`~actors.framework.process.Options`,
  run-time overrides applied) once the process is built, before ``begin_job``.
* ``declare(d)`` is called once per instance when the process is built; it
  says what the module consumes (returning :class:`Token` s for ``get``) and
  produces. A consumed product that nothing produces is a ConfigError naming
  module and selection, raised before any event runs.
* The event method (``produce``/``filter``/``analyze``/``write``) may be a
  plain method - run in the process's pool of ``threads`` worker threads - or
  ``async def`` - run on the event loop (never block in it). A process with
  ``threads = 0`` has no pool: plain methods (and sync hooks, and a blocking
  source's reads) run on the event-loop thread like ``run_on_loop`` ones,
  which saves two thread hand-overs per module call (the dimuon example on a
  2-CPU host: 1.9-2.4x the events/s in one process, 1.3-2.5x offloaded), but
  a call blocks the process's links, remote asks and stall report until it
  returns, and modules that release the GIL get no second CPU. While such a
  job runs, receives on its loop do not poll before they wait
  (:func:`actors.transports.receive_polls_off`).
* Optional hooks, sync or async, on every kind: ``begin_job()``,
  ``begin_run(run)``, ``begin_lumi(lumi)``, ``end_lumi(lumi)``,
  ``end_run(run)``, ``end_job()``. ``begin_lumi`` of a lumi runs before any of
  its events reach the module, ``end_lumi`` after all of them; with several
  lumis in flight, hooks of different lumis may interleave.
* ``run_on_loop = True`` (class attribute) runs the module's *sync* methods
  directly on the event-loop thread instead of the worker threads: for code
  that takes microseconds and never blocks (bookkeeping, forwarding a token),
  it saves the thread hand-off. Anything slower stalls every event. Such a
  method may return an awaitable (e.g. a coroutine of a private ``async
  def``) when it must wait: the call finishes when the awaitable does, which
  runs in one of the module's worker tasks. A fast path that completes at
  once and a slow path that waits (for credit, for data) costs no task then.
* ``async def`` methods run in the module's own worker tasks on the loop (at
  most one per concurrent call: one for STREAM and LEGACY instances, up to
  ``streams`` for SHARED ones), reused from call to call; ``asyncio.timeout``,
  ``TaskGroup`` and locks work inside them.
* ``concurrency`` (class attribute) says how instances are shared:
  :attr:`Concurrency.STREAM` one instance per stream (each instance handles one
  call at a time), :attr:`Concurrency.SHARED` one reentrant instance called
  concurrently, :attr:`Concurrency.LEGACY` one instance, calls serialised
  through its mailbox. Producers and filters default to STREAM; analyzers
  and output modules to LEGACY (like a CMSSW "one" module: a single instance
  whose ``end_job`` sees every event, not one partial summary per stream).
* An exception raised by any method stops the job with
  :class:`~actors.errors.ModuleError` naming the label and transition. After
  a failure no further transition hook runs: ``end_lumi``/``end_run``/``end_job``
  are called only on the way to a successful end.
* ``close()`` (optional, sync or async) runs once at the end of every job
  whatever its outcome: after ``end_job`` on success, after the failure or a
  cancel otherwise, last node first, the source last. It releases what the
  module holds outside the process (links, files) and must work whatever the
  module's state (``begin_job`` may not have run or finished). After a failure
  a sync call already running in a worker thread may still be running (threads
  cannot be stopped). A close that raises fails an otherwise successful job
  (ModuleError naming the label and ``close``); after a failed job its error is
  logged and noted on the job's error. Contract and thread rules:
  :func:`actors.framework.hooks.close_instances`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError
from .branch import Branch, OutputCommands, Selection, check_name

if TYPE_CHECKING:
    from .event import Event, Lumi, OutputEvent, Run
    from .process import Options

__all__ = [
    "Analyzer",
    "Concurrency",
    "Declarer",
    "Filter",
    "Module",
    "OutputModule",
    "Producer",
    "Token",
]


class Concurrency(enum.Enum):
    """How a module type is instantiated and called (see module docstring)."""

    STREAM = "stream"
    SHARED = "shared"
    LEGACY = "legacy"


class Token:
    """What ``Declarer.consumes`` returns: a selection resolved when the process is built.

    ``branches`` holds the produced branches the selection matched (filled by
    the framework before any event); ``event.get(token)`` looks only at those.
    """

    __slots__ = ("branches", "optional", "selection")

    def __init__(self, selection: Selection, optional: bool = False) -> None:
        self.selection = selection
        self.optional = optional
        self.branches: tuple[Branch, ...] = ()

    def __repr__(self) -> str:
        return f"Token({self.selection.text!r})"


class Declarer:
    """Collects what one module instance consumes and produces (argument of ``declare``)."""

    def __init__(self, label: str, process: str, *, is_source: bool = False) -> None:
        self.label = label
        self.process = process
        self.is_source = is_source
        self.tokens: list[Token] = []
        self.products: dict[str, Branch] = {}

    def consumes(self, what: str, *, instance: str | None = None, optional: bool = False) -> Token:
        """Declare a consumed product; returns the Token to pass to ``event.get``.

        ``what`` is a module label (all it produces, or only ``instance`` when
        given) or a branch selection ``Type_label_instance_PROCESS`` with
        wildcards. ``optional=True`` tolerates a selection that matches nothing.
        """
        if instance is not None:
            if "_" in what:
                raise ConfigError(
                    f"module {self.label!r}: instance= goes with a bare module label, "
                    f"not with the branch selection {what!r}"
                )
            what = f"*_{what}_{instance}_*"
        token = Token(Selection(what), optional)
        self.tokens.append(token)
        return token

    def produces(
        self,
        type: str,
        instance: str = "",
        *,
        label: str | None = None,
        process: str | None = None,
    ) -> Branch:
        """Declare a product of stable type name ``type`` and ``instance``.

        ``label``/``process`` may only be overridden by a source (products read
        from a file keep the label and process that made them). Raises
        ConfigError for invalid names or a duplicate instance.
        """
        if (label is not None or process is not None) and not self.is_source:
            raise ConfigError(f"module {self.label!r}: only a source may set label/process")
        branch = Branch(
            check_name("type", type),
            check_name("label", label if label is not None else self.label),
            check_name("instance", instance),
            check_name("process", process if process is not None else self.process),
        )
        key = instance if label is None and process is None else str(branch)
        if key in self.products:
            raise ConfigError(f"module {self.label!r} declares product {instance!r} twice")
        self.products[key] = branch
        return branch


class Module:
    """Base of every module kind; see the module docstring for the contract."""

    concurrency: ClassVar[Concurrency] = Concurrency.STREAM
    run_on_loop: ClassVar[bool] = False
    label: str = ""
    process_name: str = ""
    job_options: Options | None = None

    def declare(self, d: Declarer) -> None:
        """Declare consumed and produced products (default: none)."""

    # Optional hooks, sync or async; the defaults do nothing.
    def begin_job(self) -> Any:
        return None

    def end_job(self) -> Any:
        return None

    def begin_run(self, run: Run) -> Any:
        return None

    def end_run(self, run: Run) -> Any:
        return None

    def begin_lumi(self, lumi: Lumi) -> Any:
        return None

    def end_lumi(self, lumi: Lumi) -> Any:
        return None

    def close(self) -> Any:
        """Release outside resources at the end of every job (module doc)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"


class Producer(Module):
    """Makes products: implement ``produce(event)`` (sync or async), calling ``event.put``."""

    def produce(self, event: Event) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.produce")


class Filter(Module):
    """Decides whether its paths go on: ``filter(event) -> bool`` (sync or async).

    A filter may also put products it declared. Returning False stops every
    path the filter is on for this event.
    """

    def filter(self, event: Event) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.filter")


class Analyzer(Module):
    """Reads products without producing: ``analyze(event)`` (sync or async).

    One instance by default (``Concurrency.LEGACY``): calls are serialised and
    its state sees every event. Declare ``STREAM`` or ``SHARED`` for a busy one.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.LEGACY

    def analyze(self, event: Event) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.analyze")


class OutputModule(Module):
    """Writes selected products of selected events, in input order.

    Configuration: ``select_events`` (trigger path names; the event is written
    if any of them accepted it; empty = every event) and ``output_commands``
    (keep/drop statements; default ``["keep *"]``). Subclasses accept their own
    parameters and pass these two on to ``super().__init__``.
    ``write(event)`` (sync or async) receives an
    :class:`~actors.framework.event.OutputEvent` holding only the kept
    products; calls are serialised and come in input order whatever the number
    of streams. Output modules are placed on end paths.

    ``kept_branches`` is set by the framework before ``begin_job``: every
    branch of this process's source and modules that the keep/drop list keeps
    (a product is written only for events where it exists), so an output can
    lay out its file before the first event.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.LEGACY

    def __init__(
        self,
        *,
        select_events: Sequence[str] = (),
        output_commands: Sequence[str] = ("keep *",),
    ) -> None:
        if isinstance(select_events, str):
            select_events = [select_events]
        self.select_events: tuple[str, ...] = tuple(select_events)
        self.output_commands = OutputCommands(list(output_commands))
        self.kept_branches: tuple[Branch, ...] = ()

    def write(self, event: OutputEvent) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.write")
