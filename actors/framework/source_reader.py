"""Reading a source through its actor; filling event products."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from ..core.ref import NOT_HERE, ActorRef, LocalActorRef
from ..errors import ActorDead, FrameworkError, ModuleError
from .event import PLAIN_TYPES, EventData, Product, freeze_value
from .source import Source, Transition
from .workers import CLOSE_TRANSITIONS, NEXT_TRANSITION, format_error

if TYPE_CHECKING:
    from .graph import SourceNode

__all__ = ["SourceReader", "fill_products"]


class SourceReader:
    """Asks the source's actor for transitions; errors become ModuleError naming the source.

    The actor (:class:`~actors.framework.workers.SourceActor`) advances a sync
    iterator inline on the loop, in a worker thread for a ``blocking``
    source, or awaits an async one; its iterator is closed when it stops.
    The actor is idle between two requests, so each request runs in the
    driver's task (the actor core's ask fast path, without a coroutine for a
    sync source: :meth:`LocalActorRef.caller
    <actors.core.ref.LocalActorRef.caller>`): reading costs little more than
    a direct call to the iterator.
    """

    def __init__(self, source: Source, actor: ActorRef) -> None:
        self.source = source
        self._actor = actor
        self._last: Transition | None = None
        self._call_here = actor.caller() if isinstance(actor, LocalActorRef) else None

    async def next(self) -> Transition | None:
        """The next transition, or None at the end."""
        try:
            tr = NOT_HERE if self._call_here is None else self._call_here(NEXT_TRANSITION)
            if tr is NOT_HERE:
                tr = await self._actor.ask(NEXT_TRANSITION)
            elif type(tr) is CoroutineType:  # an async source: await the rest here
                tr = await tr
        except StopAsyncIteration:
            return None  # the end of an async source
        except (asyncio.CancelledError, ActorDead):
            raise
        except Exception as exc:
            raise ModuleError(self.source.label, self._where(), exc, format_error(exc)) from exc
        if tr is None:
            return None
        self._last = tr
        return tr  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close the source's iterator (generator cleanup) if it was started.

        Once the actor is stopped (the job is torn down) its stop closed it.
        """
        if not self._actor.is_alive:
            return
        with contextlib.suppress(ActorDead):  # stopped meanwhile: its stop closes it
            await self._actor.ask(CLOSE_TRANSITIONS)

    def error(self, message: str) -> FrameworkError:
        """A FrameworkError about the transition sequence, naming the source."""
        return FrameworkError(f"source {self.source.label!r}: {message} ({self._where()})")

    def _where(self) -> str:
        return "reading the first transition" if self._last is None else f"after {self._last}"


def fill_products(source: SourceNode, data: EventData, products: Mapping[Any, Any]) -> None:
    """Store the source's products of one event; FrameworkError for undeclared keys."""
    info = source.info
    store = data.products
    for key, value in products.items():
        branch = source.keys.get(key)
        if branch is None:
            raise FrameworkError(
                f"source {info.label!r} gives product {key!r} in event {data.id}, which it "
                f"did not declare (declared: {sorted(map(str, set(source.keys.values())))})"
            )
        if isinstance(value, Product):
            store[branch] = Product(branch, freeze_value(value.value), value.provenance)
            continue
        if type(value) not in PLAIN_TYPES:
            value = freeze_value(value)
        store[branch] = Product(branch, value, info.provenance(()))
