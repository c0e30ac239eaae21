"""``inproc://name`` - links between tasks of one process, zero copy.

Messages are handed over by reference through bounded queues: the receiver gets
the very buffer objects the sender passed (as byte memoryviews for host
memory, unchanged for device memory). Listeners are registered by name in a
process-wide table; both ends must run on the same event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
from collections.abc import Sequence
from typing import Any

from ..buffers import as_host_view, is_device, nbytes
from ..errors import AuthenticationError, ConfigError, PeerLost, ProtocolError
from ._base import Backend, Capabilities, Link, Listener, Message, QueuedListener

__all__ = ["InprocBackend"]

_CAPS = Capabilities(zero_copy_receive=True, device_memory=True, crosses_nodes=False)
_QUEUE_DEPTH = 1024
_CLOSED = object()
_listeners: dict[str, InprocListener] = {}
_anonymous = itertools.count(1)


class InprocLink(Link):
    capabilities = _CAPS

    def __init__(self, peer: str, inbox: asyncio.Queue[Any], max_message_size: int) -> None:
        self.peer = peer
        self._inbox = inbox
        self._outbox: asyncio.Queue[Any] | None = None
        self._other: InprocLink | None = None
        self._closed = False
        self._max = max_message_size

    @staticmethod
    def pair(name: str, max_message_size: int) -> tuple[InprocLink, InprocLink]:
        a = InprocLink(f"inproc://{name} (client)", asyncio.Queue(_QUEUE_DEPTH), max_message_size)
        b = InprocLink(f"inproc://{name}", asyncio.Queue(_QUEUE_DEPTH), max_message_size)
        a._outbox, b._outbox = b._inbox, a._inbox
        a._other, b._other = b, a
        return a, b

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        if self._closed or self._other is None or self._other._closed:
            raise PeerLost(f"link to {self.peer} is closed")
        bufs = [b if is_device(b) else as_host_view(b) for b in buffers]
        size = len(header) + sum(nbytes(b) for b in bufs)
        if size > self._max:
            raise ProtocolError(
                f"message of {size} bytes exceeds max_message_size={self._max} on {self.peer}"
            )
        assert self._outbox is not None
        await self._outbox.put((bytes(header), bufs))

    async def recv(self) -> Message:
        if self._closed:
            raise PeerLost(f"link to {self.peer} is closed")
        item = await self._inbox.get()
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)  # later recv calls see it too
            raise PeerLost(f"peer {self.peer} closed the link")
        header, bufs = item
        return header, bufs

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake(self._inbox)
        if self._outbox is not None:
            self._wake(self._outbox)

    @staticmethod
    def _wake(queue: asyncio.Queue[Any]) -> None:
        while True:
            try:
                queue.put_nowait(_CLOSED)
                return
            except asyncio.QueueFull:
                queue.get_nowait()  # drop an undelivered message to make room


class InprocListener(QueuedListener):
    def __init__(self, name: str, secret: bytes | None, max_message_size: int) -> None:
        super().__init__()
        self.name = name
        self.address = f"inproc://{name}"
        self._secret = secret
        self._max = max_message_size

    def _offer(self, secret: bytes | None, max_message_size: int) -> InprocLink:
        if (self._secret is None) != (secret is None) or (
            secret is not None and not hmac.compare_digest(secret, self._secret or b"")
        ):  # as on the wire: a secret on one side only is refused too
            raise AuthenticationError(f"{self.address}: wrong, missing or unexpected secret")
        accepted, connected = InprocLink.pair(self.name, min(self._max, max_message_size))
        self._deliver(accepted)
        return connected

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if _listeners.get(self.name) is self:
            del _listeners[self.name]
        await self._close_queue()


class InprocBackend(Backend):
    scheme = "inproc"
    capabilities = _CAPS

    async def listen(
        self, address: str, *, secret: bytes | None, max_message_size: int
    ) -> Listener:
        name = address or f"anonymous-{next(_anonymous)}"
        if name in _listeners:
            raise ConfigError(f"inproc://{name} is already listening in this process")
        listener = InprocListener(name, secret, max_message_size)
        _listeners[name] = listener
        return listener

    async def connect(
        self, address: str, *, secret: bytes | None, timeout: float, max_message_size: int
    ) -> Link:
        try:
            async with asyncio.timeout(timeout):
                while (listener := _listeners.get(address)) is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise PeerLost(f"nobody listens at inproc://{address} (waited {timeout} s)") from None
        return listener._offer(secret, max_message_size)
