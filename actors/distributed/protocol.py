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
(``{"max_concurrent_lumis": n, "pickle": bool}``; rules, and the list of what
is checked and what is free per side, in :mod:`actors.distributed._handshake`).
``version`` must be equal on both sides (both raise ProtocolError naming both).
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


# These run for every message (several times per event): plain loops, no generator
# expressions (each costs a call per element on the per-event path).


def _int(x: Any) -> bool:
    return type(x) is int


def _ints(xs: list[Any], minimum: int | None = None) -> bool:
    for v in xs:  # noqa: SIM110 (no generator on the per-event path)
        if type(v) is not int or (minimum is not None and v < minimum):
            return False
    return True


def _strs(x: Any, n: int) -> bool:
    if not isinstance(x, list) or len(x) != n:
        return False
    for v in x:  # noqa: SIM110 (no generator on the per-event path)
        if type(v) is not str:
            return False
    return True


def _transition(t: Any) -> bool:
    if not isinstance(t, list) or not t:
        return False
    kind = t[0]
    if type(kind) is not int or _TRANSITION_ARITY.get(kind) != len(t) or type(t[1]) is not int:
        return False
    return _history(t[2]) if kind == T_BEGIN_RUN else _ints(t[2:])


def _transitions(ts: Any) -> bool:
    if not isinstance(ts, list):
        return False
    for t in ts:
        # an event, the common case, checked here (its five ints at once): no call per transition
        if type(t) is list and list(map(type, t)) == _EVENT_TYPES and t[0] == T_EVENT:
            continue
        if not _transition(t):
            return False
    return True


def _history(h: Any) -> bool:
    if not isinstance(h, list):
        return False
    for entry in h:  # noqa: SIM110 (no generator on the per-event path)
        if not _strs(entry, 2):
            return False
    return True


def _product(p: Any) -> bool:
    """``[type, label, instance, process, codec, meta, sizes, device, provenance]``."""
    if not isinstance(p, list) or len(p) != 9 or not _strs(p[:5], 5):
        return False
    sizes, device, provenance = p[6], p[7], p[8]
    if not isinstance(sizes, list) or not _ints(sizes, minimum=0):
        return False
    if not isinstance(device, list) or len(device) != len(sizes):
        return False
    for d in device:
        if type(d) is not bool:
            return False
    if not isinstance(provenance, list) or len(provenance) != 5 or not _strs(provenance[:4], 4):
        return False
    parents = provenance[4]
    if not isinstance(parents, list):
        return False
    for parent in parents:  # noqa: SIM110 (no generator on the per-event path)
        if not _strs(parent, 4):
            return False
    return True


def _data(m: list[Any]) -> bool:
    if len(m) != 6 or not _ints(m[1:4]) or type(m[4]) is not bool or not isinstance(m[5], list):
        return False
    for p in m[5]:  # noqa: SIM110 (no generator on the per-event path)
        if not _product(p):
            return False
    return True


_TRANSITION_ARITY = {T_BEGIN_RUN: 3, T_BEGIN_LUMI: 3, T_EVENT: 5, T_END_LUMI: 3, T_END_RUN: 2}
_EVENT_TYPES = [int] * _TRANSITION_ARITY[T_EVENT]  # [T_EVENT, run, lumi, event, key]
_SHAPES: tuple[Any, ...] = (
    lambda m: len(m) == 3 and isinstance(m[2], dict),  # HELLO (version compared by the handshake)
    lambda m: len(m) == 3 and isinstance(m[2], dict),  # WELCOME
    lambda m: len(m) == 2 and _transitions(m[1]),
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
