"""Topology validation (errors name file, line and key) and launcher plans (--dry-run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actors import ConfigError
from actors.distributed.endpoints import LinkTable
from actors.launch import build_plan
from actors.launch.topology import load_topology

PROCESS = """
[process]
name = "{name}"

[source]
type = "actors.framework.sources:SyntheticSource"
"""

GOOD = """
[run]
events = 10
transport = "tcp"

[process.local]
config = "local.toml"
threads = 2
streams = 4

[process.remote]
config = "remote.toml"

[[link]]
name = "offload"
client = "local"
server = "remote"
"""


def write(tmp_path: Path, topology: str) -> Path:
    (tmp_path / "local.toml").write_text(PROCESS.format(name="LOCAL"))
    (tmp_path / "remote.toml").write_text(PROCESS.format(name="REMOTE"))
    path = tmp_path / "topology.toml"
    path.write_text(topology)
    return path


def test_threads_0_reaches_the_process_command_line(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, GOOD.replace("threads = 2", "threads = 0")))
    assert topo.processes["local"].threads == 0
    plan = build_plan(topo, rundir=tmp_path)
    argv = next(p.argv for p in plan.processes if p.name == "local")
    assert argv[argv.index("--threads") + 1] == "0"


def test_valid_topology_loads(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, GOOD))
    assert list(topo.processes) == ["local", "remote"]
    assert topo.processes["local"].streams == 4 and topo.processes["remote"].threads == 1
    assert topo.links[0].client == "local" and topo.transport_of(topo.links[0]) == "tcp"


@pytest.mark.parametrize(
    ("edit", "line", "key", "words"),
    [
        (('server = "remote"', 'server = "gpu"'), 17, "link[0].server", "unknown process 'gpu'"),
        (
            ('config = "remote.toml"', 'config = "missing.toml"'),
            12,
            "process.remote.config",
            "not found",
        ),
        (
            ('transport = "tcp"', 'transport = "carrier-pigeon"'),
            4,
            "run.transport",
            "unknown transport",
        ),
        (
            ('transport = "tcp"', 'transport = "tcp"\nhostfile = "nodes.txt"'),
            5,
            "run.hostfile",
            "host file not found",
        ),
        (("threads = 2", "threads = -1"), 8, "process.local.threads", ">= 0"),
        (("streams = 4", "streams = 0"), 9, "process.local.streams", ">= 1"),
        (("streams = 4", "stream = 4"), 9, "process.local.stream", "unknown key"),
        (('client = "local"', 'client = "remote"'), 17, "link[0].server", "two different"),
    ],
)
def test_errors_name_file_line_and_key(
    tmp_path: Path, edit: tuple[str, str], line: int, key: str, words: str
) -> None:
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    err = info.value
    assert err.file == str(path) and err.line == line and err.key == key, str(err)
    assert words in str(err) and str(path) in str(err)


def test_duplicate_link_names_and_ranks(tmp_path: Path) -> None:
    twice = GOOD + '\n[[link]]\nname = "offload"\nclient = "remote"\nserver = "local"\n'
    with pytest.raises(ConfigError, match="duplicate link name"):
        load_topology(write(tmp_path, twice))
    ranks = GOOD.replace("streams = 4", "streams = 4\nrank = 0").replace(
        'config = "remote.toml"', 'config = "remote.toml"\nrank = 0'
    )
    with pytest.raises(ConfigError, match="rank 0 is already used"):
        load_topology(write(tmp_path, ranks))


def test_invalid_toml_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_topology(write(tmp_path, GOOD + "\n[run\n"))
    assert info.value.line is not None and "invalid TOML" in str(info.value)


def test_plan_gives_each_side_its_link_end(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, GOOD))
    plan = build_plan(topo, rundir=tmp_path)
    assert plan.engine == "subprocess"
    local, remote = plan.processes
    client = LinkTable.from_env(local.env).endpoints["offload"]
    server = LinkTable.from_env(remote.env).endpoints["offload"]
    assert (client.role, server.role) == ("client", "server")
    assert server.url == "tcp://127.0.0.1:0" and client.secret == server.secret
    assert client.secret and client.secret not in " ".join(local.argv)
    assert "--events" in local.argv and "--streams" in local.argv


@pytest.mark.parametrize(
    ("transport", "engine", "url"),
    [
        ("shm", "subprocess", "shm://"),
        ("inproc", "embedded", "inproc://"),
        ("mpi", "mpiexec", "mpi://rank/1"),
    ],
)
def test_transport_override_picks_engine(
    tmp_path: Path, transport: str, engine: str, url: str
) -> None:
    topo = load_topology(write(tmp_path, GOOD))
    topo.override(transport=transport)
    if transport == "mpi":
        pytest.importorskip("mpi4py", reason="mpi4py not installed (extra [mpi])")
    plan = build_plan(topo, rundir=tmp_path)
    assert plan.engine == engine
    server = plan.processes[1].links.endpoints["offload"]
    assert server.url.startswith(url)
    if engine == "mpiexec":
        (cmd,) = plan.commands
        assert cmd.count("-n") == 2 and ":" in cmd


def test_mpi_port_file_mode_one_mpiexec_per_process(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py", reason="mpi4py not installed (extra [mpi])")
    topo = load_topology(
        write(
            tmp_path, GOOD.replace('transport = "tcp"', 'transport = "mpi"\nmpi_mode = "port-file"')
        )
    )
    plan = build_plan(topo, rundir=tmp_path)
    assert plan.engine == "mpiexec-per-process" and len(plan.commands) == 2
    url = plan.processes[0].links.endpoints["offload"].url
    assert url == f"mpi://port-file/{tmp_path / 'offload.port'}"


def test_dry_run_cli_prints_commands(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    out = subprocess.run(
        [sys.executable, "-m", "actors.launch", str(path), "--dry-run", "--transport", "shm"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "engine: subprocess" in out and "actors.run" in out and "link offload" in out


def test_cli_reports_bad_topology_with_status_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('server = "remote"', 'server = "nobody"'))
    proc = subprocess.run(
        [sys.executable, "-m", "actors.launch", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{path}:17: link[0].server: unknown process 'nobody'" in proc.stderr


def test_bind_to_core_gives_each_process_of_this_host_a_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {4, 6}, raising=False)
    three = GOOD.replace('transport = "tcp"', 'transport = "tcp"\nbind_to = "core"') + (
        '\n[process.third]\nconfig = "remote.toml"\nenv = { ACTORS_CPUS = "0-1" }\n'
    )
    plan = build_plan(load_topology(write(tmp_path, three)), rundir=tmp_path)
    cpus = {proc.name: proc.env.get("ACTORS_CPUS") for proc in plan.processes}
    assert cpus == {"local": "4", "remote": "6", "third": "0-1"}  # round robin; env wins
    plain = build_plan(load_topology(write(tmp_path, GOOD)), rundir=tmp_path)
    assert all("ACTORS_CPUS" not in proc.env for proc in plain.processes)  # default: none


def test_bind_to_errors_name_the_key_or_option(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('transport = "tcp"', 'bind_to = "socket"'))
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    assert info.value.key == "run.bind_to" and "one of none, core" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_topology(write(tmp_path, GOOD)).override(bind_to="cores")
    assert info.value.key == "--bind-to"


def test_loop_spin_only_where_each_process_has_a_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTORS_LOOP_SPIN_US", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)

    def spins(topology: str) -> dict[str, str | None]:
        plan = build_plan(load_topology(write(tmp_path, topology)), rundir=tmp_path)
        return {proc.name: proc.env.get("ACTORS_LOOP_SPIN_US") for proc in plan.processes}

    assert spins(GOOD) == {"local": "5000", "remote": "5000"}  # 2 processes, 2 CPUs
    third = '\n[process.third]\nconfig = "remote.toml"\n'
    assert spins(GOOD + third) == {"local": None, "remote": None, "third": None}
    own = '\n[process.third]\nconfig = "remote.toml"\nenv = { ACTORS_LOOP_SPIN_US = "0" }\n'
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert spins(GOOD + own) == {"local": "5000", "remote": "5000", "third": "0"}  # env wins
    assert spins(GOOD.replace('"tcp"', '"inproc"')) == {"local": None, "remote": None}
    monkeypatch.setenv("ACTORS_LOOP_SPIN_US", "200")  # the user's choice, inherited as is
    assert spins(GOOD) == {"local": None, "remote": None}


@pytest.mark.mpi
def test_processes_that_mpiexec_places_decide_their_loop_spin_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On another host, with a host file or inside a Slurm allocation, mpiexec places the
    processes: they get ACTORS_LOOP_SPIN_US=auto (resolved from the MPI launcher's count of
    their host's processes); this host's processes the launcher places get 5000 or nothing,
    and ACTORS_HOST_PROCESSES."""
    pytest.importorskip("mpi4py", reason="mpiexec comes with the mpi extra")
    for name in ("ACTORS_LOOP_SPIN_US", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)

    def env(topology: str) -> dict[str, tuple[str | None, str | None]]:
        plan = build_plan(load_topology(write(tmp_path, topology)), rundir=tmp_path)
        assert plan.engine == "mpiexec"
        return {
            p.name: (p.env.get("ACTORS_LOOP_SPIN_US"), p.env.get("ACTORS_HOST_PROCESSES"))
            for p in plan.processes
        }

    elsewhere = GOOD.replace('config = "remote.toml"', 'config = "remote.toml"\nhost = "node7"')
    assert env(elsewhere) == {"local": ("5000", "1"), "remote": ("auto", None)}
    third = '\n[process.third]\nconfig = "remote.toml"\n'
    here = {"local": ("5000", "2"), "remote": ("auto", None), "third": ("5000", "2")}
    assert env(elsewhere + third) == here  # 2 processes here, 2 CPUs
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    here = {"local": (None, "2"), "remote": ("auto", None), "third": (None, "2")}
    assert env(elsewhere + third) == here  # 2 processes here, 1 CPU
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    mpi = GOOD.replace('"tcp"', '"mpi"')
    assert env(mpi) == {"local": ("5000", "2"), "remote": ("5000", "2")}  # placed here
    (tmp_path / "hosts").write_text("localhost:2\n")  # relative to the topology file
    hostfile = mpi.replace("[run]\n", '[run]\nhostfile = "hosts"\n')
    assert env(hostfile) == {"local": ("auto", None), "remote": ("auto", None)}
    bound = hostfile.replace("[run]\n", '[run]\nbind_to = "core"\n')
    plan = build_plan(load_topology(write(tmp_path, bound)), rundir=tmp_path)
    assert all("ACTORS_CPUS" not in p.env for p in plan.processes)  # mpiexec binds them
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    assert env(mpi) == {"local": ("auto", None), "remote": ("auto", None)}
