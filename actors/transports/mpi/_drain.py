"""After ``close()`` of an ``mpi://`` link: consume what the peer still sends.

A message left unmatched inside MPI when the process finalises makes UCX print
"unexpected tag-receive descriptor ... was not matched" at exit. The side that
closes first would leave the peer's later messages (at least its BYE) so, so
after our own BYE the link keeps its header receive active and a background
task receives and discards everything up to the peer's BYE (at most
:data:`DRAIN_S`). When the event loop ends first (``asyncio.run`` returning
cancels the task), an ``atexit`` hook polls the header receives for the BYE for
up to :data:`EXIT_DRAIN_S` in all before MPI finalises (mpi4py finalises after
Python's ``atexit`` handlers). Both go through the link's
:class:`~actors.transports.mpi._inbox.Inbox` (its one header-receive state),
so a header message that a cancelled ``recv`` left in is consumed first, not
lost.

The drain trusts the peer no more than the open link does: every header
message is parsed against the link's ``max_message_size`` (a long header
against :func:`~actors.transports.mpi._frame.long_header_limit` of it) before
anything is allocated, and buffers are allocated with ``numpy.empty`` (no
zeroing) only once their sizes are validated. A malformed or oversized header
message ends the drain with a ProtocolError naming the peer (logged as a
warning: the link is closed already), never an allocation; its buffers, if
any, are left unmatched. Peer loss, MPI errors and the time limit end a drain
silently (best effort). Loop rules: :func:`start_drain` runs on the link's loop.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import PeerLost, ProtocolError
from ._frame import INLINED, KIND_BYE, KIND_LONG, TAG_LONG, long_header_limit, unpack_header
from ._inbox import Inbox

__all__ = ["DRAIN_S", "EXIT_DRAIN_S", "drain", "start_drain"]

log = logging.getLogger("actors.transports.mpi")

DRAIN_S = 10.0  # after our close, how long to keep consuming until the peer's BYE
EXIT_DRAIN_S = 1.0  # at interpreter exit, how long unfinished drains may still wait
_draining: set[asyncio.Task[None]] = set()  # strong references to drain tasks


@dataclass(frozen=True)
class _Pending:
    """An unfinished drain handed to the ``atexit`` hook."""

    inbox: Inbox
    max_size: int


_at_exit: list[_Pending] = []


def start_drain(inbox: Inbox, peer: str, max_size: int) -> None:
    """Consume what ``peer`` sends into ``inbox`` up to its BYE in the
    background, then free the inbox's header receive. ``max_size``: the
    link's ``max_message_size`` (announcements above it end the drain)."""
    task = asyncio.get_running_loop().create_task(
        _drain_task(inbox, peer, max_size), name=f"mpi-drain {peer}"
    )
    _draining.add(task)
    task.add_done_callback(_draining.discard)


def _discard(size: int, flag: int) -> Any:
    return np.empty(size, dtype=np.uint8)  # size validated by the parse: no zeroing


def _parse(inbox: Inbox, peer: str, max_size: int) -> tuple[int, list[int], bytes, int]:
    """``(kind, sizes, flags, offset)`` of the header message in ``inbox``;
    ProtocolError naming ``peer`` if it is malformed or too large."""
    try:
        kind, _, sizes, flags, offset = inbox.parse(max_size)
    except ProtocolError as exc:
        raise ProtocolError(f"{exc} from {peer} (draining the closed link)") from None
    return kind, sizes, flags, offset


async def _long(
    inbox: Inbox, peer: str, max_size: int, size: int
) -> tuple[int, list[int], bytes, list[Any]]:
    """Receive the long header message announced with ``size`` bytes;
    ``(kind, sizes, flags, inlined buffers or None)``."""
    if size > long_header_limit(max_size):
        raise ProtocolError(
            f"header message of {size} bytes is too large from {peer} (draining the closed link)"
        )
    data = np.empty(size, dtype=np.uint8)
    await inbox.poller.submit([inbox.post(data, TAG_LONG)], data)
    try:
        kind, _, sizes, flags, _ = unpack_header(data, max_size)
        if kind == KIND_LONG:
            raise ProtocolError("long header message announces another one")
    except ProtocolError as exc:
        raise ProtocolError(f"{exc} from {peer} (draining the closed link)") from None
    return kind, sizes, flags, [0 if f & INLINED else None for f in flags]


async def drain(inbox: Inbox, peer: str, max_size: int) -> None:
    """Receive and discard every message ``peer`` sends into ``inbox`` until
    its BYE (the BYE stays in: the header receive is not restarted).

    Raises ProtocolError naming ``peer`` for a malformed header message or one
    announcing more than ``max_size`` bytes (nothing is allocated from it),
    PeerLost or :attr:`Inbox.error` when the link fails."""
    while True:
        await inbox.wait()  # returns at once when a cancelled recv left one in
        kind, sizes, flags, offset = _parse(inbox, peer, max_size)
        if kind == KIND_BYE:
            return
        inbox.restart()
        if kind == KIND_LONG:
            kind, sizes, flags, out = await _long(inbox, peer, max_size, offset)
            if kind == KIND_BYE:
                return
        else:
            out = [0 if f & INLINED else None for f in flags]
        await inbox.poller.submit(inbox.post_body(sizes, flags, out, _discard), out)


async def _drain_task(inbox: Inbox, peer: str, max_size: int) -> None:
    try:
        async with asyncio.timeout(DRAIN_S):
            await drain(inbox, peer, max_size)
    except ProtocolError as exc:
        log.warning("mpi:// drain after close ended: %s", exc)
    except (TimeoutError, PeerLost, inbox.error):
        pass  # best effort: the link is closed already
    except asyncio.CancelledError:  # e.g. asyncio.run ending: finish at exit
        if not _at_exit:
            atexit.register(_finish_at_exit)
        _at_exit.append(_Pending(inbox, max_size))
        raise
    inbox.free()


def _bye_now(pending: _Pending) -> bool:
    """Non-blocking: True once the peer's BYE is in (or nothing more can come)."""
    inbox = pending.inbox
    try:
        if not inbox.ready():
            return False
        kind = inbox.parse(pending.max_size)[0]
        if kind != KIND_BYE:
            inbox.restart()  # skipped; its data, if any, stays unmatched
    except (ProtocolError, inbox.error):
        return True
    return kind == KIND_BYE


def _finish_at_exit() -> None:
    deadline = time.monotonic() + EXIT_DRAIN_S
    pending = list(_at_exit)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if not _bye_now(p)]
        time.sleep(0.0005)
    for p in _at_exit:
        p.inbox.free()
    _at_exit.clear()
