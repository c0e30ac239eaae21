"""Suite-wide fixtures and leak checks.

The leak checks judge only what this test session's own processes (the test
runner and its descendants) created, never another job's on the machine:

- a watcher thread samples, every :data:`WATCH_S` seconds, the processes of
  the session: their pids and the ``/dev/shm`` segments (``mpich_shm_*``,
  ``hep-actors-*``) they map. MPICH maps its intra-node segment from
  ``MPI_Init`` to ``MPI_Finalize``, so every MPI process of the suite is seen
  with it;
- after the whole session, a segment that one of them mapped, or a
  ``hep-actors-<pid>-*`` one named after one of them, may not be left in
  /dev/shm. An MPI process that is still exiting unmaps its segment a moment
  before it unlinks it, so the check waits up to :data:`SETTLE_S` seconds for
  such segments to go before it fails;
- no child process of the test runner may still run.

Property tests (hypothesis) run under the ``deterministic`` profile, loaded
here: derandomized (the same examples every run), no example database, no
per-example deadline. ``pytest --hypothesis-profile default`` explores at
random instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # declared in the [dev] extra: the leak checks never switch themselves off
import pytest
from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, database=None, deadline=None)
settings.load_profile("deterministic")

SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "hep-actors-"
MPICH_PREFIX = "mpich_shm_"  # MPICH's intra-node segment; a SIGKILLed rank leaves it
PREFIXES = (SHM_PREFIX, MPICH_PREFIX)
WATCH_S = 0.25
SETTLE_S = 5.0
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def _segments() -> set[str]:
    if not SHM_DIR.is_dir():
        return set()
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(PREFIXES)}


def _mapped(pid: int) -> set[str]:
    """Our segments that process ``pid`` maps now (empty if it is gone)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    folder = f"{SHM_DIR}/"
    names = set()
    for line in maps.splitlines():
        at = line.find(folder)
        if at >= 0:
            name = line[at + len(folder) :].split(" ")[0]
            if name.startswith(PREFIXES):
                names.add(name)
    return names


def _mapped_by_anyone() -> set[str]:
    names: set[str] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            names |= _mapped(int(entry.name))
    return names


def _children() -> list[int]:
    return [c.pid for c in psutil.Process(os.getpid()).children(recursive=True)]


class SessionProcesses:
    """What the processes of this test session map in /dev/shm (see the module doc).

    Thread rules: :meth:`sample` may run in any thread; the watcher thread runs
    from :meth:`start` until :meth:`stop`.
    """

    def __init__(self) -> None:
        self.pids: set[int] = {os.getpid()}
        self.seen: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="leak-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_S):
            self.sample()

    def sample(self) -> None:
        """Record the session's processes now and the segments they map."""
        pids = [os.getpid()]
        with contextlib.suppress(psutil.Error):  # a process ended during the walk
            pids += _children()
        found: set[str] = set()
        for pid in pids:
            found |= _mapped(pid)
        with self._lock:
            self.pids.update(pids)
            self.seen |= found

    def ours(self) -> set[str]:
        """Segments in /dev/shm now that a process of the session created or mapped."""
        with self._lock:
            seen, pids = set(self.seen), set(self.pids)
        return {name for name in _segments() if name in seen or _named_after(name, pids)}

    def left_behind(self, names: set[str], settle: float = SETTLE_S) -> set[str]:
        """Those of ``names`` still in /dev/shm after up to ``settle`` seconds in
        which nobody maps them (a process still exiting removes its own)."""
        deadline = time.monotonic() + settle
        while True:
            left = names & _segments()
            if not left or time.monotonic() >= deadline:
                return left - _mapped_by_anyone()
            time.sleep(0.1)


def _named_after(name: str, pids: set[int]) -> bool:
    """``hep-actors-<pid>-<n>`` of one of ``pids``."""
    if not name.startswith(SHM_PREFIX):
        return False
    pid = name[len(SHM_PREFIX) :].split("-", 1)[0]
    return pid.isdigit() and int(pid) in pids


_SESSION = SessionProcesses()


@pytest.fixture
def mpich_segments_of_killed_ranks() -> Iterator[None]:
    """For tests that SIGKILL an MPI process: remove the segment MPICH leaves
    behind (only what the session's processes mapped during the test, once
    nobody maps it any more)."""
    before = _SESSION.ours()
    yield
    _SESSION.sample()
    for name in _SESSION.left_behind(_SESSION.ours() - before):
        (SHM_DIR / name).unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_reaches_children() -> Iterator[None]:
    """Commands the tests start get SIGINT's default disposition, as in a terminal.

    A suite started in the background of a non-interactive shell (``cmd &``,
    ``nohup``) inherits SIGINT ignored, and an ignored signal stays ignored
    across exec: the Ctrl-C tests' commands would never see their SIGINT. A
    handler (unlike SIG_IGN) is reset to the default by exec.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="session", autouse=True)
def no_leaks_after_suite() -> Iterator[None]:
    _SESSION.start()
    yield
    _SESSION.stop()
    leaked = _SESSION.left_behind(_SESSION.ours())
    assert not leaked, f"shared-memory segments left behind: {sorted(leaked)}"
    children = _children()
    assert not children, f"child processes left behind: {children}"


@pytest.fixture
def shared_data() -> Path:
    """The folder of real CMS Open Data files; skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA
