"""MPI runtime for ``mpi://``: lazy initialisation and the asyncio progress engine.

Nothing here runs at ``import actors``: :func:`load_mpi` imports ``mpi4py.MPI``
(which calls ``MPI_Init_thread``) on the first ``listen``/``connect``.

Progress engine - adaptive polling, chosen by measurement
----------------------------------------------------------
MPI cannot wake an event loop: there is no file descriptor to wait on. Two ways
out were measured on the 2-core development machine (mpich 5.0.2 wheel):

- a *progress thread* blocking in ``Probe``/``Wait`` costs a whole core while
  the link is quiet (measured idle CPU 99 % of a core for ``Probe`` and for
  ``Wait``: MPICH's blocking calls spin), plus a thread hop
  (``call_soon_threadsafe``) per completion;
- *adaptive polling* from the loop, in three stages:

  1. the waiting task tests its own request first and, if nothing is there,
     keeps testing it between ``asyncio.sleep(0)`` yields for the link's
     adaptive spin budget (at most ``ACTORS_MPI_SPIN_S``; 0 while replies come
     later than that: spinning takes the core, and the GIL, from the
     process's worker threads; see :mod:`._headerwait`), so that a quick
     ping-pong partner costs no future, task switch or timer per message;
  2. then it hands the request to the loop's :class:`Poller`, which naps
     :data:`SHORT_NAP_S` (1 ms) between polls for ``ACTORS_MPI_SHORT_NAPS_S``
     after that hand-over (a nap shorter than the peer's spin, so that two
     sides of a ping-pong that both fell back cannot keep each other waiting:
     measured before this rule, such cascades put 10 % of 8-byte round trips
     at 2-10 ms);
  3. then the naps double, from the short nap, up to ``ACTORS_MPI_MAX_SLEEP_S``
     (also with ``ACTORS_MPI_SHORT_NAPS_S=0``: a passive wait never polls
     without a nap).

  4. the doorbell: the header wait tells the peer on the TCP side channel
     that it naps (``n``); the peer's next send writes ``w``, whose arrival
     wakes the loop, which calls :meth:`Poller.ring` (see
     :mod:`actors.transports.mpi._side`). Without it, a loaded machine made
     every rendezvous send wait for the receiver's nap (1 MiB one way, 1
     stream, one extra busy process on 2 cores: 166 -> 1,309 events/s).

  Measured idle CPU of a process holding a quiet link with a pending ``recv``:
  1 % of a core (both modes, 10 ms cap; 3 % with a 5 ms cap). The price: the
  first message after a quiet spell waits up to ``ACTORS_MPI_MAX_SLEEP_S``.

Payload transfers (posted ``Isend``/``Irecv``) always spin, because MPICH
moves rendezvous data only inside progress calls; only *passive* waits (the
header receive, the rank listener's probe) back off. Knobs (environment, see
:mod:`actors.settings`, read when a poller or link starts): ``ACTORS_MPI_SPIN_S``,
``ACTORS_MPI_MIN_SPINS``, ``ACTORS_MPI_SHORT_NAPS_S``, ``ACTORS_MPI_MAX_SLEEP_S``.

Requests are tested one by one with ``Request.Test``: mpi4py's
``Request.Testall`` allocates request arrays per call and cost 2.5 us against
0.3 us for one ``Test`` on the development machine.

Loop rules: one :class:`Poller` per event loop (see :func:`poller`); every
MPI call of the data path happens on the loop thread. Blocking collective calls
(``Accept``/``Connect``/``Create_group``) run in worker threads, which is why MPI
is initialised with ``MPI_THREAD_MULTIPLE``; ``Accept``/``Connect`` go through
:func:`actors.transports.mpi._setup.run_setup_call`, one at a time per process
(see there why).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import BackendUnavailable, ConfigError
from ...settings import MPI_CUDA_AWARE, MPI_MAX_SLEEP_S, MPI_SHORT_NAPS_S

__all__ = [
    "Poller",
    "abandon",
    "cuda_aware",
    "load_mpi",
    "poller",
]

#: the poller's shortest nap between two polls of a passive wait
SHORT_NAP_S = 0.001

_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = weakref.WeakKeyDictionary()
_cuda_aware: bool | None = None


def load_mpi() -> Any:
    """Import and initialise ``mpi4py.MPI`` with ``MPI_THREAD_MULTIPLE``.

    Raises BackendUnavailable("mpi4py", "mpi") when mpi4py or its MPI library is
    missing, and ConfigError when MPI was already initialised by someone else
    with a lower thread level.
    """
    try:
        import mpi4py
    except ImportError as exc:
        raise BackendUnavailable("mpi4py", "mpi", str(exc)) from exc
    if "mpi4py.MPI" not in sys.modules:
        mpi4py.rc.threads = True
        mpi4py.rc.thread_level = "multiple"
    try:
        from mpi4py import MPI
    except ImportError as exc:  # mpi4py present, libmpi missing or broken
        raise BackendUnavailable("mpi4py", "mpi", f"cannot load the MPI library: {exc}") from exc
    provided = MPI.Query_thread()
    if provided < MPI.THREAD_MULTIPLE:
        raise ConfigError(
            f"MPI was initialised with thread level {provided} before mpi:// was used; "
            "mpi:// needs MPI_THREAD_MULTIPLE: set mpi4py.rc.thread_level = 'multiple' "
            "before importing mpi4py.MPI (or let hep-actors import it)"
        )
    return MPI


def cuda_aware() -> bool:
    """True if the loaded MPI library can send/receive CUDA device memory.

    ``ACTORS_MPI_CUDA_AWARE=0/1`` overrides; otherwise asks the library through
    ``MPIX_Query_cuda_support`` (MPICH, Open MPI) and answers False when the
    query is not available.
    """
    global _cuda_aware
    forced = MPI_CUDA_AWARE.get()
    if forced is not None:
        return forced
    if _cuda_aware is None:
        _cuda_aware = _query_cuda_support()
    return _cuda_aware


def _query_cuda_support() -> bool:
    load_mpi()
    mode = getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_GLOBAL", 0)
    for name in ("libmpi.so.12", "libmpi.so.40", "libmpi.so"):
        try:
            lib = ctypes.CDLL(name, mode=mode)
            query = lib.MPIX_Query_cuda_support
        except (OSError, AttributeError):
            continue
        query.restype = ctypes.c_int
        return bool(query())
    return False


@dataclass(eq=False)
class _Op:
    requests: list[Any]
    future: asyncio.Future[None]
    keep: Any  # buffers that must stay alive until the requests complete
    status: Any = None  # filled by the completing Test (one request only)


@dataclass(eq=False)
class _Probe:
    comm: Any
    source: int
    tag: int
    future: asyncio.Future[tuple[Any, int, int]]
    status: Any = field(default=None)


#: Operations abandoned with their link (dead peer): buffers kept alive forever,
#: since MPI may still touch them and cannot cancel a send.
_graveyard: list[_Op] = []


def abandon(requests: list[Any], keep: Any) -> None:
    """Forget requests whose peer is gone, keeping their buffers alive."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.cancel()
    _graveyard.append(_Op(requests, fut, keep))


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark as retrieved: nobody may await an abandoned op


