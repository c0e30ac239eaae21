"""Tests of the ``mpi://`` transport.

Tests marked ``mpi`` launch the scripts tests/transports/mpi_*.py under the
venv's ``mpiexec`` (rank mode: one job; port-file mode: one ``mpiexec -n 1``
per side), each in its own process group with a timeout, and kill the whole
group on failure so that no mpiexec/hydra process outlives a test. The other
tests check framing, addresses and lazy import without starting MPI.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.errors import BackendUnavailable, ConfigError, ProtocolError
from actors.launch._files import MpichSegments

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MPIEXEC = Path(sys.executable).with_name("mpiexec")


def _mpiexec() -> str:
    pytest.importorskip("mpi4py", reason="mpi4py not installed (extra [mpi])")
    exe = str(MPIEXEC) if MPIEXEC.exists() else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec found next to the interpreter or on PATH")
    return exe


@pytest.fixture(autouse=True)
def _mpich_segments_of_dead_ranks() -> Iterator[None]:
    """Remove the ``mpich_shm_*`` segments that this test's raw mpiexec jobs left.

    A rank that dies without ``MPI_Finalize`` (the victim below SIGKILLs itself; a
    job killed at its timeout) can leave its segment; the launcher removes those of
    its jobs the same way (``MpichSegments``), these tests start mpiexec themselves.
    """
    segments = MpichSegments()
    yield
    segments.clean()


def _start(results: Path, *args: str, **extra_env: str) -> subprocess.Popen[str]:
    """Start ``mpiexec -n N python script ...``; results go to files in ``results``."""
    results.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), MPI_RESULTS_DIR=str(results), **extra_env)
    cmd = [_mpiexec(), *args[:2], sys.executable, *args[2:]]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: killed as a whole
    )


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish in {timeout} s\n{out}\n{err[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err


def _rows(results: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(results.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _assert_all_checks_passed(rows: list[dict[str, Any]], sides: set[str]) -> None:
    from actors.transports.testing import CHECKS as SHARED
    from tests.transports.mpi_checks import CHECKS

    failed = [f"{r['side']}/{r['check']}: {r['error']}" for r in rows if not r["ok"]]
    assert not failed, "\n".join(failed)
    names = {name for name, _, _ in CHECKS} | {f"shared:{name}" for name, _, _ in SHARED}
    for side in sides:
        ran = {r["check"] for r in rows if r["side"] == side}
        assert names <= ran, f"{side} did not run {sorted(names - ran)}"


# -- with MPI --------------------------------------------------------------------------


@pytest.mark.mpi
def test_conformance_rank_mode(tmp_path: Path) -> None:
    proc = _start(tmp_path / "results", "-n", "2", str(HERE / "mpi_conformance.py"), "rank")
    rc, _, err = _finish(proc, timeout=240)
    _assert_all_checks_passed(_rows(tmp_path / "results"), {"server", "client"})
    assert rc == 0, err[-3000:]


@pytest.mark.mpi
def test_conformance_rank_mode_with_napping_receivers(tmp_path: Path) -> None:
    # No spin anywhere: every header wait naps at once, so small messages take
    # the side lane (mpi._sidelane) and the suite checks its order with the MPI lane.
    napping = {"ACTORS_MPI_SPIN_S": "0", "ACTORS_MPI_MIN_SPINS": "0", "ACTORS_LOOP_SPIN_US": "0"}
    script = str(HERE / "mpi_conformance.py")
    proc = _start(tmp_path / "results", "-n", "2", script, "rank", **napping)
    rc, _, err = _finish(proc, timeout=240)
    _assert_all_checks_passed(_rows(tmp_path / "results"), {"server", "client"})
    assert rc == 0, err[-3000:]


@pytest.mark.mpi
def test_conformance_port_file_mode(tmp_path: Path) -> None:
    port_file = str(tmp_path / "run" / "conformance.port")
    script = str(HERE / "mpi_conformance.py")
    results = tmp_path / "results"
    server = _start(results, "-n", "1", script, "server", port_file)
    client = _start(results, "-n", "1", script, "client", port_file)
    rc_client, _, err_client = _finish(client, timeout=240)
    rc_server, _, err_server = _finish(server, timeout=30)
    _assert_all_checks_passed(_rows(results), {"server", "client"})
    assert rc_server == 0 and rc_client == 0, err_server[-2000:] + err_client[-2000:]
    assert not Path(port_file).exists(), "listener close must remove its port file"


@pytest.mark.mpi
def test_three_ranks_two_links_do_not_mix(tmp_path: Path) -> None:
    proc = _start(tmp_path, "-n", "3", str(HERE / "mpi_peer.py"), "multi")
    rc, _, err = _finish(proc, timeout=120)
    assert rc == 0, err[-3000:]
    assert sorted(r["rank"] for r in _rows(tmp_path) if r["ok"]) == [0, 1, 2]


@pytest.mark.mpi
def test_the_side_that_closes_second_sends_its_bye_too(tmp_path: Path) -> None:
    """Regression: after the peer's BYE, the second side to close sent none, so the
    first kept draining for its BYE until the drain's limit (10 s) or, at exit, for
    another second (every mpi:// launch ended a second late)."""
    proc = _start(tmp_path, "-n", "2", str(HERE / "mpi_peer.py"), "closers")
    rc, _, err = _finish(proc, timeout=60)
    assert rc == 0, err[-3000:]
    rows = {r["rank"]: r for r in _rows(tmp_path)}
    assert rows[1]["recv"]["error"] == "PeerLost", rows
    first = rows[0]
    assert first["drains"] == 1 and first["ended"] == 1, first
    # ended within the 8 s wait, below the drain's 10 s limit: with the peer's BYE
    assert first["exceptions"] == [] and first["left_for_exit"] == 0, first


@pytest.mark.mpi
@pytest.mark.usefixtures("mpich_segments_of_killed_ranks")
def test_killed_peer_gives_peer_lost_and_survivor_lives(tmp_path: Path) -> None:
    port_file = str(tmp_path / "kill.port")
    script = str(HERE / "mpi_peer.py")
    results = tmp_path / "results"
    server = _start(results, "-n", "1", script, "server", port_file)
    victim = _start(results, "-n", "1", script, "victim", port_file)
    rc_victim, _, _ = _finish(victim, timeout=60)
    rc_server, _, err = _finish(server, timeout=60)
    assert rc_victim != 0  # it SIGKILLed itself
    assert rc_server == 0, err[-3000:]
    (row,) = _rows(results)
    for op in ("recv", "send"):
        assert row[op]["error"] == "PeerLost", row
        assert "died" in row[op]["message"] and "kill.port" in row[op]["message"], row


@pytest.mark.mpi
def test_one_process_connects_two_port_file_links_at_once(tmp_path: Path) -> None:
    """Regression: a controller with two port-file links ran two MPI ``Connect``
    calls at once in two threads; MPICH crashed (SIGSEGV) in about 1 run in 3."""
    script = str(HERE / "mpi_peer.py")
    results = tmp_path / "results"
    ports = [str(tmp_path / "a.port"), str(tmp_path / "b.port")]
    servers = [_start(results, "-n", "1", script, "echo", port) for port in ports]
    hub = _start(results, "-n", "1", script, "hub", *ports)
    rc_hub, _, err_hub = _finish(hub, timeout=90)
    codes = [_finish(server, timeout=30)[0] for server in servers]
    assert rc_hub == 0 and codes == [0, 0], err_hub[-3000:]
    rows = _rows(results)
    assert [r for r in rows if r["role"] == "hub"] == [{"role": "hub", "links": 2}]
    assert sorted(r["echoed"] for r in rows if r["role"] == "echo") == [100, 100]


@pytest.mark.mpi
def test_connect_without_server_names_the_port_file(tmp_path: Path) -> None:
    port_file = tmp_path / "nobody.port"
    script = str(HERE / "mpi_peer.py")
    proc = _start(tmp_path / "results", "-n", "1", script, "noserver", str(port_file))
    rc, _, err = _finish(proc, timeout=60)
    assert rc == 0, err[-3000:]
    (row,) = _rows(tmp_path / "results")
    assert row["error"] == "PeerLost"
    assert str(port_file) in row["message"] and "did not appear" in row["message"]


# -- without MPI -----------------------------------------------------------------------


def test_import_actors_does_not_import_mpi4py() -> None:
    code = (
        "import sys, actors, actors.transports, actors.transports.mpi;"
        "assert 'mpi4py' not in sys.modules, 'mpi4py imported';"
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_missing_mpi4py_raises_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from actors.transports.mpi import MPIBackend

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mpi4py" else real(name, *a)
    )
    with pytest.raises(BackendUnavailable) as info:
        MPIBackend()
    assert info.value.module == "mpi4py" and info.value.extra == "mpi"
    assert "hep-actors[mpi]" in str(info.value)


@pytest.mark.parametrize("address", ["tcp/0", "rank", "", "portfile/x"])
async def test_bad_address_is_a_config_error(address: str) -> None:
    pytest.importorskip("mpi4py")
    from actors.transports.mpi import MPIBackend

    with pytest.raises(ConfigError, match="mpi://"):
        await MPIBackend().connect(address, secret=None, timeout=1, max_message_size=1 << 20)


async def test_setup_calls_run_one_at_a_time() -> None:
    """Accept/Connect never overlap in one process (MPI leaves the ordering of
    concurrent collective calls on COMM_SELF to the user; MPICH crashed)."""
    import threading
    import time

    from actors.transports.mpi._setup import run_setup_call

    running, overlaps, lock = [0], [], threading.Lock()

    def call(k: int) -> int:
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return k

    results = await asyncio.gather(*(run_setup_call(lambda k=k: call(k), 10) for k in range(6)))
    assert results == list(range(6)) and max(overlaps) == 1, overlaps
    with pytest.raises(TimeoutError):
        await run_setup_call(lambda: time.sleep(0.5), 0.05)

    def fails() -> None:
        raise ValueError("mpi said no")

    with pytest.raises(ValueError, match="mpi said no"):
        await run_setup_call(fails, 10)


def test_framing_round_trip_and_malformed_frames() -> None:
    from actors.transports.mpi._link import pack_header, unpack_header

    frame = pack_header(0, b"hdr", [5, 3, 0], [0, 2, 1], [b"abc"])
    kind, header, sizes, flags, offset = unpack_header(frame, max_size=1 << 20)
    assert (kind, header, sizes, list(flags)) == (0, b"hdr", [5, 3, 0], [0, 2, 1])
    assert frame[offset : offset + 3] == b"abc"
    with pytest.raises(ProtocolError, match="max_message_size"):
        unpack_header(frame, max_size=7)
    with pytest.raises(ProtocolError, match="too short"):
        unpack_header(frame[:5], max_size=1 << 20)
    with pytest.raises(ProtocolError, match="magic"):
        unpack_header(b"XXXX" + frame[4:], max_size=1 << 20)
    with pytest.raises(ProtocolError, match="holds"):
        unpack_header(frame[:20], max_size=1 << 20)
    with pytest.raises(ProtocolError, match="inlined"):
        unpack_header(frame[:-3], max_size=1 << 20)


def test_receive_pool_reuses_memory_only_after_every_view_is_gone() -> None:
    from actors.transports.mpi._pool import MIN_POOLED, BufferPool

    pool = BufferPool(max_free_bytes=2 * MIN_POOLED)
    first = pool.take(MIN_POOLED)
    address = first.ctypes.data
    first[:] = 7
    view, mv = first[10:].reshape(-1, 2), memoryview(first)
    del first
    assert pool.free_bytes == 0, "views still use the memory"
    other = pool.take(MIN_POOLED)
    assert other.ctypes.data != address
    del view
    assert pool.free_bytes == 0, "a memoryview still uses the memory"
    del mv
    assert pool.free_bytes == MIN_POOLED
    again = pool.take(MIN_POOLED)
    assert again.ctypes.data == address and again.flags.writeable and pool.free_bytes == 0
    del other, again
    assert pool.free_bytes == 2 * MIN_POOLED
    third = pool.take(MIN_POOLED)
    fourth, fifth = pool.take(MIN_POOLED), pool.take(MIN_POOLED)
    del third, fourth, fifth
    assert pool.free_bytes == 2 * MIN_POOLED, "free memory stays under max_free_bytes"
    small = pool.take(100)
    del small
    assert pool.free_bytes == 2 * MIN_POOLED, "small buffers are not pooled"
    pool.clear()
    assert pool.free_bytes == 0


def test_framing_long_announcement_and_header_bytes() -> None:
    from actors.transports.mpi._frame import (
        KIND_LONG,
        pack_announcement,
        pack_header,
        unpack_header,
    )

    assert unpack_header(pack_announcement(5000), 10)[::4] == (KIND_LONG, 5000)
    frame = pack_header(0, b"h" * 10, [1 << 20] * 20, bytes(20))
    kind, header, sizes, flags, offset = unpack_header(
        bytearray(frame) + bytes(99), 1 << 30, len(frame)
    )
    assert (kind, header, sizes, flags, offset) == (
        0,
        b"h" * 10,
        [1 << 20] * 20,
        bytes(20),
        len(frame),
    )
    assert isinstance(header, bytes)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ACTORS_MPI_HEARTBEAT_S": "1", "ACTORS_MPI_HEARTBEAT_TIMEOUT_S": "0.5"},
            "ACTORS_MPI_HEARTBEAT_TIMEOUT_S=0.5 must be longer than ACTORS_MPI_HEARTBEAT_S=1",
        ),
        ({"ACTORS_MPI_HEARTBEAT_S": "soon"}, "ACTORS_MPI_HEARTBEAT_S='soon'"),
        ({"ACTORS_MPI_MAX_SLEEP_S": "0"}, "ACTORS_MPI_MAX_SLEEP_S='0'"),
    ],
)
@pytest.mark.parametrize("side", ["listen", "connect"])
async def test_a_bad_mpi_setting_is_refused_before_a_link_opens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, side: str, env: dict[str, str], message: str
) -> None:
    """The side channel's watcher and heartbeat tasks read the heartbeat settings: a bad
    value there left a link without its death watch; the link and its poller read the
    others after MPI was set up. listen/connect now refuse every bad one first."""
    pytest.importorskip("mpi4py")
    from actors.transports.mpi import MPIBackend

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    backend = MPIBackend()
    port_file = tmp_path / "port"
    with pytest.raises(ConfigError, match=message):
        if side == "listen":
            await backend.listen(f"port-file/{port_file}", secret=None, max_message_size=1)
        else:
            await backend.connect("rank/0", secret=None, timeout=1, max_message_size=1 << 20)
    assert not port_file.exists()
