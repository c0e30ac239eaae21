"""The channel handshake, both sides: HELLO (controller) -> WELCOME (follower).

Each side sends its sender/receiver pairs (the schema) and compares the
peer's against its own, so that a mismatch raises
:class:`~actors.errors.SchemaMismatch` with a diff on *both* sides before the
first event. The follower answers WELCOME even on a mismatch (flagged in
``error``) so that the controller reports the diff too, then raises.

What both sides must agree on, each checked on both sides before the first
event, refused with an error naming the setting, both values, both processes
and the peer's address:

* **protocol version** (``VERSION``, the second element of HELLO/WELCOME):
  equal. The follower answers a HELLO of another version with a WELCOME
  carrying its own version and the error, so both sides raise
  :class:`~actors.errors.ProtocolError` (neither waits for the other).
* **schema** (``pairs``): one sender and one receiver per instance, the same
  products in the same order (:func:`~actors.distributed.protocol.compare_schemas`).
* **process name**: different. The follower's process history is the
  controller's plus its own entry, and a received product keeps its
  sender-side branch (process included) as a parent: with one name for
  both, the history holds it twice and provenance cannot tell the sides apart
  (``actors.split`` refuses it for the same reason).
* **settings** (:func:`job_settings`, rules in :data:`SETTINGS_RULES`):
  ``max_concurrent_lumis`` (the follower allows at least the controller's: it
  receives the lumi boundaries in the controller's order and would wait for a
  lumi slot that only the controller's next end-of-lumi, queued behind it,
  frees - a silent deadlock) and ``pickle`` (a side that allows pickle and
  sends products pickles any product without a registered codec, which a
  peer that does not allow pickle cannot decode: allowed on both sides or
  on neither, as far as one of them sends). A peer that sends no settings
  (older version) is not checked on them.

Free per side (not exchanged, or only announced): ``streams``, ``threads``
and ``mailbox_size`` (each side schedules its own events; flow control keeps
the controller within the follower's window); the flow-control ``window``
(the follower announces it in WELCOME and the controller adopts it as its
credit, so there is nothing to disagree on); ``events`` (a follower that
stops early ends its link and the controller reports the events it misses);
the ``on_follower_loss`` policy (resend is the controller's business: it
keeps the products of unfinished events and drops duplicates; a follower,
replacement or not, handles every event it gets the same way); the link's
``max_message_size`` (named links use the transport default on both ends;
a bigger message is refused by the transport with a ProtocolError naming
its size and the limit, not waited for); codecs and device memory per
product (the type of a product is known only once it is put: a product
without a codec on the receiving side fails the job at that event with a
CodecError naming the codec);
EventDone (whether a path may reject is a run-time decision; a receiver
waiting for a sender that did not run shows in the stall report). The
process history is not known at the handshake: it comes with every begin
run, and the follower source refuses a run whose history differs from the
first one's.

All awaits are bounded by ``timeout`` (DistributedError naming the link and
peer when it runs out); a peer that goes away raises PeerLost. Callers close
the link when these raise. Loop rules: the link's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..codecs import pickle_allowed
from ..errors import DistributedError, ProtocolError, SchemaMismatch
from ..transports import Link
from .protocol import (
    ERROR,
    HELLO,
    KIND_NAMES,
    VERSION,
    WELCOME,
    PairSpec,
    compare_schemas,
    pack,
    schema_error,
    schema_from_wire,
    schema_to_wire,
    unpack,
)

__all__ = [
    "SETTINGS_RULES",
    "Flow",
    "Rule",
    "answer_controller",
    "compare_settings",
    "expect",
    "greet_follower",
    "job_settings",
]


def job_settings(options: Any) -> dict[str, Any]:
    """The settings this side announces: from the job's ``Options`` (None: none known)
    and from the process (whether it allows pickle)."""
    settings: dict[str, Any] = {"pickle": pickle_allowed()}
    if options is not None:
        settings["max_concurrent_lumis"] = int(options.max_concurrent_lumis)
    return settings


class Flow(NamedTuple):
    """Which way products travel on the link (from the schema both sides agreed on)."""

    controller_sends: bool = True
    follower_sends: bool = True

    @classmethod
    def of(cls, schema: dict[int, PairSpec], controller: bool) -> Flow:
        """The flow seen from one side's own schema (``controller``: it is the controller's)."""
        sends = any(p.role == "send" for p in schema.values())
        receives = any(p.role == "recv" for p in schema.values())
        return cls(sends, receives) if controller else cls(receives, sends)


@dataclass(frozen=True)
class Rule:
    """When a setting's two values work together, and what to do when they do not.

    ``ok(controller value, follower value, flow)``; ``advice`` is formatted
    with ``controller`` and ``follower`` (the values); ``show(value)`` says a
    value in the error line ("has 2").
    """

    ok: Callable[[Any, Any, Flow], bool]
    advice: str
    show: Callable[[Any], str] = lambda value: f"has {value}"


def _pickle_ok(controller: Any, follower: Any, flow: Flow) -> bool:
    if flow.controller_sends and controller and not follower:
        return False
    return not (flow.follower_sends and follower and not controller)


#: setting -> its :class:`Rule`
SETTINGS_RULES: dict[str, Rule] = {
    "max_concurrent_lumis": Rule(
        lambda controller, follower, _flow: follower >= controller,
        "the follower must allow at least as many lumis in flight as its controller "
        "(it receives the lumi boundaries in the controller's order and would wait for a "
        "lumi slot forever): raise [options] max_concurrent_lumis in the follower's "
        "configuration to {controller} or more, or lower the controller's",
    ),
    "pickle": Rule(
        _pickle_ok,
        "the side that allows pickle sends products and pickles any without a registered "
        "codec, which the other side refuses to unpickle (a CodecError at the first such "
        "event): allow pickle in both processes (actors.codecs.allow_pickle() or "
        "ACTORS_ALLOW_PICKLE=1; only between trusted processes) or in neither (register "
        "codecs for the products)",
        lambda allowed: "allows it" if allowed else "does not allow it",
    ),
}


def compare_settings(
    controller: dict[str, Any],
    follower: dict[str, Any],
    controller_name: str,
    follower_name: str,
    flow: Flow | None = None,
) -> list[str]:
    """One line per setting whose two values cannot work together (empty: fine).

    The process names are checked too (they must differ). ``flow``: which
    sides send products (default: both).
    """
    lines = []
    if controller_name == follower_name and controller_name != "?":
        lines.append(
            f"process name: controller and follower are both {controller_name!r}; the "
            "follower's process history would hold it twice and received products could "
            "not be told from local ones by their provenance: give each process its own "
            "[process] name"
        )
    flow = flow or Flow()
    for key, rule in SETTINGS_RULES.items():
        if key not in controller or key not in follower:
            continue
        c, f = controller[key], follower[key]
        if not rule.ok(c, f, flow):
            lines.append(
                f"{key}: controller {controller_name!r} {rule.show(c)}, follower "
                f"{follower_name!r} {rule.show(f)}; " + rule.advice.format(controller=c, follower=f)
            )
    return lines


def _settings_error(name: str, link: Link, lines: list[str]) -> SchemaMismatch:
    return SchemaMismatch(
        f"link {name!r} (peer {link.peer}): the two sides' settings cannot work together:\n  "
        + "\n  ".join(lines)
    )


def _version_error(name: str, link: Link, controller: str, c: Any, follower: str, f: Any) -> str:
    return (
        f"link {name!r} (peer {link.peer}): protocol version: controller {controller!r} speaks "
        f"{c}, follower {follower!r} speaks {f}; run the same hep-actors version on both sides"
    )


async def greet_follower(
    link: Link,
    name: str,
    schema: dict[int, PairSpec],
    process: str,
    timeout: float,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Controller side: send HELLO, wait for WELCOME, compare versions, schemas and settings.

    Returns the follower's WELCOME body (``process``, ``window``...). Raises
    SchemaMismatch (with the diff, or the settings that cannot work together),
    ProtocolError (not our protocol, or another version: naming both),
    DistributedError (refused, no answer within ``timeout``), PeerLost.
    """
    what = f"handshake on link {name!r}"
    await link.send(pack(HELLO, VERSION, {
        "process": process, "link": name, "pairs": schema_to_wire(schema),
        "settings": settings or {},
    }))  # fmt: skip
    msg = await expect(link, WELCOME, timeout, what)
    body: dict[str, Any] = msg[2]
    follower = str(body.get("process", "?"))
    if msg[1] != VERSION:
        raise ProtocolError(_version_error(name, link, process, VERSION, follower, msg[1]))
    lines = _differences(schema, body, link, f"controller {process!r}", f"follower {follower!r}")
    if lines:
        raise schema_error(name, lines)
    flow = Flow.of(schema, controller=True)
    wrong = compare_settings(settings or {}, _settings(body, link), process, follower, flow)
    if wrong:
        raise _settings_error(name, link, wrong)
    if body.get("error"):
        raise DistributedError(f"link {name!r}: follower refused: {body['error']}")
    return body


