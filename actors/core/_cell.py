"""One running actor: its mailbox, its task, and its place in the actor tree.

Internal; users see :class:`~actors.Actor` and :class:`~actors.ActorRef`.
All methods run on the system's event loop.

Every cell has a parent: another cell, or the system's root guardian
(:class:`~actors.core._guardian.RootGuardian`) for a top-level actor. A cell
talks only to its parent (spawning, escalating a failure, being forgotten
when it ends), never to the system's internals. Its instances (start,
restart, stop) and the supervision of its failures are its
:class:`~actors.core._lifecycle.Lifecycle`'s; the cell runs messages and
hands failures to it between two messages.

Two ways to run messages. The classic one: mailbox items are ``(message,
future | None)`` (a future for an ask) or the ``_WAKE`` sentinel in an
``asyncio.Queue``, and the cell's task takes them one at a time. Control
signals (stop, a child's escalated failure) are not queued behind messages:
they set ``_signalled`` and, if the mailbox is empty, drop ``_WAKE`` in it so
that an idle loop wakes up. The loop looks at signals after every ``get``,
before processing what it got. The dispatching one (an actor spawned with
a ``concurrency`` or an ``executor``, or with a plain ``def receive``):
the mailbox is a :class:`~actors.core._dispatch.Dispatcher` that starts
messages itself, and the cell's task only supervises (signals wake it).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import logging
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from ..errors import ActorDead, ActorError, ActorFailed
from ._dispatch import Dispatcher
from ._lifecycle import Lifecycle
from .actor import Actor
from .ref import LocalActorRef
from .supervision import SupervisorPolicy

if TYPE_CHECKING:
    from .system import ActorSystem

__all__ = ["ActorCell", "Parent"]

log = logging.getLogger("actors")

_WAKE: Any = object()
#: The cell whose task is running (set inside each actor task's own context).
_current: contextvars.ContextVar[ActorCell | None] = contextvars.ContextVar(
    "actors_current_cell", default=None
)
Item = tuple[Any, "asyncio.Future[Any] | None"]


class Parent:
    """What a parent does for its children: the root guardian and every cell.

    Spawns them (names are ``"<parent name>/<name>"``, unique among
    siblings), finds them by full name, and forgets them when they end.
    """

    system: ActorSystem
    name: str
    parent: Parent | None
    ref: LocalActorRef | None
    dead: bool

    def __init__(self) -> None:
        self.children: dict[str, ActorCell] = {}
        self._names = itertools.count(1)

    def check_can_spawn(self) -> None:
        """Raise ActorDead when no child may be spawned now."""
        raise NotImplementedError

    def escalate_to(self, failure: ActorFailed) -> None:
        """A child's failure arrives here."""
        raise NotImplementedError

    def spawn_child(
        self,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str | None,
        mailbox_size: int | None,
        supervisor_policy: SupervisorPolicy | str | None,
        concurrency: int | None = None,
        executor: Executor | bool | None = None,
    ) -> ActorCell:
        """Create a child cell and start its task (see :meth:`ActorSystem.spawn`)."""
        self.system.check_loop()
        self.check_can_spawn()
        if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
            raise TypeError(f"spawn() needs an Actor subclass, got {actor_class!r}")
        if executor is True:
            executor = self.system.executor
        cell = ActorCell(
            self.system, self, actor_class, args, kwargs,
            name=self._child_name(actor_class, name),
            mailbox_size=self.system.mailbox_size if mailbox_size is None else mailbox_size,
            policy=SupervisorPolicy.of(supervisor_policy),
            concurrency=concurrency,
            executor=executor or None,
        )  # fmt: skip
        self.children[cell.name] = cell
        return cell

    def _child_name(self, cls: type[Actor], name: str | None) -> str:
        if name is None:
            name = f"{cls.__name__}-{next(self._names)}"
        elif not name or "/" in name:
            raise ValueError(f"actor name {name!r} must be non-empty and contain no '/'")
        full = name if self.parent is None else f"{self.name}/{name}"
        if full in self.children:
            raise ValueError(
                f"an actor named {full!r} already exists in system {self.system.name!r}"
            )
        return full

    def forget_child(self, child: ActorCell) -> None:
        """``child`` has ended: drop it (its name may be reused)."""
        if self.children.get(child.name) is child:
            del self.children[child.name]

    def find(self, name: str) -> ActorCell | None:
        """The descendant cell named ``name`` (a full name), or None."""
        node: Parent = self
        path = "" if self.parent is None else self.name
        for part in name.split("/"):
            path = f"{path}/{part}" if path else part
            child = node.children.get(path)
            if child is None:
                return None
            node = child
        return node if isinstance(node, ActorCell) else None

    def descendants(self) -> Iterator[ActorCell]:
        """Every cell below this one, parents before their children."""
        for child in list(self.children.values()):
            yield child
            yield from child.descendants()


