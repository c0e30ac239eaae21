"""The data-flow scheduler for one event (the Frank model, with CMSSW paths).

Rules, applied per event, all on the loop thread (no locks):

* A module is *requested* when a path reaches it (every filter before it in
  that path passed) or when a requested module consumes one of its products
  (on-demand, unscheduled execution). A requested module is sent to its
  actor as soon as every module it depends on has finished, so independent
  modules of one event run concurrently.
* A filter that rejects stops its path: later modules of that path are not
  requested by it (another path, or a consumer, may still request them).
* When every requested module of the trigger paths has finished, the end
  paths start. An output module is requested only if one of its
  ``select_events`` paths accepted the event (or it selects all); it also
  requests the unscheduled producers whose products it keeps, and it writes
  in input order through its :class:`OrderedGate`.
* The first module error fails the event with ModuleError; nothing more of
  that event is started.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import FrameworkError, ModuleError
from .branch import Branch
from .event import Event, EventData, OutputEvent
from .graph import ModuleNode, PathPlan
from .report import ModuleTiming, PathReport
from .workers import Call, format_error

__all__ = ["EventRun", "OrderedGate", "Runtime"]

_IDLE, _REQUESTED, _RUNNING, _DONE, _UNSELECTED = 0, 1, 2, 3, 4


def _np_bool() -> type:
    """numpy's bool scalar type if numpy is loaded (filters often return one)."""
    numpy = sys.modules.get("numpy")
    return numpy.bool_ if numpy is not None else bool


