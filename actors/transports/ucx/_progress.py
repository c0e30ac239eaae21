"""UCX worker per event loop, and the progress engine that drives it.

Why not ucxx's own progress modes (measured on a 2-core machine, see
docs/ucx.md): in ``polling`` and ``blocking`` mode every pending ucxx request
spins the event loop with ``asyncio.sleep(0)`` until it completes, so a process
with a quiet link waiting in ``recv`` burns 55-70 % of a core; ``blocking`` mode
also never re-arms the worker after its first wake-up. ``thread`` mode with
Python futures idles at ~1.5 % but a round trip costs ~1.3 ms (each completion
crosses a notifier thread).

This engine runs in the event loop thread, with no extra thread:

- while requests are pending it progresses the worker and yields to the loop
  (``sleep(0)``) for at most :func:`spin_seconds` after the last activity, which
  keeps round trips in the tens of microseconds; and while one of the loop's
  spinners keeps the loop awake (``ACTORS_LOOP_SPIN_US``: the links kick it
  with every message; ``ACTORS_ASK_SPIN_US``: remote asks and their replies;
  see :mod:`actors.transports._spin`) it progresses on every turn, requests
  pending or not, from that spinner's poll (:meth:`Engine._park`: no task step of
  the engine per turn) - an armed worker makes the peer signal it (over shared
  memory a ``sendto`` on a Unix socket per message, and drains per arm: 4,191
  ``sendto``, 10,299 ``recvfrom`` and 21,653 ``read`` calls in 3 s of the
  offload example's remote process, none once an awake loop never arms), the
  slow way to learn of a message while awake;
- otherwise it *arms* the worker (``ucp_worker_arm``) and sleeps until the
  worker's epoll file descriptor becomes readable (``loop.add_reader``), a new
  request is submitted, or :data:`IDLE_TICK_SECONDS` pass (a safety net for
  events that do not signal the descriptor, e.g. keepalive timers). An idle
  process therefore uses no CPU. While it sleeps, the descriptor's callback
  (:meth:`Engine._on_readable`) progresses the worker, settles what completed and
  re-arms, and with no spin configured a receive waiting for a message does not
  wake it either: an exchange between sleeping loops takes no step of the
  engine's task.

Requests are awaited with :meth:`Engine.wait`, never with ucxx's ``wait()``.

Loop rules: one :class:`Engine` (and one UCX worker) per event loop, made on
first use by :func:`engine`; everything here must be called from that loop's
thread. Importing this module does not import ucxx.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any

from ...errors import PeerLost, ProtocolError
from ...settings import ASK_SPIN_US, ucx_spin_us
from .._spin import loop_spinner
from ._library import new_context, ucxx_api

__all__ = [
    "IDLE_TICK_SECONDS",
    "Engine",
    "engine",
    "poll_seconds",
    "spin_seconds",
]


def spin_seconds() -> float:
    """How long the engine keeps polling after the last activity while requests
    are pending, before arming the worker and sleeping on its file descriptor
    (:func:`~actors.settings.ucx_spin_us`: ``ACTORS_UCX_SPIN_US``, 0 by default where
    the host runs more of the job's processes than CPUs; read at each call)."""
    return ucx_spin_us() * 1e-6


def poll_seconds() -> float:
    """Longest inline poll of a link's ``recv`` (see :mod:`actors.transports._spin`)
    before it waits for the engine: 200 us, or less when the spin is less (0
    disables it)."""
    return min(spin_seconds(), 200e-6)


#: Longest sleep without progressing the worker (safety net for timers).
IDLE_TICK_SECONDS = 0.25
#: Arms that :meth:`Engine._on_readable` tries (each after a progress) before it
#: hands the busy worker to the engine's task.
_ARM_TRIES = 2

_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine] = weakref.WeakKeyDictionary()


def engine() -> Engine:
    """The engine of the running event loop, acquired once more by the caller.

    Made (with its UCX context and worker) on first use; every
    :meth:`Engine.acquire` (listener, link) must be paired with one
    :meth:`Engine.release`; the last release frees the worker, its sockets
    and the context, so that nothing outlives the links that needed it.
    """
    loop = asyncio.get_running_loop()
    eng = _engines.get(loop)
    if eng is None or eng.closed:
        eng = Engine(new_context(), loop)
        _engines[loop] = eng
    return eng


class _Pending:
    __slots__ = ("future", "keep", "owner", "request")

    def __init__(
        self, request: Any, future: asyncio.Future[None], owner: object, keep: object
    ) -> None:
        self.request = request
        self.future = future
        self.owner = owner
        self.keep = keep  # the memory UCX reads or writes: alive until completion


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    """Fail a waiter's future, its exception marked as retrieved: the waiter (when
    there still is one) gets it from its await, and a waiter that is gone leaves
    no "exception was never retrieved" behind (no done callback per request)."""
    future.set_exception(exc)
    future.exception()


