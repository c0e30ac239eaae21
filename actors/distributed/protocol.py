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
    """Decode a header; ProtocolError naming ``peer`` when it is not a known message."""
    try:
        msg = msgpack.unpackb(header, raw=False, use_list=True, strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"malformed message from {peer}: {exc!r}") from exc
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], int) or not (
        0 <= msg[0] < len(KIND_NAMES)
    ):
        raise ProtocolError(f"unknown message from {peer}: {str(msg)[:80]}")
    return msg


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


def _products_match(sent: tuple[tuple[str, str, str], ...],
                    expected: tuple[tuple[str, str, str], ...]) -> bool:
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
