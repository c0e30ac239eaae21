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
lost. Best effort: errors end a drain silently, the link being closed already.
Loop rules: :func:`start_drain` runs on the link's loop.
"""

from __future__ import annotations

import asyncio
import atexit
import time
from typing import Any

from ...errors import PeerLost, ProtocolError
from ._frame import INLINED, KIND_BYE, KIND_LONG, TAG_LONG
from ._inbox import Inbox

__all__ = ["DRAIN_S", "EXIT_DRAIN_S", "start_drain"]

DRAIN_S = 10.0  # after our close, how long to keep consuming until the peer's BYE
EXIT_DRAIN_S = 1.0  # at interpreter exit, how long unfinished drains may still wait
_ANY_SIZE = 1 << 62
_draining: set[asyncio.Task[None]] = set()  # strong references to drain tasks
_at_exit: list[Inbox] = []


def start_drain(inbox: Inbox, peer: str) -> None:
    """Consume what ``peer`` sends into ``inbox`` up to its BYE in the
    background, then free the inbox's header receive."""
    task = asyncio.get_running_loop().create_task(_drain(inbox), name=f"mpi-drain {peer}")
    _draining.add(task)
    task.add_done_callback(_draining.discard)


def _discard(size: int, flag: int) -> Any:
    return bytearray(size)


async def _drain(inbox: Inbox) -> None:
    try:
        async with asyncio.timeout(DRAIN_S):
            while True:
                await inbox.wait()  # returns at once when a cancelled recv left one in
                kind, _, sizes, flags, offset = inbox.parse(_ANY_SIZE)
                if kind == KIND_BYE:
                    break
                inbox.restart()
                if kind == KIND_LONG:  # its buffers are left unmatched: rare
                    data = bytearray(offset)
                    await inbox.poller.submit([inbox.post(data, TAG_LONG)], data)
                    continue
                out: list[Any] = [0 if f & INLINED else None for f in flags]
                await inbox.poller.submit(inbox.post_body(sizes, flags, out, _discard), out)
    except (TimeoutError, ProtocolError, PeerLost, inbox.error):
        pass  # best effort: the link is closed already
    except asyncio.CancelledError:  # e.g. asyncio.run ending: finish at exit
        if not _at_exit:
            atexit.register(_finish_at_exit)
        _at_exit.append(inbox)
        raise
    inbox.free()


def _bye_now(inbox: Inbox) -> bool:
    """Non-blocking: True once the peer's BYE is in (or nothing more can come)."""
    try:
        if not inbox.ready():
            return False
        kind = inbox.parse(_ANY_SIZE)[0]
        if kind != KIND_BYE:
            inbox.restart()  # skipped; its data, if any, stays unmatched
    except (ProtocolError, inbox.error):
        return True
    return kind == KIND_BYE


def _finish_at_exit() -> None:
    deadline = time.monotonic() + EXIT_DRAIN_S
    pending = list(_at_exit)
    while pending and time.monotonic() < deadline:
        pending = [inbox for inbox in pending if not _bye_now(inbox)]
        time.sleep(0.0005)
    for inbox in _at_exit:
        inbox.free()
    _at_exit.clear()
