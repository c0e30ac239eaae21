"""The remote actor links of this process, as lines for a stall report.

Every :class:`~actors.core.remote.RemoteHub` (one per actor system that
serves or calls remote actors) registers itself here (held weakly);
:func:`describe_remote_links` asks each for its lines: per link session the
peer, the requests pending with their age (asks, lookups, stops: on the
calling side waiting for a reply, on the serving side being handled), the
outbox depth and whether its reader and writer tasks are alive. The stall
report of :mod:`actors.framework.stall` shows them as its "remote actor
links" section (core cannot import the framework: the framework registers
this function). Light on purpose: importing it loads no codec or transport.

Loop rules: read-only, called from the stall report's loop callback.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

__all__ = ["Described", "describe_remote_links", "request_lines", "session_state", "track"]


class Described(Protocol):
    def describe_stall(self) -> list[str]:
        """Lines about this object's links ([] = nothing to say)."""


_hubs: weakref.WeakSet[Any] = weakref.WeakSet()


def track(hub: Described) -> None:
    """Include ``hub`` in :func:`describe_remote_links` while it lives."""
    _hubs.add(hub)


def describe_remote_links() -> list[str]:
    """Lines about every remote actor link of this process ([] when there is none)."""
    lines: list[str] = []
    for hub in list(_hubs):
        lines += hub.describe_stall()
    return lines


#: request lines shown per link (the oldest); the others are counted
SHOWN = 10


def session_state(session: Any, lost: BaseException | None = None) -> str:
    """Outbox depth, reader/writer state and loss of a link session, for a report line.

    ``session``: an :class:`actors.transports.session.Session` (not imported here).
    """
    tasks = session.task_states()
    error = lost or session.lost
    return (
        f"outbox {session.queued} frame(s), reader {tasks['reader']}, writer {tasks['writer']}"
        + (f", lost: {error}" if error is not None else "")
    )


def request_lines(requests: list[tuple[int, str, str, float]], state: str, now: float) -> list[str]:
    """``(corr, kind name, target, time.monotonic() at the start)``, oldest first, as
    indented lines (at most :data:`SHOWN`; the rest counted)."""
    lines = [
        f"  {kind} to actor {target!r} {state} for {max(now - started, 0.0):.1f} s (request {corr})"
        for corr, kind, target, started in requests[:SHOWN]
    ]
    if len(requests) > SHOWN:
        lines.append(f"  ... and {len(requests) - SHOWN} more")
    return lines
