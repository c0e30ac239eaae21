"""Analysis half of the splitter: which module runs where, which products cross.

:func:`analyse` builds the original process with the framework's own
scheduler (:func:`actors.framework.graph.build`: imports, constructs,
declares and resolves every consumed selection, checks cycles), so the data
dependencies are exactly those the framework would follow. It then places
every module on the local side, the remote side or both, and lists the
:class:`Pair` (one Sender/Receiver pair) that each crossing label needs.
Nothing here writes files or touches the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..framework import Branch, Options, Process
from ..framework.graph import Schedule, build

__all__ = ["LOCAL", "REMOTE", "Analysis", "Pair", "analyse"]

LOCAL, REMOTE = "local", "remote"


def other(side: str) -> str:
    """The side opposite ``side``."""
    return REMOTE if side == LOCAL else LOCAL


@dataclass
class Pair:
    """One Sender (on ``origin``) / Receiver (on the other side) pair.

    ``label`` is the label the products carry (the producing module's, or
    the label a source gave them); the Receiver takes that label, so
    consumers on the receiving side find the products where they expect
    them. ``decision`` pairs carry a filter's decision as a marker product.
    """

    origin: str
    label: str
    branches: list[Branch]
    instance: int = 0
    decision: bool = False
    producer: str = ""  # module label (or the source label) that makes the branches
    sender: str = ""
    receiver: str = ""
    marker: str = ""


@dataclass
class Analysis:
    """The original process, its schedule, and where every module runs."""

    process: Process
    schedule: Schedule
    offload: list[str]
    duplicate: list[str]
    produced: dict[Branch, str] = field(default_factory=dict)  # branch -> producer label
    consumes: dict[str, list[Branch]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    remote: set[str] = field(default_factory=set)  # modules that run in the remote process
    local: set[str] = field(default_factory=set)  # modules that run in the local process
    pairs: dict[tuple[str, str], Pair] = field(default_factory=dict)  # (origin, label)

    @property
    def source_label(self) -> str:
        return self.schedule.source.config.label

    def runs_on(self, label: str, side: str) -> bool:
        return label in (self.local if side == LOCAL else self.remote)

    def pair_of(self, producer: str, origin: str) -> Pair | None:
        """The pair carrying ``producer``'s products away from ``origin`` (if any)."""
        for pair in self.pairs.values():
            if pair.producer == producer and pair.origin == origin and not pair.decision:
                return pair
        return None

    def decision_of(self, label: str, origin: str) -> Pair | None:
        return next(
            (
                p
                for p in self.pairs.values()
                if p.decision and p.producer == label and p.origin == origin
            ),
            None,
        )


def analyse(process: Process, offload: Sequence[str], duplicate: Sequence[str] = ()) -> Analysis:
    """Place the modules and find the crossing products; ConfigError names the module."""
    options = Options(
        streams=1, threads=1, max_concurrent_lumis=process.options.max_concurrent_lumis
    )
    schedule = build(process, options)
    a = Analysis(process, schedule, list(dict.fromkeys(offload)), list(dict.fromkeys(duplicate)))
    source = schedule.source
    for branch in source.keys.values():
        a.produced[branch] = source.config.label
    for node in schedule.nodes:
        a.kinds[node.label] = node.kind
        for branch in node.infos[0].produces.values():
            a.produced[branch] = node.label
    for node in schedule.nodes:
        consumed = dict.fromkeys(node.infos[0].consumes)
        if node.output is not None:
            consumed.update(dict.fromkeys(node.output.select(a.produced)))
        a.consumes[node.label] = [b for b in consumed if a.produced.get(b) != node.label]
    _check_labels(a, schedule.dropped)
    _place(a)
    _find_pairs(a)
    return a


