"""Building half of the splitter: the local and remote Process configurations.

Given an :class:`~actors.split._plan.Analysis`, :func:`build_split` names
the inserted modules, rewrites every path for each side (see
``docs/split.md``, "Paths"), checks that the two processes cannot wait on
each other (a cycle across the split is a ConfigError naming the modules),
and returns two :class:`~actors.framework.Process` objects. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..framework import Path, Process
from ._plan import LOCAL, REMOTE, Analysis, Pair, other, unique

__all__ = ["SplitNames", "build_split"]

_DIST = "actors.distributed"
DECISION_TYPE = "actors.split:Decision"


@dataclass
class SplitNames:
    """Labels and names chosen for what the splitter inserts."""

    link: str
    controller: str = ""
    follower: str = ""
    done: str = ""
    done_path: str = ""
    send_path: str = ""
    remote_name: str = ""
    taken: set[str] = field(default_factory=set)

    def new(self, base: str) -> str:
        label = unique(base, self.taken)
        self.taken.add(label)
        return label


def build_split(
    a: Analysis, link: str = "offload", remote_name: str | None = None
) -> tuple[Process, Process, SplitNames]:
    """The local and remote processes of analysis ``a`` (ConfigError on a cycle)."""
    names = _names(a, link, remote_name)
    versions = {side: _versions(a, side) for side in (LOCAL, REMOTE)}
    _add_front_senders(a, names, versions)
    _check_cycles(a, versions)
    local = _local_process(a, names, versions[LOCAL])
    remote = _remote_process(a, names, versions[REMOTE])
    return local, remote, names


def _names(a: Analysis, link: str, remote_name: str | None) -> SplitNames:
    process = a.process
    names = SplitNames(link)
    names.taken = {*process.modules, a.source_label}
    names.taken |= {p.label for p in a.pairs.values() if not p.decision}
    names.controller = names.new(link)
    names.follower = names.new("follower")
    for instance, pair in enumerate(a.pairs.values(), start=1):
        pair.instance = instance
        to = "Local" if pair.origin == REMOTE else "Remote"
        if pair.decision:
            pair.marker = names.new(f"{pair.producer}Decision")
            pair.sender = names.new(f"{pair.producer}DecisionTo{to}")
            pair.receiver = pair.marker
        else:
            pair.sender = names.new(f"{pair.label}To{to}")
            pair.receiver = pair.label
    names.done = names.new("done")
    paths = set(process.paths)
    names.done_path = unique("done", paths)
    names.send_path = unique("send", paths | {names.done_path})
    names.remote_name = remote_name or f"{process.name}REMOTE"
    if names.remote_name == process.name:
        raise ConfigError(f"the remote process needs a name other than {process.name!r}")
    return names


def _versions(a: Analysis, side: str) -> dict[str, list[str]]:
    """Every path as ``side`` runs it: own modules (+ their senders), receivers for the rest."""
    out: dict[str, list[str]] = {}
    for path in a.process.paths.values():
        labels: list[str] = []
        for module in path.modules:
            if a.runs_on(module, side):
                labels.append(module)
                decision = a.decision_of(module, side)
                if decision is not None:
                    labels += [decision.marker, decision.sender]
                pair = a.pair_of(module, side)
                if pair is not None:
                    labels.append(pair.sender)
            else:
                pair = a.pair_of(module, other(side)) or a.decision_of(module, other(side))
                if pair is not None:
                    labels.append(pair.receiver)
        out[path.name] = labels
    return out


def _front(a: Analysis, side: str) -> list[Pair]:
    """Pairs whose producer is on no path (or is the source): they open every trigger path."""
    on_paths = {m for p in a.process.paths.values() for m in p.modules}
    return [
        p
        for p in a.pairs.values()
        if p.origin == side and not p.decision and p.producer not in on_paths
    ]


def _add_front_senders(
    a: Analysis, names: SplitNames, versions: dict[str, dict[str, list[str]]]
) -> None:
    for side in (LOCAL, REMOTE):
        front = _front(a, side)
        if not front:
            continue
        senders = [p.sender for p in front]
        receivers = [p.receiver for p in front]
        for target, labels_in_front in ((other(side), receivers), (side, senders)):
            trigger = [
                name
                for name, labels in versions[target].items()
                if labels and not a.process.paths[name].end
            ]
            for name in trigger:
                versions[target][name] = [*labels_in_front, *versions[target][name]]
            if not trigger and target == side:
                versions[side][names.send_path] = senders


# ---------------------------------------------------------------- cycles across the split


def _check_cycles(a: Analysis, versions: dict[str, dict[str, list[str]]]) -> None:
    """Refuse a split in which the two processes would wait on each other forever."""
    edges: dict[tuple[str, str], set[tuple[str, str]]] = {}

    def edge(src: tuple[str, str], dst: tuple[str, str]) -> None:
        edges.setdefault(src, set()).add(dst)

    _data_edges(a, edge)
    data = {k: set(v) for k, v in edges.items()}
    filters = {(s, p.receiver) for p in a.pairs.values() for s in (other(p.origin),)}
    filters |= {(s, m) for m, kind in a.kinds.items() if kind == "filter" for s in (LOCAL, REMOTE)}
    for side, table in versions.items():
        trigger_nodes = [
            (side, m) for name, labels in table.items() if not _is_end(a, name) for m in labels
        ]
        for name, labels in table.items():
            for i, label in enumerate(labels):
                node = (side, label)
                for before in labels[:i]:  # a filter that consumes node pulls it: no wait
                    if (side, before) in filters and not _reaches(data, (side, before), node):
                        edge(node, (side, before))
                if _is_end(a, name):
                    for dst in trigger_nodes:
                        edge(node, dst)
    cycle = _find_cycle(edges)
    if cycle:
        trail = " -> ".join(f"{s}:{m}" for s, m in cycle)
        raise ConfigError(
            f"splitting creates a cycle across the processes ({trail}): each side would wait "
            "for the other; offload or --duplicate these modules together, or reorder the path"
        )


def _reaches(
    edges: dict[tuple[str, str], set[tuple[str, str]]], src: tuple[str, str], dst: tuple[str, str]
) -> bool:
    """True if ``dst`` is reachable from ``src`` through data edges of one side."""
    seen = {src}
    todo = [src]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt == dst:
                return True
            if nxt not in seen and nxt[0] == src[0]:
                seen.add(nxt)
                todo.append(nxt)
    return False


def _is_end(a: Analysis, name: str) -> bool:
    path = a.process.paths.get(name)
    return path is not None and path.end


def _data_edges(a: Analysis, edge: Any) -> None:
    for side in (LOCAL, REMOTE):
        for module in a.local if side == LOCAL else a.remote:
            for branch in a.consumes[module]:
                producer = a.produced[branch]
                if side == LOCAL and producer == a.source_label:
                    continue
                if producer != a.source_label and a.runs_on(producer, side):
                    edge((side, module), (side, producer))
                else:
                    edge((side, module), (side, a.pairs[(other(side), branch.label)].receiver))
    for pair in a.pairs.values():
        origin = pair.origin
        edge((other(origin), pair.receiver), (origin, pair.sender))
        if pair.decision:
            edge((origin, pair.sender), (origin, pair.marker))
        elif pair.producer != a.source_label:
            edge((origin, pair.sender), (origin, pair.producer))


def _find_cycle(
    edges: dict[tuple[str, str], set[tuple[str, str]]],
) -> list[tuple[str, str]] | None:
    state: dict[tuple[str, str], int] = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack: list[tuple[tuple[str, str], list[tuple[str, str]]]] = [
            (start, sorted(edges.get(start, ())))
        ]
        state[start] = 1
        trail = [start]
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                trail.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                trail.append(nxt)
                stack.append((nxt, sorted(edges.get(nxt, ()))))
    return None


# ---------------------------------------------------------------- the two processes


def _sender(pair: Pair, upstream: str) -> dict[str, Any]:
    if pair.decision:
        products = [f"*_{pair.marker}__*"]
    else:
        products = [f"{b.type}_{b.label}_{b.instance}_*" for b in pair.branches]
    return {"upstream": upstream, "instance": pair.instance, "products": products}


def _receiver(pair: Pair, upstream: str) -> dict[str, Any]:
    if pair.decision:
        products = [{"type": "numpy.ndarray", "label": pair.marker, "instance": ""}]
    else:
        products = [
            {"type": b.type, "label": b.label, "instance": b.instance} for b in pair.branches
        ]
    return {"upstream": upstream, "instance": pair.instance, "products": products}


def _fill(a: Analysis, process: Process, side: str, upstream: str) -> None:
    for label, config in a.process.modules.items():
        if a.runs_on(label, side):
            process.add_module(label, config.type, **config.params)
    for pair in a.pairs.values():
        if pair.origin == side:
            if pair.decision:
                process.add_module(pair.marker, DECISION_TYPE)
            process.add_module(pair.sender, f"{_DIST}:Sender", **_sender(pair, upstream))
        else:
            process.add_module(pair.receiver, f"{_DIST}:Receiver", **_receiver(pair, upstream))


def _add_paths(
    a: Analysis,
    process: Process,
    table: dict[str, list[str]],
    keep_empty: bool,
    names: SplitNames,
    upstream: str,
) -> None:
    for name, labels in table.items():
        original = a.process.paths.get(name) or Path(name, [], False)
        if labels or (keep_empty and name in a.process.paths):
            (process.add_end_path if original.end else process.add_path)(name, list(labels))
    process.add_module(names.done, f"{_DIST}:EventDone", upstream=upstream)
    process.add_end_path(names.done_path, [names.done])


def _local_process(a: Analysis, names: SplitNames, table: dict[str, list[str]]) -> Process:
    original = a.process
    process = Process(original.name, base_dir=original.base_dir)
    assert original.source is not None
    src = original.source
    process.set_source(src.type, label=src.label, **src.params)
    process.options = _copy_options(original)
    process.add_module(names.controller, f"{_DIST}:Controller", link=names.link)
    _fill(a, process, LOCAL, names.controller)
    _add_paths(a, process, table, True, names, names.controller)
    return process


def _remote_process(a: Analysis, names: SplitNames, table: dict[str, list[str]]) -> Process:
    process = Process(names.remote_name, base_dir=a.process.base_dir)
    process.set_source(f"{_DIST}:FollowerSource", label=names.follower, link=names.link)
    process.options = _copy_options(a.process)
    process.options.events = None  # the controller decides how many events there are
    _fill(a, process, REMOTE, names.follower)
    _add_paths(a, process, table, False, names, names.follower)
    return process


def _copy_options(process: Process) -> Any:
    from dataclasses import replace

    return replace(process.options)
