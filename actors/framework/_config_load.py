"""Turn a parsed TOML document into a :class:`~actors.framework.process.Process`.

Every error is a ConfigError naming the file, the line (found by
:class:`~actors.tomlfile.TomlDocument`) and the key.
"""

from __future__ import annotations

from dataclasses import fields
from functools import partial
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..tomlfile import TomlDocument

if TYPE_CHECKING:  # typing only: process.py imports this module
    from .process import Options, Process

_TOP_KEYS = ("process", "options", "source", "modules", "paths", "end_paths")


def process_from_doc(
    cls: type[Process], doc: TomlDocument, base_dir: str | FsPath | None
) -> Process:
    """Build a Process from ``doc``; raises ConfigError located in the file."""
    data = doc.data
    for key in data:
        if key not in _TOP_KEYS:
            raise doc.error(f"unknown section (expected one of {', '.join(_TOP_KEYS)})", key)
    name = _table(doc, "process").get("name")
    if not isinstance(name, str):
        raise doc.error("the process needs a name (a string)", "process", "name")
    process: Process = _relocate(doc, ("process", "name"), partial(cls, name, base_dir=base_dir))
    _load_options(doc, process.options)
    _load_source(doc, process)
    for label, table in _table(doc, "modules").items():
        if not isinstance(table, dict):
            raise doc.error("a module is a table with a 'type' key", "modules", label)
        params = dict(table)
        type_ = params.pop("type", None)
        if not isinstance(type_, str):
            raise doc.error("missing 'type = \"package.module:Class\"'", "modules", label, "type")
        _relocate(doc, ("modules", label), partial(process.add_module, label, type_, **params))
    for end, section in ((False, "paths"), (True, "end_paths")):
        for path_name, modules in _table(doc, section).items():
            add = process.add_end_path if end else process.add_path
            _relocate(doc, (section, path_name), partial(add, path_name, modules))
    process._doc = doc
    process.validate()
    return process


def _table(doc: TomlDocument, key: str) -> dict[str, Any]:
    value = doc.data.get(key, {})
    if not isinstance(value, dict):
        raise doc.error("must be a table", key)
    return value


def _load_options(doc: TomlDocument, options: Options) -> None:
    known = {f.name for f in fields(options)}
    for key, value in _table(doc, "options").items():
        if key not in known:
            raise doc.error(f"unknown option (known: {', '.join(sorted(known))})", "options", key)
        setattr(options, key, value)
    options.validate(doc)


def _load_source(doc: TomlDocument, process: Process) -> None:
    if "source" not in doc.data:
        return
    params = dict(_table(doc, "source"))
    type_ = params.pop("type", None)
    if not isinstance(type_, str):
        raise doc.error("missing 'type = \"package.module:Class\"'", "source", "type")
    label = params.pop("label", "source")
    _relocate(doc, ("source",), partial(process.set_source, type_, label=label, **params))


def _relocate(doc: TomlDocument, key: tuple[str, ...], build: Any) -> Any:
    """Run ``build()``; re-raise its ConfigError with ``doc``'s file and line for ``key``."""
    try:
        return build()
    except ConfigError as exc:
        if exc.file is not None:
            raise
        sub = tuple(exc.key.split(".")) if exc.key else key
        where = sub if sub[: len(key)] == key else key
        raise doc.error(exc.message, *where) from None