def _check_labels(a: Analysis, dropped: list[str]) -> None:
    process = a.process
    source = a.source_label
    both = set(a.offload) & set(a.duplicate)
    if both:
        raise ConfigError(f"module(s) {sorted(both)} given both to --offload and --duplicate")
    if not a.offload:
        raise ConfigError("nothing to offload: give at least one module label to --offload")
    for option, labels in (("--offload", a.offload), ("--duplicate", a.duplicate)):
        for label in labels:
            if label == source:
                raise ConfigError(
                    f"{option} {label!r}: {label!r} is the event source of process "
                    f"{process.name!r}; the source stays in the local process (the remote "
                    "one gets a FollowerSource and receives the products it needs)"
                )
            if label not in process.modules:
                known = ", ".join(sorted(process.modules)) or "none"
                raise ConfigError(f"{option} names unknown module {label!r} (modules: {known})")
            if label in dropped:
                raise ConfigError(
                    f"{option} {label!r}: no path of process {process.name!r} needs this "
                    "module (the scheduler drops it); put it on a path or leave it out"
                )
    for label in a.offload:
        if a.kinds[label] == "output":
            raise ConfigError(
                f"--offload {label!r}: output modules stay in the local process (they "
                "select events by the local trigger paths)"
            )


def _place(a: Analysis) -> None:
    """Local: everything but the offloaded. Remote: offloaded + the duplicates they need."""
    needed = [n.label for n in a.schedule.nodes]
    a.local = {label for label in needed if label not in a.offload}
    remote = set(a.offload)
    dup = set(a.duplicate)
    changed = True
    while changed:
        changed = False
        wanted = {a.produced[b] for m in remote for b in a.consumes[m]} & dup
        wanted |= _gating_duplicates(a, remote) & dup
        if not wanted <= remote:
            remote |= wanted
            changed = True
    a.remote = remote


def _gating_duplicates(a: Analysis, remote: set[str]) -> set[str]:
    """Duplicated filters that come before a remote module on some path."""
    out: set[str] = set()
    for path in a.process.paths.values():
        for i, label in enumerate(path.modules):
            if label in remote and label not in a.duplicate:
                out.update(m for m in path.modules[:i] if a.kinds.get(m) == "filter")
    return out


def _find_pairs(a: Analysis) -> None:
    crossing: dict[tuple[str, str], dict[Branch, None]] = {}
    for side in (LOCAL, REMOTE):
        for module in sorted(a.local if side == LOCAL else a.remote):
            for branch in a.consumes[module]:
                producer = a.produced[branch]
                if producer == a.source_label and side == LOCAL:
                    continue
                if producer != a.source_label and a.runs_on(producer, side):
                    continue
                crossing.setdefault((other(side), branch.label), {})[branch] = None
    for (origin, label), branches in sorted(crossing.items()):
        producers = {a.produced[b] for b in branches}
        if len(producers) != 1:  # a source gave a module's label to its products
            raise ConfigError(
                f"products labelled {label!r} come from several producers {sorted(producers)}; "
                "the splitter needs one producer per label"
            )
        pair = Pair(origin, label, sorted(branches), producer=producers.pop())
        a.pairs[(origin, label)] = pair
    _find_decisions(a)


def _find_decisions(a: Analysis) -> None:
    """A filter running on one side only, on a path the other side needs, sends its decision."""
    for path in a.process.paths.values():
        for i, label in enumerate(path.modules):
            if a.kinds.get(label) != "filter":
                continue
            for side in (LOCAL, REMOTE):
                origin = other(side)
                if a.runs_on(label, side) or not a.runs_on(label, origin):
                    continue
                later = any(a.runs_on(m, side) for m in path.modules[i + 1 :])
                if not (later or (side == LOCAL and not path.end)):
                    continue
                if a.pair_of(label, origin) or a.decision_of(label, origin):
                    continue
                key = (origin, f"{label}Decision")
                a.pairs[key] = Pair(origin, label, [], decision=True, producer=label)


def unique(base: str, taken: Iterable[str]) -> str:
    """``base``, or ``base2``, ``base3``... whichever is not in ``taken``."""
    used = set(taken)
    if base not in used:
        return base
    n = 2
    while f"{base}{n}" in used:
        n += 1
    return f"{base}{n}"
