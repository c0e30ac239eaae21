"""Distributed modules: one logical job split over several processes.

- :class:`Controller` (local process) forwards every transition to its
  follower(s) and puts a :class:`ChannelToken` per event;
- :class:`FollowerSource` (remote process) replays them;
- :class:`Sender` / :class:`Receiver` carry products across, matched by
  ``instance``; :class:`EventDone` closes each event's bookkeeping when paths
  may reject.

Modules name links (``link = "offload"``), resolved by
:mod:`actors.distributed.endpoints`. See ``docs/distributed.md``.
"""

from __future__ import annotations

from . import _stall  # noqa: F401  (registers the stall report's distributed section)
from .controller import Controller
from .endpoints import (
    LinkEndpoint,
    LinkTable,
    connect_named,
    current_links,
    listen_named,
    use_links,
)
from .follower import FollowerSource
from .hub import ChannelToken, close_channels
from .transfer import EventDone, Receiver, Sender

__all__ = [
    "ChannelToken",
    "Controller",
    "EventDone",
    "FollowerSource",
    "LinkEndpoint",
    "LinkTable",
    "Receiver",
    "Sender",
    "close_channels",
    "connect_named",
    "current_links",
    "listen_named",
    "use_links",
]
