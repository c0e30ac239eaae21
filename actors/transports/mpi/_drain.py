"""After ``close()`` of an ``mpi://`` link: consume what the peer still sends.

A message left unmatched inside MPI when the process finalises makes UCX print
"unexpected tag-receive descriptor ... was not matched" at exit. The side that
closes first would leave the peer's later messages (at least its BYE) so, so
after our own BYE the link keeps its header receive active and a background
task receives and discards everything up to the peer's BYE (at most
:data:`DRAIN_S`). When the event loop ends first (``asyncio.run`` returning
cancels the task), an ``atexit`` hook polls the header receives for the BYE for
up to :data:`EXIT_DRAIN_S` in all before MPI finalises (mpi4py finalises after
Python's ``atexit`` handlers). Both go through the link's header-receive state
(``_header_in``/``_poll_header``/``_restart_header``), so a header message that
a cancelled ``recv`` left in is consumed first, not lost. Best effort: errors
end a drain silently, the link being closed already. Loop rules:
:func:`start_drain` runs on the link's loop.
"""

from __future__ import annotations

import asyncio
import atexit
import time
from typing import TYPE_CHECKING, Any

from ...errors import PeerLost, ProtocolError
from ._frame import INLINED, KIND_BYE, KIND_LONG, unpack_header

if TYPE_CHECKING:
    from ._link import MPILink

__all__ = ["DRAIN_S", "EXIT_DRAIN_S", "start_drain"]

DRAIN_S = 10.0  # after our close, how long to keep consuming until the peer's BYE
EXIT_DRAIN_S = 1.0  # at interpreter exit, how long unfinished drains may still wait
_ANY_SIZE = 1 << 62
_draining: set[asyncio.Task[None]] = set()  # strong references to drain tasks
_at_exit: list[MPILink] = []


def start_drain(link: MPILink) -> None:
    """Consume the peer's messages up to its BYE in the background, then
    cancel and free the link's header receive."""
    task = asyncio.get_running_loop().create_task(_drain(link), name=f"mpi-drain {link.peer}")
    _draining.add(task)
    task.add_done_callback(_draining.discard)


async def _drain(link: MPILink) -> None:
    from ._link import TAG_LONG

    status, byte, poller = link._status, link._byte, link._poller
    try:
        async with asyncio.timeout(DRAIN_S):
            while True:
                if not link._header_in():  # a cancelled recv may have left one in
                    await link._poll_header()
                kind, _, sizes, flags, offset = unpack_header(
                    link._hdr, _ANY_SIZE, status.Get_count(byte)
                )
                if kind == KIND_BYE:
                    break
                link._restart_header()
                if kind == KIND_LONG:  # its buffers are left unmatched: rare
                    data = bytearray(offset)
                    await poller.submit(
                        [link._comm.Irecv([data, byte], link._remote, TAG_LONG)], data
                    )
                    continue
                out: list[Any] = [0 if f & INLINED else None for f in flags]
                await poller.submit(link._post_body(sizes, flags, out), out)
    except (TimeoutError, ProtocolError, PeerLost, link._mpi.Exception):
        pass  # best effort: the link is closed already
    except asyncio.CancelledError:  # e.g. asyncio.run ending: finish at exit
        if not _at_exit:
            atexit.register(_finish_at_exit)
        _at_exit.append(link)
        raise
    link._cancel_header_receive()


def _bye_now(link: MPILink) -> bool:
    """Non-blocking: True once the peer's BYE is in (or nothing more can come)."""
    try:
        if not link._header_in():
            return False
        kind = unpack_header(link._hdr, _ANY_SIZE, link._status.Get_count(link._byte))[0]
        if kind != KIND_BYE:
            link._restart_header()  # skipped; its data, if any, stays unmatched
    except (ProtocolError, link._mpi.Exception):
        return True
    return kind == KIND_BYE


def _finish_at_exit() -> None:
    deadline = time.monotonic() + EXIT_DRAIN_S
    pending = list(_at_exit)
    while pending and time.monotonic() < deadline:
        pending = [link for link in pending if not _bye_now(link)]
        time.sleep(0.0005)
    for link in _at_exit:
        link._cancel_header_receive()
    _at_exit.clear()
