"""A controller's failover helpers: open transitions, loss announcements, reconnecting.

With ``on_follower_loss = "resend"`` a controller survives the loss of a
follower (see :mod:`actors.distributed.controller`); these are the pieces it
needs besides its routing:

- :class:`OpenTransitions`: the run and lumis begun and not yet ended, replayed
  to a follower that (re)joins mid-job so that it sees the same boundaries;
- :func:`announce`: tells the user (a log warning) and, under
  ``python -m actors.launch``, the launcher (a :data:`FAILOVER_MARK` line) what
  happened: a follower lost and the events resent, a replacement rejoined, a
  follower's controller lost (said by the follower);
- :func:`replacement_expected` / :func:`reconnect`: a link whose server the
  launcher restarts (``restarts = N`` in the topology, handed over as the link
  endpoint's ``restarts``) is connected again, retrying until its timeout.

Loop rules: the controller hub's event loop only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from .._cli import print_marker
from ..errors import PeerLost
from ..settings import PROGRESS_LINES
from ..transports import Link
from .endpoints import connect_named, current_links, published_address
from .protocol import T_BEGIN_LUMI, T_BEGIN_RUN, T_END_LUMI, T_END_RUN

__all__ = [
    "FAILOVER_MARK",
    "OpenTransitions",
    "announce",
    "reconnect",
    "replacement_expected",
]

#: Prefix of the JSON lines a controller prints for the launcher's summary
#: (only when ``ACTORS_PROGRESS_LINES=1``, i.e. under the launcher).
FAILOVER_MARK = "@@actors-failover "
#: Each connect attempt to a restarted server through a rendezvous file is
#: bounded by this, so that a stale address (the dead server's) is read again.
_ATTEMPT_S = 2.0
_RENDEZVOUS_SCHEMES = ("tcp", "ucx")

log = logging.getLogger("actors.distributed")


class OpenTransitions:
    """The runs and lumis a controller has begun and not ended, in order.

    Runs may overlap (the next begins before the last ends), so both are kept
    by number.
    """

    def __init__(self) -> None:
        self.runs: dict[int, list[Any]] = {}
        self.lumis: dict[tuple[int, int], list[Any]] = {}

    def note(self, item: list[Any]) -> None:
        """Record one broadcast transition item (``[T_BEGIN_RUN, ...]`` etc.)."""
        kind = item[0]
        if kind == T_BEGIN_RUN:
            self.runs[item[1]] = item
        elif kind == T_END_RUN:
            self.runs.pop(item[1], None)
        elif kind == T_BEGIN_LUMI:
            self.lumis[(item[1], item[2])] = item
        elif kind == T_END_LUMI:
            self.lumis.pop((item[1], item[2]), None)

    def replay(self) -> list[list[Any]]:
        """What a follower joining now must receive first: begun runs, then open lumis."""
        return list(self.runs.values()) + list(self.lumis.values())


def announce(what: str, message: str, *, quiet: bool = False, **info: Any) -> None:
    """Report a failover step: a marker line for the launcher, else a log warning.

    ``quiet``: the marker only (the message is reported otherwise, e.g. as the
    job's error).
    """
    if PROGRESS_LINES.get():
        print_marker(FAILOVER_MARK, json.dumps({"what": what, "message": message, **info}))
    elif not quiet:
        log.warning("%s", message)


def replacement_expected(name: str) -> int:
    """How many times the launcher restarts the server of link ``name`` (0: never)."""
    endpoint = current_links().endpoints.get(name)
    return endpoint.restarts if endpoint is not None and endpoint.role == "client" else 0


def launcher_name(name: str) -> str:
    """The launcher's name of the process serving link ``name`` ('?' when unknown)."""
    endpoint = current_links().endpoints.get(name)
    return endpoint.peer if endpoint is not None else "?"


async def reconnect(name: str, timeout: float, dead: str = "") -> Link:
    """Connect link ``name`` again, to the replacement of its lost server at ``dead``.

    Retries until ``timeout`` seconds have passed (the replacement may still
    be starting); while the rendezvous still publishes ``dead`` (the lost
    server's address) it waits for the new one. Raises the last PeerLost then.
    Cancellable at any await.
    """
    endpoint = current_links().get(name, "client")
    through_file = endpoint.url.partition("://")[0] in _RENDEZVOUS_SCHEMES
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if through_file and dead and published_address(name) == dead and left > 0.1:
            await asyncio.sleep(0.02)
            continue
        attempt = min(left, _ATTEMPT_S) if through_file else left
        try:
            return await connect_named(name, timeout=max(attempt, 0.1))
        except PeerLost:
            if loop.time() + 0.1 >= deadline:
                raise
        await asyncio.sleep(0.1)