async def answer_controller(
    link: Link,
    name: str,
    schema: dict[int, PairSpec],
    process: str,
    window: int,
    timeout: float,
    settings: dict[str, Any] | None = None,
) -> str:
    """Follower side: wait for HELLO, answer WELCOME, compare versions, schemas and settings.

    Returns the controller's process name. Raises SchemaMismatch (after
    telling the controller), ProtocolError (another protocol version, after
    telling the controller; a malformed HELLO), DistributedError (no HELLO
    within ``timeout``), PeerLost.
    """
    msg = await expect(link, HELLO, timeout, f"handshake on link {name!r}")
    body = msg[2]
    controller = str(body.get("process", "?"))
    if msg[1] != VERSION:
        text = _version_error(name, link, controller, msg[1], process, VERSION)
        await link.send(pack(WELCOME, VERSION, {
            "process": process, "pairs": {}, "window": window, "settings": {}, "error": text,
        }))  # fmt: skip
        raise ProtocolError(text)
    lines = _differences(schema, body, link, f"follower {process!r}", f"controller {controller!r}")
    flow = Flow.of(schema, controller=False)
    wrong = compare_settings(_settings(body, link), settings or {}, controller, process, flow)
    error = "schema mismatch" if lines else "; ".join(wrong) if wrong else None
    await link.send(pack(WELCOME, VERSION, {
        "process": process, "pairs": schema_to_wire(schema), "window": window,
        "settings": settings or {}, "error": error,
    }))  # fmt: skip
    if lines:
        raise schema_error(name, lines)
    if wrong:
        raise _settings_error(name, link, wrong)
    return controller


