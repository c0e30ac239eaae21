"""Split one process configuration into local + remote processes (``python -m actors.split``).

:mod:`._plan` follows the data dependencies and decides what crosses,
:mod:`._build` writes the configurations and the topology, :mod:`.cli` is the
command line.
"""

from __future__ import annotations

from .cli import Decision, SplitResult, main, split_process

__all__ = ["Decision", "SplitResult", "main", "split_process"]
