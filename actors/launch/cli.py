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
the launcher ends with a summary table; ``--report-json FILE`` writes all of
it as one JSON document (:mod:`actors.launch.report`). Exit status: 0 when
every process succeeded, 2 for a usage or configuration error found before
anything starts, otherwise that of the first process that failed (the others
are stopped; 1 for a failed job, 2 for a configuration error in a process).
Ctrl-C stops everything (exit 130), ``--timeout`` too (exit 124). ``--dry-run``
prints the commands. Errors follow the style of every command line
(:mod:`actors._cli`); ``--log-level``/``-v`` reaches every process through
``ACTORS_LOG_LEVEL``.

:func:`build_plan` validates everything it can before it creates the run
directory and raises the errors of :mod:`actors.errors`; :func:`main` formats
them. Neither calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import inspect
import logging
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._cli import (
    EXIT_FAILED,
    LOG_LEVEL_ENV,
    CliParser,
    check_input,
    check_output,
    log_level,
    non_negative_int,
    run_main,
)
from ..distributed.endpoints import ENV_LINKS, LinkEndpoint, LinkTable
from ..errors import BackendUnavailable, ConfigError
from ..framework.cli import PROGRESS_MARK, REPORT_MARK
from ..settings import REPORT_FILE
from ._files import link_file, write_link_files
from ._loss import check_failover
from .topology import LinkSpec, ProcessSpec, Topology, load_topology

__all__ = ["PROGRESS_MARK", "REPORT_MARK", "LaunchPlan", "ProcessLaunch", "build_plan", "main"]

log = logging.getLogger("actors.launch")


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
    on_process_loss: str = "absorb"  # topology [run] on_process_loss; "fail" with --strict

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
        text = "\n".join(lines)
        for proc in self.processes:  # secrets are never printed
            for link in proc.links.endpoints.values():
                text = text.replace(link.secret, "<secret>") if link.secret else text
        return text


