"""Process configuration as data: modules, paths, options; TOML in and out.

Built in Python::

    p = Process("HLT")
    p.set_source("actors.framework.sources.synthetic:SyntheticSource", events_per_lumi=10)
    p.add_module("muons", "mypkg.muons:MuonProducer", threshold=3.0)
    p.add_module("sel", "mypkg.muons:MuonFilter")
    p.add_path("p1", ["muons", "sel"])
    p.add_module("out", "mypkg.out:Writer", select_events=["p1"], file="out.root")
    p.add_end_path("e", ["out"])
    p.options.streams = 4

or loaded with :meth:`Process.from_toml` (format in ``docs/config-toml.md``) and
written back with :meth:`Process.to_toml`; a round trip keeps the meaning.
Nothing is imported or instantiated here: the scheduler does that when the
process runs (``actors.framework.build``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path as FsPath
from typing import Any

from ..errors import ConfigError
from ..tomlfile import TomlDocument, dump_toml
from ._config_load import process_from_doc
from .branch import check_name

__all__ = ["OPTION_MINIMUMS", "ModuleConfig", "Options", "Path", "Process"]

#: the least value of each integer option (``threads = 0``: module code on the event loop)
OPTION_MINIMUMS = {"streams": 1, "threads": 0, "max_concurrent_lumis": 1, "mailbox_size": 1}


@dataclass
class ModuleConfig:
    """One module (or the source): label, import path ``package.module:Class``, parameters."""

    label: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)

    def parameter_hash(self) -> str:
        """Stable hash (16 hex digits) of type and parameters."""
        return _hash({"type": self.type, "params": self.params})


@dataclass
class Path:
    """An ordered list of module labels; ``end=True`` for end paths (outputs, analyzers)."""

    name: str
    modules: list[str]
    end: bool = False


@dataclass
class Options:
    """Job options.

    ``streams``: events in flight at once; ``threads``: worker threads for sync
    module code (0: none, sync module code, blocking sources and sync hooks run
    on the event loop's thread, see :mod:`actors.framework.module`);
    ``max_concurrent_lumis``: lumis in flight at once (>= 1);
    ``events``: stop after this many events (None: all the source has);
    ``mailbox_size``: capacity of each module's mailbox.
    """

    streams: int = 1
    threads: int = 1
    max_concurrent_lumis: int = 2
    events: int | None = None
    mailbox_size: int = 64

    def validate(self, where: TomlDocument | None = None) -> None:
        """Raise ConfigError (with file/line when loaded from TOML) for bad values."""
        for name, least in OPTION_MINIMUMS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                message = f"must be an integer >= {least}, not {value!r}"
                raise _error(where, message, "options", name)
        if self.events is not None and (
            not isinstance(self.events, int) or isinstance(self.events, bool) or self.events < 0
        ):
            message = f"must be an integer >= 0, not {self.events!r}"
            raise _error(where, message, "options", "events")


class Process:
    """A whole process configuration: name, source, modules, paths, options.

    ``base_dir`` is where relative module import paths are looked up first
    (the configuration file's directory when loaded from TOML).
    """

    def __init__(self, name: str, *, base_dir: str | FsPath | None = None) -> None:
        try:
            check_name("process", name)
        except ConfigError as exc:
            raise ConfigError(exc.message, key="process.name") from None
        self.name = name
        self.source: ModuleConfig | None = None
        self.modules: dict[str, ModuleConfig] = {}
        self.paths: dict[str, Path] = {}
        self.options = Options()
        self.base_dir = FsPath(base_dir) if base_dir is not None else None
        self.file: str | None = None
        self._doc: TomlDocument | None = None

    # -- building
    def set_source(self, type: str, *, label: str = "source", **params: Any) -> ModuleConfig:
        """Set the source (import path and parameters)."""
        self.source = ModuleConfig(_label(label, "source.label"), _type(type), dict(params))
        return self.source

    def add_module(self, label: str, type: str, **params: Any) -> ModuleConfig:
        """Add a module; ConfigError on a duplicate or invalid label."""
        _label(label, f"modules.{label}")
        if label in self.modules or (self.source is not None and self.source.label == label):
            raise ConfigError(f"module label {label!r} used twice", key=f"modules.{label}")
        config = ModuleConfig(label, _type(type), dict(params))
        self.modules[label] = config
        return config

    def add_path(self, name: str, modules: list[str]) -> Path:
        """Add a trigger path (ordered module labels)."""
        return self._add_path(name, modules, end=False)

    def add_end_path(self, name: str, modules: list[str]) -> Path:
        """Add an end path (output modules and analyzers run after the trigger paths)."""
        return self._add_path(name, modules, end=True)

    def _add_path(self, name: str, modules: list[str], *, end: bool) -> Path:
        table = "end_paths" if end else "paths"
        if name in self.paths:
            raise ConfigError(f"path {name!r} defined twice", key=f"{table}.{name}")
        if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise ConfigError("a path is a list of module labels", key=f"{table}.{name}")
        path = Path(name, list(modules), end)
        self.paths[name] = path
        return path

    @property
    def trigger_paths(self) -> list[Path]:
        return [p for p in self.paths.values() if not p.end]

    @property
    def end_paths(self) -> list[Path]:
        return [p for p in self.paths.values() if p.end]

    def validate(self) -> None:
        """Check references between sections; ConfigError names file/line/key."""
        self.options.validate(self._doc)
        if self.source is None:
            raise _error(self._doc, "the process has no source", "source")
        if self.source.label in self.modules:
            raise _error(
                self._doc,
                f"label {self.source.label!r} is both the source and a module",
                "modules",
                self.source.label,
            )
        for path in self.paths.values():
            table = "end_paths" if path.end else "paths"
            for label in path.modules:
                if label not in self.modules:
                    raise _error(
                        self._doc,
                        f"path {path.name!r} names unknown module {label!r}",
                        table,
                        path.name,
                    )

    def error(self, message: str, *key: str | int) -> ConfigError:
        """A ConfigError located in the file this process was loaded from (if any)."""
        return _error(self._doc, message, *key)

    # -- hashing and (de)serialisation
    def config_hash(self) -> str:
        """Stable hash (16 hex digits) of the whole configuration's meaning."""
        return _hash(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, the same structure as the TOML file."""
        out: dict[str, Any] = {"process": {"name": self.name}}
        opts = {f.name: getattr(self.options, f.name) for f in fields(Options)}
        out["options"] = {k: v for k, v in opts.items() if v is not None}
        if self.source is not None:
            src = {"type": self.source.type, **self.source.params}
            if self.source.label != "source":
                src["label"] = self.source.label
            out["source"] = src
        if self.modules:
            out["modules"] = {m.label: {"type": m.type, **m.params} for m in self.modules.values()}
        for end, table in ((False, "paths"), (True, "end_paths")):
            chosen = {p.name: list(p.modules) for p in self.paths.values() if p.end == end}
            if chosen:
                out[table] = chosen
        return out

    def to_toml(self) -> str:
        """TOML text that :meth:`from_toml_string` reads back to the same meaning."""
        return dump_toml(self.to_dict())

    @classmethod
    def from_toml(cls, path: str | FsPath) -> Process:
        """Load a TOML configuration; ConfigError names file, line and key."""
        doc = TomlDocument.load(path)
        return cls._from_doc(doc, FsPath(path).resolve().parent)

    @classmethod
    def from_toml_string(
        cls, text: str, name: str = "<string>", base_dir: str | FsPath | None = None
    ) -> Process:
        """Parse TOML text (``name`` appears in error messages)."""
        return cls._from_doc(TomlDocument.parse(text, name), base_dir)

    @classmethod
    def _from_doc(cls, doc: TomlDocument, base_dir: str | FsPath | None) -> Process:
        process = process_from_doc(cls, doc, base_dir)
        process._doc = doc
        process.file = doc.path
        return process

    def __repr__(self) -> str:
        return (
            f"Process({self.name!r}, {len(self.modules)} modules, "
            f"{len(self.paths)} paths, streams={self.options.streams}, "
            f"threads={self.options.threads})"
        )


def _label(label: str, key: str) -> str:
    try:
        return check_name("label", label)
    except ConfigError as exc:
        raise ConfigError(exc.message, key=key) from None


def _type(type_: str) -> str:
    if not isinstance(type_, str) or ":" not in type_ or type_.startswith(":"):
        raise ConfigError(f"module type must be 'package.module:Class', not {type_!r}")
    return type_


def _error(doc: TomlDocument | None, message: str, *key: str | int) -> ConfigError:
    if doc is not None:
        return doc.error(message, *key)
    from ..tomlfile import format_key

    return ConfigError(message, key=format_key(key))


def _hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
