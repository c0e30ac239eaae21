"""What the launcher learns from a process configuration, and how it applies the topology.

:func:`config_roles` inspects a configuration (imports its module classes,
runs nothing): does its source make events or replay a controller's, does it
read ``--input``, does it have an output module for ``--output``.
:func:`load_process_for` loads a configuration for a process embedded in this
Python process with the topology's ``events``/``input``/``output`` applied
(subprocesses get the same as ``actors.run`` options, see
:mod:`actors.launch.plan`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .topology import Topology

__all__ = ["ConfigRoles", "config_roles", "load_process_for"]


@dataclass(frozen=True)
class ConfigRoles:
    """What the launcher needs to know about one process configuration."""

    has_own_source: bool  # its source makes events (not a follower replaying them)
    source_reads_file: bool  # --input goes to its source's ``file``
    has_output: bool  # --output goes to its output module's ``file``


def _accepts_file(cls: type) -> bool:
    try:
        return "file" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def config_roles(config: Path) -> ConfigRoles:
    """Inspect a process configuration (imports its module classes, runs nothing)."""
    from ..framework import OutputModule, Process, Source

    process = Process.from_toml(config)
    own_source = reads_file = False
    if process.source is not None:
        cls = _class_of(process, process.source.type, Source, ("source", "type"))
        own_source = not getattr(cls, "replays_transitions", False)
        reads_file = _accepts_file(cls)
    has_output = False
    for module in process.modules.values():
        cls = _class_of(process, module.type, object, ("modules", module.label, "type"))
        if issubclass(cls, OutputModule) and _accepts_file(cls):
            has_output = True
    return ConfigRoles(own_source, reads_file, has_output)


def _class_of(process: Any, type_path: str, base: type, key: tuple[str, ...]) -> type:
    """load_class, its ConfigError located at the key in the process file (file, line)."""
    from ..framework.loader import load_class

    try:
        return load_class(type_path, process.base_dir, base, ".".join(key))
    except ConfigError as exc:
        raise process.error(exc.message, *key) from exc.__cause__


def load_process_for(config: Path, topology: Topology, roles: ConfigRoles) -> Any:
    """The Process of ``config`` with the topology's events/input/output applied.

    Used for processes embedded in this Python process; subprocesses get the
    same overrides as ``actors.run`` command-line options.
    """
    from ..framework import Process

    process = Process.from_toml(config)
    run = topology.run
    if run.events is not None and roles.has_own_source:
        process.options.events = run.events
    if run.input and roles.source_reads_file and process.source is not None:
        process.source.params["file"] = str(Path(run.input).resolve())
    if run.output and roles.has_output:
        from ..framework import OutputModule

        for module in process.modules.values():
            cls = _class_of(process, module.type, object, ("modules", module.label, "type"))
            if issubclass(cls, OutputModule) and _accepts_file(cls):
                module.params["file"] = str(Path(run.output).resolve())
    return process
