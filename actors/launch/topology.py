"""Topology files: which processes make up one application and how they link.

A topology (``topology.toml``) names processes, each with a process
configuration, threads, streams and a placement (host or MPI rank), the links
between them, and run options. :func:`load_topology` validates it completely
before anything starts; every error is a :class:`~actors.errors.ConfigError`
naming the file, line and key. The format is documented in
``docs/topology.md``::

    [run]
    events = 1000
    transport = "tcp"          # inproc | tcp | shm | mpi | ucx
    on_process_loss = "absorb" # a lost follower is left to its controllers; "fail": stop all

    [process.local]
    config = "local.toml"      # relative to this file
    threads = 2
    streams = 4

    [process.remote]
    config = "remote.toml"
    restarts = 1               # started again once when it dies (a follower; see docs)

    [[link]]
    name = "offload"           # what the configurations call it
    client = "local"           # connects (controller side)
    server = "remote"          # listens (follower side)

A link name may repeat with the same server and another client: that server
then serves several clients on it (one follower schedule per client).

Secrets: every link gets a random per-run shared secret unless ``secret =
false``. A link whose listener is reachable from other hosts (tcp:// bound to
a non-loopback address, ucx://, whose listeners accept on every interface, the
TCP side channel of mpi://) without a secret is refused unless that link's own
table says ``secret = false`` explicitly - ``[run] secret = false`` alone does
not open it to the network - and then loading it logs a warning naming the
file, line and key (logger ``actors.launch``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..framework.process import OPTION_MINIMUMS
from ..tomlfile import TomlDocument

__all__ = [
    "MPI_MODES",
    "TRANSPORTS",
    "LinkSpec",
    "ProcessSpec",
    "RunOptions",
    "Topology",
    "load_topology",
]

TRANSPORTS = ("inproc", "tcp", "shm", "mpi", "ucx")
MPI_MODES = ("mpmd", "port-file")
LOSS_POLICIES = ("absorb", "fail")
BIND_TO = ("none", "core")
_LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
log = logging.getLogger("actors.launch")

_RUN_KEYS = {
    "bind_to",
    "events",
    "input",
    "output",
    "transport",
    "mpi_mode",
    "hostfile",
    "secret",
    "on_process_loss",
}
_PROCESS_KEYS = {"config", "threads", "streams", "host", "rank", "env", "args", "restarts"}
_LINK_KEYS = {"name", "client", "server", "transport", "secret", "bind", "options"}


@dataclass
class RunOptions:
    """The ``[run]`` table."""

    events: int | None = None
    input: str | None = None
    output: str | None = None
    transport: str = "tcp"
    mpi_mode: str = "mpmd"
    hostfile: str | None = None
    secret: bool = True
    #: "absorb": a lost follower is left to its controllers (resend); "fail": any loss ends the job
    on_process_loss: str = "absorb"
    #: "core": each process on this host runs on one CPU of its own (ACTORS_CPUS); "none"
    bind_to: str = "none"


@dataclass
class ProcessSpec:
    """One ``[process.NAME]`` table."""

    name: str
    config: Path
    threads: int = 1
    streams: int = 1
    host: str = "localhost"
    rank: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    restarts: int = 0  # replacements the launcher starts when this (follower) process dies

    @property
    def is_local_host(self) -> bool:
        return self.host in _LOCAL_HOSTS


@dataclass
class LinkSpec:
    """One ``[[link]]`` entry: ``client`` connects to ``server``, which listens."""

    name: str
    client: str
    server: str
    transport: str | None = None
    secret: bool | None = None
    bind: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Topology:
    """A validated topology; paths are absolute."""

    path: Path
    run: RunOptions
    processes: dict[str, ProcessSpec]
    links: list[LinkSpec]

    def transport_of(self, link: LinkSpec) -> str:
        return link.transport or self.run.transport

    def override(
        self,
        *,
        events: int | None = None,
        input: str | None = None,
        output: str | None = None,
        transport: str | None = None,
        bind_to: str | None = None,
    ) -> None:
        """Apply command-line overrides (``--transport`` replaces every link's)."""
        if bind_to is not None:
            if bind_to not in BIND_TO:
                raise _cli_error(
                    f"unknown value {bind_to!r}; one of {', '.join(BIND_TO)}", "--bind-to"
                )
            self.run.bind_to = bind_to
        if events is not None:
            self.run.events = events
        if input is not None:
            self.run.input = input
        if output is not None:
            self.run.output = output
        if transport is not None:
            if transport not in TRANSPORTS:
                raise _cli_error(f"unknown transport {transport!r}; one of {', '.join(TRANSPORTS)}")
            self.run.transport = transport
            for link in self.links:
                link.transport = None
            _check_secrets(self, lambda message, *where: _cli_error(message))

    def network_listener(self, link: LinkSpec) -> str | None:
        """How ``link``'s listener is reachable from other hosts, or None (loopback only)."""
        transport = self.transport_of(link)
        if transport == "tcp":
            host = link.bind or ("0.0.0.0" if self.spans_hosts else "127.0.0.1")
            local = host in _LOCAL_HOSTS or host.startswith("127.")
            return None if local else f"tcp:// bound to {host}"
        if transport == "ucx":
            return "ucx:// (its listeners accept on every interface)"
        if transport == "mpi":
            return "the TCP side channel of mpi:// (bound to every interface)"
        return None

    @property
    def spans_hosts(self) -> bool:
        return any(not p.is_local_host for p in self.processes.values())


def _cli_error(message: str, option: str = "--transport") -> Exception:
    from ..errors import ConfigError

    return ConfigError(message, key=option)


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; raises ConfigError (file, line, key)."""
    doc = TomlDocument.load(path)
    base = Path(path).resolve().parent
    data = doc.data
    _check_keys(doc, data, {"run", "process", "link"}, ())
    run = _parse_run(doc, data.get("run", {}), base)
    processes = _parse_processes(doc, data.get("process"), base)
    links = _parse_links(doc, data.get("link", []), processes)
    topology = Topology(Path(path).resolve(), run, processes, links)
    _check_ranks(doc, topology)
    _check_secrets(topology, doc.error)
    return topology


def _check_secrets(topology: Topology, error: Callable[..., Exception]) -> None:
    """Refuse (or, with the link's own ``secret = false``, warn about) network
    listeners without a secret; see the module docstring."""
    for index, link in enumerate(topology.links):
        reach = topology.network_listener(link)
        if reach is None or (link.secret if link.secret is not None else topology.run.secret):
            continue
        if link.secret is None:
            raise error(
                f"link {link.name!r} listens through {reach} and [run] secret = false would "
                "leave it without a secret; give the link its own 'secret = false' to accept "
                "that explicitly, or drop [run] secret = false",
                "link",
                index,
            )
        err = error(
            f"link {link.name!r} listens through {reach} without a secret", "link", index, "secret"
        )
        log.warning("%s (secret = false): any host that can reach it may connect", err)


def _check_keys(doc: TomlDocument, table: Any, allowed: set[str], where: tuple[Any, ...]) -> None:
    if not isinstance(table, dict):
        raise doc.error("expected a table", *where)
    for key in table:
        if key not in allowed:
            raise doc.error(
                f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}", *where, key
            )


def _typed(doc: TomlDocument, table: dict[str, Any], key: str, kind: type, *where: Any) -> Any:
    value = table.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise doc.error(f"expected {kind.__name__}, got {value!r}", *where, key)
    return value


def _parse_run(doc: TomlDocument, table: Any, base: Path) -> RunOptions:
    _check_keys(doc, table, _RUN_KEYS, ("run",))
    run = RunOptions()
    run.events = _typed(doc, table, "events", int, "run")
    if run.events is not None and run.events < 0:
        raise doc.error("must be >= 0", "run", "events")
    run.input = _typed(doc, table, "input", str, "run") or None
    run.output = _typed(doc, table, "output", str, "run") or None
    run.transport = _typed(doc, table, "transport", str, "run") or run.transport
    if run.transport not in TRANSPORTS:
        raise doc.error(
            f"unknown transport {run.transport!r}; one of {', '.join(TRANSPORTS)}",
            "run",
            "transport",
        )
    run.mpi_mode = _typed(doc, table, "mpi_mode", str, "run") or run.mpi_mode
    if run.mpi_mode not in MPI_MODES:
        raise doc.error(f"one of {', '.join(MPI_MODES)}", "run", "mpi_mode")
    hostfile = _typed(doc, table, "hostfile", str, "run")
    if hostfile:  # like a process's config: relative to the topology file
        found = (base / hostfile).resolve()
        if not found.is_file():
            raise doc.error(f"host file not found: {found}", "run", "hostfile")
        run.hostfile = str(found)
    secret = _typed(doc, table, "secret", bool, "run")
    run.secret = True if secret is None else secret
    loss = _typed(doc, table, "on_process_loss", str, "run") or run.on_process_loss
    if loss not in LOSS_POLICIES:
        raise doc.error(f"one of {', '.join(LOSS_POLICIES)}", "run", "on_process_loss")
    run.on_process_loss = loss
    bind_to = _typed(doc, table, "bind_to", str, "run") or run.bind_to
    if bind_to not in BIND_TO:
        raise doc.error(f"one of {', '.join(BIND_TO)}", "run", "bind_to")
    run.bind_to = bind_to
    return run


def _parse_processes(doc: TomlDocument, table: Any, base: Path) -> dict[str, ProcessSpec]:
    if not table:
        raise doc.error("a topology needs at least one [process.NAME] table", "process")
    if not isinstance(table, dict):
        raise doc.error("expected tables [process.NAME]", "process")
    processes: dict[str, ProcessSpec] = {}
    for name, entry in table.items():
        where = ("process", name)
        _check_keys(doc, entry, _PROCESS_KEYS, where)
        config = _typed(doc, entry, "config", str, *where)
        if not config:
            raise doc.error("missing 'config' (the process configuration file)", *where)
        config_path = (base / config).resolve()
        if not config_path.is_file():
            raise doc.error(f"configuration file not found: {config_path}", *where, "config")
        spec = ProcessSpec(name=name, config=config_path)
        for key in ("threads", "streams"):
            value = _typed(doc, entry, key, int, *where)
            if value is not None:
                if value < (least := OPTION_MINIMUMS[key]):
                    raise doc.error(f"must be >= {least}", *where, key)
                setattr(spec, key, value)
        spec.restarts = _typed(doc, entry, "restarts", int, *where) or 0
        if spec.restarts < 0:
            raise doc.error("must be >= 0", *where, "restarts")
        spec.host = _typed(doc, entry, "host", str, *where) or spec.host
        spec.rank = _typed(doc, entry, "rank", int, *where)
        spec.env = {
            str(k): str(v) for k, v in (_typed(doc, entry, "env", dict, *where) or {}).items()
        }
        spec.args = [str(a) for a in (_typed(doc, entry, "args", list, *where) or [])]
        processes[name] = spec
    return processes


def _parse_links(
    doc: TomlDocument, entries: Any, processes: dict[str, ProcessSpec]
) -> list[LinkSpec]:
    if not isinstance(entries, list):
        raise doc.error("expected an array of tables [[link]]", "link")
    links: list[LinkSpec] = []
    for index, entry in enumerate(entries):
        where = ("link", index)
        _check_keys(doc, entry, _LINK_KEYS, where)
        fields: dict[str, Any] = {}
        for key in ("name", "client", "server"):
            value = _typed(doc, entry, key, str, *where)
            if not value:
                raise doc.error(f"missing {key!r}", *where)
            fields[key] = value
        for role in ("client", "server"):
            if fields[role] not in processes:
                raise doc.error(
                    f"unknown process {fields[role]!r}; processes: {', '.join(processes)}",
                    *where,
                    role,
                )
        if fields["client"] == fields["server"]:
            raise doc.error("a link joins two different processes", *where, "server")
        link = LinkSpec(**fields)
        link.transport = _typed(doc, entry, "transport", str, *where)
        if link.transport is not None and link.transport not in TRANSPORTS:
            raise doc.error(
                f"unknown transport {link.transport!r}; one of {', '.join(TRANSPORTS)}",
                *where,
                "transport",
            )
        link.secret = _typed(doc, entry, "secret", bool, *where)
        link.bind = _typed(doc, entry, "bind", str, *where)
        link.options = dict(_typed(doc, entry, "options", dict, *where) or {})
        _check_shared_name(doc, link, links, where)
        links.append(link)
    return links


def _check_shared_name(
    doc: TomlDocument, link: LinkSpec, earlier: list[LinkSpec], where: tuple[Any, ...]
) -> None:
    """A name may repeat only to connect another client to the same server, same settings."""
    for other in earlier:
        if other.name != link.name:
            continue
        if other.server != link.server:
            raise doc.error(
                f"duplicate link name {link.name!r} (a name repeats only to link another "
                f"client to the same server {other.server!r})",
                *where,
                "name",
            )
        if other.client == link.client:
            raise doc.error(
                f"duplicate link {link.name!r} from {link.client!r} to {link.server!r}",
                *where,
                "client",
            )
        for key in ("transport", "secret", "bind", "options"):
            if getattr(other, key) != getattr(link, key):
                raise doc.error(
                    f"link {link.name!r} to server {link.server!r}: every client entry "
                    f"needs the same {key!r} ({getattr(other, key)!r} before)",
                    *where,
                    key,
                )


def _check_ranks(doc: TomlDocument, topology: Topology) -> None:
    seen: dict[int, str] = {}
    for spec in topology.processes.values():
        if spec.rank is None:
            continue
        if spec.rank < 0:
            raise doc.error("must be >= 0", "process", spec.name, "rank")
        if spec.rank in seen:
            raise doc.error(
                f"rank {spec.rank} is already used by process {seen[spec.rank]!r}",
                "process",
                spec.name,
                "rank",
            )
        seen[spec.rank] = spec.name
