"""The launcher's side of stall reports (``--stall-report S``).

Every process started by ``python -m actors.run`` prints a stall report on
``SIGUSR1`` (:mod:`actors.framework.stall`); under the launcher it is one
:data:`~actors.framework.stall.STALL_MARK` line on stdout. Here:

* :func:`start_watch` starts a task that asks every process for a report
  (SIGUSR1, see :func:`request_reports`) when the launcher itself gets
  SIGUSR1, when no event completed for ``S`` seconds (by the processes'
  progress lines; again after each further ``S`` seconds of stall), and once
  shortly before ``--timeout`` stops everything. It ends by itself when
  every child has ended.
* :func:`print_report` prints a report line as a block under the process's name.
* :func:`watch_progress` is that watch without processes: the embedded
  engine (every process in the launcher) uses it with a report of its own jobs.

Signals go to every ``python -m actors.run`` process of each child's
process group that has its SIGUSR1 handler installed (``actors.run`` does it
first thing): the child itself for plain subprocesses, the ranks under
``mpiexec`` if they share its group; anything else is skipped. Loop rules:
the launcher's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from ..framework.stall import STALL_MARK

__all__ = [
    "STALL_MARK",
    "print_report",
    "request_reports",
    "start_watch",
    "targets",
    "watch_progress",
]

_TICK_S = 0.25
#: the report before ``--timeout``: this long before it (at most a quarter of it)
_BEFORE_TIMEOUT_S = 3.0


def targets(pids: list[int], proc: Path = Path("/proc")) -> list[int]:
    """The ``python -m actors.run`` processes of the groups led by ``pids`` that handle SIGUSR1.

    A process still starting (handler not installed yet) is left out: the
    default action of SIGUSR1 would kill it; so are other programs of the
    group (``mpiexec`` and its proxies give SIGUSR1 other meanings). Without
    a readable ``/proc`` nobody is signalled.
    """
    groups = set(pids)
    found: list[int] = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            if int(fields[2]) not in groups:
                continue
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile, or not ours
            continue
        if _runs_actors(command) and _catches_sigusr1(status):
            found.append(int(entry.name))
    return sorted(found)


def _runs_actors(command: list[bytes]) -> bool:
    """``python [options] -m actors.run ...`` (not mpiexec, whose arguments name it too)."""
    if not command or "python" not in Path(command[0].decode(errors="replace")).name:
        return False
    return any(a == b"-m" and b == b"actors.run" for a, b in itertools.pairwise(command[1:6]))


def _catches_sigusr1(status: str) -> bool:
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGUSR1 - 1) & 1)
    return False


def request_reports(pids: list[int]) -> int:
    """Send SIGUSR1 to every ``actors.run`` process of those groups; returns how many."""
    sent = 0
    for pid in targets(pids):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGUSR1)
            sent += 1
    return sent


def print_report(line: str, name: str, console: Console) -> bool:
    """Print one STALL_MARK line as a block for process ``name``; False if malformed."""
    try:
        info = json.loads(line[len(STALL_MARK) :])
        text = str(info["text"])
    except (ValueError, KeyError, TypeError):
        return False
    console.rule(Text(f"stall report: process {name!r}", style="bold yellow"))
    for row in text.splitlines():
        console.print(Text(row), highlight=False, soft_wrap=True)
    return True


_running: set[asyncio.Task[None]] = set()


def start_watch(
    children: list[asyncio.subprocess.Process],
    done: Callable[[], int],
    console: Console,
    stall_s: float | None,
    timeout: float | None,
) -> None:
    """Start the watch task; ``done()``: events done so far.

    The task forwards SIGUSR1 sent to the launcher to every process (when
    this runs on the main thread's loop and SIGUSR1 is not handled already),
    asks for reports after ``stall_s`` seconds without progress (None: never)
    and before ``timeout``, and ends by itself once every child has ended.
    """
    task = asyncio.get_running_loop().create_task(
        _watch(children, done, console, stall_s, timeout), name="stall report watch"
    )
    _running.add(task)
    task.add_done_callback(_running.discard)


def _forward_sigusr1(children: list[asyncio.subprocess.Process], console: Console) -> bool:
    if signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL:
        return False  # someone else's (e.g. a notebook's): leave it
    try:
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGUSR1, _ask, children, console, "SIGUSR1 to the launcher"
        )
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
        return False
    return True


async def _watch(
    children: list[asyncio.subprocess.Process],
    done: Callable[[], int],
    console: Console,
    stall_s: float | None,
    timeout: float | None,
) -> None:
    forwarding = _forward_sigusr1(children, console)
    try:
        await watch_progress(
            lambda: any(p.returncode is None for p in children),
            done,
            functools.partial(_ask, children, console),
            stall_s,
            timeout,
        )
    finally:
        if forwarding:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)


async def watch_progress(
    alive: Callable[[], bool],
    done: Callable[[], int],
    ask: Callable[[str], None],
    stall_s: float | None,
    timeout: float | None,
) -> None:
    """Call ``ask(why)`` when ``done()`` (events done so far) has not changed for
    ``stall_s`` seconds (None: never; again after each further ``stall_s``) and,
    unless ``stall_s`` is None, once shortly before ``timeout``; return when
    ``alive()`` is false. Runs on the caller's loop until then or cancelled.
    """
    start = last_change = time.monotonic()
    last_done = done()
    before_timeout = None
    if timeout is not None and stall_s is not None:
        before_timeout = start + timeout - min(_BEFORE_TIMEOUT_S, timeout / 4)
    while alive():
        await asyncio.sleep(_TICK_S)
        now = time.monotonic()
        if done() != last_done:
            last_done, last_change = done(), now
        elif stall_s is not None and now - last_change >= stall_s:
            ask(f"no event completed for {now - last_change:.0f} s")
            last_change = now  # the next report after another stall_s
        if before_timeout is not None and now >= before_timeout:
            before_timeout = None
            ask("the --timeout is about to stop every process")


def _ask(children: list[asyncio.subprocess.Process], console: Console, why: str) -> None:
    alive = [p.pid for p in children if p.returncode is None]
    sent = request_reports(alive)
    console.print(f"[yellow]{why}: asked {sent} process(es) for a stall report (SIGUSR1)[/yellow]")
