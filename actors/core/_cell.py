"""One running actor: its mailbox, its task, its instance and its supervision.

Internal; users see :class:`~actors.Actor` and :class:`~actors.ActorRef`.
All methods run on the system's event loop.

Mailbox items are ``(message, future | None)`` (a future for an ask) or the
``_WAKE`` sentinel. Control signals (stop, a child's escalated failure) are
not queued behind messages: they set ``_signalled`` and, if the mailbox is
empty, drop ``_WAKE`` in it so that an idle loop wakes up. The loop looks at
signals after every ``get``, before processing what it got.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import TYPE_CHECKING, Any

from ..errors import ActorDead, ActorFailed
from .ref import LocalActorRef
from .supervision import Directive, RestartBudget, SupervisorPolicy

if TYPE_CHECKING:
    from .actor import Actor
    from .system import ActorSystem

__all__ = ["ActorCell"]

log = logging.getLogger("actors")

_WAKE: Any = object()
#: The cell whose task is running (set inside each actor task's own context).
_current: contextvars.ContextVar[ActorCell | None] = contextvars.ContextVar(
    "actors_current_cell", default=None
)
Item = tuple[Any, "asyncio.Future[Any] | None"]


class _Marker:
    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


#: The "message" of an ActorFailed raised by a constructor or on_start.
ON_START = _Marker("<on_start>")


class ActorCell:
    """Mailbox + task + current instance of one actor."""

    def __init__(
        self,
        system: ActorSystem,
        parent: ActorCell | None,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str,
        mailbox_size: int,
        policy: SupervisorPolicy,
    ) -> None:
        if mailbox_size < 1:
            raise ValueError(f"mailbox_size of actor {name!r} must be >= 1, got {mailbox_size}")
        self.system = system
        self.loop = system.loop
        self.parent = parent
        self.name = name
        self.policy = policy
        self.mailbox: asyncio.Queue[Any] = asyncio.Queue(maxsize=mailbox_size)
        self.ref = LocalActorRef(self)
        self.children: dict[str, ActorCell] = {}
        self.instance: Actor | None = None
        self.dead = False
        self._class = actor_class
        self._args = args
        self._kwargs = kwargs
        self._budget = RestartBudget(policy)
        self._stopping = False
        self._signalled = False
        self._escalated: list[ActorFailed] = []
        self._dropped_tells = 0
        self.task: asyncio.Task[None] = self.loop.create_task(self._run(), name=f"actor {name}")

    # -- API used by refs, the system and Actor.spawn ------------------------------

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
        caller = _current.get()
        while caller is not None:
            if caller is self:
                return
            caller = caller.parent
        await asyncio.wait([self.task])

    def escalate_to(self, failure: ActorFailed) -> None:
        """A child's failure arrives here (handled between two messages)."""
        self._escalated.append(failure)
        self._signal()

    def spawn_child(
        self,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str | None,
        mailbox_size: int | None,
        supervisor_policy: SupervisorPolicy | str | None,
    ) -> LocalActorRef:
        if self.dead or self._stopping:
            raise self.dead_error()
        cell = self.system._new_cell(
            self, actor_class, args, kwargs, name, mailbox_size, supervisor_policy
        )
        self.children[cell.name] = cell
        return cell.ref

    # -- the task -------------------------------------------------------------------

    def _signal(self) -> None:
        self._signalled = True
        if self.mailbox.empty():
            self.mailbox.put_nowait(_WAKE)

    async def _run(self) -> None:
        _current.set(self)
        try:
            if await self._begin():
                await self._loop()
        except asyncio.CancelledError:
            self._mark_dead()
            for child in list(self.children.values()):
                child.task.cancel()
            self.system._forget(self)
            raise
        await self._teardown()

    async def _loop(self) -> None:
        mailbox = self.mailbox
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
                    if not await self._failed(ActorFailed(self.name, message, exc)):
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
        assert self.instance is not None
        return self.instance

    async def _handle_signals(self) -> bool:
        """Apply pending stop/escalations; False when the actor must stop."""
        self._signalled = False
        if self._stopping:
            return False
        while self._escalated:
            failure = self._escalated.pop(0)
            log.warning("actor %r handles a failure escalated by a child: %s", self.name, failure)
            if not await self._apply_policy(failure):
                return False
        return True

    # -- supervision ----------------------------------------------------------------

    async def _failed(self, failure: ActorFailed) -> bool:
        """A tell (or start) failed here: log it and apply the policy."""
        log.error(
            "actor %r in system %r failed on message %r",
            self.name,
            self.system.name,
            failure.failed_message,
            exc_info=failure.__cause__,
        )
        return await self._apply_policy(failure)

    async def _apply_policy(self, failure: ActorFailed) -> bool:
        """True if the actor carries on (restarted), False if it must stop."""
        directive = self.policy.directive
        if directive is Directive.RESTART:
            if self._budget.allow():
                log.warning("restarting actor %r after: %s", self.name, failure)
                await self._stop_instance()
                return await self._begin()
            log.error(
                "actor %r exceeded %d restarts in %g s; escalating",
                self.name,
                self.policy.max_restarts,
                self.policy.window,
            )
            directive = Directive.ESCALATE
        if directive is Directive.ESCALATE:
            if self.parent is not None and not self.parent.dead:
                self.parent.escalate_to(failure)
            else:
                self.system._top_level_failure(failure)
        return False

    async def _begin(self) -> bool:
        """Build an instance and run on_start; on failure apply the policy."""
        try:
            instance = self._class.__new__(self._class)
            instance._actor_cell = self
            self._class.__init__(instance, *self._args, **self._kwargs)
            await instance.on_start()
        except Exception as exc:
            return await self._failed(ActorFailed(self.name, ON_START, exc))
        self.instance = instance  # only a started instance gets on_stop
        return True

    async def _stop_instance(self) -> None:
        """Stop the children, then run the current instance's on_stop (errors logged)."""
        await self._stop_children()
        instance, self.instance = self.instance, None
        if instance is None:
            return
        try:
            await instance.on_stop()
        except Exception:
            log.exception("on_stop of actor %r raised", self.name)

    async def _stop_children(self) -> None:
        children = list(self.children.values())
        for child in children:
            child.request_stop()
        if children:
            await asyncio.wait([c.task for c in children])

    # -- end of life ----------------------------------------------------------------

    async def _teardown(self) -> None:
        self._mark_dead()
        await self._stop_instance()
        self.system._forget(self)

    def _mark_dead(self) -> None:
        self.dead = True
        self._drain()
        for failure in self._escalated:  # arrived while stopping: pass them on
            if self.parent is not None and not self.parent.dead:
                self.parent.escalate_to(failure)
            else:
                self.system._top_level_failure(failure)
        self._escalated.clear()
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
        _message, fut = item
        if fut is None:
            self._dropped_tells += 1
        elif not fut.done():
            fut.set_exception(
                ActorDead(
                    f"actor {self.name!r} in system {self.system.name!r} stopped "
                    f"before processing the message"
                )
            )

    def forget_child(self, child: ActorCell) -> None:
        if self.children.get(child.name) is child:
            del self.children[child.name]
