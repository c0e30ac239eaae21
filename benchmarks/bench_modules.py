"""Framework modules used by the ``events`` and ``hlt`` benchmark parts.

- :class:`Payload` (producer): puts one read-only ``uint8`` array of ``nbytes``
  per event. The array is filled with random bytes once, at construction, and
  the same object is put in every event, so the benchmark measures moving the
  bytes, not making them (and never sends the kernel's shared zero page).
- :class:`StartTime` (producer, on the loop): puts ``time.time()`` as a
  ``float`` when the event starts; :class:`Stamp` turns it into a latency.
- :class:`Stamp` (analyzer, on the loop, put it on an end path): records the
  wall-clock time (``time.time()``, comparable between processes of one host)
  at which every event finished, and optionally its latency since
  :class:`StartTime`; ``end_job`` writes ``{"done": [...], "latency": [...],
  "max_rss_kib": N}`` (N: the process's peak resident set) as JSON to ``file``.
- :class:`HltModule` (producer): a synthetic HLT module; consumes its
  ``parents`` (their instance ``""``), sleeps ``time`` seconds in a worker
  thread (``time.sleep`` releases the GIL: the module stands for work done
  elsewhere, a GPU kernel or another core) and puts an ``int`` or, with
  ``nbytes > 0``, a ``numpy.ndarray`` of that many bytes.

All are importable as ``benchmarks.bench_modules:<Class>`` (the benchmark
runs put the repository on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import resource
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from actors.framework import Analyzer, Concurrency, Declarer, Event, Producer

__all__ = ["HltModule", "Payload", "Stamp", "StartTime"]

#: several schedules of one process (a follower serving several controllers) stamp one file
_STAMP_FILES = threading.Lock()


def _random_bytes(nbytes: int, seed: int) -> np.ndarray[Any, Any]:
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    data.flags.writeable = False
    return data


class Payload(Producer):
    """Puts the same read-only random ``uint8`` array of ``nbytes`` in every event."""

    concurrency = Concurrency.SHARED
    run_on_loop = True

    def __init__(self, *, nbytes: int, seed: int = 1) -> None:
        self.data = _random_bytes(int(nbytes), seed)

    def declare(self, d: Declarer) -> None:
        d.produces("numpy.ndarray")

    def produce(self, event: Event) -> None:
        event.put(self.data)


class StartTime(Producer):
    """Puts ``time.time()`` (float) when the event reaches it: put it first on a path."""

    concurrency = Concurrency.SHARED
    run_on_loop = True

    def declare(self, d: Declarer) -> None:
        d.produces("float")

    def produce(self, event: Event) -> None:
        event.put(time.time())


class Stamp(Analyzer):
    """Records when each event finished (and its latency); writes them to ``file`` at the end."""

    concurrency = Concurrency.LEGACY
    run_on_loop = True

    def __init__(self, *, file: str, start: str = "") -> None:
        self.file = Path(file)
        self.start_label = start
        self.done: list[float] = []
        self.latency: list[float] = []

    def declare(self, d: Declarer) -> None:
        self.start = d.consumes(self.start_label, instance="") if self.start_label else None

    def analyze(self, event: Event) -> None:
        now = time.time()
        self.done.append(now)
        if self.start is not None:
            self.latency.append(now - float(event.get(self.start)))

    def end_job(self) -> None:
        """Write (or, for the second schedule of a process serving several controllers,
        extend) the stamp file."""
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # this process's peak
        with _STAMP_FILES:
            doc: dict[str, Any] = {"done": [], "latency": []}
            if self.file.exists():
                doc = json.loads(self.file.read_text())
            doc = {
                "done": doc["done"] + self.done,
                "latency": doc["latency"] + self.latency,
                "max_rss_kib": peak_kib,
            }
            self.file.write_text(json.dumps(doc))


class HltModule(Producer):
    """Consumes ``parents``, sleeps ``time`` s, puts an int (or ``nbytes`` bytes)."""

    concurrency = Concurrency.STREAM

    def __init__(self, *, time: float, parents: list[str] | None = None, nbytes: int = 0) -> None:
        self.time = float(time)
        self.parents = list(parents or [])
        self.data = _random_bytes(int(nbytes), 2) if nbytes > 0 else None

    def declare(self, d: Declarer) -> None:
        self.tokens = [d.consumes(p, instance="") for p in self.parents]
        d.produces("numpy.ndarray" if self.data is not None else "int")

    def produce(self, event: Event) -> None:
        for token in self.tokens:
            event.get(token)
        time.sleep(self.time)
        event.put(self.data if self.data is not None else 1)
