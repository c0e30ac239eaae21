"""Adaptive, bounded polling: before a receive waits, and of a whole event loop.

Waking a sleeping event loop (epoll wake-up, scheduler, loop iteration) costs
about as much as the rest of a small-message round trip together. When a
reply is due within microseconds - a request/reply exchange between two
processes - polling for it without yielding is faster. :class:`AdaptivePoll`
decides when that is worth it:

- only *shortly after activity*: the link's last message arrived at most
  :data:`SPIN_AFTER_SECONDS` ago (a quiet link never polls, so an idle process
  uses no CPU);
- for at most ``seconds`` per receive (the event loop is blocked that long at
  most);
- a poll that comes back empty (slow peer, or a peer on this very event loop
  that cannot run while we poll) makes the next 1, 2, 4 ... :data:`BACKOFF_MAX`
  receives skip polling, so a pattern that polling does not help costs next to
  nothing;
- never while a :class:`LoopSpinner` of the loop (the links' or the remote
  actors') keeps the loop awake: the loop polls its descriptors anyway, and a
  receive's poll would hold everything else on it up (the dimuon offload with
  the launcher's loop spin, one stream per side: tcp:// 0.77-0.78x -> 0.85x of
  one process, shm:// 0.77-0.80x -> 0.90x, ucx:// 0.63-0.64x -> 0.70x; one
  remote ask after another between two processes on two CPUs, where the
  server's poll held up the reply its actor had just queued: tcp:// 149-230 ->
  101-192 µs, shm:// 159-182 -> 97-124 µs, three alternating rounds, 2026-12-07).

:class:`LoopSpinner` polls at the level of the event loop instead: after
traffic on a link (a message sent or received, on every transport: tcp://,
shm://, mpi://, ucx://) it keeps the loop *awake* - it schedules a callback
again and again (each yielding the CPU once, ``sched_yield``), so the loop polls
its file descriptors without sleeping while every other ready task and callback
still runs - for at most ``ACTORS_LOOP_SPIN_US`` (default 0: off; an mpi://
header wait and the ucx:// progress engine poll on while it spins). A process
that sleeps in the kernel between messages pays a wake-up; on a virtual machine
whose CPUs idle, waking a process on another CPU costs about as much as the
rest of a small round trip. The back-off of :class:`AdaptivePoll` applies: a
spin that sees no traffic makes the next 1, 2, 4 ... :data:`BACKOFF_MAX` kicks
skip spinning.

Where it pays: processes with a CPU each that exchange a steady stream of
messages. ``python -m actors.launch`` sets 5 ms for the processes it starts on a
host with at least one CPU per process (:mod:`actors.launch.plan`): the dimuon
offload on the 2-CPU machine ran 1.3-1.5x as fast with one stream per side
and 1.5-1.9x with four over tcp:// and shm://, 1.6-2.0x with one over mpi://
(docs/benchmarks.md, 2026-12-05 16:10 UTC). Where it costs: more processes than
CPUs (4 followers and a controller on 2 CPUs: the empty chain 24,600-41,000
against 60,000-65,000 events/s), and short windows that end before the next
message (100 µs slowed streams of events by 15-30%; 3 ms was bimodal on the
dimuon job, 5 ms and more were not); one remote ask after another between two
processes on two CPUs: ~190-220 µs asleep, ~95-120 µs with 100 µs of spin, but
~160 µs against ~95 µs where the two share one CPU. Hence off by default for
plain processes and chosen by the launcher, which knows how many processes
share the host.

A second spinner per loop, for remote actors (:mod:`actors.core.remote`), is
kicked only when a process sends an ask, receives its reply, or answers one,
for ``ACTORS_ASK_SPIN_US`` (default 200 µs): the asker's loop stays awake until
the reply is due and the server's until the next ask is likely, while streams
of events and tells never spin. One ask after another between two processes:
two CPUs ~160-175 -> 78-90 µs per ask, one shared CPU 79-84 -> 91-97 µs
(300 µs would cost 136-140 there).

A receive's poll holds up everything else of its event loop. Where the loop
also runs module code (a framework process with ``threads = 0``),
:func:`receive_polls_off` turns the polls of that loop off: the dimuon
offload with ``threads = 0`` ran 7-10% faster without them in one period and
as fast in another (1 and 4 streams, tcp:// and shm://); with worker threads
no difference was measured.

Loop rules: one :class:`AdaptivePoll` per link, one :class:`LoopSpinner` per
event loop (:func:`loop_spinner`), both used from that loop's thread, as is
:func:`receive_polls_off`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from collections.abc import Callable, Iterator

from ..settings import LOOP_SPIN_US, STREAM_SPIN_US, Setting

__all__ = [
    "BACKOFF_MAX",
    "SPIN_AFTER_SECONDS",
    "AdaptivePoll",
    "LoopAwake",
    "LoopSpinner",
    "loop_spinner",
    "receive_polls_enabled",
    "receive_polls_off",
]

#: A receive polls only when the link's previous message arrived at most this long ago.
SPIN_AFTER_SECONDS = 2e-3
#: Most receives skipped (without polling) after repeated empty polls.
BACKOFF_MAX = 64


class AdaptivePoll:
    """Decides whether and how long a receive polls; see the module docstring."""

    __slots__ = ("_backoff", "_skip", "_spinner", "last_activity", "seconds")

    def __init__(self, seconds: float | None = None, spinner: LoopSpinner | None = None) -> None:
        #: Longest poll per receive (0: never poll); default: the
        #: ``ACTORS_STREAM_SPIN_US`` setting, read now.
        self.seconds = STREAM_SPIN_US.get() * 1e-6 if seconds is None else seconds
        self._spinner = spinner  # while it keeps the loop awake, receives do not poll
        #: ``time.perf_counter()`` of the last message received.
        self.last_activity = 0.0
        self._skip = 0
        self._backoff = 1

    def activity(self) -> None:
        """Note that a message arrived now."""
        self.last_activity = time.perf_counter()

    def run(self, attempt: Callable[[], bool]) -> bool:
        """Call ``attempt()`` (non-blocking) until it returns True or the budget is spent.

        Returns True when an attempt succeeded, False when polling was skipped
        or came back empty (the caller then waits in the event loop). Skipped
        while any spinner of the loop (that of the spinner given at
        construction: :attr:`LoopSpinner.loop_awake`) keeps the loop awake: the
        loop then polls anyway, and a receive's poll would hold up the rest of
        it, such as the reply an actor just queued.
        """
        if self.seconds <= 0 or (self._spinner is not None and self._spinner.loop_awake):
            return False
        clock = time.perf_counter
        now = clock()
        if now - self.last_activity >= SPIN_AFTER_SECONDS:
            return False
        if self._skip:
            self._skip -= 1
            return False
        if _polls_off and not receive_polls_enabled():  # no dict lookup while none is off
            return False
        deadline = now + self.seconds
        while True:
            if attempt():
                self._backoff = 1
                return True
            if clock() >= deadline:
                break
        self._skip = self._backoff
        self._backoff = min(2 * self._backoff, BACKOFF_MAX)
        return False


class LoopSpinner:
    """Keeps one event loop polling for ``seconds`` after each :meth:`kick` (module doc)."""

    __slots__ = (
        "_awake",
        "_backoff",
        "_clock",
        "_kicked",
        "_loop",
        "_polls",
        "_scheduled",
        "_skip",
        "_until",
        "seconds",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        seconds: float,
        clock: Callable[[], float] = time.perf_counter,
        awake: LoopAwake | None = None,
    ) -> None:
        self.seconds = seconds
        #: shared by the spinners of one loop (:func:`loop_spinner`): how many spin now
        self._awake = LoopAwake() if awake is None else awake
        self._loop = weakref.ref(loop)  # the registry's value must not keep its key alive
        self._clock = clock
        self._until = 0.0
        self._scheduled = False
        self._kicked = False  # traffic arrived while spinning: the spin paid
        self._skip = 0
        self._backoff = 1
        self._polls: list[tuple[Callable[[], bool], asyncio.Future[bool]]] = []

    @property
    def spinning(self) -> bool:
        """True while this spinner keeps the loop awake."""
        return self._scheduled

    @property
    def loop_awake(self) -> bool:
        """True while this spinner or another of its loop's (:func:`loop_spinner`)
        keeps the loop awake."""
        return self._awake.spinners > 0

    def kick(self) -> None:
        """Traffic now: keep the loop awake for ``seconds`` more (unless backing off)."""
        if self.seconds <= 0.0:
            return
        if self._scheduled:
            self._kicked = True
            self._until = self._clock() + self.seconds
            return
        if self._skip:
            self._skip -= 1
            return
        loop = self._loop()
        if loop is None:
            return
        self._until = self._clock() + self.seconds
        self._scheduled = True
        self._awake.spinners += 1
        self._kicked = False
        loop.call_soon(self._tick)

    def poll(self, check: Callable[[], bool]) -> asyncio.Future[bool] | None:
        """While the loop is kept awake, call ``check()`` (non-blocking) once per
        turn of the loop; the future returned is True once it answers True,
        False when the loop stops being kept awake first, and holds what it
        raised. None (nothing registered) when the loop is not kept awake.
        Cancelling the future drops the poll. A waiting task parked on it costs
        no task step per turn, where polling in its own steps (``sleep(0)``) did.
        """
        loop = self._loop()
        if not self._scheduled or loop is None:
            return None
        fut: asyncio.Future[bool] = loop.create_future()
        self._polls.append((check, fut))
        return fut

    def _run_polls(self, ending: bool) -> None:
        """One turn of the polls (every turn of an awake loop: the list is
        rebuilt only when a poll ended)."""
        ended = False
        for check, fut in self._polls:
            if fut.done():  # cancelled by its waiter
                ended = True
                continue
            try:
                found = check()
            except Exception as exc:  # the poller's own failure: the waiter raises it
                fut.set_exception(exc)
                ended = True
                continue
            if found or ending:
                fut.set_result(found)
                ended = True
        if ended:
            self._polls = [poll for poll in self._polls if not poll[1].done()]

    def _tick(self) -> None:
        loop = self._loop()
        if loop is not None and self._clock() < self._until:
            # A peer on this CPU (or anything else runnable) goes first; the polls
            # come after the yield, so that a message they find is taken by its
            # task in the next turn without a yield in between (the dimuon job over
            # mpi:// with one stream: +4%, 6 of 7 alternating rounds, 2026-12-07).
            os.sched_yield()
            if self._polls:
                self._run_polls(ending=False)
            loop.call_soon(self._tick)
            return
        self._scheduled = False
        self._awake.spinners -= 1
        if self._polls:
            self._run_polls(ending=True)
        if self._kicked:
            self._backoff = 1
        else:
            self._skip = self._backoff
            self._backoff = min(2 * self._backoff, BACKOFF_MAX)


class LoopAwake:
    """How many spinners of one event loop keep it awake now (loop thread only)."""

    __slots__ = ("spinners",)

    def __init__(self) -> None:
        self.spinners = 0


#: loop -> its spinners by setting name, and their shared :class:`LoopAwake`
_spinners: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[dict[str, LoopSpinner], LoopAwake]
] = weakref.WeakKeyDictionary()


def loop_spinner(
    loop: asyncio.AbstractEventLoop, setting: Setting[float] = LOOP_SPIN_US
) -> LoopSpinner:
    """The spinner of ``loop`` whose window is ``setting`` (µs; default
    ``ACTORS_LOOP_SPIN_US``, kicked by stream links; ``ACTORS_ASK_SPIN_US`` is kicked by
    remote asks and their replies), made on first use with the setting read then."""
    per_loop, awake = _spinners.setdefault(loop, ({}, LoopAwake()))
    spinner = per_loop.get(setting.name)
    if spinner is None:
        spinner = LoopSpinner(loop, setting.get() * 1e-6, awake=awake)
        per_loop[setting.name] = spinner
    return spinner


#: loops whose receives do not poll -> how many receive_polls_off blocks hold them
_polls_off: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def receive_polls_off() -> Iterator[None]:
    """Within the block, receives on the running event loop do not poll before
    they wait (:meth:`AdaptivePoll.run` returns False at once): for a loop that
    also runs module code, which a poll would hold up. Blocks nest; use it on
    the loop's thread (RuntimeError without a running loop)."""
    loop = asyncio.get_running_loop()
    _polls_off[loop] = _polls_off.get(loop, 0) + 1
    try:
        yield
    finally:
        left = _polls_off[loop] - 1
        if left:
            _polls_off[loop] = left
        else:
            del _polls_off[loop]


def receive_polls_enabled() -> bool:
    """False while a :func:`receive_polls_off` block holds the running loop's polls off."""
    return asyncio.get_running_loop() not in _polls_off
