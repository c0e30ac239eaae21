"""``ActorRef``: the one way to talk to an actor, local or remote."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from ..errors import ActorDead, AskTimeout
from ._dispatch import NOT_HERE, Dispatcher

if TYPE_CHECKING:
    from ._cell import ActorCell

__all__ = ["NOT_HERE", "ActorRef", "LocalActorRef"]


class ActorRef(abc.ABC):
    """A location-transparent handle on an actor.

    ``tell`` / ``ask`` / ``stop`` behave the same whether the actor lives in
    this process (:class:`LocalActorRef`) or behind a link
    (:class:`~actors.core.remote.RemoteActorRef`); remote refs may also raise
    :class:`~actors.PeerLost`. Loop rule: use a ref only from the event loop
    of the :class:`~actors.ActorSystem` that made it.
    """

    #: The actor's name in its system.
    name: str

    @abc.abstractmethod
    async def tell(self, message: Any) -> None:
        """Send ``message`` without waiting for it to be processed.

        Awaits while the actor's mailbox is full (backpressure). Raises
        :class:`~actors.ActorDead` if the actor is stopped (also when it stops
        while this call waits for mailbox space).
        """

    @abc.abstractmethod
    async def ask(self, message: Any, timeout: float | None = None) -> Any:
        """Send ``message`` and return the actor's reply.

        ``timeout`` (seconds, None = no limit) covers the whole round trip,
        waiting for mailbox space included; on expiry raises
        :class:`~actors.AskTimeout`. Raises what ``receive`` raised, or
        :class:`~actors.ActorDead` if the actor stops before replying.
        """

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop the actor and wait until it has stopped; idempotent.

        The message being processed finishes; nothing more is processed and
        the asks still in the mailbox raise :class:`~actors.ActorDead`. Called
        from inside the actor (or one of its children), it only requests the
        stop and returns at once.
        """

    @property
    @abc.abstractmethod
    def is_alive(self) -> bool:
        """False once the actor is known to be stopped."""

    @property
    def queued(self) -> int:
        """Messages waiting for the actor as far as this side sees (diagnostics).

        A local actor's mailbox depth; for a remote one the frames waiting in
        the link's outbox. Loop thread only.
        """
        return 0


def _expire(fut: asyncio.Future[Any], name: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(AskTimeout(f"no reply from actor {name!r} within {timeout:g} s"))


class LocalActorRef(ActorRef):
    """A reference to an actor in this process (its mailbox is an asyncio.Queue)."""

    __slots__ = ("_cell", "name")

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell
        self.name = cell.name

    @property
    def is_alive(self) -> bool:
        return not self._cell.dead

    @property
    def queued(self) -> int:
        return self._cell.mailbox.qsize()

    async def tell(self, message: Any) -> None:
        cell = self._cell
        if cell.dead:
            raise cell.dead_error()
        mailbox = cell.mailbox
        if mailbox.full():
            await cell.put_blocking((message, None))
        else:
            mailbox.put_nowait((message, None))

    async def ask(self, message: Any, timeout: float | None = None) -> Any:
        cell = self._cell
        if cell.dead:
            raise cell.dead_error()
        mailbox = cell.mailbox
        if type(mailbox) is Dispatcher:  # the fast paths: an idle actor, processed in this task
            if timeout is None:
                reply = mailbox.call_here(message)  # a plain receive on the loop: no coroutine
                if reply is not NOT_HERE:
                    return await reply if type(reply) is CoroutineType else reply
            if mailbox.idle_now():
                if timeout is None:
                    return await mailbox.run_here(message)
                try:
                    async with asyncio.timeout(timeout):
                        return await mailbox.run_here(message)
                except TimeoutError:
                    raise AskTimeout(
                        f"no reply from actor {self.name!r} within {timeout:g} s"
                    ) from None
        loop = cell.loop
        fut: asyncio.Future[Any] = loop.create_future()
        item = (message, fut)
        if timeout is None:
            await self._put(item, None)
            return await fut
        deadline = loop.time() + timeout
        await self._put(item, deadline, timeout)
        handle = loop.call_at(deadline, _expire, fut, self.name, timeout)
        try:
            return await fut
        finally:
            handle.cancel()

    async def _put(
        self, item: tuple[Any, asyncio.Future[Any]], deadline: float | None, timeout: float = 0.0
    ) -> None:
        cell = self._cell
        if not cell.mailbox.full():
            cell.mailbox.put_nowait(item)
            return
        try:
            async with asyncio.timeout_at(deadline):
                await cell.put_blocking(item)
        except ActorDead:
            fut = item[1]
            if fut.done() and not fut.cancelled():
                fut.exception()  # the drain failed it too; we raise instead
            raise
        except TimeoutError:
            raise AskTimeout(
                f"no reply from actor {self.name!r} within {timeout:g} s (its mailbox stayed full)"
            ) from None

    def post(self, message: Any, reply: Callable[[Any, BaseException | None], None]) -> None:
        """Send ``message`` without awaiting; ``reply(result, error)`` gets the outcome.

        Never waits: raises ActorDead if the actor is stopped and
        :class:`~actors.ActorError` if its mailbox is full. For an actor with a
        plain ``def receive`` on the loop and a free slot, the message is
        processed (and ``reply`` called) before ``post`` returns; otherwise
        ``reply`` is called later, on the loop. ``error`` is what ``receive``
        raised (the actor keeps running, as for an ask), or ActorDead/
        ActorError when the actor stopped first. An exception raised by
        ``reply`` propagates from where it was called (``post`` itself on the
        fast path, else the loop's exception handler). Loop thread only.
        """
        self._cell.post(message, reply)

    def caller(self) -> Callable[[Any], Any] | None:
        """A function ``call(message)`` for a hot path: the ask fast path without a coroutine.

        ``call`` processes ``message`` at once, in the caller, when the actor
        runs a plain ``receive`` on the loop and is idle, and returns the
        reply (or a coroutine to await at once when ``receive`` returned an
        awaitable; a reply is never a coroutine); else it does nothing and returns :data:`NOT_HERE
        <actors.core.ref.NOT_HERE>`: then :meth:`ask`. None for an
        actor that never runs messages in its caller. Loop thread only.
        """
        mailbox = self._cell.mailbox
        if type(mailbox) is Dispatcher:
            return mailbox.call_here
        return None

    def poster(self) -> Callable[[Any, Callable[[Any, BaseException | None], None]], None]:
        """A function ``post(message, reply)`` with the contract of :meth:`post`.

        The same as ``self.post`` but with no call in between for an actor
        spawned with ``concurrency``/``executor`` or a plain ``receive`` (its
        mailbox's own method): for senders on a hot path.
        """
        mailbox = self._cell.mailbox
        if type(mailbox) is Dispatcher:
            return mailbox.post
        return self.post

    def cancel(self) -> None:
        """Stop the actor now, without waiting: as :meth:`stop`, and also cancel
        the messages it is running, in its worker tasks and in askers' tasks (an
        ask processed in its asker's task raises ActorError there, unless the
        asker was cancelled too; sync code running in a thread runs to its end).
        Await :meth:`stop` afterwards to wait for the end.
        """
        self._cell.cancel()

    async def stop(self) -> None:
        await self._cell.stop()

    def __repr__(self) -> str:
        state = "alive" if not self._cell.dead else "dead"
        return f"<ActorRef {self.name!r} in {self._cell.system.name!r} ({state})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)
