"""The transport contract: ``Backend`` -> ``Listener`` / ``Link``.

A *link* carries messages ``(header: bytes, buffers: list)`` between two
endpoints, in order, reliably, both ways. ``header`` is small (control data);
``buffers`` are memory regions (see :mod:`actors.buffers`) that are moved
without being concatenated. Ownership of sent buffers passes to the link: the
sender must not modify them after ``send`` returns (zero-copy transports may
still be reading them, and ``inproc://`` hands the very same objects over).

Sent host buffers must be C-contiguous (read-only ones are fine): a strided or
Fortran-ordered buffer makes ``send`` raise ``ValueError`` before anything is
sent, and the link stays usable.

Bounded buffering: while the peer does not receive, a link accepts a bounded
amount of data (socket buffers, a queue of at most ~1,000 messages, a bounded
pool of segments); ``send`` then waits until the peer reads. It never fails,
and never grows memory without bound, because the peer is slow.

Received host buffers are writable-or-readonly byte ``memoryview``-compatible
objects (buffer protocol, C-contiguous, ``uint8``); received device buffers are
device arrays when the link has ``device_memory`` capability (others stage
through host memory and also hand back device arrays when cupy is installed).

Errors (all from :mod:`actors.errors`):

- :class:`PeerLost` - the peer died, disconnected, or closed the link: pending
  and later ``send``/``recv`` raise it promptly (within ~2 s), never hang.
  ``recv`` after our own ``close`` raises it too.
- :class:`ProtocolError` - a peer sent a malformed/oversized frame; the link is
  closed, other links and the listener carry on.
- :class:`AuthenticationError` - wrong secret at handshake.

Loop rules: a link belongs to the event loop it was created on; ``send`` may be
called concurrently by several tasks (messages are not interleaved), ``recv``
by one task at a time.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, NamedTuple, Self

from ..errors import PeerLost

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Backend",
    "Capabilities",
    "Link",
    "Listener",
    "Message",
    "QueuedListener",
]

#: Default limit on one message (header + all buffers), in bytes. Frames that
#: announce more are refused with ProtocolError. Override per listen/connect.
DEFAULT_MAX_MESSAGE_SIZE = 8 << 30

Message = tuple[bytes, list[Any]]


class Capabilities(NamedTuple):
    """What a backend can do; callers choose by it, benchmarks report it (immutable).

    ``zero_copy_receive``: received buffers are not copied again after the
    transport writes them (receive lands in the final allocation or in shared
    memory). ``device_memory``: device buffers travel without staging through
    host memory. ``crosses_nodes``: peers may live on other hosts.
    """

    zero_copy_receive: bool
    device_memory: bool
    crosses_nodes: bool


class _Closes(abc.ABC):
    """``async with`` support for links and listeners: ``close()`` on leaving the block."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close; idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Link(_Closes):
    """One bidirectional, ordered, reliable message channel to one peer."""

    #: Capabilities of the backend that made this link.
    capabilities: Capabilities
    #: Human-readable description of the peer, used in error messages.
    peer: str = "?"

    @abc.abstractmethod
    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        """Send one message. Raises PeerLost if the link is closed or the peer gone."""

    async def send_many(self, messages: Sequence[tuple[bytes, Sequence[Any]]]) -> None:
        """Send ``messages`` (header, buffers) in order, as one :meth:`send`
        each would; a backend may write several in one system call. Raises as
        ``send`` does; after an error, some of them may have gone."""
        for header, buffers in messages:
            await self.send(header, buffers)

    @abc.abstractmethod
    async def recv(self) -> Message:
        """Receive the next message. Raises PeerLost, ProtocolError."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the link; idempotent. The peer's pending/later calls raise PeerLost."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once the link is closed (by either side or by an error)."""


class Listener(_Closes):
    """Accepts incoming links on one address."""

    #: The URL actually bound (e.g. with the resolved port), usable by connect().
    address: str

    @abc.abstractmethod
    async def accept(self) -> Link:
        """Wait for the next authenticated link.

        Connections that fail the handshake (garbage, wrong secret) are dropped
        and logged; they never surface here. Raises PeerLost if the listener is
        closed.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening; idempotent. Links already accepted stay open."""

    def __aiter__(self) -> AsyncIterator[Link]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Link]:
        while True:
            try:
                link = await self.accept()
            except PeerLost:
                return
            yield link


class QueuedListener(Listener):
    """A listener whose ready links wait in a queue until :meth:`accept` takes them.

    Subclasses hand each authenticated link to :meth:`_deliver` and, in their
    ``close``, set ``_closed`` and call :meth:`_close_queue` once nothing can
    deliver any more (accept/handshake tasks stopped). Must be created on the
    event loop it serves; all methods run on that loop.
    """

    def __init__(self) -> None:
        self._ready: asyncio.Queue[Link | None] = asyncio.Queue()
        self._closed = False

    async def accept(self) -> Link:
        """The next ready link; PeerLost once the listener is closed (also to waiters)."""
        if self._closed:
            raise PeerLost(f"listener {self.address} is closed")
        link = await self._ready.get()
        if link is None:
            self._ready.put_nowait(None)  # wake the next waiter too
            raise PeerLost(f"listener {self.address} is closed")
        return link

    def _deliver(self, link: Link) -> None:
        """Queue an authenticated link for :meth:`accept`."""
        self._ready.put_nowait(link)

    async def _close_queue(self) -> None:
        """Close the links nobody accepted, then wake every ``accept`` with PeerLost."""
        while not self._ready.empty():
            link = self._ready.get_nowait()
            if link is not None:
                await link.close()
        self._ready.put_nowait(None)


class Backend(abc.ABC):
    """A transport implementation registered under one URL scheme."""

    scheme: str
    capabilities: Capabilities

    @abc.abstractmethod
    async def listen(
        self, address: str, *, secret: bytes | None, max_message_size: int
    ) -> Listener:
        """Start listening at ``address`` (the part after ``scheme://``)."""

    @abc.abstractmethod
    async def connect(
        self, address: str, *, secret: bytes | None, timeout: float, max_message_size: int
    ) -> Link:
        """Connect to a listener at ``address``; raises PeerLost on failure/timeout."""


def warn_no_device(log: logging.Logger, peer: str, exc: BaseException) -> None:
    """Log that ``peer`` sent device buffers this process cannot hold (no cupy).

    The buffers are delivered in host memory (the rule of the contract above);
    a link calls this once. Only the error's text is logged: a kept record
    must not keep received buffers alive through the exception's traceback.
    """
    log.warning(
        "%s sent device buffers but this process cannot hold device memory (%s): "
        "they are delivered in host memory",
        peer,
        str(exc),
    )
