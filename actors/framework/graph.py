"""Build a runnable schedule from a Process: import, construct, declare, resolve.

:func:`build` does everything that can fail before the first event:
importing module types, constructing instances with their parameters,
collecting declarations, resolving every consumed selection against what the
source and the modules produce (a selection that matches nothing is a
ConfigError naming module and selection), checking paths, ``select_events``
and dependency cycles, and dropping modules that no path needs (directly or
on demand). Nothing here touches the event loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from ..errors import ConfigError
from .branch import Branch, OutputCommands
from .event import ModuleInfo
from .loader import load_class
from .module import Analyzer, Concurrency, Declarer, Filter, Module, OutputModule, Producer
from .process import ModuleConfig, Options, Process
from .source import Source

__all__ = ["ModuleNode", "PathPlan", "Schedule", "SourceNode", "build"]

_METHODS = {"producer": "produce", "filter": "filter", "analyzer": "analyze", "output": "write"}


@dataclass
class SourceNode:
    """The constructed source with its declared products."""

    config: ModuleConfig
    instance: Source
    info: ModuleInfo
    keys: dict[Any, Branch]  # instance name or (type, instance) or str(branch) -> branch


@dataclass
class ModuleNode:
    """One configured module: its instances and its place in the data flow."""

    index: int
    config: ModuleConfig
    kind: str
    instances: list[Module]
    infos: list[ModuleInfo]
    is_async: bool
    deps: tuple[int, ...] = ()
    rdeps: tuple[int, ...] = ()
    on_path: bool = False
    output: OutputCommands | None = None
    select_events: tuple[int, ...] = ()  # trigger path indices
    select_all: bool = True

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def concurrency(self) -> Concurrency:
        return type(self.instances[0]).concurrency

    def method(self, slot: int) -> Callable[[Any], Any]:
        method: Callable[[Any], Any] = getattr(self.instances[slot], _METHODS[self.kind])
        return method


@dataclass
class PathPlan:
    """A path as node indices; ``filters`` marks which positions are filters."""

    name: str
    nodes: tuple[int, ...]
    filters: tuple[bool, ...]
    end: bool


@dataclass
class Schedule:
    """Everything the event loop needs, fixed before the first event."""

    process: Process
    options: Options
    source: SourceNode
    nodes: list[ModuleNode]
    trigger_paths: list[PathPlan]
    end_paths: list[PathPlan]
    dropped: list[str] = field(default_factory=list)


def build(process: Process, options: Options) -> Schedule:
    """Construct and check everything; raises ConfigError before any event runs."""
    process.validate()
    options.validate()
    assert process.source is not None
    base = process.base_dir
    source = _build_source(process, process.source, base)
    first: dict[str, tuple[Module, Declarer]] = {}
    for label, config in process.modules.items():
        first[label] = _construct(process, config, base)
    produced: dict[Branch, str] = {b: source.config.label for b in source.keys.values()}
    for label, (_, d) in first.items():
        for branch in d.products.values():
            produced[branch] = label
    needed = _needed_labels(process, first, produced)
    nodes = _make_nodes(process, options, first, needed, produced, base)
    triggers, ends = _plan_paths(process, nodes)
    _link_outputs(process, nodes, triggers, produced)
    _check_cycles(process, nodes)
    dropped = [label for label in process.modules if label not in needed]
    source.instance.job_options = options
    for node in nodes:
        for instance in node.instances:
            instance.job_options = options
    return Schedule(process, options, source, nodes, triggers, ends, dropped)


def _build_source(process: Process, config: ModuleConfig, base: FsPath | None) -> SourceNode:
    cls = _load(process, config, Source, ("source", "type"))
    instance = _call_ctor(process, cls, config, ("source",))
    instance.label = config.label
    instance.process_name = process.name
    d = Declarer(config.label, process.name, is_source=True)
    _guard(process, ("source",), instance.declare, d)
    keys: dict[Any, Branch] = {}
    for key, branch in d.products.items():
        keys[key] = branch
        keys[(branch.type, branch.instance)] = branch
    info = ModuleInfo(config.label, config.type, config.parameter_hash(), process.name)
    return SourceNode(config, instance, info, keys)


def _load(process: Process, config: ModuleConfig, base_cls: type, key: tuple[str, ...]) -> Any:
    try:
        return load_class(config.type, process.base_dir, base_cls, ".".join(key))
    except ConfigError as exc:
        raise process.error(exc.message, *key) from exc.__cause__


def _call_ctor(process: Process, cls: Any, config: ModuleConfig, key: tuple[str, ...]) -> Any:
    try:
        return cls(**config.params)
    except TypeError as exc:
        raise process.error(
            f"cannot construct {config.type} with parameters {sorted(config.params)}: {exc}", *key
        ) from exc
    except ConfigError as exc:
        raise process.error(exc.message, *key) from exc
    except Exception as exc:  # a parameter value the module rejected
        raise process.error(f"constructing {config.type} failed: {exc!r}", *key) from exc


def _guard(process: Process, key: tuple[str, ...], fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except ConfigError as exc:
        raise process.error(exc.message, *key) from exc
    except Exception as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        raise process.error(f"{name} failed: {exc!r}", *key) from exc


def _construct(
    process: Process, config: ModuleConfig, base: FsPath | None
) -> tuple[Module, Declarer]:
    key = ("modules", config.label)
    cls = _load(process, config, Module, (*key, "type"))
    if not issubclass(cls, Producer | Filter | Analyzer | OutputModule):
        raise process.error(
            f"{config.type} must derive from Producer, Filter, Analyzer or OutputModule", *key
        )
    instance: Module = _call_ctor(process, cls, config, key)
    instance.label = config.label
    instance.process_name = process.name
    d = Declarer(config.label, process.name)
    _guard(process, key, instance.declare, d)
    return instance, d


def _resolve(process: Process, label: str, d: Declarer, produced: dict[Branch, str]) -> set[str]:
    """Fill every token's branches; return the labels this module depends on."""
    deps: set[str] = set()
    for token in d.tokens:
        token.branches = tuple(b for b in produced if token.selection.matches(b))
        if not token.branches and not token.optional:
            raise process.error(
                f"module {label!r} consumes {token.selection.text!r} but nothing in process "
                f"{process.name!r} produces a matching branch",
                "modules",
                label,
            )
        deps.update(produced[b] for b in token.branches)
    deps.discard(process.source.label if process.source else "source")
    return deps


