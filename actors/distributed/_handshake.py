"""The channel handshake, both sides: HELLO (controller) -> WELCOME (follower).

Each side sends its sender/receiver pairs (the schema) and compares the
peer's against its own, so that a mismatch raises
:class:`~actors.errors.SchemaMismatch` with a diff on *both* sides before the
first event. The follower answers WELCOME even on a mismatch (flagged in
``error``) so that the controller reports the diff too, then raises.

Settings: each side also sends the job settings both sides must agree on
(:func:`job_settings`) and checks them against the peer's with the rules in
:data:`SETTINGS_RULES`; a combination that cannot work (e.g. a follower
allowing fewer lumis in flight than its controller, which deadlocks: the
follower waits for a lumi slot that only the controller's next end-of-lumi,
queued behind it, would free) raises SchemaMismatch on both sides naming both
values. A peer that sends no settings (older version) is not checked.

All awaits are bounded by ``timeout`` (DistributedError naming the link and
peer when it runs out); a peer that goes away raises PeerLost. Callers close
the link when these raise. Loop rules: the link's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

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
    "answer_controller",
    "compare_settings",
    "expect",
    "greet_follower",
    "job_settings",
]


def job_settings(options: Any) -> dict[str, Any]:
    """The settings this side announces, from the job's ``Options`` (None: none known)."""
    if options is None:
        return {}
    return {"max_concurrent_lumis": int(options.max_concurrent_lumis)}


#: setting -> (ok(controller value, follower value), what to do when not ok)
SETTINGS_RULES: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "max_concurrent_lumis": (
        lambda controller, follower: follower >= controller,
        "the follower must allow at least as many lumis in flight as its controller "
        "(it receives the lumi boundaries in the controller's order and would wait for a "
        "lumi slot forever): raise [options] max_concurrent_lumis in the follower's "
        "configuration to {controller} or more, or lower the controller's",
    ),
}


def compare_settings(
    controller: dict[str, Any], follower: dict[str, Any], controller_name: str, follower_name: str
) -> list[str]:
    """One line per setting whose two values cannot work together (empty: fine)."""
    lines = []
    for key, (ok, advice) in SETTINGS_RULES.items():
        if key not in controller or key not in follower:
            continue
        c, f = controller[key], follower[key]
        if not ok(c, f):
            lines.append(
                f"{key}: controller {controller_name!r} has {c}, follower {follower_name!r} "
                f"has {f}; " + advice.format(controller=c, follower=f)
            )
    return lines


def _settings_error(name: str, lines: list[str]) -> SchemaMismatch:
    return SchemaMismatch(
        f"link {name!r}: the two sides' settings cannot work together:\n  " + "\n  ".join(lines)
    )


async def greet_follower(
    link: Link,
    name: str,
    schema: dict[int, PairSpec],
    process: str,
    timeout: float,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Controller side: send HELLO, wait for WELCOME, compare schemas and settings.

    Returns the follower's WELCOME body (``process``, ``window``...). Raises
    SchemaMismatch (with the diff, or the settings that cannot work together),
    DistributedError (refused, no answer within ``timeout``), ProtocolError
    (not our protocol/version), PeerLost.
    """
    what = f"handshake on link {name!r}"
    await link.send(pack(HELLO, VERSION, {
        "process": process, "link": name, "pairs": schema_to_wire(schema),
        "settings": settings or {},
    }))  # fmt: skip
    body: dict[str, Any] = (await expect(link, WELCOME, timeout, what))[2]
    follower = str(body.get("process", "?"))
    lines = _differences(schema, body, link, f"controller {process!r}", f"follower {follower!r}")
    if lines:
        raise schema_error(name, lines)
    wrong = compare_settings(settings or {}, _settings(body, link), process, follower)
    if wrong:
        raise _settings_error(name, wrong)
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
    """Follower side: wait for HELLO, answer WELCOME, compare schemas and settings.

    Returns the controller's process name. Raises SchemaMismatch (after
    telling the controller), DistributedError (no HELLO within ``timeout``),
    ProtocolError, PeerLost.
    """
    body = (await expect(link, HELLO, timeout, f"handshake on link {name!r}"))[2]
    controller = str(body.get("process", "?"))
    lines = _differences(schema, body, link, f"follower {process!r}", f"controller {controller!r}")
    wrong = compare_settings(_settings(body, link), settings or {}, controller, process)
    error = "schema mismatch" if lines else "; ".join(wrong) if wrong else None
    await link.send(pack(WELCOME, VERSION, {
        "process": process, "pairs": schema_to_wire(schema), "window": window,
        "settings": settings or {}, "error": error,
    }))  # fmt: skip
    if lines:
        raise schema_error(name, lines)
    if wrong:
        raise _settings_error(name, wrong)
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

    Raises PeerLost (peer gone), TimeoutError turned into DistributedError.
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
    if len(msg) > 1 and kind in (HELLO, WELCOME) and msg[1] != VERSION:
        raise ProtocolError(
            f"{what}: {link.peer} speaks protocol version {msg[1]}, this process {VERSION}"
        )
    return msg
