"""Stall reports: what the jobs of this process are doing and waiting for.

:func:`report` returns a text with, per running job, the events in flight
(run:lumi:event, stream) and for each the modules running or queued for
their inputs, followed by the sections registered with :func:`register`:
the remote actor links of :mod:`actors.core.remote` (registered here, since
core cannot import the framework: per link session the peer, the requests
pending with their age, the outbox depth, whether reader and writer are
alive), and those of higher layers (the distributed layer adds, per channel,
the receivers waiting with their link, instance, peer and event,
flow-control credits and outbox depths), so that a hang can be read instead
of guessed.

``SIGUSR1`` prints it: :func:`install` (done when the first job of the
process starts, on the main thread, if nothing else handles ``SIGUSR1``)
sets a handler that writes the report to stderr - or, under
``python -m actors.launch`` (``ACTORS_PROGRESS_LINES=1``), one
:data:`STALL_MARK` line on stdout carrying it as JSON, which the launcher
gathers and prints per process.

Thread/loop rules: the handler runs on the main thread; when an event loop
runs there it schedules the report as a loop callback (so the report never
interrupts a half-done write or state change), else it writes it at once.
Providers only read state (they must neither block nor mutate); one that
raises is reported as such, never propagated. A loop blocked by synchronous
code on its thread prints the report once it is free again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .._cli import print_marker
from ..core.remote_stall import describe_remote_links
from ..settings import PROGRESS_LINES

__all__ = ["STALL_MARK", "Job", "emit", "install", "register", "report", "track", "untrack"]

#: Prefix of the stdout line carrying one process's report to the launcher.
STALL_MARK = "@@actors-stall "

Provider = Callable[[], list[str]]


class Job(Protocol):
    """A running job as the stall report sees it (the scheduler's driver)."""

    def describe_stall(self) -> list[str]:
        """Lines about the job (the first names it)."""


_sections: dict[str, Provider] = {}
_jobs: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False


def register(name: str, provider: Provider) -> None:
    """Add (or replace) section ``name``: ``provider()`` returns its lines ([] = omit)."""
    _sections[name] = provider


def track(job: Job) -> None:
    """Include ``job`` until :func:`untrack` (held weakly); installs the SIGUSR1 handler."""
    _jobs.add(job)
    install()


def untrack(job: Job) -> None:
    """Leave ``job`` out from now on (it ended)."""
    _jobs.discard(job)


def report() -> str:
    """The whole report of this process, as text."""
    lines = [f"stall report of pid {os.getpid()} at {time.strftime('%H:%M:%S')}"]
    jobs = list(_jobs)
    if not jobs:
        lines.append("  no job running")
    for job in jobs:
        lines += ["  " + line for line in _call(job.describe_stall, lines) or []]
    for name, provider in list(_sections.items()):
        section = _call(provider, lines)
        if section:
            lines.append(f"  {name}:")
            lines += ["    " + line for line in section]
    return "\n".join(lines)


def _call(fn: Callable[[], Any], lines: list[str]) -> Any:
    try:
        return fn()
    except Exception as exc:  # a report must come out even if one part is broken
        lines.append(f"  ({getattr(fn, '__qualname__', fn)} failed: {exc!r})")
        return None


def emit() -> None:
    """Write :func:`report` out: a STALL_MARK line on stdout under the launcher, else stderr."""
    text = report()
    if PROGRESS_LINES.get():
        print_marker(STALL_MARK, json.dumps({"pid": os.getpid(), "text": text}))
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _on_signal(signum: int, frame: Any) -> None:
    # Interrupting a write to stdout/stderr and writing there again would raise
    # "reentrant call" into the interrupted code: hand the report to the event
    # loop when one runs on this thread (the usual case), else write it now.
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        emit()
    else:
        loop.call_soon_threadsafe(emit)


def install() -> bool:
    """Handle SIGUSR1 with :func:`emit` (once; main thread only; not over another handler).

    Returns True when the handler is in place.
    """
    global _installed
    if _installed:
        return True
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        return False
    if signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None):
        return False  # someone else's: leave it
    signal.signal(signal.SIGUSR1, _on_signal)
    _installed = True
    return True


register("remote actor links", describe_remote_links)
