"""Resolve module types given as import paths ``package.module:Class``.

Lookup order: first relative to the configuration's directory (``base_dir``):
``base_dir/package/module.py`` is loaded from that file, so
``examples/dimuon/dimuon.toml`` can name ``modules:DimuonMass`` for
``examples/dimuon/modules.py``; then as an installed/importable module. A file
loaded from a configuration directory is registered in ``sys.modules`` under a
private name derived from its path, and loaded once per process.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigError

__all__ = ["load_class"]


def load_class(type_path: str, base_dir: Path | None, expected: type, what: str) -> type[Any]:
    """Import ``package.module:Class`` and check it subclasses ``expected``.

    ``what`` names the configuration key in error messages. Raises ConfigError
    when the module cannot be imported, the class is missing, or has the wrong
    base class (an ImportError raised *inside* the module is reported with its
    message).
    """
    module_name, _, attr = type_path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"module type must be 'package.module:Class', not {type_path!r}")
    module = _import(module_name, base_dir)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{module_name!r} ({module.__file__}) has no attribute {attr!r}")
    if not isinstance(obj, type) or not issubclass(obj, expected):
        raise ConfigError(f"{type_path!r} is not a subclass of {expected.__name__} (for {what})")
    return obj


def _import(module_name: str, base_dir: Path | None) -> ModuleType:
    if base_dir is not None:
        local = base_dir.joinpath(*module_name.split(".")).with_suffix(".py")
        if local.is_file():
            return _load_file(local.resolve())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            where = f"{base_dir} nor " if base_dir is not None else ""
            raise ConfigError(
                f"cannot import {module_name!r}: not found in {where}the installed packages"
            ) from exc
        raise ConfigError(f"importing {module_name!r} failed: {exc}") from exc
    except ImportError as exc:
        raise ConfigError(f"importing {module_name!r} failed: {exc}") from exc


def _load_file(path: Path) -> ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_actors_config_{digest}_{path.stem}"
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load module file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
