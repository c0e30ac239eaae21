"""How an ``mpi://`` link waits for its next header message, and its doorbell.

MPI cannot wake an event loop, so a link waits for a header message in two
stages (see :mod:`actors.transports.mpi._runtime` for the measurements): it
polls from the waiting task for an adaptive spin budget, then hands the wait
to the loop's poller, which naps. A message may also come on the side lane
(:mod:`actors.transports.mpi._sidelane`); :meth:`HeaderWait.next_message`
finds the lane that holds the next one. The doorbell on the side channel
(:mod:`actors.transports.mpi._side`) cuts a nap short: a side whose waits nap
tells its peer once (``napping``), the peer then rings after every send until
told ``awake``, and the waits then sleep on that ring instead of polling.
:class:`HeaderWait` holds both directions of that state for one link. Loop
rules: the link's loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ...settings import MPI_MAX_SLEEP_S, MPI_MIN_SPINS, MPI_SHORT_NAPS_S, mpi_spin_s
from .._spin import loop_spinner
from ._inbox import Inbox
from ._side import SideChannel
from ._sidelane import SideLane

__all__ = ["SPIN_FLOOR_S", "HeaderWait"]

SPIN_FLOOR_S = 20e-6  # smallest non-zero spin budget of a header wait


class HeaderWait:
    """The header waits of one link's ``inbox`` and the doorbell to its peer.

    ``check_open()`` raises PeerLost once the link is closed or lost;
    ``closed()`` says whether it was closed (no doorbell writes then). The
    spin settings (``ACTORS_MPI_SPIN_S``, ``ACTORS_MPI_MIN_SPINS``) are read here.
    """

    def __init__(
        self, inbox: Inbox, check_open: Callable[[], None], closed: Callable[[], bool]
    ) -> None:
        self._inbox = inbox
        self._check_open = check_open
        self._closed = closed
        self._max_spin_s = mpi_spin_s()
        self._spin_s = self._max_spin_s  # the budget now: adapted by _adapt_spin
        self._min_spins = MPI_MIN_SPINS.get()
        #: the loop's spinner (``ACTORS_LOOP_SPIN_US``): kicked by every message sent
        #: or received; while it keeps the loop awake, a header wait polls instead of napping
        self.spinner = loop_spinner(asyncio.get_running_loop())
        self._side: SideChannel | None = None
        self.peer_naps = False  # the peer's header waits nap: ring on every send
        self._naps_told = False  # we told the peer that ours nap (until we say awake)
        self._naps_told_at = 0.0  # loop time when we told it
        self._bell: asyncio.Future[None] | None = None  # a wait for the peer's ring
        self._polled: asyncio.Future[bool] | None = None  # a wait on the spinner's polls
        self._bell_s = MPI_MAX_SLEEP_S.get()  # the longest such wait without a poll
        self._settle_s = MPI_SHORT_NAPS_S.get()  # after telling: the peer may not ring yet

    def attach(self, side: SideChannel) -> None:
        """The link's side channel is up: the doorbell writes on it."""
        self._side = side

    def sent(self) -> None:
        """We just sent the peer a message: ring while its header waits nap."""
        if self.peer_naps and self._side is not None:
            self._side.ring()
        self.spinner.kick()

    async def next_message(self, seq: int, lane: SideLane) -> bool:
        """Wait until message number ``seq`` is next on one of the two lanes:
        True when it is on the side ``lane``, False when the inbox holds it
        (or holds a header message too short to be numbered: its parse says
        why). A header message in the inbox that is ahead waits for the side-lane
        messages before it. Cancel-safe; raises as :meth:`wait` does, and what
        the lane's :meth:`~SideLane.fail` set."""
        inbox = self._inbox
        while True:
            if lane.ready(seq):
                return True
            if not inbox.ready():
                await self.wait(lane, seq)
            elif inbox.seq() in (seq, None):
                return False
            else:  # ahead of a side-lane message still on its way
                await lane.arrival()

    async def wait(self, lane: SideLane, seq: int) -> None:
        """Wait until the inbox is ready or message ``seq`` is next on the side
        ``lane`` (:mod:`._sidelane`, whose arrivals interrupt the inbox's
        wait): poll from this task for the link's spin budget (and at
        least ``ACTORS_MPI_MIN_SPINS`` times), then leave it to the poller's
        naps, which the peer's doorbell cuts short. Once the peer rings for
        every message (told longer than ``ACTORS_MPI_SHORT_NAPS_S`` ago), the
        wait first sleeps on the ring alone, for at most
        ``ACTORS_MPI_MAX_SLEEP_S`` (a lost ring costs that much), and goes to
        the poller only when that ends with nothing there. While the loop's
        spinner keeps the loop awake (``ACTORS_LOOP_SPIN_US``, kicked by
        traffic), the wait polls on the spinner's turns instead, however long
        (:meth:`_poll_awake`: no task step of its own per turn), and naps
        only once the spinner stops.

        The budget adapts (:meth:`_adapt_spin`): it stays at most
        ``ACTORS_MPI_SPIN_S`` while messages come within that, and drops to 0
        while they come later. Spinning costs a core and, in a process whose
        modules run in worker threads, the GIL they need: on real events (the
        dimuon job, a reply every few ms) a fixed 2 ms spin made mpi:// the
        slowest transport. Cancel-safe (nothing is lost). Raises PeerLost once
        the link is closed or lost, also when a header message came in
        meanwhile (it stays in for the close-time drain); MPI errors of the
        header receive propagate."""
        loop = asyncio.get_running_loop()
        inbox = self._inbox
        start = loop.time()
        budget = self._spin_s
        if self.spinner.spinning:
            if await self._poll_awake(lane, seq):
                self._adapt_spin(loop.time() - start)
                return
        elif budget > 0.0 or self._min_spins:
            deadline = start + budget
            spins = 0
            while True:
                await asyncio.sleep(0)
                self._check_open()
                if inbox.ready() or (lane.pending and lane.ready(seq)):
                    self._adapt_spin(loop.time() - start)
                    return
                spins += 1
                if spins >= self._min_spins and loop.time() > deadline:
                    break
        if not (self._rung(loop) and await self._wait_for_ring(lane, seq)):
            while True:
                await inbox.wait(self._napping)
                self._check_open()
                if inbox.ready() or lane.ready(seq):
                    break
        self._adapt_spin(loop.time() - start)

    async def _poll_awake(self, lane: SideLane, seq: int) -> bool:
        """While the loop's spinner keeps it awake, poll on its turns
        (:meth:`LoopSpinner.poll`): True once the inbox is ready or message
        ``seq`` is next on the side ``lane``, False once the spinner stops
        first. A ring (:meth:`ring`: the peer's doorbell, a side-lane arrival,
        the link lost) ends a poll early to check again. Raises as
        :meth:`wait`."""
        inbox = self._inbox

        def there() -> bool:
            return inbox.ready() or (lane.pending and lane.ready(seq))

        while True:
            polled = self.spinner.poll(there)
            if polled is None:  # the loop sleeps again
                self._check_open()
                return there()
            self._polled = polled
            try:
                found = await polled
            finally:
                self._polled = None
                polled.cancel()  # no-op once done; a cancelled wait drops the poll
            self._check_open()
            if found or there():
                return True
            if not self.spinner.spinning:
                return False

    def _rung(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True when the peer rings for every message it sends us: it was told
        that our waits nap long enough ago to have read it."""
        return self._naps_told and loop.time() - self._naps_told_at > self._settle_s

    async def _wait_for_ring(self, lane: SideLane, seq: int) -> bool:
        """Wait for the peer's ring (or side-lane message) without the poller,
        for at most ``ACTORS_MPI_MAX_SLEEP_S``: True when a message is then
        there, False to wait through the poller."""
        loop = asyncio.get_running_loop()
        bell = self._bell = loop.create_future()
        handle = loop.call_later(self._bell_s, _ring, bell)
        try:
            await bell
        finally:
            handle.cancel()
            self._bell = None
        self._check_open()
        # the side lane first: a side-lane message needs no MPI call (an MPI test
        # cost 4-5 µs in the offload example's remote process with sleeping loops)
        return lane.ready(seq) or self._inbox.ready()

    def ring(self) -> None:
        """The peer rang (a message is on its way) or the link failed: end a
        wait for the ring now."""
        if self._bell is not None:
            _ring(self._bell)
        polled = self._polled
        if polled is not None and not polled.done():
            polled.set_result(False)

    def arrived(self) -> None:
        """A side-lane message arrived: end the wait now, whether it sleeps on
        the ring or waits in the poller."""
        self._inbox.interrupt()
        self.ring()

    def _adapt_spin(self, waited: float) -> None:
        """Learn from one header wait of ``waited`` s: a message that came
        within the largest budget grows it (to twice the wait, at least
        :data:`SPIN_FLOOR_S`); a later one halves it, down to 0 (nap at once)."""
        top = self._max_spin_s
        if waited <= top:
            self._spin_s = min(top, max(2.0 * self._spin_s, 2.0 * waited, SPIN_FLOOR_S))
        elif self._spin_s > SPIN_FLOOR_S:
            self._spin_s /= 2.0
        else:
            self._spin_s = 0.0
        if self._naps_told and 0.0 < top <= self._spin_s and self._side is not None:
            self._naps_told = False  # spinning pays again: the peer may stop ringing
            self._side.awake()

    def _napping(self) -> None:
        """Our header wait naps: tell the peer once, so that it rings on every
        send (one side-channel write per message, like tcp's, instead of a
        "napping" and a "ring" write per message) until :meth:`_adapt_spin`
        says awake."""
        if not self._naps_told and self._side is not None and not self._closed():
            self._naps_told = True
            self._naps_told_at = asyncio.get_running_loop().time()
            self._side.napping()


def _ring(bell: asyncio.Future[None]) -> None:
    if not bell.done():
        bell.set_result(None)
