"""Modules for the failover tests: a self-kill at a chosen event, and a wait for a replacement."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import ClassVar

from actors.framework import Concurrency, Event, Producer


class KillOnce(Producer):
    """SIGKILLs its process in the ``at``-th event it sees, unless ``marker`` exists.

    The marker (holding the time of the kill) is written first, so that a
    replacement of the process (``restarts``) runs to the end: one kill per
    run, at a point fixed by progress (events seen), never by a timer. A
    replacement touches ``<marker>.replacement`` when it is built.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, at: int, marker: str) -> None:
        self.at = at
        self.marker = Path(marker)
        self.seen = 0
        self.lock = threading.Lock()
        if self.marker.exists():
            Path(f"{marker}.replacement").touch()

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            now = self.seen == self.at
        if now and not self.marker.exists():
            self.marker.write_text(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)


class AwaitFile(Producer):
    """In its ``at``-th event, waits (at most ``timeout`` s) until ``path`` exists.

    Holds the controller's job until a replacement follower is up, so that
    events are left for it whatever the machine's speed.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, at: int, path: str, timeout: float = 60.0) -> None:
        self.at = at
        self.path = Path(path)
        self.timeout = timeout
        self.seen = 0
        self.lock = threading.Lock()

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            now = self.seen == self.at
        deadline = time.monotonic() + self.timeout
        while now and not self.path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path} did not appear within {self.timeout} s")
            time.sleep(0.02)


class TouchAt(Producer):
    """Creates ``path`` in the ``at``-th event it sees (a progress signal for a test)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, at: int, path: str) -> None:
        self.at = at
        self.path = Path(path)
        self.seen = 0
        self.lock = threading.Lock()

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            now = self.seen == self.at
        if now:
            self.path.touch()


class FailAt(TouchAt):
    """Raises in the ``at``-th event it sees (a crash for processes that share the launcher's)."""

    def __init__(self, *, at: int) -> None:
        super().__init__(at=at, path="/dev/null")

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            now = self.seen == self.at
        if now:
            raise RuntimeError(f"failing on purpose in event {event.id}")
