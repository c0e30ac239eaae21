"""The wire protocol between controllers, followers, senders and receivers.

Every message is one transport message ``(header, buffers)``; the header is a
msgpack array whose first element is the message kind:

========== ========= ==========================================================
kind       direction body
========== ========= ==========================================================
HELLO      c -> f    ``[HELLO, version, {"process", "link", "pairs", "settings"}]``
WELCOME    f -> c    ``[WELCOME, version, {"process", "pairs", "window", "settings", "error"}]``
TRANS      c -> f    ``[TRANS, [transition, ...]]`` (a batch, in order)
CREDIT     f -> c    ``[CREDIT, n]``: the follower consumed ``n`` more events
DATA       both      ``[DATA, key, instance, count, accepted, [product, ...]]``
END        c -> f    ``[END]``: no more transitions; finish and answer FINISHED
FINISHED   f -> c    ``[FINISHED, events]``
ERROR      both      ``[ERROR, text]``: the sender of this failed; the job stops
========== ========= ==========================================================

Transitions: ``[0, run, history]`` begin run (history = ``[[name, hash], ...]``),
``[1, run, lumi]`` begin lumi, ``[2, run, lumi, event, key]`` event,
``[3, run, lumi]`` end lumi, ``[4, run]`` end run.

``settings`` maps a setting both sides must agree on to this side's value
(``{"max_concurrent_lumis": n}``; rules in :mod:`actors.distributed._handshake`).
``pairs`` (the schema) maps each ``instance`` to ``[role, [[type, label,
instance], ...]]`` with role ``"send"`` or ``"recv"`` as seen from the side
that wrote it. A DATA product is ``[type, label, instance, process, codec,
meta, sizes, device, provenance]``: ``sizes`` the byte size of each of its
buffers (which follow in order in the message's buffer list), ``device`` one
flag per buffer, ``provenance`` ``[module_label, module_type, parameter_hash,
process, [parent branch, ...]]``. ``count < 0`` means "the event was rejected
on the sending side" (no products, ``accepted`` false).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from ..errors import ProtocolError, SchemaMismatch

__all__ = [
    "DATA",
    "END",
    "ERROR",
    "FINISHED",
    "HELLO",
    "TRANS",
    "VERSION",
    "WELCOME",
    "PairSpec",
    "compare_schemas",
    "pack",
    "unpack",
]

VERSION = 1
HELLO, WELCOME, TRANS, CREDIT, DATA, END, FINISHED, ERROR = range(8)
T_BEGIN_RUN, T_BEGIN_LUMI, T_EVENT, T_END_LUMI, T_END_RUN = range(5)
KIND_NAMES = ("HELLO", "WELCOME", "TRANS", "CREDIT", "DATA", "END", "FINISHED", "ERROR")

_packer = msgpack.Packer(use_bin_type=True)


def pack(*items: Any) -> bytes:
    """The header bytes of a message made of ``items``."""
    data: bytes = _packer.pack(list(items))
    return data


def unpack(header: Any, peer: str) -> list[Any]:
    """Decode a header; ProtocolError naming ``peer`` unless it is a known message
    of the shape the table above gives (element counts and types, transitions
    and DATA products included)."""
    try:
        msg = msgpack.unpackb(header, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"malformed message from {peer}: {exc!r}") from exc
    if (
        not isinstance(msg, list)
        or not msg
        or not isinstance(msg[0], int)
        or not (0 <= msg[0] < len(KIND_NAMES))
    ):
        raise ProtocolError(f"unknown message from {peer}: {str(msg)[:80]}")
    if not _SHAPES[msg[0]](msg):
        raise ProtocolError(f"malformed {KIND_NAMES[msg[0]]} message from {peer}: {str(msg)[:80]}")
    return msg


# -- message shapes (the table in the module docstring), checked by unpack ------------


def _int(x: Any) -> bool:
    return type(x) is int


def _strs(x: Any, n: int) -> bool:
    return isinstance(x, list) and len(x) == n and all(type(v) is str for v in x)


def _transition(t: Any) -> bool:
    if not isinstance(t, list) or not t or not _int(t[0]) or t[0] not in _TRANSITION_ARITY:
        return False
    if len(t) != _TRANSITION_ARITY[t[0]] or not _int(t[1]):
        return False
    return _history(t[2]) if t[0] == T_BEGIN_RUN else all(_int(v) for v in t[2:])


def _history(h: Any) -> bool:
    return isinstance(h, list) and all(_strs(e, 2) for e in h)


def _product(p: Any) -> bool:
    """``[type, label, instance, process, codec, meta, sizes, device, provenance]``."""
    return (
        isinstance(p, list)
        and len(p) == 9
        and _strs(p[:5], 5)
        and isinstance(p[6], list)
        and all(_int(n) and n >= 0 for n in p[6])
        and isinstance(p[7], list)
        and len(p[7]) == len(p[6])
        and all(type(d) is bool for d in p[7])
        and isinstance(p[8], list)
        and len(p[8]) == 5
        and _strs(p[8][:4], 4)
        and isinstance(p[8][4], list)
        and all(_strs(b, 4) for b in p[8][4])
    )


def _data(m: list[Any]) -> bool:
    return (
        len(m) == 6
        and all(_int(v) for v in m[1:4])
        and type(m[4]) is bool
        and isinstance(m[5], list)
        and all(_product(p) for p in m[5])
    )


_TRANSITION_ARITY = {T_BEGIN_RUN: 3, T_BEGIN_LUMI: 3, T_EVENT: 5, T_END_LUMI: 3, T_END_RUN: 2}
_SHAPES: tuple[Any, ...] = (
    lambda m: len(m) == 3 and isinstance(m[2], dict),  # HELLO (version checked by expect)
    lambda m: len(m) == 3 and isinstance(m[2], dict),  # WELCOME
    lambda m: len(m) == 2 and isinstance(m[1], list) and all(_transition(t) for t in m[1]),
    lambda m: len(m) == 2 and _int(m[1]) and m[1] >= 0,  # CREDIT
    _data,
    lambda m: len(m) == 1,  # END
    lambda m: len(m) == 2 and _int(m[1]) and m[1] >= 0,  # FINISHED
    lambda m: len(m) == 2 and type(m[1]) is str,  # ERROR
)


@dataclass(frozen=True)
class PairSpec:
    """What one side's sender or receiver of ``instance`` carries."""

    instance: int
    role: str  # "send" or "recv"
    products: tuple[tuple[str, str, str], ...]  # (type, label, instance); "*" = any
    module: str = "?"

    def to_wire(self) -> list[Any]:
        return [self.role, [list(p) for p in self.products], self.module]

    @classmethod
    def from_wire(cls, instance: int, raw: Any) -> PairSpec:
        role, products, module = raw
        return cls(int(instance), str(role), tuple(tuple(p) for p in products), str(module))

    def describe(self) -> str:
        items = ", ".join("_".join(p) for p in self.products) or "nothing"
        return f"{self.role}s [{items}] (module {self.module!r})"


