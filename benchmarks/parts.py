"""The registry of benchmark parts and what every part receives and returns.

A part is a function ``run(ctx) -> PartResult`` registered under a name
(``transports``, ``products``, ``actors``, ``events``, ``scheduling``, ``overhead``,
``hlt``). A part that cannot run yet (its layer has not landed, or a dependency is missing)
returns ``PartResult.skipped(reason)``; the driver prints
``not available yet: <reason>`` and records it in results.json.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .pingpong import FULL, QUICK, QUICK_SIZES, SIZES, Budget

__all__ = ["BY_NAME_ONLY", "ORDER", "PARTS", "Context", "PartResult", "register"]

#: parts that run only when named: ``python -m benchmarks peers`` (not in ``all``)
BY_NAME_ONLY = ["cpu", "overload", "peers", "scale", "sizing"]
#: the order in which ``all`` runs the parts
ORDER = ["transports", "products", "actors", "events", "scheduling", "overhead", "hlt"]


@dataclass
class Context:
    """What the command line asked for."""

    quick: bool
    out: Path
    transports: list[str]
    device: str  # "host" | "gpu"
    repeat: int = 1  # rounds over all transport series (best round kept per size)
    log: Callable[[str], None] = print
    select: str | None = None  # events/hlt: regular expression on the series labels
    load: int = 0  # events: busy processes beside every series (--load N)
    control: bool = False  # events: tcp:// run twice in every round (--control)

    def selects(self, label: str) -> bool:
        """Whether the series ``label`` is selected by ``--select`` (always without it)."""
        return self.select is None or re.search(self.select, label) is not None

    @property
    def budget(self) -> Budget:
        return QUICK if self.quick else FULL

    @property
    def sizes(self) -> list[int]:
        return QUICK_SIZES if self.quick else SIZES

    @property
    def timeout(self) -> float:
        """Upper bound for one launched series, in seconds."""
        return 60.0 if self.quick else 300.0


@dataclass
class PartResult:
    """``status`` is ok / skipped / failed; ``data`` goes to results.json."""

    status: str
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: rendered by the driver: (title, column names, rows)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)

    @classmethod
    def skipped(cls, reason: str) -> PartResult:
        return cls("skipped", reason)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, **self.data}


PARTS: dict[str, Callable[[Context], PartResult]] = {}


def register(name: str) -> Callable[[Callable[[Context], PartResult]], Callable[..., PartResult]]:
    """Decorator: ``@register("events") def run(ctx) -> PartResult``."""

    def deco(fn: Callable[[Context], PartResult]) -> Callable[[Context], PartResult]:
        PARTS[name] = fn
        return fn

    return deco