def _needed_labels(
    process: Process, first: dict[str, tuple[Module, Declarer]], produced: dict[Branch, str]
) -> set[str]:
    deps = {label: _resolve(process, label, d, produced) for label, (_, d) in first.items()}
    on_path = {label for path in process.paths.values() for label in path.modules}
    for label in on_path:
        if isinstance(first[label][0], OutputModule):
            out = first[label][0]
            assert isinstance(out, OutputModule)
            deps[label] |= {
                produced[b]
                for b in out.output_commands.select(produced)
                if produced[b] in first and produced[b] not in on_path
            }
    needed: set[str] = set()
    todo = list(on_path)
    while todo:
        label = todo.pop()
        if label not in needed:
            needed.add(label)
            todo.extend(deps[label])
    return needed


def _kind(instance: Module) -> str:
    for cls, kind in (
        (OutputModule, "output"),
        (Filter, "filter"),
        (Analyzer, "analyzer"),
        (Producer, "producer"),
    ):
        if isinstance(instance, cls):
            return kind
    raise AssertionError(instance)


def _make_nodes(
    process: Process,
    options: Options,
    first: dict[str, tuple[Module, Declarer]],
    needed: set[str],
    produced: dict[Branch, str],
    base: FsPath | None,
) -> list[ModuleNode]:
    nodes: list[ModuleNode] = []
    slot = 1
    on_path = {label for path in process.paths.values() for label in path.modules}
    for label, config in process.modules.items():
        if label not in needed:
            continue
        instance, d = first[label]
        pairs = [(instance, d)]
        if type(instance).concurrency is Concurrency.STREAM:
            pairs += [_construct(process, config, base) for _ in range(options.streams - 1)]
        infos = []
        for _, decl in pairs:
            _resolve(process, label, decl, produced)
            consumed = tuple(dict.fromkeys(b for t in decl.tokens for b in t.branches))
            infos.append(
                ModuleInfo(
                    label,
                    config.type,
                    config.parameter_hash(),
                    process.name,
                    dict(decl.products),
                    consumed,
                    slot,
                )
            )
            slot += 1
        kind = _kind(instance)
        method = getattr(instance, _METHODS[kind])
        nodes.append(
            ModuleNode(
                len(nodes),
                config,
                kind,
                [p[0] for p in pairs],
                infos,
                inspect.iscoroutinefunction(method),
                on_path=label in on_path,
            )
        )
    index = {n.label: n.index for n in nodes}
    for node in nodes:
        labels = {produced[b] for b in node.infos[0].consumes} - {process.source.label}  # type: ignore[union-attr]
        node.deps = tuple(sorted(index[lab] for lab in labels if lab in index))
    for node in nodes:
        node.rdeps = tuple(n.index for n in nodes if node.index in n.deps)
    return nodes


