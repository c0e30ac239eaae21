"""The :class:`Actor` base class users subclass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from ._cell import ActorCell
    from .ref import ActorRef
    from .supervision import SupervisorPolicy
    from .system import ActorSystem

__all__ = ["Actor", "bind_instance"]


class Actor:
    """An actor: private state plus ``async def receive(self, message)``.

    Each actor has one bounded mailbox and one asyncio task that takes
    messages from it and awaits ``receive`` for one message at a time, so an
    actor's state needs no locks. The return value of ``receive`` is the reply
    to an ``ask`` (ignored for a ``tell``). Optional hooks: ``async on_start()``
    (before the first message, and again after a restart) and ``async
    on_stop()`` (after the last message, after its children have stopped).
    ``self.name``, ``self.system``, ``self.self_ref`` and ``self.parent`` are
    set before ``__init__`` runs. Create actors with ``system.spawn(Cls, ...)``
    or, for a child, ``self.spawn(Cls, ...)``; never instantiate them directly.

    Failure rules:

    1. ``receive`` raises while handling an **ask**: the exception is raised
       in the asker (the very same object for a local asker; for a remote one
       the original type when it is a builtin exception or an
       :mod:`actors.errors` class, otherwise :class:`~actors.RemoteError`
       carrying the type name, message and remote traceback). The actor keeps
       running with its state as the failed ``receive`` left it.
    2. ``receive`` raises while handling a **tell**: the failure is logged
       (actor name, message, traceback) and wrapped in
       :class:`~actors.ActorFailed` ``(actor, message, cause)`` for the actor's
       supervisor, which applies the actor's
       :class:`~actors.SupervisorPolicy`: ``restart`` (new instance from the
       same class and arguments, mailbox kept), ``stop``, or ``escalate`` (the
       default: stop, and the parent handles the failure as its own; at the
       top the system records it in ``system.failures`` and raises it from
       ``__aexit__``). A failing ``on_start`` is handled the same way.
    3. A stopped actor processes nothing more: asks waiting in its mailbox,
       and asks and tells sent to it later, raise :class:`~actors.ActorDead`.
       A ``tell`` blocked on its full mailbox raises ``ActorDead`` too.
    4. ``asyncio.CancelledError`` is never swallowed: it is not a failure,
       it ends the actor's task (the system only cancels actors at shutdown,
       after their grace period).
    5. An ask whose caller gave up (timeout or cancellation) before the actor
       took it from the mailbox is skipped, not processed.

    Loop rules: an actor runs on its system's event loop; ``receive`` must not
    block that loop (run blocking work with ``asyncio.to_thread``).

    Kinds of ``receive`` (chosen by the class and the spawn options):

    * ``async def receive`` (the default): one message at a time in the
      actor's task; with ``spawn(..., concurrency=n)``, up to ``n`` at once
      (``n`` >= 1), each in one of the actor's worker tasks;
    * a plain ``def receive`` runs on the loop, inline in the sender's call
      when the actor has a free slot (no task switch: for short code), or,
      with ``spawn(..., executor=True)`` (or an Executor), in a worker thread
      (for blocking code; the thread must not touch the actor's loop
      objects). If it returns an awaitable, the reply is what that awaitable
      gives, awaited on the loop.

    For such an actor (``concurrency``, ``executor`` or a plain ``receive``)
    an ask sent while it is idle (a free slot, an empty mailbox) is processed
    in the asker's task, without a task switch: cancelling the asker then
    cancels the message. With ``concurrency`` > 1 the messages that run at
    once share the instance: its code must allow that. Failure rules are the
    same for every kind, but for a ``CancelledError`` that ``receive`` lets
    out on its own (not a cancellation of the actor): there, it is the
    message's error (``ActorError``, "was cancelled by its own code"). A
    failed tell pauses the actor until the policy is applied (after the
    messages already running end).
    """

    _actor_cell: ActorCell

    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value is the reply to an ask.

        May be overridden by a plain ``def`` (see the class docstring).
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not implement receive()")

    async def on_start(self) -> None:
        """Called before the first message (and after each restart)."""

    async def on_stop(self) -> None:
        """Called once the actor processes nothing more (also before a restart)."""

    @property
    def name(self) -> str:
        """This actor's name, unique in its system (``parent/child`` for children)."""
        return self._actor_cell.name

    @property
    def system(self) -> ActorSystem:
        """The system this actor lives in."""
        return self._actor_cell.system

    @property
    def self_ref(self) -> ActorRef:
        """A reference to this actor, to hand to others."""
        return self._actor_cell.ref

    @property
    def parent(self) -> ActorRef | None:
        """The parent's reference, or None for a top-level actor."""
        return self._actor_cell.parent.ref  # None under the root guardian

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
        """Start a child actor supervised by this one; see :meth:`ActorSystem.spawn`.

        The child's full name is ``"<this name>/<name>"``. Children stop before
        their parent's ``on_stop`` runs, and when their parent restarts.
        """
        return self._actor_cell.spawn_child(
            actor_class,
            args,
            kwargs,
            name=name,
            mailbox_size=mailbox_size,
            supervisor_policy=supervisor_policy,
            concurrency=concurrency,
            executor=executor,
        ).ref

    def __repr__(self) -> str:
        cell = getattr(self, "_actor_cell", None)
        where = f" {cell.name!r}" if cell is not None else ""
        return f"<{type(self).__qualname__}{where}>"


def bind_instance(actor_class: type[Actor], cell: ActorCell) -> Actor:
    """A new, not yet initialised instance of ``actor_class`` run by ``cell``.

    The cell is bound before ``__init__`` runs, so an ``__init__`` may use
    :attr:`Actor.name`, :attr:`Actor.system` and :meth:`Actor.spawn`. The
    caller (the actor's lifecycle) runs ``__init__`` and ``on_start``.
    """
    instance = actor_class.__new__(actor_class)
    instance._actor_cell = cell
    return instance
