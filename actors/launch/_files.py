"""Files of one launched job: link tables, stale addresses, MPICH segments.

- :func:`write_link_files`: under ``mpiexec`` each process's link table (with
  its link secrets) goes in a file of the run directory readable by the user
  only (``ACTORS_LINKS=<file>``), never on the command line (``ps`` shows
  that to everyone). Subprocesses get it in their environment instead.
- :func:`stale_addresses`: the address and port files a dead server leaves
  behind; removed before its replacement starts, so that no client reads them.
- :class:`MpichSegments`: MPICH's intra-node segments (``/dev/shm/mpich_shm_*``)
  of the job. A rank that dies without ``MPI_Finalize`` (killed, crashed,
  Ctrl-C) leaves its segment behind; the launcher removes, at the end, those
  that the job's processes mapped (watched while they run) or that appeared
  during the job and no live process maps - only the user's own, never one a
  live process still uses.

Loop rules: :meth:`MpichSegments.watch` runs on the launcher's loop; the rest
is plain synchronous file work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..distributed.endpoints import ENV_LINKS

if TYPE_CHECKING:
    from .plan import LaunchPlan, ProcessLaunch

__all__ = ["MpichSegments", "link_file", "stale_addresses", "write_link_files"]

SHM_DIR = Path("/dev/shm")
MPICH_PREFIX = "mpich_shm_"
_PORT_FILE = "mpi://port-file/"
_WATCH_S = 0.5


def link_file(proc: ProcessLaunch) -> Path:
    """Where :func:`write_link_files` puts ``proc``'s link table."""
    assert proc.links.rendezvous is not None, "the launcher's tables have a run directory"
    return proc.links.rendezvous / f"{proc.name}.links.json"


def write_link_files(plan: LaunchPlan) -> None:
    """Write every process's link table to :func:`link_file`, mode 0600."""
    for proc in plan.processes:
        fd = os.open(link_file(proc), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(proc.env[ENV_LINKS])


def stale_addresses(proc: ProcessLaunch) -> list[Path]:
    """Address and port files of the links ``proc`` serves (a dead server's are stale)."""
    paths: list[Path] = []
    for endpoint in proc.links.endpoints.values():
        if endpoint.role != "server":
            continue
        if proc.links.rendezvous is not None:
            paths.append(proc.links.rendezvous / f"{endpoint.name}.addr")
        if endpoint.url.startswith(_PORT_FILE):
            paths.append(Path(endpoint.url[len(_PORT_FILE) :]))
    return paths


def _segments() -> set[str]:
    if not SHM_DIR.is_dir():
        return set()
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(MPICH_PREFIX)}


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if len(fields) > 1:
            parents[int(entry.name)] = int(fields[1])  # state ppid ...
    return parents


def _descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them (Hydra's proxies start ranks in new sessions)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def _mapped(pid: str) -> set[str]:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    needle = f"{SHM_DIR}/{MPICH_PREFIX}"
    return {
        line[line.index(needle) + len(str(SHM_DIR)) + 1 :].split()[0]
        for line in maps.splitlines()
        if needle in line
    }


def _mapped_by_anyone() -> set[str]:
    names: set[str] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            names |= _mapped(entry.name)
    return names


class MpichSegments:
    """The ``mpich_shm_*`` segments of one job (see the module doc)."""

    def __init__(self) -> None:
        self.before = _segments()
        self.since = time.time()
        self.seen: set[str] = set()

    def note(self, roots: set[int]) -> None:
        """Record the segments mapped now by ``roots`` (the job's children) and below."""
        for pid in _descendants(roots):
            self.seen |= _mapped(str(pid))

    async def watch(self, roots: Callable[[], set[int]]) -> None:
        """Call :meth:`note` every half second until cancelled."""
        while True:
            await asyncio.to_thread(self.note, roots())
            await asyncio.sleep(_WATCH_S)

    def clean(self) -> list[str]:
        """Remove the job's segments no live process maps; returns their names."""
        new = {name for name in _segments() - self.before if self._ours_since_start(name)}
        candidates = {n for n in (self.seen | new) & _segments() if self._ours(n)}
        if not candidates:
            return []
        removed = sorted(candidates - _mapped_by_anyone())
        for name in removed:
            with contextlib.suppress(OSError):
                (SHM_DIR / name).unlink()
        return removed

    def _ours_since_start(self, name: str) -> bool:
        try:
            return (SHM_DIR / name).stat().st_mtime >= self.since - 1.0
        except OSError:
            return False

    @staticmethod
    def _ours(name: str) -> bool:
        try:
            return (SHM_DIR / name).stat().st_uid == os.getuid()
        except OSError:
            return False