def _plan_paths(process: Process, nodes: list[ModuleNode]) -> tuple[list[PathPlan], list[PathPlan]]:
    index = {n.label: n for n in nodes}
    triggers: list[PathPlan] = []
    ends: list[PathPlan] = []
    for path in process.paths.values():
        table = "end_paths" if path.end else "paths"
        members = [index[label] for label in path.modules]
        for node in members:
            if node.kind == "output" and not path.end:
                raise process.error(
                    f"output module {node.label!r} must be on an end path", table, path.name
                )
        plan = PathPlan(
            path.name,
            tuple(n.index for n in members),
            tuple(n.kind == "filter" for n in members),
            path.end,
        )
        (ends if path.end else triggers).append(plan)
    return triggers, ends


def _link_outputs(
    process: Process,
    nodes: list[ModuleNode],
    triggers: list[PathPlan],
    produced: dict[Branch, str],
) -> None:
    names = {p.name: i for i, p in enumerate(triggers)}
    index = {n.label: n.index for n in nodes}
    for node in nodes:
        if node.kind != "output":
            continue
        out = node.instances[0]
        assert isinstance(out, OutputModule)
        node.output = out.output_commands
        for instance in node.instances:
            assert isinstance(instance, OutputModule)
            instance.kept_branches = tuple(out.output_commands.select(produced))
        for name in out.select_events:
            if name not in names:
                raise process.error(
                    f"select_events names {name!r}, which is not a trigger path "
                    f"(trigger paths: {sorted(names)})",
                    "modules",
                    node.label,
                    "select_events",
                )
        node.select_events = tuple(names[n] for n in out.select_events)
        node.select_all = not out.select_events
        extra = {
            index[produced[b]]
            for b in out.output_commands.select(produced)
            if produced[b] in index and not nodes[index[produced[b]]].on_path
        }
        node.deps = tuple(sorted(set(node.deps) | extra))
    for node in nodes:
        node.rdeps = tuple(n.index for n in nodes if node.index in n.deps)


def _check_cycles(process: Process, nodes: list[ModuleNode]) -> None:
    state = [0] * len(nodes)  # 0 new, 1 on stack, 2 done

    def visit(i: int, trail: list[str]) -> None:
        if state[i] == 2:
            return
        if state[i] == 1:
            cycle = " -> ".join([*trail[trail.index(nodes[i].label) :], nodes[i].label])
            raise process.error(f"dependency cycle: {cycle}", "modules", nodes[i].label)
        state[i] = 1
        for d in nodes[i].deps:
            visit(d, [*trail, nodes[i].label])
        state[i] = 2

    for i in range(len(nodes)):
        visit(i, [])
