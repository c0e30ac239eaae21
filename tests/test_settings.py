"""The one table of environment knobs: parsing, errors, and the documentation kept equal."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from actors import settings
from actors.errors import ConfigError


def test_every_setting_has_the_prefix_and_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    assert settings.table() in doc, "docs/settings.md is out of date: paste settings.table()"
    for s in settings.SETTINGS:
        assert s.name.startswith("ACTORS_")


def test_a_setting_is_read_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTORS_STREAM_SPIN_US", raising=False)
    assert settings.STREAM_SPIN_US.get() == 100.0
    monkeypatch.setenv("ACTORS_STREAM_SPIN_US", "250")
    assert settings.STREAM_SPIN_US.get() == 250.0


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORS_MPI_HEARTBEAT_S", "soon")
    with pytest.raises(ConfigError, match="ACTORS_MPI_HEARTBEAT_S='soon'"):
        settings.MPI_HEARTBEAT_S.get()
    monkeypatch.setenv("ACTORS_ALLOW_PICKLE", "perhaps")
    with pytest.raises(ConfigError, match="ACTORS_ALLOW_PICKLE"):
        settings.ALLOW_PICKLE.get()


@pytest.mark.parametrize(("text", "value"), [("1", True), ("yes", True), ("", False), ("0", False)])
def test_booleans(text: str, value: bool) -> None:
    assert settings.parse_bool(text) is value


def test_pickle_opt_in_follows_the_setting_until_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.codecs import _registry

    monkeypatch.setattr(_registry, "_pickle_choice", None)
    monkeypatch.setenv("ACTORS_ALLOW_PICKLE", "1")
    assert _registry.pickle_allowed()
    monkeypatch.setenv("ACTORS_ALLOW_PICKLE", "0")
    assert not _registry.pickle_allowed()


@pytest.mark.parametrize(
    ("text", "cpus"), [("", set()), ("3", {3}), ("0-2,8", {0, 1, 2, 8}), (" 1, 1-2 ", {1, 2})]
)
def test_cpu_lists(text: str, cpus: set[int]) -> None:
    assert settings.parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["x", "1-", "-2", "3-1", "1.5"])
def test_bad_cpu_lists(text: str) -> None:
    with pytest.raises(ValueError):
        settings.parse_cpu_list(text)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU binding on this platform")
def test_a_command_line_binds_to_actors_cpus_or_names_what_is_wrong() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    code = (
        "import os; from actors._cli import bind_cpus; bind_cpus(); "
        "print(sorted(os.sched_getaffinity(0)))"
    )
    run = functools.partial(
        subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    bound = run(env={**os.environ, "ACTORS_CPUS": str(allowed[-1])})
    assert bound.returncode == 0 and bound.stdout.strip() == f"[{allowed[-1]}]", bound.stderr
    missing = allowed[-1] + 1000
    refused = run(env={**os.environ, "ACTORS_CPUS": f"{allowed[0]},{missing}"})
    assert refused.returncode != 0
    assert f"CPU(s) {missing} not available to this process" in refused.stderr


@pytest.mark.parametrize(
    ("setting", "text"),
    [
        (settings.STREAM_SPIN_US, "-1"),
        (settings.MPI_SPIN_S, "nan"),
        (settings.MPI_SHORT_NAPS_S, "inf"),
        (settings.MPI_MAX_SLEEP_S, "0"),
        (settings.MPI_HEARTBEAT_S, "0"),
        (settings.MPI_HEARTBEAT_TIMEOUT_S, "-30"),
        (settings.MPI_MIN_SPINS, "-1"),
        (settings.MPI_POOL_BYTES, "-4096"),
    ],
)
def test_a_span_out_of_range_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, setting: settings.Setting[object], text: str
) -> None:
    """A negative or non-finite spin, or a nap/heartbeat of 0 (a busy loop), is refused."""
    monkeypatch.setenv(setting.name, text)
    with pytest.raises(ConfigError, match=f"{setting.name}='{text}'"):
        setting.get()


def test_zero_switches_a_spin_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in (settings.STREAM_SPIN_US, settings.MPI_SPIN_S, settings.MPI_SHORT_NAPS_S):
        monkeypatch.setenv(setting.name, "0")
        assert setting.get() == 0.0


def test_loop_spin_auto_counts_this_hosts_processes_against_its_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto``: 5000 µs where the job's processes on this host (ACTORS_HOST_PROCESSES,
    else the MPI launcher's count) are at most this process's CPUs; 0 otherwise or when
    nobody says how many there are."""
    for name in ("ACTORS_HOST_PROCESSES", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setenv("ACTORS_LOOP_SPIN_US", " Auto ")
    assert settings.LOOP_SPIN_US.get() == 0.0  # not told: sleep
    for name, count, spin in [
        ("MPI_LOCALNRANKS", "2", 5000.0),
        ("MPI_LOCALNRANKS", "3", 0.0),
        ("OMPI_COMM_WORLD_LOCAL_SIZE", "1", 5000.0),
    ]:
        monkeypatch.setenv(name, count)
        assert settings.LOOP_SPIN_US.get() == spin, (name, count)
        monkeypatch.delenv(name)
    monkeypatch.setenv("MPI_LOCALNRANKS", "1")
    monkeypatch.setenv("ACTORS_HOST_PROCESSES", "3")  # the launcher's count wins
    assert settings.LOOP_SPIN_US.get() == 0.0
    monkeypatch.setenv("ACTORS_HOST_PROCESSES", "0")  # 0: not told
    assert settings.LOOP_SPIN_US.get() == 5000.0
    monkeypatch.setenv("MPI_LOCALNRANKS", "two")
    with pytest.raises(ConfigError, match="MPI_LOCALNRANKS='two'"):
        settings.LOOP_SPIN_US.get()
    monkeypatch.setenv("ACTORS_LOOP_SPIN_US", "sometimes")
    with pytest.raises(ConfigError, match="ACTORS_LOOP_SPIN_US='sometimes'"):
        settings.LOOP_SPIN_US.get()


@pytest.mark.mpi
@pytest.mark.timeout(120)
def test_loop_spin_auto_under_mpiexec_reads_its_count_of_this_hosts_processes(
    tmp_path: Path,
) -> None:
    """Two processes started by the mpiexec the mpi extra installs resolve ``auto``
    from the count it gives them, against their own CPUs (each writes its value to a
    file of its own: mpiexec may interleave the two outputs)."""
    pytest.importorskip("mpi4py", reason="mpiexec comes with the mpi extra")
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}")
    mpiexec = mpiexec or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec next to this Python nor on PATH")
    code = (
        "import os, sys; from actors.settings import LOOP_SPIN_US; "
        "open(os.path.join(sys.argv[1], str(os.getpid())), 'w').write(str(LOOP_SPIN_US.get()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "ACTORS_HOST_PROCESSES"}
    run = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
        env=env | {"ACTORS_LOOP_SPIN_US": "auto"},
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    expected = "5000.0" if settings.usable_cpus() >= 2 else "0.0"
    assert [f.read_text() for f in tmp_path.iterdir()] == [expected, expected]


def test_the_values_in_force_show_what_auto_resolved_to(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACTORS_LOOP_SPIN_US", "ACTORS_HOST_PROCESSES", "ACTORS_MPI_SPIN_S"):
        monkeypatch.delenv(name, raising=False)
    assert not any(line.startswith("ACTORS_LOOP_SPIN_US") for line in settings.in_force())
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setenv("ACTORS_LOOP_SPIN_US", "auto")
    monkeypatch.setenv("ACTORS_HOST_PROCESSES", "3")
    monkeypatch.setenv("ACTORS_MPI_SPIN_S", "soon")
    lines = settings.in_force()
    spin = "ACTORS_LOOP_SPIN_US='auto' (set) -> 5000 µs (3 processes on this host, 3 CPUs)"
    assert spin in lines
    assert any(line.startswith("ACTORS_MPI_SPIN_S='soon' (set): ") for line in lines)


@pytest.mark.parametrize(
    ("spin", "setting", "chosen"),
    [
        (settings.mpi_spin_s, settings.MPI_SPIN_S, "0.001"),
        (settings.ucx_spin_us, settings.UCX_SPIN_US, "50"),
    ],
    ids=["mpi header waits", "ucx engine"],
)
def test_transport_polls_do_not_spin_where_the_host_has_more_processes_than_cpus(
    monkeypatch: pytest.MonkeyPatch,
    spin: Callable[[], float],
    setting: settings.Setting[float],
    chosen: str,
) -> None:
    for name in (setting.name, "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setenv("ACTORS_HOST_PROCESSES", "5")
    assert spin() == 0.0
    monkeypatch.setenv("ACTORS_HOST_PROCESSES", "2")
    assert spin() == setting.default > 0
    monkeypatch.delenv("ACTORS_HOST_PROCESSES")
    assert spin() == setting.default  # not known: the default
    monkeypatch.setenv("ACTORS_HOST_PROCESSES", "5")
    monkeypatch.setenv(setting.name, chosen)  # the user's choice holds
    assert spin() == float(chosen)
