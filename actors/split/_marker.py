"""The ``Decision`` marker module the splitter inserts after an offloaded filter.

When a path of one process holds a filter that runs in the other process and
no product of that filter crosses anyway, the splitter puts a ``Decision``
right after the filter on the filter's side, and a Sender/Receiver pair
carries its one-element product back. The Decision runs only when the filter
accepted (it sits after the filter on the same paths), so the Receiver in the
other process accepts exactly when the filter did - the filter's decision,
carried as data. See ``docs/split.md``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..framework import Concurrency, Declarer, Event, Producer

__all__ = ["Decision"]


class Decision(Producer):
    """Puts ``numpy.ndarray`` ``[True]`` (instance ``""``) whenever it runs.

    Thread rules: SHARED, stateless, safe from any worker thread.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def declare(self, d: Declarer) -> None:
        d.produces("numpy.ndarray")

    def produce(self, event: Event) -> None:
        event.put(np.ones(1, dtype=np.bool_))
