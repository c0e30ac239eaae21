"""Transports: move ``(header, buffers)`` messages between endpoints.

Public API::

    listener = await actors.transports.listen("tcp://127.0.0.1:0", secret=b"s3cret")
    async with listener:
        link = await listener.accept()          # or: async for link in listener
        header, buffers = await link.recv()

    link = await actors.transports.connect(listener.address, secret=b"s3cret")
    await link.send(b"header", [numpy_array, b"bytes"])
    await link.close()

Backends register under a URL scheme (``inproc``, ``tcp``, ``shm``, ``mpi``,
``ucx``) and are imported only on first use; third-party backends can be added
with :func:`register_backend` or the ``actors.transports`` entry-point group.
See :mod:`actors.transports._base` for the full contract.
"""

from __future__ import annotations

from ._base import DEFAULT_MAX_MESSAGE_SIZE, Backend, Capabilities, Link, Listener, Message
from ._registry import (
    available_schemes,
    connect,
    get_backend,
    listen,
    register_backend,
    split_url,
)
from ._spin import LoopSpinner, loop_spinner, receive_polls_enabled, receive_polls_off

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Backend",
    "Capabilities",
    "Link",
    "Listener",
    "LoopSpinner",
    "Message",
    "available_schemes",
    "connect",
    "get_backend",
    "listen",
    "loop_spinner",
    "receive_polls_enabled",
    "receive_polls_off",
    "register_backend",
    "split_url",
]
