"""Reading a source: sync or async iterators, blocking or not; filling event products."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from ..errors import FrameworkError, ModuleError
from .event import EventData, Product, freeze_value
from .source import Source, Transition
from .workers import format_error

if TYPE_CHECKING:
    from .graph import SourceNode

__all__ = ["SourceReader", "fill_products"]

_END: Any = object()


class SourceReader:
    """Advances ``source.transitions()``; errors become ModuleError naming the source."""

    def __init__(self, source: Source, pool: Executor) -> None:
        self.source = source
        self._pool = pool
        self._last: Transition | None = None
        self._iter: Iterator[Transition] | AsyncIterator[Transition] | None = None

    async def next(self) -> Transition | None:
        """The next transition, or None at the end."""
        try:
            if self._iter is None:
                self._iter = self.source.transitions()
            it = self._iter
            if isinstance(it, AsyncIterator):
                try:
                    tr = await it.__anext__()
                except StopAsyncIteration:
                    return None
            elif self.source.blocking:
                loop = asyncio.get_running_loop()
                tr = await loop.run_in_executor(self._pool, next, it, _END)
            else:
                tr = next(it, _END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ModuleError(self.source.label, self._where(), exc, format_error(exc)) from exc
        if tr is _END:
            return None
        self._last = tr
        return tr

    async def close(self) -> None:
        """Close the iterator (generator cleanup) if it was started."""
        it, self._iter = self._iter, None
        if it is None:
            return
        aclose = getattr(it, "aclose", None)
        if aclose is not None and inspect.iscoroutinefunction(aclose):
            await aclose()
            return
        close = getattr(it, "close", None)
        if close is not None:
            close()

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
        store[branch] = Product(branch, freeze_value(value), info.provenance(()))
