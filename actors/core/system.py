"""``ActorSystem``: owns the actors of one process, their names and their links."""

from __future__ import annotations

import asyncio
import itertools
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..errors import ActorDead, ActorFailed, PeerLost
from ._cell import ActorCell
from .actor import Actor
from .ref import ActorRef
from .supervision import SupervisorPolicy

if TYPE_CHECKING:
    from .remote import RemoteHub

__all__ = ["ActorSystem"]

log = logging.getLogger("actors")


class ActorSystem:
    """The actors of one process (usually one system per process).

    Use it as ``async with ActorSystem("node-a") as system:``, which works
    under ``asyncio.run`` / uvloop and inside an already running loop (a
    Jupyter cell), or call ``await system.start()`` / ``await
    system.shutdown()`` to keep it open across notebook cells.

    Shutdown (``__aexit__`` / ``shutdown``) stops accepting remote links,
    stops every actor (drain policy: the message being processed finishes,
    the rest of each mailbox is not processed and its asks raise
    :class:`~actors.ActorDead`), cancels actors still busy after
    ``shutdown_timeout`` seconds, closes served listeners and remote links,
    and leaves no task behind.

    Failures escalated to the top (see :class:`~actors.Actor`) are logged and
    appended to :attr:`failures`; inside ``async with`` the first one cancels
    the block's body (as ``asyncio.TaskGroup`` does for a failed task) and
    ``__aexit__`` raises it (the others are listed in a note). During
    shutdown, a failure caused by ``ActorDead``/``PeerLost`` (an actor asked
    one that was already stopping) is only logged.

    Loop rules: a system belongs to the event loop it was started in; spawn
    actors and use refs from that loop only (``RuntimeError`` otherwise).
    """

    def __init__(
        self, name: str = "actors", *, mailbox_size: int = 1000, shutdown_timeout: float = 5.0
    ) -> None:
        self.name = name
        self.mailbox_size = mailbox_size
        self.shutdown_timeout = shutdown_timeout
        #: Failures escalated to the system, in order.
        self.failures: list[ActorFailed] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cells: dict[str, ActorCell] = {}
        self._counter = itertools.count(1)
        self._closing = False
        self._host: asyncio.Task[Any] | None = None
        self._host_cancelled = False
        self._hub: RemoteHub | None = None

    # -- lifecycle ------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this system runs on (RuntimeError before start)."""
        if self._loop is None:
            raise RuntimeError(f"actor system {self.name!r} is not started")
        return self._loop

    async def start(self) -> Self:
        """Bind the system to the running loop; idempotent on that loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError(f"actor system {self.name!r} already runs on another event loop")
        if self._closing:
            raise RuntimeError(f"actor system {self.name!r} was shut down; make a new one")
        self._loop = loop
        return self

    async def __aenter__(self) -> Self:
        await self.start()
        self._host = asyncio.current_task()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        host, self._host = self._host, None
        cancelled = await self._close_uninterrupted()
        if self._host_cancelled and host is not None and host.uncancel() == 0:
            if exc is None or isinstance(exc, asyncio.CancelledError):
                raise self._failure_to_raise()  # our own cancellation: replace it
        elif cancelled:
            raise asyncio.CancelledError()
        if exc is None and self.failures:
            raise self._failure_to_raise()
        if exc is not None and self.failures:
            exc.add_note(
                f"actor system {self.name!r} also recorded {len(self.failures)} failure(s)"
            )

    async def _close_uninterrupted(self) -> bool:
        """Run the whole shutdown even if cancelled meanwhile; True if we were."""
        if self._loop is None:
            self._closing = True
            return False
        closing = self.loop.create_task(self._close(), name=f"shutdown of {self.name}")
        cancelled = False
        while not closing.done():
            try:
                await asyncio.wait([closing])
            except asyncio.CancelledError:
                cancelled = True
        closing.result()
        return cancelled

    async def shutdown(self) -> None:
        """Stop everything (see the class docstring); raises the first failure if any."""
        if await self._close_uninterrupted():
            raise asyncio.CancelledError()
        if self.failures:
            raise self._failure_to_raise()

    def _failure_to_raise(self) -> ActorFailed:
        first = self.failures[0]
        if len(self.failures) > 1:
            first.add_note(
                f"{len(self.failures) - 1} more failure(s) in system.failures of {self.name!r}"
            )
        return first

    async def _close(self) -> None:
        if self._closing or self._loop is None:
            self._closing = True
            return
        self._closing = True
        if self._hub is not None:
            await self._hub.close_servers()
        cells = list(self._cells.values())
        for cell in cells:
            cell.request_stop()
        if cells:
            tasks = [c.task for c in cells]
            _done, pending = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
            if pending:
                log.warning(
                    "system %r: cancelling %d actor(s) still busy after %g s",
                    self.name,
                    len(pending),
                    self.shutdown_timeout,
                )
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        if self._hub is not None:
            await self._hub.close_clients()

    # -- actors ---------------------------------------------------------------------

    def spawn(
        self,
        actor_class: type[Actor],
        *args: Any,
        name: str | None = None,
        mailbox_size: int | None = None,
        supervisor_policy: SupervisorPolicy | str | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Create a top-level actor and start its task; returns its ref at once.

        ``args``/``kwargs`` go to ``actor_class(...)`` (again on each restart).
        ``name`` defaults to ``"<Class>-<n>"`` and must be unique in the system
        (``ValueError`` otherwise); ``mailbox_size`` defaults to the system's;
        ``supervisor_policy`` defaults to escalate. Raises ``RuntimeError``
        outside the system's loop and ActorDead once shutdown began.
        """
        return self._new_cell(
            None, actor_class, args, kwargs, name, mailbox_size, supervisor_policy
        ).ref

    def lookup(self, name: str) -> ActorRef:
        """The ref of the live actor ``name``; raises ActorDead naming the system."""
        return self._live_cell(name).ref

    def _live_cell(self, name: str) -> ActorCell:
        cell = self._cells.get(name)
        if cell is None or cell.dead:
            raise ActorDead(self._unknown(name))
        return cell

    @property
    def actor_names(self) -> list[str]:
        """Names of the actors alive now."""
        return [n for n, c in self._cells.items() if not c.dead]

    def _unknown(self, name: str) -> str:
        known = ", ".join(repr(n) for n in sorted(self._cells)[:20]) or "none"
        return f"no actor named {name!r} in system {self.name!r} (actors: {known})"

    def _new_cell(
        self,
        parent: ActorCell | None,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        mailbox_size: int | None,
        policy: SupervisorPolicy | str | None,
    ) -> ActorCell:
        self._check_loop()
        if self._closing:
            raise ActorDead(f"actor system {self.name!r} is shutting down; cannot spawn")
        if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
            raise TypeError(f"spawn() needs an Actor subclass, got {actor_class!r}")
        full = self._full_name(parent, actor_class, name)
        return self._register(
            ActorCell(
                self,
                parent,
                actor_class,
                args,
                kwargs,
                name=full,
                mailbox_size=self.mailbox_size if mailbox_size is None else mailbox_size,
                policy=SupervisorPolicy.of(policy),
            )
        )

    def _full_name(self, parent: ActorCell | None, cls: type[Actor], name: str | None) -> str:
        if name is None:
            name = f"{cls.__name__}-{next(self._counter)}"
        elif not name or "/" in name:
            raise ValueError(f"actor name {name!r} must be non-empty and contain no '/'")
        full = name if parent is None else f"{parent.name}/{name}"
        if full in self._cells:
            raise ValueError(f"an actor named {full!r} already exists in system {self.name!r}")
        return full

    def _register(self, cell: ActorCell) -> ActorCell:
        self._cells[cell.name] = cell
        return cell

    def _check_loop(self) -> None:
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            raise RuntimeError(
                f"actor system {self.name!r} belongs to another event loop; "
                "use it only from the loop it was started in"
            )

    def _forget(self, cell: ActorCell) -> None:
        if self._cells.get(cell.name) is cell:
            del self._cells[cell.name]
        if cell.parent is not None:
            cell.parent.forget_child(cell)

    def _top_level_failure(self, failure: ActorFailed) -> None:
        cause = failure.__cause__
        if self._closing and isinstance(cause, ActorDead | PeerLost):
            log.warning("system %r: during shutdown, %s", self.name, failure)
            return
        log.error("system %r: failure escalated to the top: %s", self.name, failure)
        self.failures.append(failure)
        host = self._host
        if host is not None and not self._host_cancelled and not host.done():
            self._host_cancelled = True
            host.cancel(f"actor system {self.name!r}: {failure}")

    # -- remote ---------------------------------------------------------------------

    def _remote_hub(self) -> RemoteHub:
        self._check_loop()
        if self._closing:
            raise ActorDead(f"actor system {self.name!r} is shutting down")
        if self._hub is None:
            from .remote import RemoteHub

            self._hub = RemoteHub(self)
        return self._hub

    async def serve(self, url: str, *, secret: bytes | str | None = None) -> str:
        """Expose this system's actors at ``url``; returns the URL actually bound.

        Any named actor can then be reached with ``system.remote(address,
        name)`` from another system. Uses :func:`actors.transports.listen`
        (same errors); the listener closes at shutdown.
        """
        return await self._remote_hub().serve(url, secret=secret)

    async def remote(
        self,
        url: str,
        name: str,
        *,
        secret: bytes | str | None = None,
        timeout: float = 10.0,
    ) -> ActorRef:
        """A ref to actor ``name`` of the system serving at ``url``.

        Connects (or reuses this system's link to ``url``) and checks that the
        actor exists: raises PeerLost if nobody answers within ``timeout``,
        ActorDead naming the actor and the remote system if it is unknown.
        """
        return await self._remote_hub().remote(url, name, secret=secret, timeout=timeout)

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("running" if self._loop else "new")
        return f"<ActorSystem {self.name!r} {state}, {len(self._cells)} actor(s)>"
