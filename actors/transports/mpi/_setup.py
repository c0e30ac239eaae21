"""Blocking MPI setup calls of ``mpi://``, one at a time per process, off the loop.

``Comm.Accept`` and ``Comm.Connect`` block until the peer makes the matching
call, so they cannot run on the event loop; :func:`run_setup_call` runs them in
one daemon thread per process (started on first use), in submission order.
Loop rules: :func:`run_setup_call` is awaited on a loop; the call itself runs
in the setup thread and its outcome comes back with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["run_setup_call"]


async def run_setup_call(call: Callable[[], Any], timeout: float) -> Any:
    """Run a blocking MPI setup call (``Comm.Accept``, ``Comm.Connect``) in the
    process's setup thread, never two at once in this process; return its result.

    Why one at a time: both are collective over ``COMM_SELF``, and MPI leaves
    the ordering of collective calls that threads issue concurrently to the
    user. A controller connecting two ``mpi://port-file`` links at once ran two
    ``Connect`` calls in two worker threads, and MPICH crashed with a
    segmentation fault in about 1 run in 3 (a private ``COMM_SELF.Dup()`` per
    call did not help: MPICH's dynamic-process state is shared).

    One daemon thread per process runs the calls in submission order (a call
    that never returns, its peer gone, does not block interpreter exit). Raises
    TimeoutError after ``timeout`` s; a caller that gives up (timeout,
    cancellation) before its call started withdraws it, one whose call is
    running drops the outcome. MPI errors raised by the call propagate.

    Limitation: setups of one process are serialised, so processes that set
    up links to each other in a cycle at the same moment (A accepts from B
    while B accepts from A) wait for each other until ``timeout``.
    """
    job = _SetupJob(call, asyncio.get_running_loop())
    _setup_queue().put(job)
    try:
        async with asyncio.timeout(timeout):
            return await job.result
    finally:
        job.withdrawn.set()


@dataclass(eq=False)
class _SetupJob:
    call: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    result: asyncio.Future[Any] = field(init=False)
    withdrawn: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.result = self.loop.create_future()

    def run(self) -> None:
        """In the setup thread: run the call, hand its outcome to the loop."""
        if self.withdrawn.is_set():
            return
        try:
            outcome, error = self.call(), None
        except Exception as exc:  # mpi4py raises MPI.Exception
            outcome, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self.loop.call_soon_threadsafe(self._finish, outcome, error)

    def _finish(self, outcome: Any, error: BaseException | None) -> None:
        if self.result.done():
            return  # the caller gave up
        if error is not None:
            self.result.set_exception(error)
        else:
            self.result.set_result(outcome)


_setup_jobs: queue.SimpleQueue[_SetupJob] | None = None
_setup_start = threading.Lock()


def _setup_queue() -> queue.SimpleQueue[_SetupJob]:
    """The queue of the setup thread (started on first use)."""
    global _setup_jobs
    with _setup_start:
        if _setup_jobs is None:
            jobs: queue.SimpleQueue[_SetupJob] = queue.SimpleQueue()
            threading.Thread(
                target=_serve_setup, args=(jobs,), name="actors-mpi-setup", daemon=True
            ).start()
            _setup_jobs = jobs
        return _setup_jobs


def _serve_setup(jobs: queue.SimpleQueue[_SetupJob]) -> None:
    while True:
        jobs.get().run()
