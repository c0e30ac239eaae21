"""Optional dependencies, imported on first use.

``import actors`` must not import cupy, awkward, uproot, mpi4py or ucxx; code
that needs one calls :func:`optional_module` where it is used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import BackendUnavailable

__all__ = ["optional_module"]


def optional_module(name: str, extra: str) -> ModuleType:
    """Import ``name``; raises BackendUnavailable naming the extra that provides it.

    Thread-safe (the import lock); later calls cost a ``sys.modules`` lookup.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendUnavailable(name, extra, str(exc)) from exc
