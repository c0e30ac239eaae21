"""``ActorSystem``: owns the actors of one process, their names and their links."""

from __future__ import annotations

import asyncio
import logging
import weakref
from concurrent.futures import Executor, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..errors import ActorDead, ActorFailed, PeerLost
from ._cell import ActorCell
from ._guardian import RootGuardian
from .actor import Actor
from .ref import ActorRef
from .supervision import SupervisorPolicy

if TYPE_CHECKING:
    from .remote import RemoteHub

__all__ = ["ActorSystem", "preload"]

log = logging.getLogger("actors")

#: The systems started on each loop, oldest first (see ActorSystem.running).
_running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[ActorSystem]] = (
    weakref.WeakKeyDictionary()
)


def preload(*schemes: str) -> None:
    """Import now what serving actors and reaching remote ones over ``schemes`` needs.

    That is the remote-actor layer, the codecs and each scheme's transport
    backend, which ``import actors`` leaves to first use. Call it before
    forking server processes (``multiprocessing`` with ``fork``), so that no
    child imports them again on its way to its first reply (about 40 ms less
    to a forked server's first reply on a 2-CPU VM, docs/benchmarks.md).
    MPI (``mpi``) and a UCX context (``ucx``, which imports ucxx here) are
    set up on the first link, not here. Raises ConfigError for an unknown
    scheme and BackendUnavailable (naming the extra) for one whose
    dependency is missing. Any thread.
    """
    from ..transports import get_backend
    from . import remote  # noqa: F401  (the remote-actor layer and what it imports)

    for scheme in schemes:
        get_backend(scheme)


class ActorSystem:
    """The actors of one process (usually one system per process).

    Use it as ``async with ActorSystem("node-a") as system:``, which works
    under ``asyncio.run`` / uvloop and inside an already running loop (a
    Jupyter cell), or call ``await system.start()`` / ``await
    system.shutdown()`` to keep it open across notebook cells.

    A started system with ``shared=True`` (the default) is what
    :meth:`ActorSystem.running` returns on its loop, so that library code
    (a framework job) runs its actors in it; a library that needs a system of
    its own makes one with ``shared=False``.

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
        self,
        name: str = "actors",
        *,
        mailbox_size: int = 1000,
        shutdown_timeout: float = 5.0,
        shared: bool = True,
    ) -> None:
        self.name = name
        #: Whether :meth:`running` offers this system to library code on its loop.
        self.shared = shared
        self.mailbox_size = mailbox_size
        self.shutdown_timeout = shutdown_timeout
        #: Failures escalated to the system, in order.
        self.failures: list[ActorFailed] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guardian = RootGuardian(self, self._top_level_failure)
        self._executor: ThreadPoolExecutor | None = None
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
        if self._loop is None and self.shared:
            _running.setdefault(loop, []).append(self)
        self._loop = loop
        return self

    @classmethod
    def running(cls) -> ActorSystem | None:
        """The process's system: the first shared one started on the running loop, not closing.

        None when there is none (or no running loop). Lets library code (such
        as :func:`actors.framework.run_process`) join the system a program or
        notebook already runs instead of making its own.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        for system in _running.get(loop, ()):
            if not system.closing:
                return system
        return None

    @property
    def closing(self) -> bool:
        """True once shutdown began."""
        return self._closing

    @property
    def executor(self) -> Executor:
        """The system's thread pool, for actors spawned with ``executor=True``.

        Created on first use (default size); shut down with the system.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(thread_name_prefix=f"actors-{self.name}")
        return self._executor

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
        self._guardian.close()
        systems = _running.get(self._loop, [])
        if self in systems:
            systems.remove(self)
        if self._hub is not None:
            await self._hub.close_servers()
        cells = list(self._guardian.descendants())
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
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=False, cancel_futures=True)
            await asyncio.to_thread(executor.shutdown, True)

    # -- actors ---------------------------------------------------------------------

    def spawn(
        self,
        actor_class: type[Actor],
        *args: Any,
        name: str | None = None,
        mailbox_size: int | None = None,
        supervisor_policy: SupervisorPolicy | str | None = None,
        concurrency: int | None = None,
        executor: Executor | bool | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Create a top-level actor and start its task; returns its ref at once.

        ``args``/``kwargs`` go to ``actor_class(...)`` (again on each restart).
        ``name`` defaults to ``"<Class>-<n>"`` and must be unique in the system
        (``ValueError`` otherwise); ``mailbox_size`` defaults to the system's;
        ``supervisor_policy`` defaults to escalate. ``concurrency``: how many
        messages the actor may process at once, in worker tasks (None, the
        default: one at a time in the actor's own task).
        ``executor``: run a plain ``def receive`` in threads, of this executor
        or, with ``True``, of :attr:`executor` (default: on the loop, inline
        in the sender's call when a slot is free). See
        :class:`~actors.Actor` for ``receive`` kinds. Raises ``RuntimeError``
        outside the system's loop and ActorDead once shutdown began.
        """
        cell = self._guardian.spawn_child(
            actor_class, args, kwargs, name=name, mailbox_size=mailbox_size,
            supervisor_policy=supervisor_policy, concurrency=concurrency, executor=executor,
        )  # fmt: skip
        return cell.ref

    def lookup(self, name: str) -> ActorRef:
        """The ref of the live actor ``name``; raises ActorDead naming the system."""
        return self.live_cell(name).ref

    def live_cell(self, name: str) -> ActorCell:
        """The cell of the live actor ``name`` (for the actor core's serving side);
        raises ActorDead naming the system and its actors."""
        cell = self._guardian.find(name)
        if cell is None or cell.dead:
            raise ActorDead(self._unknown(name))
        return cell

    @property
    def actor_names(self) -> list[str]:
        """Names of the actors alive now (parents before their children)."""
        return [c.name for c in self._guardian.descendants() if not c.dead]

    def _unknown(self, name: str) -> str:
        names = sorted(c.name for c in self._guardian.descendants())
        known = ", ".join(repr(n) for n in names[:20]) or "none"
        return f"no actor named {name!r} in system {self.name!r} (actors: {known})"

    def check_loop(self) -> None:
        """Raise RuntimeError unless called on this system's running loop."""
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
        self.check_loop()
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
        return f"<ActorSystem {self.name!r} {state}, {len(self.actor_names)} actor(s)>"