class ActorCell(Parent):
    """Mailbox + task of one actor; its instances are its :class:`Lifecycle`'s."""

    parent: Parent
    ref: LocalActorRef

    def __init__(
        self,
        system: ActorSystem,
        parent: Parent,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str,
        mailbox_size: int,
        policy: SupervisorPolicy,
        concurrency: int | None = None,
        executor: Executor | None = None,
    ) -> None:
        if mailbox_size < 1:
            raise ValueError(f"mailbox_size of actor {name!r} must be >= 1, got {mailbox_size}")
        super().__init__()
        self.system = system
        self.loop = system.loop
        self.parent = parent
        self.name = name
        self.dispatching = (
            concurrency is not None
            or executor is not None
            or not inspect.iscoroutinefunction(actor_class.receive)
        )
        self.mailbox: asyncio.Queue[Any] | Dispatcher
        if self.dispatching:
            self.mailbox = Dispatcher(
                name, capacity=mailbox_size, concurrency=concurrency or 1, executor=executor,
                context=contextvars.copy_context(), on_tell_failed=self._tell_failed,
            )  # fmt: skip
            self._wakeup = asyncio.Event()
        else:
            self.mailbox = asyncio.Queue(maxsize=mailbox_size)
        self.ref = LocalActorRef(self)
        self.life = Lifecycle(self, actor_class, args, kwargs, policy)
        self.dead = False
        self._stopping = False
        self._signalled = False
        self._dropped_tells = 0
        self.task: asyncio.Task[None] = self.loop.create_task(self._run(), name=f"actor {name}")

    # -- API used by refs, the system and Actor.spawn ------------------------------

    @property
    def instance(self) -> Actor | None:
        """The actor's started instance (None before it starts, during a restart, once stopped)."""
        return self.life.instance

    def dead_error(self) -> ActorDead:
        return ActorDead(f"actor {self.name!r} in system {self.system.name!r} is stopped")

    async def deliver(self, item: Item) -> None:
        """Put ``(message, future | None)`` in the mailbox (awaits space); ActorDead if stopped."""
        if self.dead:
            raise self.dead_error()
        if self.mailbox.full():
            await self.put_blocking(item)
        else:
            self.mailbox.put_nowait(item)

    def post(self, message: Any, reply: Any) -> None:
        """Queue ``(message, reply)`` without waiting (a dispatching cell may run it now).

        ``reply`` is a callable ``reply(result, error)``; a classic cell gets a
        future whose completion calls it. Raises ActorDead if stopped and
        ActorError when the mailbox is full.
        """
        if self.dead:
            raise self.dead_error()
        mailbox = self.mailbox
        if isinstance(mailbox, Dispatcher):
            mailbox.put_nowait((message, reply))
            return
        if mailbox.full():
            raise ActorError(f"mailbox of actor {self.name!r} is full ({mailbox.qsize()} waiting)")
        fut: asyncio.Future[Any] = self.loop.create_future()
        fut.add_done_callback(lambda f: reply(*_outcome(f)))
        mailbox.put_nowait((message, fut))

    async def put_blocking(self, item: Item) -> None:
        """``mailbox.put`` that raises ActorDead if the actor dies meanwhile."""
        await self.mailbox.put(item)
        if self.dead:  # woken by the final drain: nobody will process it
            self._drain()
            raise self.dead_error()

    def request_stop(self) -> None:
        """Ask the loop to stop after the current message; returns at once."""
        if self.dead or self._stopping:
            return
        self._stopping = True
        self._signal()

    async def stop(self) -> None:
        """Request a stop and wait for the actor's task to end.

        From the actor itself or one of its descendants (whose end the stop
        waits for) it only requests the stop, to avoid a deadlock.
        """
        self.request_stop()
        caller: Parent | None = _current.get()
        while caller is not None:
            if caller is self:
                return
            caller = caller.parent
        await asyncio.wait([self.task])

    def cancel(self) -> None:
        """Stop now: like :meth:`request_stop`, and cancel the messages running on the loop.

        Sync code already running in a thread runs to its end.
        """
        self.request_stop()
        if isinstance(self.mailbox, Dispatcher):
            self.mailbox.cancel_running()
        elif not self.dead and self.task is not asyncio.current_task():
            self.task.cancel()

    def escalate_to(self, failure: ActorFailed) -> None:
        """A child's failure arrives here (handled between two messages)."""
        if self.dead:  # nobody here to handle it: pass it on
            self.parent.escalate_to(failure)
            return
        self.life.queue(failure, own=False)
        self._signal()

    def check_can_spawn(self) -> None:
        if self.dead or self._stopping:
            raise self.dead_error()

    # -- the task -------------------------------------------------------------------

    def _signal(self) -> None:
        self._signalled = True
        if self.dispatching:
            self._wakeup.set()
        elif self.mailbox.empty():
            self.mailbox.put_nowait(_WAKE)

    async def _run(self) -> None:
        _current.set(self)
        try:
            if await self.life.start():
                if self.dispatching:
                    await self._supervise()
                else:
                    await self._loop()
        except asyncio.CancelledError:
            self._mark_dead()
            if isinstance(self.mailbox, Dispatcher):
                self.mailbox.cancel_running()
            for child in list(self.children.values()):
                child.task.cancel()
            self.parent.forget_child(self)
            raise
        await self._teardown()

    async def _supervise(self) -> None:
        """The task of a dispatching cell: apply signals while the mailbox runs messages."""
        mailbox = self.mailbox
        assert isinstance(mailbox, Dispatcher)
        while True:
            mailbox.resume(self._instance().receive)
            await self._wakeup.wait()
            self._wakeup.clear()
            mailbox.pause()
            await mailbox.wait_idle()  # between two messages, as for the classic loop
            if not await self._handle_signals():
                return

    def _tell_failed(self, message: Any, exc: Exception) -> None:
        """A dispatched tell raised: pause the mailbox and let the task apply the policy."""
        assert isinstance(self.mailbox, Dispatcher)
        self.mailbox.pause()
        log.error(
            "actor %r in system %r failed on message %r",
            self.name, self.system.name, message, exc_info=exc,
        )  # fmt: skip
        self.life.queue(ActorFailed(self.name, message, exc), own=True)
        self._signal()

    async def _loop(self) -> None:
        mailbox = self.mailbox
        assert isinstance(mailbox, asyncio.Queue)
        receive = self._instance().receive
        while True:
            item = await mailbox.get()
            if self._signalled:
                if not await self._handle_signals():
                    self._reject(item)
                    return
                receive = self._instance().receive
            if item is _WAKE:
                continue
            message, fut = item
            del item  # no reference to the message outlives its handling (received memory)
            if fut is None:
                try:
                    await receive(message)
                except Exception as exc:
                    if not await self.life.failed(ActorFailed(self.name, message, exc)):
                        return
                    receive = self._instance().receive
            elif not fut.done():
                try:
                    result = await receive(message)
                except Exception as exc:
                    if not fut.done():
                        fut.set_exception(exc)
                except BaseException:  # CancelledError: the asker must not hang
                    if not fut.done():
                        fut.set_exception(
                            ActorDead(f"actor {self.name!r} was cancelled while processing it")
                        )
                    raise
                else:
                    if not fut.done():
                        fut.set_result(result)
                    del result
            del message, fut

    def _instance(self) -> Actor:
        instance = self.life.instance
        assert instance is not None
        return instance

    async def _handle_signals(self) -> bool:
        """Apply a pending stop, then the queued failures; False when the actor must stop."""
        self._signalled = False
        if self._stopping:
            return False
        return await self.life.handle_queued()

    # -- end of life ----------------------------------------------------------------

    async def _teardown(self) -> None:
        self._mark_dead()
        await self.life.stop_instance()
        self.parent.forget_child(self)

    def _mark_dead(self) -> None:
        self.dead = True
        if isinstance(self.mailbox, Dispatcher):
            self.mailbox.close(str(self.dead_error()))
        self._drain()
        self.life.pass_on()
        if self._dropped_tells:
            log.warning(
                "actor %r stopped with %d unprocessed tell(s) in its mailbox",
                self.name,
                self._dropped_tells,
            )

    def _drain(self) -> None:
        while True:
            try:
                item = self.mailbox.get_nowait()
            except asyncio.QueueEmpty:
                return
            self._reject(item)

    def _reject(self, item: Item) -> None:
        if item is _WAKE:
            return
        _message, reply = item
        if reply is None:
            self._dropped_tells += 1
            return
        error = ActorDead(
            f"actor {self.name!r} in system {self.system.name!r} stopped "
            f"before processing the message"
        )
        if not isinstance(reply, asyncio.Future):
            reply(None, error)  # a post's reply callable
        elif not reply.done():
            reply.set_exception(error)


def _outcome(fut: asyncio.Future[Any]) -> tuple[Any, BaseException | None]:
    if fut.cancelled():
        return None, ActorDead("the message was cancelled")
    error = fut.exception()
    return (None, error) if error is not None else (fut.result(), None)
