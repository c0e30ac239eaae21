"""The suite's /dev/shm leak check (tests/conftest.py) judges only what the
session's own processes created: an MPI job of someone else on the machine
never fails the suite, a segment our child process leaves does."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import SHM_DIR, SessionProcesses

# Maps /dev/shm/<name> (created here) and says so; unlinks it when <done> exists.
_HOLDER = """
import mmap, os, sys, time
name, ready, done, detach, unlink = sys.argv[1:6]
if detach == "1":  # leave the test runner's process tree: a stranger's process
    parent = os.getppid()
    if os.fork():
        os._exit(0)
    while os.getppid() == parent:
        time.sleep(0.01)
fd = os.open("/dev/shm/" + name, os.O_CREAT | os.O_RDWR, 0o600)
os.ftruncate(fd, 4096)
mem = mmap.mmap(fd, 4096)
open(ready, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(done) and time.monotonic() < deadline:
    time.sleep(0.01)
mem.close()
if unlink == "1":
    os.unlink("/dev/shm/" + name)
"""


def _hold(tmp: Path, name: str, *, detach: bool, unlink: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _HOLDER,
            name,
            str(tmp / "ready"),
            str(tmp / "done"),
            "1" if detach else "0",
            "1" if unlink else "0",
        ]
    )


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def test_a_segment_of_a_process_outside_the_session_is_not_ours(tmp_path: Path) -> None:
    name = f"mpich_shm_leakcheck_stranger_{tmp_path.name}"
    holder = _hold(tmp_path, name, detach=True, unlink=True)
    try:
        holder.wait(timeout=20)  # the intermediate process exits at once
        _wait_for(tmp_path / "ready")
        watch = SessionProcesses()
        watch.sample()
        assert (SHM_DIR / name).exists()
        assert name not in watch.ours()
    finally:
        (tmp_path / "done").touch()
        deadline = time.monotonic() + 20
        while (SHM_DIR / name).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        (SHM_DIR / name).unlink(missing_ok=True)


def test_a_segment_our_child_leaves_behind_is_reported(tmp_path: Path) -> None:
    name = f"mpich_shm_leakcheck_child_{tmp_path.name}"
    holder = _hold(tmp_path, name, detach=False, unlink=False)
    try:
        _wait_for(tmp_path / "ready")
        watch = SessionProcesses()
        watch.sample()  # the child maps it now
        assert name in watch.ours()
        (tmp_path / "done").touch()
        holder.wait(timeout=20)
        assert watch.left_behind({name}, settle=0.3) == {name}
    finally:
        (tmp_path / "done").touch()
        holder.wait(timeout=20)
        (SHM_DIR / name).unlink(missing_ok=True)


def test_a_segment_removed_while_settling_is_not_a_leak(tmp_path: Path) -> None:
    name = f"mpich_shm_leakcheck_exiting_{tmp_path.name}"
    holder = _hold(tmp_path, name, detach=False, unlink=True)
    try:
        _wait_for(tmp_path / "ready")
        watch = SessionProcesses()
        watch.sample()
        (tmp_path / "done").touch()  # the child unlinks it a moment later
        assert watch.left_behind({name}, settle=10) == set()
    finally:
        (tmp_path / "done").touch()
        holder.wait(timeout=20)
        (SHM_DIR / name).unlink(missing_ok=True)
