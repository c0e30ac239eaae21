"""Modules for the failover tests: a self-kill at a chosen event, a wait for a rejoin..."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import ClassVar

from actors.distributed.controller import ControllerHub
from actors.framework import Concurrency, Declarer, Event, Producer


class KillOnce(Producer):
    """SIGKILLs its process in its ``at``-th event, unless ``marker`` exists.

    ``at = 0``: in end_job (every event done); ``at < 0``: in begin_job.

    The marker (holding the time of the kill) is written first, so that a
    replacement of the process (``restarts``) runs to the end: one kill per
    run, at a point fixed by progress (events seen), never by a timer.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, at: int, marker: str) -> None:
        self.at = at
        self.marker = Path(marker)
        self.seen = 0
        self.lock = threading.Lock()

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            now = self.seen == self.at
        if now:
            self._kill()

    async def begin_job(self) -> None:
        if self.at < 0:  # at < 0: at the start, before any event
            self._kill()

    async def end_job(self) -> None:
        if self.at == 0:  # at = 0: at the very end, when every event is done
            self._kill()

    def _kill(self) -> None:
        if not self.marker.exists():
            self.marker.write_text(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)


class AwaitRejoin(Producer):
    """In its ``at``-th event, waits (at most ``timeout`` s) until ``link`` rejoined.

    Holds the controller's job until the replacement of the follower on
    ``link`` joined channel ``channel`` (a second follower entry of that link
    in the controller's hub, found through the event's ChannelToken: put it
    after the Controller on its path), so that events are left for it
    whatever the machine's speed.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, at: int, channel: str, link: str, timeout: float = 60.0) -> None:
        self.at = at
        self.channel = channel
        self.link = link
        self.timeout = timeout
        self.seen = 0
        self.lock = threading.Lock()

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.channel)

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            now = self.seen == self.at
        hub = event.get(self.token).hub
        assert isinstance(hub, ControllerHub)
        deadline = time.monotonic() + self.timeout
        while now and sum(1 for f in list(hub.followers) if f.name == self.link) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"link {self.link!r} did not rejoin within {self.timeout} s")
            time.sleep(0.02)


class TouchAt(Producer):
    """Creates ``path`` in the ``at``-th event it sees (a progress signal for a test).

    ``then_sleep``: seconds each later event sleeps, so that the job is still
    running when the test acts on the signal, however loaded the machine.
    """

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, at: int, path: str, then_sleep: float = 0.0) -> None:
        self.at = at
        self.path = Path(path)
        self.then_sleep = then_sleep
        self.seen = 0
        self.lock = threading.Lock()

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            now, later = self.seen == self.at, self.seen > self.at
        if now:
            self.path.touch()
        elif later and self.then_sleep:
            time.sleep(self.then_sleep)


class FailAt(TouchAt):
    """Raises in the ``at``-th event it sees, or in ``begin_job`` when ``at`` is 0.

    A crash that does not kill the process (as in processes that share the launcher's).
    """

    def __init__(self, *, at: int) -> None:
        super().__init__(at=at, path="/dev/null")

    async def begin_job(self) -> None:
        if self.at == 0:
            raise RuntimeError("failing on purpose in begin_job")

    def produce(self, event: Event) -> None:
        with self.lock:
            self.seen += 1
            now = self.seen == self.at
        if now:
            raise RuntimeError(f"failing on purpose in event {event.id}")
