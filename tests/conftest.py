"""Suite-wide fixtures and leak checks.

After the whole session, no shared-memory segment named ``hep-actors-*`` may be
left in /dev/shm, no ``mpich_shm_*`` segment created during the session may be
left unless a live process still maps it, and no child process of the test
runner may still run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "hep-actors-"
MPICH_PREFIX = "mpich_shm_"  # MPICH's intra-node segment; a SIGKILLed rank leaves it
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def _shm_segments(prefix: str = SHM_PREFIX) -> set[str]:
    if not SHM_DIR.is_dir():
        return set()
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(prefix)}


def _mapped_by_a_live_process(name: str) -> bool:
    needle = str(SHM_DIR / name)
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            if needle in maps.read_text():
                return True
        except OSError:  # the process ended meanwhile, or is not ours to read
            continue
    return False


def orphan_mpich_segments(before: set[str]) -> set[str]:
    """MPICH segments created since ``before`` that no live process maps."""
    return {n for n in _shm_segments(MPICH_PREFIX) - before if not _mapped_by_a_live_process(n)}


def remove_orphan_mpich_segments(before: set[str]) -> set[str]:
    """Unlink what :func:`orphan_mpich_segments` finds (a killed rank's leftovers)."""
    orphans = orphan_mpich_segments(before)
    for name in orphans:
        (SHM_DIR / name).unlink(missing_ok=True)
    return orphans


@pytest.fixture
def mpich_segments_of_killed_ranks() -> Iterator[None]:
    """For tests that SIGKILL an MPI process: remove the segment MPICH leaves behind."""
    before = _shm_segments(MPICH_PREFIX)
    yield
    remove_orphan_mpich_segments(before)


def _children() -> list[int]:
    import psutil  # declared in the [dev] extra: the leak checks never switch themselves off

    return [c.pid for c in psutil.Process(os.getpid()).children(recursive=True)]


@pytest.fixture(scope="session", autouse=True)
def no_leaks_after_suite() -> Iterator[None]:
    before = _shm_segments()
    mpich_before = _shm_segments(MPICH_PREFIX)
    yield
    leaked = (_shm_segments() - before) | orphan_mpich_segments(mpich_before)
    assert not leaked, f"shared-memory segments left behind: {sorted(leaked)}"
    children = _children()
    assert not children, f"child processes left behind: {children}"


@pytest.fixture
def shared_data() -> Path:
    """The folder of real CMS Open Data files; skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA
