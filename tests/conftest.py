"""Suite-wide fixtures and leak checks.

After the whole session, no shared-memory segment named ``hep-actors-*`` may be
left in /dev/shm, and no child process of the test runner may still run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "hep-actors-"
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def _shm_segments() -> set[str]:
    if not SHM_DIR.is_dir():
        return set()
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(SHM_PREFIX)}


def _children() -> list[int]:
    try:
        import psutil
    except ImportError:
        return []
    return [c.pid for c in psutil.Process(os.getpid()).children(recursive=True)]


@pytest.fixture(scope="session", autouse=True)
def no_leaks_after_suite() -> Iterator[None]:
    before = _shm_segments()
    yield
    leaked = _shm_segments() - before
    assert not leaked, f"shared-memory segments left behind: {sorted(leaked)}"
    children = _children()
    assert not children, f"child processes left behind: {children}"


@pytest.fixture
def shared_data() -> Path:
    """The folder of real CMS Open Data files; skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA
