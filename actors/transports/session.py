"""One session over a :class:`~actors.transports.Link`: reader, writer, outbox, loss.

A :class:`Session` owns a link and two tasks. The *reader* receives each
message and hands it to ``on_message(header, buffers)``; when that returns an
awaitable (a handler that waits, e.g. for mailbox space) the reader awaits it
before it receives the next message, so a slow consumer slows the peer
(backpressure through the transport). The *writer* sends the frames queued in
the outbox, in order: one by one with ``link.send``, and those without buffers
found together with one ``link.send_many`` (one system call); a send is never
cancelled midway except by :meth:`close` or a loss. The session knows nothing of what the messages
mean: remote actor refs and distributed peers both sit on top of it.

Rules (the same for every user):

* Any exception while receiving, handling (``on_message``) or sending
  *aborts* the session: the link is closed, ``on_lost(error)`` is called once,
  and every pending wait on the session (:meth:`put` waiting for room,
  :meth:`flush`, a :meth:`send` in progress) fails with that error. Transport
  errors (:class:`~actors.errors.PeerLost`, :class:`~actors.errors.ProtocolError`)
  are passed on as raised (they name the peer's address); any other exception
  becomes a ProtocolError naming the session (``who``) with the original as
  ``__cause__``. Later calls raise the same error.
* :meth:`close` is idempotent, stops both tasks, closes the link and fails the
  pending waits with PeerLost; ``on_lost`` is *not* called for a close. It never
  swallows ``CancelledError``: cancelling the caller of ``close`` cancels it.
* ``on_message`` and ``on_lost`` run on the reader/writer task; they must not
  await :meth:`close` (call it from elsewhere, or let the abort close the link).

Performance: no task is created per message; the reader calls the handler
directly (no queue between them); :meth:`send` sends on the caller's task,
bypassing the outbox, for bulk data whose caller awaits it anyway. A received
message is referenced by the reader only until its handler returns (no
reference cycle), so dropping the buffers releases them at once.

Loop rules: a session belongs to the event loop it was started on; all
methods run on that loop (not thread-safe).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import PeerLost, ProtocolError, TransportError
from ._base import Link

__all__ = ["Frame", "Session"]

log = logging.getLogger("actors.transports.session")

#: Most queued frames the writer hands to the link's ``send_many`` at once.
BATCH_FRAMES = 64

#: One queued outgoing message: header, buffers, and a token for ``on_sent``.
Frame = tuple[bytes, Sequence[Any], Any]


def _end_wait(room: asyncio.Future[None], _abandoned: asyncio.Future[Any]) -> None:
    if not room.done():
        room.set_result(None)


MessageHandler = Callable[[bytes, list[Any]], Awaitable[None] | None]


class Session:
    """A link with a reader task, a writer task and an outbox (see module doc).

    ``who`` names the session in errors ("link 'offload' (peer ...)"); it may be
    changed later (e.g. once the peer's process name is known). ``outbox_size``
    bounds :meth:`put` (0: unbounded). ``on_sent(token)`` is called after each
    queued frame was handed to the link. ``before_write()`` is called by the
    writer each time it wakes, before it drains the outbox: a user that batches
    small items posts its batch there (see :meth:`wake`).
    """

    def __init__(
        self,
        link: Link,
        who: str,
        *,
        outbox_size: int = 0,
        on_sent: Callable[[Any], None] | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        self.link = link
        self.who = who
        self.outbox_size = outbox_size
        self.lost: BaseException | None = None
        self._on_sent = on_sent
        self._before_write = before_write
        self._frames: deque[Frame] = deque()
        self._wake = asyncio.Event()
        self._busy = False  # the writer holds a frame it has not finished sending
        self._room: deque[asyncio.Future[None]] = deque()  # put() waiting for room
        self._flushed: list[asyncio.Future[None]] = []  # flush() waiting
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._on_message: MessageHandler | None = None
        self._on_lost: Callable[[BaseException], None] | None = None

    # -- life cycle
    def start(self, on_message: MessageHandler, on_lost: Callable[[BaseException], None]) -> None:
        """Start the reader and writer tasks (once, on the running loop)."""
        if self._tasks:
            raise RuntimeError(f"{self.who}: session already started")
        self._on_message, self._on_lost = on_message, on_lost
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read(), name=f"reader {self.who}"),
            loop.create_task(self._write(), name=f"writer {self.who}"),
        ]

    @property
    def closed(self) -> bool:
        """True once the session was closed or aborted."""
        return self._closing or self.lost is not None

    async def close(self) -> None:
        """Stop both tasks, close the link, fail pending waits with PeerLost (idempotent).

        Propagates ``CancelledError`` when the caller is cancelled meanwhile.
        """
        self._closing = True
        self._fail_waiters(self.lost or PeerLost(f"{self.who}: closed by this side"))
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self.link.close()

    # -- sending
    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        """Send one message now on the caller's task, bypassing the outbox.

        Not ordered with respect to queued frames. Raises the session's error
        when it is lost (and aborts it when this send fails).
        """
        self._check()
        try:
            await self.link.send(header, buffers)
        except Exception as exc:
            error = self._abort(exc, "sending")
        else:
            return
        await self.link.close()
        raise error

    async def put(
        self,
        header: bytes,
        buffers: Sequence[Any] = (),
        token: Any = None,
        abandon: asyncio.Future[Any] | None = None,
    ) -> bool:
        """Queue a frame behind earlier ones; waits while the outbox is full.

        With ``abandon``: once that future is done (the ask it belongs to
        timed out, say), stop waiting and queue nothing. Returns whether the
        frame was queued. Raises the session's error when it is lost (also
        while waiting).
        """
        while True:
            self._check()
            if abandon is not None and abandon.done():
                if self._room and len(self._frames) < self.outbox_size:
                    self._give_room()  # the room this waiter may have been given
                return False
            if not self.outbox_size or len(self._frames) < self.outbox_size:
                break
            room = asyncio.get_running_loop().create_future()
            self._room.append(room)
            if abandon is None:
                await room  # the abort or close sets the error here
            else:
                await self._room_or(room, abandon)
        self._frames.append((header, buffers, token))
        self._wake.set()
        return True

    @staticmethod
    async def _room_or(room: asyncio.Future[None], abandon: asyncio.Future[Any]) -> None:
        wake = functools.partial(_end_wait, room)
        abandon.add_done_callback(wake)
        try:
            await room
        finally:
            abandon.remove_done_callback(wake)

    def post(self, header: bytes, buffers: Sequence[Any] = (), token: Any = None) -> bool:
        """Queue a frame without waiting (the caller bounds how many).

        Returns False (and drops the frame) when the session is closed or lost:
        the loss was reported to ``on_lost`` already.
        """
        if self.closed:
            return False
        self._frames.append((header, buffers, token))
        self._wake.set()
        return True

    def wake(self) -> None:
        """Make the writer run ``before_write`` (and drain the outbox) soon."""
        self._wake.set()

    @property
    def queued(self) -> int:
        """Frames in the outbox, not yet handed to the link."""
        return len(self._frames)

    def task_states(self) -> dict[str, str]:
        """State of the reader and writer tasks, for stall reports.

        ``{"reader": ..., "writer": ...}``, each ``"alive"``, ``"ended"`` or ``"not started"``.
        """
        if not self._tasks:
            return {"reader": "not started", "writer": "not started"}
        reader, writer = self._tasks
        return {
            "reader": "ended" if reader.done() else "alive",
            "writer": "ended" if writer.done() else "alive",
        }

    async def flush(self) -> None:
        """Wait until everything queued so far was handed to the link.

        Raises the session's error when it is lost before that.
        """
        self._check()
        if not self._frames and not self._busy and not self._wake.is_set():
            return
        done = asyncio.get_running_loop().create_future()
        self._flushed.append(done)
        self._wake.set()
        await done

    # -- the tasks
    async def _read(self) -> None:
        assert self._on_message is not None
        handle, recv = self._on_message, self.link.recv
        doing = "receiving"
        try:
            while True:
                header, buffers = await recv()
                doing = "handling"
                pending = handle(header, buffers)
                del header, buffers  # the handler owns the message now
                if pending is not None:
                    await pending
                    pending = None
                doing = "receiving"
        except Exception as exc:
            self._abort(exc, doing)
            await self.link.close()

    async def _write(self) -> None:
        frames, send, wake = self._frames, self.link.send, self._wake
        try:
            while True:
                await wake.wait()
                wake.clear()
                if self._before_write is not None:
                    self._before_write()
                while frames:
                    if len(frames) > 1 and not frames[0][1]:
                        await self._write_batch()
                        continue
                    header, buffers, token = frames.popleft()
                    self._busy = True
                    if self._room:
                        self._give_room()
                    await send(header, buffers)
                    self._busy = False
                    del header, buffers
                    if self._on_sent is not None:
                        self._on_sent(token)
                if self._flushed and not wake.is_set():
                    self._resolve(self._flushed)
        except Exception as exc:
            self._abort(exc, "sending")
            await self.link.close()

    async def _write_batch(self) -> None:
        """Send the frames without buffers at the head of the outbox (up to
        :data:`BATCH_FRAMES`) with one ``send_many``: they then leave in one
        system call. Frames with buffers go one by one, so that no more of
        them are held than the outbox allows."""
        frames = self._frames
        batch: list[Frame] = []
        while frames and not frames[0][1] and len(batch) < BATCH_FRAMES:
            batch.append(frames.popleft())
        self._busy = True
        for _ in batch:
            if not self._room:
                break
            self._give_room()
        await self.link.send_many([(header, buffers) for header, buffers, _token in batch])
        self._busy = False
        if self._on_sent is not None:
            for _header, _buffers, token in batch:
                self._on_sent(token)

    # -- waits and loss
    def _give_room(self) -> None:
        while self._room:
            room = self._room.popleft()
            if not room.done():
                room.set_result(None)
                return

    @staticmethod
    def _resolve(waiters: list[asyncio.Future[None]]) -> None:
        ready = waiters[:]
        waiters.clear()
        for fut in ready:
            if not fut.done():
                fut.set_result(None)

    def _check(self) -> None:
        if self.lost is not None:
            raise self.lost
        if self._closing:
            raise PeerLost(f"{self.who}: closed by this side")

    def _abort(self, exc: Exception, doing: str) -> BaseException:
        """Record the loss (first one wins), report it, fail waits, stop the other task."""
        if self.lost is not None or self._closing:
            return self.lost or PeerLost(f"{self.who}: closed by this side")
        if isinstance(exc, TransportError):
            error: BaseException = exc
        else:
            error = ProtocolError(f"{self.who}: {doing} a message failed: {exc!r}")
            error.__cause__ = exc
        self.lost = error
        self._fail_waiters(error)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self._on_lost is not None:
            try:
                self._on_lost(error)
            except Exception:  # a broken callback must not hide the loss itself
                log.exception("%s: on_lost callback failed", self.who)
        return error

    def _fail_waiters(self, error: BaseException) -> None:
        if self._frames:
            log.warning("%s: %d queued frame(s) not sent: %s", self.who, len(self._frames), error)
            self._frames.clear()
        waiters = [*self._room, *self._flushed]
        self._room.clear()
        self._flushed.clear()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved: the waiter may be cancelled meanwhile