class Poller:
    """Drives MPI progress for one event loop by adaptive polling.

    :meth:`submit` watches posted requests, :meth:`probe` waits for a matching
    message; both return futures resolved on the loop. A future completed from
    outside (e.g. its link set PeerLost on it) or cancelled makes the poller
    forget the entry. Never blocks the loop.
    """

    def __init__(self, mpi: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._mpi = mpi
        self._loop = loop
        self._ops: list[_Op] = []  # transfers in flight: spin
        self._passive: list[_Op] = []  # waits for the peer: back off
        self._probes: list[_Probe] = []
        self._work = asyncio.Event()
        self._nap: asyncio.Future[None] | None = None
        self._last_active = loop.time()
        self._task: asyncio.Task[None] | None = None
        self._last_wait = self._last_active
        # the backoff settings, read when the poller starts (actors.settings)
        self._short_naps_s = MPI_SHORT_NAPS_S.get()
        self._max_sleep_s = MPI_MAX_SLEEP_S.get()

    def submit(
        self, requests: Sequence[Any], keep: Any, *, passive: bool = False, status: Any = None
    ) -> asyncio.Future[None]:
        """Future resolved when all ``requests`` complete (MPI errors -> exception).

        ``passive`` marks a wait for the peer to start something (a posted
        header receive, after its waiter already spun): it backs off at once
        instead of spinning like transfers in flight. ``status`` (an
        ``MPI.Status``, with a single request) receives the completion status.
        """
        fut: asyncio.Future[None] = self._loop.create_future()
        fut.add_done_callback(_retrieve)
        op = _Op(list(requests), fut, keep, status)
        if passive:
            self._passive.append(op)
        else:
            self._ops.append(op)
            self._last_active = self._loop.time()
        self._kick()
        return fut

    def probe(self, comm: Any, source: int, tag: int) -> asyncio.Future[tuple[Any, int, int]]:
        """Future of ``(MPI.Message, byte count, source)`` for the next matching message."""
        fut: asyncio.Future[tuple[Any, int, int]] = self._loop.create_future()
        fut.add_done_callback(_retrieve)
        self._probes.append(_Probe(comm, source, tag, fut, self._mpi.Status()))
        self._last_active = self._loop.time()
        self._kick()
        return fut

    def ring(self) -> None:
        """A peer says a message is on its way: poll now, then short naps
        (the doorbell of :mod:`actors.transports.mpi._side`)."""
        if self._passive or self._probes or self._ops:
            self._kick()

    def _kick(self) -> None:
        self._last_wait = self._loop.time()  # restarts the backoff at short naps
        self._work.set()
        if self._nap is not None and not self._nap.done():
            self._nap.set_result(None)
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="actors-mpi-poller")

    async def _run(self) -> None:
        delay = 0.0
        while True:
            if not self._ops and not self._passive and not self._probes:
                self._work.clear()
                await self._work.wait()
            if self.poll_once():
                self._last_active = self._loop.time()
            now = self._loop.time()
            if self._ops:  # transfers in flight: MPI moves data only inside progress calls
                await asyncio.sleep(0)
                continue
            if now - max(self._last_active, self._last_wait) < self._short_naps_s:
                delay = SHORT_NAP_S
            else:  # from the short nap up, also when there were no short naps
                delay = min(self._max_sleep_s, max(SHORT_NAP_S, delay * 2))
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        nap: asyncio.Future[None] = self._loop.create_future()
        self._nap = nap
        handle = self._loop.call_later(delay, _wake, nap)
        try:
            await nap
        finally:
            handle.cancel()
            self._nap = None

    def poll_once(self) -> bool:
        """Test every watched request and probe once; True if anything completed."""
        progressed = False
        if self._ops:
            self._ops, done = self._test_all(self._ops)
            progressed |= done
        if self._passive:
            self._passive, done = self._test_all(self._passive)
            progressed |= done
        if self._probes:
            waiting: list[_Probe] = []
            for pr in self._probes:
                if pr.future.done():
                    continue
                if self._try_probe(pr):
                    progressed = True
                else:
                    waiting.append(pr)
            self._probes = waiting
        return progressed

    def _test_all(self, ops: list[_Op]) -> tuple[list[_Op], bool]:
        keep: list[_Op] = []
        progressed = False
        for op in ops:
            if op.future.done():  # abandoned by its waiter: not ours any more
                continue
            if self._test(op):
                progressed = True
            else:
                keep.append(op)
        return keep, progressed

    def _test(self, op: _Op) -> bool:
        # One Test per request: far cheaper than Request.Testall (which
        # allocates arrays), and a completed persistent request is dropped
        # before a second Test could overwrite its status.
        status = op.status
        try:
            op.requests = [r for r in op.requests if not r.Test(status)]
        except self._mpi.Exception as exc:
            op.future.set_exception(exc)
            return True
        if op.requests:
            return False
        op.future.set_result(None)
        return True

    def _try_probe(self, pr: _Probe) -> bool:
        try:
            msg = pr.comm.Improbe(pr.source, pr.tag, pr.status)
        except self._mpi.Exception as exc:
            pr.future.set_exception(exc)
            return True
        if msg is None:
            return False
        status = pr.status
        pr.future.set_result((msg, status.Get_count(self._mpi.BYTE), status.Get_source()))
        return True


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def poller() -> Poller:
    """The poller of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    p = _pollers.get(loop)
    if p is None:
        p = Poller(load_mpi(), loop)
        _pollers[loop] = p
    return p
