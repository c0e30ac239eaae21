"""``python -m actors.launch TOPOLOGY.toml``: start a whole application.

Reads and validates a topology (:mod:`actors.launch.topology`), then starts every
process with the engine that fits:

- ``inproc`` links: every process embedded in this Python process (one event
  loop; the configuration of a notebook);
- one host, tcp/shm/ucx: plain subprocesses (``python -m actors.run ...``);
- ``mpi`` links, or processes on several hosts: one ``mpiexec`` in MPMD mode
  (``-n 1 ... : -n 1 ...``, with ``-hosts``/host file; inside a Slurm
  allocation Hydra places processes through Slurm), or, with
  ``mpi_mode = "port-file"``, one ``mpiexec -n 1`` per process.

Each process's output lines are prefixed with its name; one progress bar
counts events done; each process prints its own trigger and timing reports and
the launcher ends with a summary table. Exit status: 0 when every process
succeeded, otherwise that of the first that failed (the others are stopped).
Ctrl-C stops everything (exit 130). ``--dry-run`` prints the commands.
"""

from __future__ import annotations

import argparse
import inspect
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..distributed.endpoints import LinkEndpoint, LinkTable
from ..errors import ActorsError, ConfigError
from ..framework.cli import PROGRESS_MARK, REPORT_MARK
from .topology import LinkSpec, ProcessSpec, Topology, load_topology

__all__ = ["PROGRESS_MARK", "REPORT_MARK", "LaunchPlan", "ProcessLaunch", "build_plan", "main"]



@dataclass
class ProcessLaunch:
    """How one process of the topology is started."""

    name: str
    argv: list[str]
    env: dict[str, str]
    links: LinkTable
    spec: ProcessSpec


@dataclass
class LaunchPlan:
    """Everything :func:`run_plan` starts; printable with ``--dry-run``."""

    engine: str  # "embedded" | "subprocess" | "mpiexec" | "mpiexec-per-process"
    processes: list[ProcessLaunch]
    rundir: Path
    commands: list[list[str]] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"# engine: {self.engine}; run directory: {self.rundir}"]
        for proc in self.processes:
            env = " ".join(
                f"{k}={shlex.quote(v)}" for k, v in sorted(proc.env.items()) if k != "ACTORS_LINKS"
            )
            lines.append(f"# [{proc.name}] {env}")
            for link in proc.links.endpoints.values():
                lines.append(f"#   link {link.name}: {link.role} {link.url} (peer {link.peer})")
        lines += [shlex.join(cmd) for cmd in self.commands]
        return "\n".join(lines)