def _mpiexec() -> str:
    found = shutil.which(
        "mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if found is None:
        raise BackendUnavailable(
            "mpiexec",
            "mpi",
            f"not on PATH nor next to {sys.executable}; the mpi transport "
            "and processes on several hosts need it",
        )
    return found


def _check_backends(topology: Topology) -> None:
    """Refuse a transport whose package is missing before anything starts."""
    used = {topology.transport_of(link) for link in topology.links}
    if "ucx" in used and importlib.util.find_spec("ucxx") is None:
        raise BackendUnavailable("ucxx", "ucx", "needed by the ucx links of this topology")


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
        secret = secrets.token_hex(16) if wants_secret else None  # mpi: its side channel
        clients = [entry.client for entry in entries]
        tables[link.server].endpoints[name] = LinkEndpoint(
            name, "server", server_url, secret, ",".join(clients), len(clients)
        )
        restarts = topology.processes[link.server].restarts
        if topology.run.on_process_loss == "fail":
            restarts = 0  # --strict: the launcher restarts nothing
        for client in clients:
            tables[client].endpoints[name] = LinkEndpoint(
                name, "client", client_url, secret, link.server, restarts=restarts
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

    process = Process.from_toml(config)
    own_source = reads_file = False
    if process.source is not None:
        cls = _class_of(process, process.source.type, Source, ("source", "type"))
        own_source = not getattr(cls, "replays_transitions", False)
        reads_file = _accepts_file(cls)
    has_output = False
    for module in process.modules.values():
        cls = _class_of(process, module.type, object, ("modules", module.label, "type"))
        if issubclass(cls, OutputModule) and _accepts_file(cls):
            has_output = True
    return ConfigRoles(own_source, reads_file, has_output)


def _class_of(process: Any, type_path: str, base: type, key: tuple[str, ...]) -> type:
    """load_class, its ConfigError located at the key in the process file (file, line)."""
    from ..framework.loader import load_class

    try:
        return load_class(type_path, process.base_dir, base, ".".join(key))
    except ConfigError as exc:
        raise process.error(exc.message, *key) from exc.__cause__


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

        for module in process.modules.values():
            cls = _class_of(process, module.type, object, ("modules", module.label, "type"))
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


def build_plan(
    topology: Topology, rundir: Path | None = None, *, log_level: str | None = None
) -> LaunchPlan:
    """Work out how every process starts; validates engine, placements and configurations.

    Raises ConfigError (file, line, key) or BackendUnavailable (a missing
    ``mpiexec`` or ``ucxx``) before anything is created: the run directory (a
    new temporary one unless ``rundir`` is given) exists only once the plan is
    complete, and the caller removes it. ``log_level`` is passed to every
    process as ``ACTORS_LOG_LEVEL``. Runs nothing; no ``sys.exit``.
    """
    engine = _engine(topology)
    _check_backends(topology)
    check_failover(topology, engine)
    run_id = f"hep-actors-{uuid.uuid4().hex[:8]}"
    made = rundir is None
    # The path is fixed now (link URLs and port files name it); the folder is made last.
    rundir = rundir or Path(tempfile.gettempdir()) / f"{run_id}-{secrets.token_hex(4)}"
    tables = _link_tables(topology, run_id, rundir)
    ranks = _ranks(topology)
    processes = []
    for name, spec in sorted(topology.processes.items(), key=lambda item: ranks[item[0]]):
        env = {
            "ACTORS_PROCESS_NAME": name,
            "ACTORS_PROGRESS_LINES": "1",
            REPORT_FILE.name: str(rundir / f"report-{name}.json"),
            **spec.env,
        }
        if log_level:
            env[LOG_LEVEL_ENV] = log_level
        env.update(tables[name].to_env())
        processes.append(
            ProcessLaunch(name, _process_argv(spec, topology), env, tables[name], spec)
        )
    plan = LaunchPlan(engine, processes, rundir, on_process_loss=topology.run.on_process_loss)
    plan.commands = _commands(plan, topology)
    if made:
        rundir.mkdir(mode=0o700)
    if engine.startswith("mpiexec"):
        write_link_files(plan)
    log.info("engine %s, %d processes, run directory %s", engine, len(processes), rundir)
    for proc in processes:
        log.debug("process %s: %s", proc.name, shlex.join(proc.argv))
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
    """``-env`` options; the link table (secrets) goes by file, never on the command line."""
    out: list[str] = []
    for key, value in proc.env.items():
        if key == ENV_LINKS:
            value = str(link_file(proc))
        out += ["-env", key, value]
    return out


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CliParser(
        "python -m actors.launch",
        "Start every process of a topology (TOML), forward their output with a\n"
        "[process] prefix, show one progress bar and end with a summary table.\n"
        "Options override the topology's [run] table.",
        examples=[
            "python -m actors.launch examples/offload/topology.toml --events 2000",
            "python -m actors.launch examples/offload/topology.toml --transport shm "
            "--report-json run.json",
            "python -m actors.launch topology.toml --transport mpi --dry-run",
        ],
        exit_codes=(
            "exit status:\n"
            "  0    every process succeeded\n"
            "  1    a process failed (its own status is passed on: 1 job failed,\n"
            "       2 configuration error inside it; the others are stopped)\n"
            "  2    usage or configuration error found before anything started\n"
            "  124  --timeout expired (every process stopped)\n"
            "  130  interrupted (Ctrl-C; every process stopped)"
        ),
        docs="docs/topology.md",
    )
    parser.add_argument("topology", help="topology TOML file")
    parser.add_argument(
        "--events",
        type=non_negative_int,
        metavar="N",
        help="number of events (default: [run] events, else all)",
    )
    parser.add_argument(
        "--input",
        metavar="FILE",
        help="input file of the source, wherever it runs (default: [run] input)",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="output file of the output module, wherever it runs (default: [run] output)",
    )
    parser.add_argument(
        "--transport",
        metavar="SCHEME",
        help="transport of every link: inproc|tcp|shm|mpi|ucx (default: [run] transport, else tcp)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="the first process lost ends the job, restarts none (default: [run] on_process_loss)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="stop everything after S seconds (exit 124)",
    )
    parser.add_argument(
        "--stall-report",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="when no event completes for S seconds, and before --timeout "
        "stops them, every process prints what it waits for",
    )
    parser.add_argument(
        "--report-json",
        metavar="FILE",
        help="write every process's trigger "
        "and timing reports, exit status, events/s and the summary as one JSON "
        "file (schema: docs/topology.md)",
    )
    return parser.parse_args(argv)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (see ``--help``)."""
    args = _parse_args(argv)
    return run_main(lambda: _main(args), args)


def _main(args: argparse.Namespace) -> int:
    check_input(args.input, "--input")
    check_output(args.output, "--output")
    check_output(args.report_json, "--report-json")
    topology = load_topology(args.topology)
    topology.override(
        events=args.events, input=args.input, output=args.output, transport=args.transport
    )
    if args.strict:
        topology.run.on_process_loss = "fail"
    explicit = args.verbose or args.log_level  # else the processes inherit the environment
    plan = build_plan(topology, log_level=log_level(args) if explicit else None)
    try:
        if args.dry_run:
            print(plan.describe())
            return 0
        return _run(plan, topology, args)
    finally:
        shutil.rmtree(plan.rundir, ignore_errors=True)


def _run(plan: LaunchPlan, topology: Topology, args: argparse.Namespace) -> int:
    from ._process import LaunchState, run_plan
    from .report import launch_report, write_launch_report

    state = LaunchState([p.name for p in plan.processes])
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    start = time.monotonic()
    status = EXIT_FAILED  # if run_plan itself raises
    try:
        status = run_plan(
            plan, topology, timeout=args.timeout, state=state, stall_report=args.stall_report
        )
        return status
    finally:
        if args.report_json:
            report = launch_report(
                plan, topology, state, status, started=started, wall_s=time.monotonic() - start
            )
            write_launch_report(args.report_json, report)
