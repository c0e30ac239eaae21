"""How every process of a topology starts: the :class:`LaunchPlan`.

:func:`build_plan` works out, from a validated topology, the engine that
fits (every process embedded in this Python process for ``inproc`` links;
plain subprocesses on one host; one ``mpiexec`` in MPMD mode for ``mpi`` links
or several hosts, or one ``mpiexec -n 1`` per process with ``mpi_mode =
"port-file"``), each link's URLs and secret, each process's command line and
environment, and the run directory. It validates everything it can before it
creates the run directory and raises the errors of :mod:`actors.errors`; it
runs nothing and never calls ``sys.exit``. Running a plan is
:mod:`actors.launch._process` (and :mod:`actors.launch._embedded`); the
command line is :mod:`actors.launch.cli`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .._cli import LOG_LEVEL_ENV
from ..distributed.endpoints import ENV_LINKS, LinkEndpoint, LinkTable
from ..errors import BackendUnavailable, ConfigError
from ..settings import (
    CPUS,
    HOST_PROCESSES,
    LOOP_SPIN_US,
    LOOP_SPIN_WITH_CPUS_US,
    REPORT_FILE,
    loops_stay_awake,
    usable_cpus,
)
from ._configs import config_roles
from ._files import link_file, write_link_files
from ._loss import check_failover
from .topology import LinkSpec, ProcessSpec, Topology

__all__ = [
    "LOOP_SPIN_WITH_CPUS_US",
    "LaunchPlan",
    "ProcessLaunch",
    "build_plan",
    "loops_stay_awake",
]

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
    """Everything :func:`~actors.launch._process.run_plan` starts; printable with ``--dry-run``."""

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
    ordered = sorted(topology.processes.items(), key=lambda item: ranks[item[0]])
    specs = [spec for _, spec in ordered]
    cpus = _cpu_bindings(topology, engine, specs)
    spins = _loop_spins(engine, specs, topology)
    processes = []
    for name, spec in ordered:
        env = {
            "ACTORS_PROCESS_NAME": name,
            "ACTORS_PROGRESS_LINES": "1",
            REPORT_FILE.name: str(rundir / f"report-{name}.json"),
            **cpus.get(name, {}),
            **spins.get(name, {}),
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


def _cpu_bindings(
    topology: Topology, engine: str, specs: list[ProcessSpec]
) -> dict[str, dict[str, str]]:
    """``{process: {"ACTORS_CPUS": cpu}}`` for ``[run] bind_to = "core"``: this host's
    processes, in rank order, each on the next CPU this launcher may use (round
    robin: more processes than CPUs share them, with a warning). The processes that
    mpiexec places (:func:`_placed_by_mpiexec`: on other hosts, or all with a host file
    or in a Slurm allocation) are left to mpiexec's binding options; an embedded
    topology (one Python process) is not bound. A process's own ``env`` may set
    ACTORS_CPUS."""
    if topology.run.bind_to != "core":
        return {}
    allowed = _allowed_cpus()
    if engine == "embedded" or allowed is None:
        log.warning(
            "bind_to = 'core' ignored: %s",
            "one embedded process" if engine == "embedded" else "this platform cannot bind",
        )
        return {}
    here = _placed_here(engine, topology, specs)
    if len(here) > len(allowed):
        log.warning("bind_to = 'core': %d processes share %d CPUs", len(here), len(allowed))
    if len(here) < len(specs):
        log.info("bind_to = 'core' binds this host's processes; bind the others with mpiexec")
    return {spec.name: {CPUS.name: str(allowed[i % len(allowed)])} for i, spec in enumerate(here)}


def _allowed_cpus() -> list[int] | None:
    """The CPUs this launcher may use, sorted; None where the platform cannot say (macOS)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def _placed_here(engine: str, topology: Topology, specs: list[ProcessSpec]) -> list[ProcessSpec]:
    """The processes this launcher places on its own host (not mpiexec)."""
    if _placed_by_mpiexec(engine, topology) is not None:
        return []
    return [spec for spec in specs if spec.is_local_host]


def _placed_by_mpiexec(engine: str, topology: Topology) -> str | None:
    """Why ``mpiexec`` rather than the topology decides where processes run (a host
    file, a Slurm allocation), or None."""
    if engine != "mpiexec":
        return None
    if topology.run.hostfile:
        return f"host file {topology.run.hostfile}"
    if "SLURM_JOB_ID" in os.environ:
        return "the Slurm allocation"
    return None


def _loop_spins(
    engine: str, specs: list[ProcessSpec], topology: Topology
) -> dict[str, dict[str, str]]:
    """``ACTORS_LOOP_SPIN_US`` (and ``ACTORS_HOST_PROCESSES``) per process: 5000 for
    this host's processes when this launcher may use at least one CPU per process (their
    event loops then stay awake for 5 ms after link traffic instead of sleeping: a stream
    of events no longer pays a cross-CPU wake-up per message), nothing when more
    processes than CPUs share it (spinning loops would take the CPU the others need);
    ``auto`` for the processes that mpiexec places (on other hosts, or all of them with a
    host file or inside a Slurm allocation): each decides at its start from the MPI
    launcher's count of its host's processes against its own CPUs
    (:data:`~actors.settings.LOOP_SPIN_US`). Nothing for an embedded topology (its links
    do not cross processes), or when ``ACTORS_LOOP_SPIN_US`` is set in the launcher's
    environment (the user's choice holds); a process's own ``env`` overrides it."""
    if engine == "embedded" or LOOP_SPIN_US.name in os.environ:
        return {}
    placed_by = _placed_by_mpiexec(engine, topology)
    here = _placed_here(engine, topology, specs)
    spins = {spec.name: {LOOP_SPIN_US.name: "auto"} for spec in specs if spec not in here}
    if len(here) < len(specs):
        log.info(
            "%d processes placed by mpiexec (%s): each keeps its event loop awake after "
            "link traffic when its host has a CPU per process (%s=auto)",
            len(specs) - len(here),
            placed_by or "other hosts",
            LOOP_SPIN_US.name,
        )
    if not here:
        return spins
    cpus = usable_cpus()
    told = {HOST_PROCESSES.name: str(len(here))}
    if not loops_stay_awake(len(here), cpus):
        log.info("%d processes share %d CPUs: event loops sleep between messages", len(here), cpus)
        return spins | {spec.name: told for spec in here}
    log.info(
        "%d processes, %d CPUs: event loops stay awake %g µs after link traffic (%s)",
        len(here),
        cpus,
        LOOP_SPIN_WITH_CPUS_US,
        LOOP_SPIN_US.name,
    )
    awake = {LOOP_SPIN_US.name: f"{LOOP_SPIN_WITH_CPUS_US:g}"}
    return spins | {spec.name: awake | told for spec in here}


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
