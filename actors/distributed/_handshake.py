"""The channel handshake, both sides: HELLO (controller) -> WELCOME (follower).

Each side sends its sender/receiver pairs (the schema) and compares the
peer's against its own, so that a mismatch raises
:class:`~actors.errors.SchemaMismatch` with a diff on *both* sides before the
first event. The follower answers WELCOME even on a mismatch (flagged in
``error``) so that the controller reports the diff too, then raises.

All awaits are bounded by ``timeout`` (DistributedError naming the link and
peer when it runs out); a peer that goes away raises PeerLost. Callers close
the link when these raise. Loop rules: the link's event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import DistributedError, ProtocolError
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

__all__ = ["answer_controller", "expect", "greet_follower"]


async def greet_follower(
    link: Link, name: str, schema: dict[int, PairSpec], process: str, timeout: float
) -> dict[str, Any]:
    """Controller side: send HELLO, wait for WELCOME, compare schemas.

    Returns the follower's WELCOME body (``process``, ``window``...). Raises
    SchemaMismatch (with the diff), DistributedError (refused, no answer
    within ``timeout``), ProtocolError (not our protocol/version), PeerLost.
    """
    what = f"handshake on link {name!r}"
    await link.send(
        pack(HELLO, VERSION, {"process": process, "link": name, "pairs": schema_to_wire(schema)})
    )
    body: dict[str, Any] = (await expect(link, WELCOME, timeout, what))[2]
    follower = f"follower {body.get('process', '?')!r}"
    lines = _differences(schema, body, link, f"controller {process!r}", follower)
    if lines:
        raise schema_error(name, lines)
    if body.get("error"):
        raise DistributedError(f"link {name!r}: follower refused: {body['error']}")
    return body


async def answer_controller(
    link: Link, name: str, schema: dict[int, PairSpec], process: str, window: int, timeout: float
) -> str:
    """Follower side: wait for HELLO, answer WELCOME, compare schemas.

    Returns the controller's process name. Raises SchemaMismatch (after
    telling the controller), DistributedError (no HELLO within ``timeout``),
    ProtocolError, PeerLost.
    """
    body = (await expect(link, HELLO, timeout, f"handshake on link {name!r}"))[2]
    controller = str(body.get("process", "?"))
    lines = _differences(schema, body, link, f"follower {process!r}", f"controller {controller!r}")
    await link.send(pack(WELCOME, VERSION, {
        "process": process, "pairs": schema_to_wire(schema), "window": window,
        "error": "schema mismatch" if lines else None,
    }))  # fmt: skip
    if lines:
        raise schema_error(name, lines)
    return controller


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
