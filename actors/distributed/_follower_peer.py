"""The controller's bookkeeping for one follower: credit, events in flight, name.

Loop rules: the controller hub's event loop only (no locking).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..framework import EventID
from ._peer import Peer
from .endpoints import current_links
from .protocol import TRANS

__all__ = ["FollowerPeer"]

#: Events named in a "lost the follower" error before "and N more".
_SHOWN = 10


class FollowerPeer(Peer):
    """One follower link of a controller, with its flow-control and routing state.

    ``credits``: events the follower may still have queued (may go negative
    after a resend); ``credit_wake`` is set when credit arrives or the link is
    lost; ``inflight`` maps event keys routed here to their ids until done;
    ``finished`` resolves with the follower's event count at end of job.
    """

    def __init__(self, name: str, link: Any) -> None:
        super().__init__(name, link, TRANS)
        self.credits = 0
        self.credit_wake = asyncio.Event()
        self.inflight: dict[int, EventID] = {}
        self.finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.events = 0

    def name_process(self, process: Any) -> None:
        """Record the peer as ``process 'NAME'`` plus its launcher name when the table has one."""
        endpoint = current_links().endpoints.get(self.name)
        launched = f" ({endpoint.peer})" if endpoint is not None and endpoint.peer != "?" else ""
        self.process = f"process {str(process)!r}{launched}"

    def describe_inflight(self) -> str:
        """The events in flight here, for an error message (the first few by id)."""
        ids = list(self.inflight.values())
        if not ids:
            return "no event was in flight on it"
        shown = ", ".join(str(i) for i in ids[:_SHOWN])
        more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
        return f"{len(ids)} event(s) in flight on it: {shown}{more}"
