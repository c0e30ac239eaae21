"""The distributed section of the stall report (:mod:`actors.framework.stall`).

Per channel of this OS process: its role and label; per link the peer,
flow-control credits (controller: credit left and events routed there;
follower: transitions queued and its window), the outbox depth of its
session and the transitions batched for the next write; then every receiver
whose message has not arrived, with its event, instance, link and peer.
Registered when :mod:`actors.distributed` is imported. Loop rules: read-only,
from the stall report's signal handler.
"""

from __future__ import annotations

from typing import Any

from ..framework import stall
from ._peer import Peer
from .controller import ControllerHub
from .follower import FollowerHub
from .hub import Hub, live_hubs

__all__ = ["describe_channels"]


def describe_channels() -> list[str]:
    """Lines about every live channel ([] when there is none)."""
    lines: list[str] = []
    for hub in live_hubs():
        if type(hub) is Hub:
            continue  # a placeholder: no controller or follower source owns it
        lines.append(
            f"{hub.role} channel {hub.label!r}"
            + (f" (failed: {hub.error})" if hub.error is not None else "")
        )
        links = _links(hub) or ["no link up yet (connecting, accepting or in the handshake)"]
        lines += ["  " + line for line in links]
        lines += ["  " + line for line in _waiting(hub)]
    return lines


def _link_line(peer: Peer, extra: str) -> str:
    state = peer.describe_state()
    lost = f", lost: {state['lost']}" if state["lost"] else ""
    return (
        f"{state['peer']}: {extra}outbox {state['outbox']} message(s), "
        f"{state['batched']} transition(s) batched{lost}"
    )


def _links(hub: Hub) -> list[str]:
    if isinstance(hub, ControllerHub):
        return [
            _link_line(f, f"credit {f.credits}, {len(f.inflight)} event(s) routed there, ")
            for f in hub.followers
        ]
    if isinstance(hub, FollowerHub) and hub.peer is not None:
        return [_link_line(
            hub.peer, f"{len(hub.queue)} transition(s) queued here (window {hub.window}), "
        )]  # fmt: skip
    return []


def _waiting(hub: Hub) -> list[str]:
    lines = []
    for (key, instance), waiter in sorted(hub.waiting.items(), key=lambda kv: kv[0]):
        who, event = _waiter(waiter)
        peer = _peer_of(hub, key)
        lines.append(
            f"{who} waits for instance {instance} of event {event} (key {key}) on "
            + (peer.who if peer is not None else "no link")
        )
    return lines


def _waiter(waiter: Any) -> tuple[str, str]:
    if isinstance(waiter, tuple) and len(waiter) == 2:
        return f"receiver {waiter[0]!r}", str(waiter[1])
    return "a receiver", "?"


def _peer_of(hub: Hub, key: int) -> Peer | None:
    if isinstance(hub, ControllerHub):
        return hub.route.get(key)
    if isinstance(hub, FollowerHub):
        return hub.peer
    return None


stall.register("distributed channels", describe_channels)