def _map_error(exc: BaseException, what: str) -> BaseException:
    if isinstance(exc, ProtocolError | PeerLost):
        return exc  # a link's own verdict (e.g. a frame of the wrong length): as it is
    api = ucxx_api()
    if isinstance(exc, api.UCXMessageTruncatedError | api.UCXMsgTruncated):
        return ProtocolError(f"{what}: frame larger than announced ({exc})")
    return PeerLost(f"{what}: {type(exc).__name__}: {exc}")


class Engine:
    """Progresses one UCX worker from one event loop (see module docstring)."""

    def __init__(self, context: Any, loop: asyncio.AbstractEventLoop) -> None:
        api = ucxx_api()
        self.loop = loop
        self.context = context
        self.worker: Any = api.UCXWorker(context)
        self._users = 0
        self.worker.init_blocking_progress_mode()
        self._fd: int = self.worker.epoll_file_descriptor
        self._pending: list[_Pending] = []
        #: what the engine sleeps on (None while it is awake): a plain future, set by a
        #: poke, the descriptor or the idle tick (cheaper than an Event in a timeout)
        self._sleep: asyncio.Future[None] | None = None
        #: the pending idle tick (:data:`IDLE_TICK_SECONDS`), None when none is
        self._tick: asyncio.TimerHandle | None = None
        self._last_activity = time.perf_counter()
        self._spin_seconds = spin_seconds()
        #: the loop's spinner (``ACTORS_LOOP_SPIN_US``), kicked by the links' traffic
        self.spinner = loop_spinner(loop)
        #: the remote actors' spinner (``ACTORS_ASK_SPIN_US``): awake for a reply
        self._ask_spinner = loop_spinner(loop, ASK_SPIN_US)
        self.closed = False
        #: the loop watches the worker's descriptor only while the engine sleeps on
        #: it: awake, the unarmed worker's descriptor stays readable, and every turn
        #: of the loop polled it and ran a callback for nothing
        self._watching = False
        self._task = loop.create_task(self._run(), name="ucx-progress")

    def acquire(self) -> None:
        """Count one more user (listener or link) of this engine."""
        self._users += 1

    def release(self) -> None:
        """One user is done; the last one closes the engine."""
        self._users -= 1
        if self._users <= 0:
            self.close()

    async def wait(
        self,
        request: Any,
        what: str,
        owner: object = None,
        keep: object = None,
        *,
        on_arrival: bool = False,
    ) -> None:
        """Wait for a ucxx request; maps its failure to PeerLost/ProtocolError.

        ``owner`` groups requests so that :meth:`fail` can end them together.
        ``keep`` (the request's buffer) is referenced until the request
        completes - even when the waiter is cancelled or failed early, since
        UCX may still access that memory. ``on_arrival``: the request can only
        complete once a message arrives (a probed receive that matched nothing
        yet), so an engine asleep on the armed worker is not woken for it.
        """
        if request.completed:
            self._check(request, what)
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self._pending.append(_Pending(request, fut, owner, keep))
        if not (on_arrival and self._asleep_armed()):
            self._poke()
        try:
            await fut
        except (ProtocolError, PeerLost) as exc:
            raise type(exc)(f"{what}: {exc}") from exc.__cause__

    def track(
        self, request: Any, owner: object = None, keep: object = None
    ) -> asyncio.Future[None]:
        """Like :meth:`wait` without awaiting: a future for a posted request."""
        fut: asyncio.Future[None] = self.loop.create_future()
        self._pending.append(_Pending(request, fut, owner, keep))
        self._poke()
        return fut

    def fail(self, owner: object, exc_factory: Callable[[], BaseException]) -> None:
        """Fail the waiters of every pending request of ``owner`` (peer lost)."""
        for p in self._pending:
            if p.owner is owner and not p.future.done() and not p.request.completed:
                _fail(p.future, exc_factory())

    def poke(self) -> None:
        """Make the engine progress now (e.g. after posting a request)."""
        self._poke()

    def progress(self) -> None:
        """Progress the worker once, inline, and settle completed tracked requests.

        Used by links to see a completion at once instead of on the engine's
        next pass (which costs an event-loop iteration or a wake-up).
        """
        self.worker.progress()
        if self._pending:
            self._complete()

    def check(self, request: Any, what: str) -> None:
        """Raise PeerLost/ProtocolError (naming ``what``) if a completed request failed."""
        self._check(request, what)

    def _poke(self) -> None:
        self._last_activity = time.perf_counter()
        self._wake()

    def _wake(self) -> None:
        sleep = self._sleep
        if sleep is not None and not sleep.done():
            sleep.set_result(None)

    @staticmethod
    def _check(request: Any, what: str) -> None:
        try:
            request.check_error()
        except (ProtocolError, PeerLost):
            raise  # a link's own verdict, naming its peer
        except Exception as exc:
            raise _map_error(exc, what) from exc

    def _complete(self) -> bool:
        # ``completed`` is evaluated once per request and pass: a link's probed
        # receive takes messages while it is asked, so asking twice could differ
        done: list[_Pending] = []
        waiting: list[_Pending] = []
        for p in self._pending:
            (done if p.request.completed else waiting).append(p)
        if not done:
            return False
        self._pending = waiting
        for p in done:
            if p.future.done():
                continue
            try:
                p.request.check_error()
            except Exception as exc:
                _fail(p.future, _map_error(exc, "ucx request"))
            else:
                p.future.set_result(None)
        return True

    def _step(self) -> bool:
        """Progress once; True to yield and poll again, False to sleep on the fd."""
        self._pass()
        if self._must_poll():
            if self._watching:
                self._watch(False)
            return True
        if not self._watching:
            self._watch(True)
        return not self.worker.arm()  # not armed: events arrived meanwhile

    def _park(self) -> asyncio.Future[bool] | None:
        """While a spinner keeps the loop awake: a future that ends with its spin,
        the worker progressed in the meantime once per turn of the loop by the
        spinner's poll (:meth:`_turn`: no task step of the engine per turn); None
        when none spins (the engine then polls in its own steps)."""
        for spinner in (self.spinner, self._ask_spinner):
            if spinner.spinning:
                return spinner.poll(self._turn)
        return None

    def _turn(self) -> bool:
        """One turn of an awake loop (:meth:`_pass`); False: the spinner's poll
        goes on until its spin ends."""
        self._pass()
        return False

    def _pass(self) -> None:
        """Progress the worker once, settle completed requests, note the activity."""
        self.worker.progress()
        if self._pending and self._complete():
            self._last_activity = time.perf_counter()

    def _must_poll(self) -> bool:
        """True while the engine progresses on every turn of the loop: a spinner
        keeps the loop awake, or requests are pending within the spin after the
        last activity (:func:`spin_seconds`)."""
        if self.spinner.loop_awake:  # this spinner or the ask spinner (one count per loop)
            return True
        return bool(self._pending) and (
            time.perf_counter() - self._last_activity < self._spin_seconds
        )

    def _asleep_armed(self) -> bool:
        """True while the engine sleeps on the armed worker's descriptor, with no
        spin after activity configured (:func:`spin_seconds` 0) and no spinner
        keeping the loop awake: a receive waiting for a message then needs no
        wake-up, since the message signals the descriptor (:meth:`_on_readable`).
        With a spin, a new request wakes the engine to poll for it (the spin
        starts there)."""
        sleep = self._sleep
        return (
            self._spin_seconds <= 0
            and sleep is not None
            and not sleep.done()
            and not self._must_poll()
        )

    def _on_readable(self) -> None:
        """The worker's descriptor became readable while the engine sleeps on it:
        progress, settle completed requests and re-arm here, in the loop's
        callback (a waiter runs on the next turn of the loop, and the engine's
        task does not run at all); the engine wakes only when it must poll, or
        when the worker stays busy after :data:`_ARM_TRIES` arms."""
        self._pass()
        if not self._must_poll():
            for _ in range(_ARM_TRIES):
                if self.worker.arm():
                    return  # armed: sleep on
                self._pass()  # events came meanwhile (UCX drains its signals per arm)
        self._wake()

    def _watch(self, on: bool) -> None:
        """Watch the worker's descriptor from the loop (``on``), or stop."""
        if on:
            self.loop.add_reader(self._fd, self._on_readable)
        else:
            self.loop.remove_reader(self._fd)
        self._watching = on

    async def _run(self) -> None:
        # No local reference to the worker here: a cancelled task's frame may
        # outlive it, and close() must free the worker.
        while not self.closed:
            if self._step():
                parked = self._park()
                await (asyncio.sleep(0) if parked is None else parked)
                continue
            sleep = self._sleep = self.loop.create_future()
            if self._tick is None:  # one timer per tick, not per sleep
                self._tick = self.loop.call_later(IDLE_TICK_SECONDS, self._on_tick)
            try:
                await sleep
            finally:
                self._sleep = None

    def _on_tick(self) -> None:
        """The idle tick: wake a sleeping engine (at most IDLE_TICK_SECONDS after it
        fell asleep; the next sleep schedules the next tick)."""
        self._tick = None
        self._wake()

    def close(self) -> None:
        """Stop progressing (the worker is freed when unreferenced); idempotent."""
        if self.closed:
            return
        self.closed = True
        if _engines.get(self.loop) is self:
            del _engines[self.loop]
        self._task.cancel()
        del self._task
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._watching and not self.loop.is_closed():
            self._watch(False)
        for _ in range(3):  # let cancelled requests complete: they hold the worker
            self.worker.progress()
        for p in self._pending:
            if not p.future.done():
                _fail(p.future, PeerLost("ucx engine closed"))
        self._pending.clear()
        self.worker = None
        self.context = None