class OrderedGate:
    """Lets event ``index`` through only after every earlier index was released."""

    __slots__ = ("_finished", "_next", "_waiters")

    def __init__(self) -> None:
        self._next = 0
        self._finished: set[int] = set()
        self._waiters: dict[int, Callable[[], None]] = {}

    def when_turn(self, index: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` now if it is ``index``'s turn, else when it comes."""
        if index == self._next:
            callback()
        else:
            self._waiters[index] = callback

    def release(self, index: int) -> None:
        """Mark ``index`` done (written or skipped); wake the next in line.

        Releasing an index twice is harmless.
        """
        if index < self._next:
            return
        self._finished.add(index)
        while self._next in self._finished:
            self._finished.discard(self._next)
            self._next += 1
        waiter = self._waiters.pop(self._next, None)
        if waiter is not None:
            waiter()


@dataclass
class Runtime:
    """Per-job state shared by all events: nodes, actors, gates, counters.

    ``posts[node][slot]`` is the post function of that instance's module
    actor (``LocalActorRef.poster()``).
    """

    nodes: list[ModuleNode]
    posts: list[list[Callable[[Any, Any], None]]]
    timings: list[ModuleTiming]
    trigger_paths: list[PathPlan]
    end_paths: list[PathPlan]
    path_reports: list[PathReport]
    gates: dict[int, OrderedGate] = field(default_factory=dict)
    keep_cache: dict[int, dict[Branch, bool]] = field(default_factory=dict)
    methods: list[list[Callable[[Any], Any]]] = field(default_factory=list)
    accepted: int = 0
    plans: list[PathPlan] = field(default_factory=list)  # trigger paths, then end paths

    def __post_init__(self) -> None:
        self.methods = [[n.method(s) for s in range(len(n.instances))] for n in self.nodes]
        self.plans = [*self.trigger_paths, *self.end_paths]
        for node in self.nodes:
            if node.kind == "output":
                self.gates[node.index] = OrderedGate()
                self.keep_cache[node.index] = {}


OnEventDone = Callable[["EventRun", BaseException | None], None]


class _EventCall(Call):
    """A module's event call: its reply goes straight to ``EventRun._done`` (no closure)."""

    __slots__ = ("n", "run")

    def __init__(
        self, fn: Callable[[Any], Any], arg: Any, run: EventRun, n: int, timing: ModuleTiming
    ) -> None:
        self.fn = fn
        self.arg = arg
        self.run = run
        self.n = n
        self.timing = timing
        self.elapsed = 0.0

    def __call__(self, result: Any, error: BaseException | None) -> None:
        if error is None:
            timing = self.timing
            timing.calls += 1
            timing.total += self.elapsed
        self.run._done(self.n, result, error)


class EventRun:
    """Runs one event through the paths, driven by completion callbacks (no task).

    :meth:`start` sends the first ready modules; ``on_done(run, error)`` is
    called once, on the loop, when the event is complete (``error`` None) or
    when a module failed (``error`` a ModuleError; nothing more is started).
    """

    __slots__ = (
        "_depth",
        "_finished",
        "_on_done",
        "_paths",
        "_rt",
        "_stream",
        "data",
        "failed_at",
        "fresult",
        "pending",
        "pos",
        "state",
        "waiting",
        "waiting_paths",
    )

    def __init__(self, rt: Runtime, data: EventData, stream: int, on_done: OnEventDone) -> None:
        count = len(rt.nodes)
        self._rt = rt
        self._stream = stream
        self.data = data
        self.state = [_IDLE] * count
        self.waiting = [0] * count
        self.fresult: list[bool | None] = [None] * count
        self.pending = 0
        self._paths = rt.trigger_paths
        self.pos = [0] * len(rt.plans)
        self.failed_at = [-1] * len(rt.plans)
        self.waiting_paths: dict[int, list[int]] | None = None  # filter -> paths waiting on it
        self._finished = False
        self._on_done = on_done
        self._depth = 0  # > 0 while paths are being advanced: the phase cannot end then

    def describe(self) -> str:
        """One line for the stall report: the event, its stream, modules running or queued."""
        nodes = self._rt.nodes
        running = [nodes[n].label for n, s in enumerate(self.state) if s == _RUNNING]
        queued = [nodes[n].label for n, s in enumerate(self.state) if s == _REQUESTED]
        return f"event {self.data.id} (stream {self._stream}): running {running or 'nothing'}" + (
            f"; waiting for their inputs {queued}" if queued else ""
        )

    def start(self) -> None:
        """Request the trigger paths' first modules (may complete at once)."""
        self._depth += 1
        try:
            for p in range(len(self._rt.trigger_paths)):
                self._advance(p)
        finally:
            self._depth -= 1
        self._check_phase()

    def _complete(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        for gate in self._rt.gates.values():
            gate.release(self.data.index)
        if error is None:
            self._count_paths()
        self._on_done(self, error)

    # -- paths
    def _plan(self, p: int) -> PathPlan:
        return self._rt.plans[p]

    def _advance(self, p: int) -> None:
        # A module may complete inside _request (before the rest of the path is requested):
        # the phase check waits until the outermost advance is over.
        self._depth += 1
        try:
            self._advance_path(p)
        finally:
            self._depth -= 1

    def _advance_path(self, p: int) -> None:
        plan = self._rt.plans[p]
        nodes, filters = plan.nodes, plan.filters
        pos = self.pos[p]
        end = len(nodes)
        while pos < end:
            n = nodes[pos]
            self._request(n)
            if filters[pos]:
                result = self.fresult[n]
                if result is None:
                    if self.waiting_paths is None:
                        self.waiting_paths = {}
                    self.waiting_paths.setdefault(n, []).append(p)
                    self.pos[p] = pos
                    return
                if not result:
                    self.failed_at[p] = pos
                    self.pos[p] = pos
                    return
            pos += 1
        self.pos[p] = pos

    def accepted(self, p: int) -> bool:
        return self.failed_at[p] < 0 and self.pos[p] >= len(self._rt.plans[p].nodes)

    # -- data flow
    def _request(self, n: int) -> None:
        if self.state[n] != _IDLE:
            return
        node = self._rt.nodes[n]
        if node.kind == "output" and not self._selected(node):
            self.state[n] = _UNSELECTED  # no select_events path accepted the event
            return
        self.state[n] = _REQUESTED
        self.pending += 1
        waiting = 0
        for d in node.deps:
            self._request(d)
            if self.state[d] != _DONE:
                waiting += 1
        self.waiting[n] = waiting
        if waiting == 0:
            self._launch(n)

    def _selected(self, node: ModuleNode) -> bool:
        return node.select_all or any(self.accepted(p) for p in node.select_events)

    def _launch(self, n: int) -> None:
        self.state[n] = _RUNNING
        rt = self._rt
        node = rt.nodes[n]
        slot = self._stream if len(node.instances) > 1 else 0
        post = rt.posts[n][slot]
        fn = rt.methods[n][slot]
        if node.kind == "output":

            def write() -> None:
                if self._finished:
                    return
                try:
                    call = _EventCall(fn, self._output_event(n), self, n, rt.timings[n])
                    post(call, call)
                except Exception as exc:  # runs from another event's callback: keep it ours
                    self._done(n, None, exc)

            rt.gates[n].when_turn(self.data.index, write)
        else:
            call = _EventCall(fn, Event(self.data, node.infos[slot]), self, n, rt.timings[n])
            post(call, call)

    def _output_event(self, n: int) -> OutputEvent:
        node = self._rt.nodes[n]
        cache = self._rt.keep_cache[n]
        assert node.output is not None
        kept = {}
        for branch, product in self.data.products.items():
            keep = cache.get(branch)
            if keep is None:
                keep = cache[branch] = node.output.keeps(branch)
            if keep:
                kept[branch] = product
        names = tuple(
            plan.name for p, plan in enumerate(self._rt.trigger_paths) if self.accepted(p)
        )
        return OutputEvent(self.data.id, self.data.index, kept, names)

    def _done(self, n: int, result: Any, error: BaseException | None) -> None:
        if self._finished:
            return
        node = self._rt.nodes[n]
        if error is None and node.kind == "filter" and not isinstance(result, bool | _np_bool()):
            error = FrameworkError(
                f"filter {node.label!r} returned {result!r}; filter() must return a bool"
            )
        if error is not None:
            self._complete(
                ModuleError(node.label, f"event {self.data.id}", error, format_error(error))
            )
            return
        try:
            self._proceed(n, node, result)
        except Exception as exc:  # a callback must not lose an error: fail the event
            failure = FrameworkError(
                f"event {self.data.id}: scheduling after module {node.label!r} failed: {exc!r}"
            )
            failure.__cause__ = exc
            self._complete(failure)

    def _proceed(self, n: int, node: ModuleNode, result: Any) -> None:
        self.state[n] = _DONE
        self.pending -= 1
        # Count this completion only for the consumers requested before it: a module
        # requested from here on (a filter's paths advancing, a module completing at once)
        # sees this one done and never counted it.
        state, waiting = self.state, self.waiting
        ready = []
        for r in node.rdeps:
            if state[r] == _REQUESTED:
                waiting[r] -= 1
                if waiting[r] == 0:
                    ready.append(r)
        self._depth += 1
        try:
            if node.kind == "output":
                self._rt.gates[n].release(self.data.index)
            elif node.kind == "filter":
                self.fresult[n] = bool(result)
                if self.waiting_paths is not None:
                    for p in self.waiting_paths.pop(n, ()):
                        self._advance(p)
            for r in ready:
                if state[r] == _REQUESTED:
                    self._launch(r)
        finally:
            self._depth -= 1
        self._check_phase()

    def _check_phase(self) -> None:
        if self.pending or self._finished or self._depth:
            return
        if self._paths is self._rt.trigger_paths and self._rt.end_paths:
            self._paths = self._rt.end_paths
            first = len(self._rt.trigger_paths)
            self._depth += 1
            try:
                for p in range(first, first + len(self._rt.end_paths)):
                    self._advance(p)
            finally:
                self._depth -= 1
            if self.pending:
                return
        self._complete(None)

    # -- reports
    def _count_paths(self) -> None:
        any_accepted = False
        state = self.state
        all_selected = _UNSELECTED not in state
        for p, report in enumerate(self._rt.path_reports):
            plan = self._rt.plans[p]
            report.visited += 1
            failed_at = self.failed_at[p]
            if failed_at < 0:
                report.passed += 1
                any_accepted = any_accepted or not plan.end
                if all_selected:  # the common case: every module of the path passed
                    for counts in report.modules:
                        counts.visited += 1
                        counts.passed += 1
                    continue
            else:
                report.failed += 1
            for k, counts in enumerate(report.modules):
                if state[plan.nodes[k]] == _UNSELECTED:
                    counts.skipped += 1
                elif failed_at < 0 or k < failed_at:
                    counts.visited += 1
                    counts.passed += 1
                elif k == failed_at:
                    counts.visited += 1
                    counts.failed += 1
                else:
                    counts.skipped += 1
        if any_accepted or not self._rt.trigger_paths:
            self._rt.accepted += 1