def _settings(body: dict[str, Any], link: Link) -> dict[str, Any]:
    raw = body.get("settings", {})
    if not isinstance(raw, dict):
        raise ProtocolError(f"malformed settings from {link.peer}: {str(raw)[:80]}")
    return raw


def _differences(
    ours: dict[int, PairSpec], body: dict[str, Any], link: Link, me: str, them: str
) -> list[str]:
    return compare_schemas(ours, schema_from_wire(body["pairs"], link.peer), me, them)


async def expect(link: Link, kind: int, timeout: float, what: str) -> list[Any]:
    """Receive one handshake message of ``kind``; DistributedError otherwise.

    The protocol version (``msg[1]`` of HELLO/WELCOME) is the caller's to
    compare: it names both processes. Raises PeerLost (peer gone),
    TimeoutError turned into DistributedError.
    """
    try:
        async with asyncio.timeout(timeout):
            header, _ = await link.recv()
    except TimeoutError:
        raise DistributedError(
            f"{what}: no answer from {link.peer} within {timeout:.0f} s"
        ) from None
    msg = unpack(header, link.peer)
    if msg[0] != kind:
        if msg[0] == ERROR:
            raise DistributedError(f"{what}: the peer {link.peer} failed: {msg[1]}")
        raise ProtocolError(
            f"{what}: expected {KIND_NAMES[kind]} from {link.peer}, got {KIND_NAMES[msg[0]]}"
        )
    return msg
