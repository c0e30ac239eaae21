"""Parsers of environment values: each takes the text and returns the value, or raises
ValueError saying what it expected (:class:`actors.settings.Setting` adds the variable's
name)."""

from __future__ import annotations

import math

__all__ = [
    "non_negative",
    "non_negative_int",
    "one_of",
    "optional_bool",
    "parse_bool",
    "parse_cpu_list",
    "positive",
    "positive_int",
]


def parse_bool(text: str) -> bool:
    """``1/true/yes/on`` -> True, ``0/false/no/off/""`` -> False; else ValueError."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"expected one of 1/0, true/false, yes/no, on/off, got {text!r}")


def one_of(text: str, choices: tuple[str, ...]) -> str:
    value = text.strip().lower()
    if value not in choices:
        raise ValueError(f"expected one of {'|'.join(choices)}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite number >= 0 (a spin or a span of time; 0 switches it off)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive(text: str) -> float:
    """A finite number > 0 (an interval or timeout that 0 would turn into a busy loop)."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a finite number > 0, got {text!r}")
    return value


def optional_bool(text: str) -> bool | None:
    return None if text.strip() == "" else parse_bool(text)


def parse_cpu_list(text: str) -> frozenset[int]:
    """``"0-3,8"`` -> {0, 1, 2, 3, 8}; ``""`` -> empty (no binding); else ValueError."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"expected CPU numbers and ranges like 0-3,8, got {text!r}")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ValueError(f"empty CPU range {part!r} in {text!r}")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)