def _mpiexec() -> str:
    found = shutil.which(
        "mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if found is None:
        raise ConfigError(
            "mpiexec not found; install it with: pip install 'hep-actors[mpi]'", key="transport"
        )
    return found


def _engine(topology: Topology) -> str:
    transports = {topology.transport_of(link) for link in topology.links} or {
        topology.run.transport
    }
    if "inproc" in transports:
        if len(transports) > 1 or topology.spans_hosts:
            raise ConfigError(
                "inproc links need every process embedded in one Python process: "
                "do not mix them with other transports or hosts",
                file=str(topology.path),
                key="transport",
            )
        return "embedded"
    if "shm" in transports and topology.spans_hosts:
        raise ConfigError(
            "shm links join processes on one host; this topology spans hosts",
            file=str(topology.path),
            key="transport",
        )
    if "mpi" in transports:
        return "mpiexec" if topology.run.mpi_mode == "mpmd" else "mpiexec-per-process"
    return "mpiexec" if topology.spans_hosts else "subprocess"


def _ranks(topology: Topology) -> dict[str, int]:
    """MPI rank of each process in MPMD order (explicit ranks first honoured)."""
    specs = list(topology.processes.values())
    order = sorted(specs, key=lambda s: (s.rank is None, s.rank if s.rank is not None else 0))
    ranks = {spec.name: index for index, spec in enumerate(order)}
    for spec in specs:
        if spec.rank is not None and ranks[spec.name] != spec.rank:
            raise ConfigError(
                f"ranks must be 0..{len(specs) - 1} without gaps",
                file=str(topology.path),
                key=f"process.{spec.name}.rank",
            )
    return ranks


def _link_urls(
    topology: Topology, link: LinkSpec, run_id: str, rundir: Path, ranks: dict[str, int]
) -> tuple[str, str]:
    """(server url, client url) of ``link`` for its transport."""
    transport = topology.transport_of(link)
    if transport in ("tcp", "ucx"):
        host = link.bind or ("0.0.0.0" if topology.spans_hosts else "127.0.0.1")
        return f"{transport}://{host}:0", f"{transport}://"  # client reads the rendezvous
    if transport == "shm":
        url = f"shm://{run_id}-{link.name}"
        return url, url
    if transport == "inproc":
        url = f"inproc://{run_id}-{link.name}"
        return url, url
    if topology.run.mpi_mode == "port-file":
        url = f"mpi://port-file/{rundir / (link.name + '.port')}"
        return url, url
    url = f"mpi://rank/{ranks[link.server]}"
    return url, url


def _link_tables(topology: Topology, run_id: str, rundir: Path) -> dict[str, LinkTable]:
    """Each process's link table; a name with several clients is one server endpoint."""
    ranks = _ranks(topology)
    tables = {name: LinkTable({}, rundir) for name in topology.processes}
    by_name: dict[str, list[LinkSpec]] = {}
    for link in topology.links:
        by_name.setdefault(link.name, []).append(link)
    for name, entries in by_name.items():
        link = entries[0]  # validated: same server and settings for every entry
        server_url, client_url = _link_urls(topology, link, run_id, rundir, ranks)
        wants_secret = link.secret if link.secret is not None else topology.run.secret
        secret = (
            secrets.token_hex(16) if wants_secret and topology.transport_of(link) != "mpi" else None
        )
        clients = [entry.client for entry in entries]
        tables[link.server].endpoints[name] = LinkEndpoint(
            name, "server", server_url, secret, ",".join(clients), len(clients)
        )
        for client in clients:
            tables[client].endpoints[name] = LinkEndpoint(
                name, "client", client_url, secret, link.server
            )
    return tables


@dataclass(frozen=True)
class ConfigRoles:
    """What the launcher needs to know about one process configuration."""

    has_own_source: bool  # its source makes events (not a follower replaying them)
    source_reads_file: bool  # --input goes to its source's ``file``
    has_output: bool  # --output goes to its output module's ``file``


def _accepts_file(cls: type) -> bool:
    try:
        return "file" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def config_roles(config: Path) -> ConfigRoles:
    """Inspect a process configuration (imports its module classes, runs nothing)."""
    from ..framework import OutputModule, Process, Source
    from ..framework.loader import load_class

    process = Process.from_toml(config)
    base = process.base_dir
    own_source = reads_file = False
    if process.source is not None:
        cls = load_class(process.source.type, base, Source, f"source {process.source.label!r}")
        own_source = not getattr(cls, "replays_transitions", False)
        reads_file = _accepts_file(cls)
    has_output = False
    for module in process.modules.values():
        cls = load_class(module.type, base, object, f"module {module.label!r}")
        if issubclass(cls, OutputModule) and _accepts_file(cls):
            has_output = True
    return ConfigRoles(own_source, reads_file, has_output)


def load_process_for(config: Path, topology: Topology, roles: ConfigRoles) -> Any:
    """The Process of ``config`` with the topology's events/input/output applied.

    Used for processes embedded in this Python process; subprocesses get the
    same overrides as ``actors.run`` command-line options.
    """
    from ..framework import Process

    process = Process.from_toml(config)
    run = topology.run
    if run.events is not None and roles.has_own_source:
        process.options.events = run.events
    if run.input and roles.source_reads_file and process.source is not None:
        process.source.params["file"] = str(Path(run.input).resolve())
    if run.output and roles.has_output:
        from ..framework import OutputModule
        from ..framework.loader import load_class

        for module in process.modules.values():
            cls = load_class(module.type, process.base_dir, object, f"module {module.label!r}")
            if issubclass(cls, OutputModule) and _accepts_file(cls):
                module.params["file"] = str(Path(run.output).resolve())
    return process


def _process_argv(spec: ProcessSpec, topology: Topology) -> list[str]:
    roles = config_roles(spec.config)
    argv = [sys.executable, "-m", "actors.run", str(spec.config)]
    argv += ["--threads", str(spec.threads), "--streams", str(spec.streams)]
    run = topology.run
    if run.events is not None and roles.has_own_source:
        argv += ["--events", str(run.events)]
    if run.input and roles.source_reads_file:
        argv += ["--input", str(Path(run.input).resolve())]
    if run.output and roles.has_output:
        argv += ["--output", str(Path(run.output).resolve())]
    return argv + spec.args


def build_plan(topology: Topology, rundir: Path | None = None) -> LaunchPlan:
    """Work out how every process starts; validates engine and placements."""
    engine = _engine(topology)
    run_id = f"hep-actors-{uuid.uuid4().hex[:8]}"
    rundir = rundir or Path(tempfile.mkdtemp(prefix=f"{run_id}-"))
    tables = _link_tables(topology, run_id, rundir)
    ranks = _ranks(topology)
    processes = []
    for name, spec in sorted(topology.processes.items(), key=lambda item: ranks[item[0]]):
        env = {"ACTORS_PROCESS_NAME": name, "ACTORS_PROGRESS_LINES": "1", **spec.env}
        env.update(tables[name].to_env())
        processes.append(
            ProcessLaunch(name, _process_argv(spec, topology), env, tables[name], spec)
        )
    plan = LaunchPlan(engine, processes, rundir)
    plan.commands = _commands(plan, topology)
    return plan


def _commands(plan: LaunchPlan, topology: Topology) -> list[list[str]]:
    if plan.engine in ("subprocess", "embedded"):
        return [proc.argv for proc in plan.processes]
    mpiexec = _mpiexec()
    if plan.engine == "mpiexec-per-process":
        return [[mpiexec, "-n", "1", *_mpi_env(proc), *proc.argv] for proc in plan.processes]
    cmd = [mpiexec, "-prepend-rank"]
    if topology.run.hostfile:
        cmd += ["-f", str(Path(topology.run.hostfile).resolve())]
    for index, proc in enumerate(plan.processes):  # ordered by rank
        if index:
            cmd.append(":")
        cmd += ["-n", "1"]
        if not proc.spec.is_local_host:
            cmd += ["-hosts", proc.spec.host]
        cmd += [*_mpi_env(proc), *proc.argv]
    return [cmd]


def _mpi_env(proc: ProcessLaunch) -> list[str]:
    out: list[str] = []
    for key, value in proc.env.items():
        out += ["-env", key, value]
    return out


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m actors.launch",
        description="Start every process of a topology, forward their logs, print the reports.",
    )
    parser.add_argument("topology", help="topology TOML file")
    parser.add_argument("--events", type=int, help="number of events (overrides [run] events)")
    parser.add_argument("--input", help="input file of the source, wherever it runs")
    parser.add_argument("--output", help="output file of the output module, wherever it runs")
    parser.add_argument("--transport", help="transport of every link: inproc|tcp|shm|mpi|ucx")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    parser.add_argument("--timeout", type=float, default=None, help="stop everything after N s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        topology = load_topology(args.topology)
        topology.override(
            events=args.events, input=args.input, output=args.output, transport=args.transport
        )
        plan = build_plan(topology)
    except ActorsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(plan.describe())
        shutil.rmtree(plan.rundir, ignore_errors=True)
        return 0
    from ._process import run_plan

    try:
        return run_plan(plan, topology, timeout=args.timeout)
    finally:
        shutil.rmtree(plan.rundir, ignore_errors=True)