def _products_match(
    sent: tuple[tuple[str, str, str], ...], expected: tuple[tuple[str, str, str], ...]
) -> bool:
    if len(sent) != len(expected):
        return False
    for s, e in zip(sent, expected, strict=True):
        for a, b in zip(s, e, strict=True):
            if a != b and "*" not in (a, b):
                return False
    return True


def compare_schemas(
    here: dict[int, PairSpec], there: dict[int, PairSpec], here_name: str, there_name: str
) -> list[str]:
    """Differences between two sides' pairs, one line per instance (empty: they agree)."""
    lines = []
    for instance in sorted(set(here) | set(there)):
        a, b = here.get(instance), there.get(instance)
        a_text = a.describe() if a else "has no sender/receiver"
        b_text = b.describe() if b else "has no sender/receiver"
        problem = None
        if a is None or b is None:
            problem = "no partner"
        elif a.role == b.role:
            problem = f"both sides {a.role}"
        else:
            sent, expected = (a, b) if a.role == "send" else (b, a)
            if not _products_match(sent.products, expected.products):
                problem = "products differ (number, type, label or order)"
        if problem:
            lines.append(
                f"instance {instance}: {problem}: {here_name} {a_text}; {there_name} {b_text}"
            )
    return lines


def schema_error(link: str, lines: list[str]) -> SchemaMismatch:
    """The SchemaMismatch raised at start-up for a handshake that found differences."""
    return SchemaMismatch(
        f"link {link!r}: the two sides disagree on what travels:\n  " + "\n  ".join(lines)
    )


def schema_to_wire(pairs: dict[int, PairSpec]) -> dict[int, Any]:
    return {i: p.to_wire() for i, p in pairs.items()}


def schema_from_wire(raw: Any, peer: str) -> dict[int, PairSpec]:
    try:
        return {int(i): PairSpec.from_wire(int(i), v) for i, v in raw.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ProtocolError(f"malformed schema from {peer}: {exc!r}") from exc
