"""Named links: how a process configuration finds the other end of a link.

Configurations name links (``link = "offload"``) instead of addresses, so one
configuration runs over every transport. Whoever starts the processes (the
launcher, a notebook, a test) hands each process a :class:`LinkTable`:

- through the environment: ``ACTORS_LINKS`` (JSON ``{name: {"role", "url",
  "secret", "peer"}}``, or the name of a file holding it) and
  ``ACTORS_RENDEZVOUS`` (a directory both sides can read, on a shared file
  system when processes span hosts);
- or in-process, with :func:`use_links` (a context variable), which is how
  several logical processes share one Python process (``inproc://``).

The *server* side listens and publishes the address it actually bound to
``<rendezvous>/<name>.addr`` (written atomically); the *client* side waits for
that file and connects. Addresses known in advance (``mpi://rank/N``,
``inproc://x``, ``shm://x``, ``mpi://port-file/...``) skip the rendezvous.
A name missing from the table is a ConfigError naming it; every wait is bounded
by a timeout and ends in :class:`~actors.errors.PeerLost` naming the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigError, PeerLost
from ..transports import Link, Listener, connect, get_backend, listen, split_url

__all__ = [
    "LinkEndpoint",
    "LinkTable",
    "connect_named",
    "current_links",
    "enter_links",
    "listen_named",
    "published_address",
    "use_links",
]

ENV_LINKS = "ACTORS_LINKS"
ENV_RENDEZVOUS = "ACTORS_RENDEZVOUS"
_NEEDS_RENDEZVOUS = ("tcp", "ucx")
#: Longest wait between two looks for a server's address file (a stat each).
_POLL_MAX_SECONDS = 0.02


@dataclass(frozen=True)
class LinkEndpoint:
    """This process's end of one named link."""

    name: str
    role: str  # "server" (listens) or "client" (connects)
    url: str
    secret: str | None = None
    peer: str = "?"
    clients: int = 1  # server end: how many clients connect (one follower schedule each)
    restarts: int = 0  # client end: how often the launcher restarts the server when it dies


@dataclass
class LinkTable:
    """The named links of one process, and where addresses are published."""

    endpoints: dict[str, LinkEndpoint]
    rendezvous: Path | None = None

    def get(self, name: str, role: str) -> LinkEndpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise ConfigError(
                f"no link named {name!r} for this process (links: {known}); "
                "start the process with python -m actors.launch, or pass links explicitly",
                key=name,
            )
        if endpoint.role != role:
            raise ConfigError(
                f"link {name!r} is the {endpoint.role} end in this process, "
                f"but a module uses it as the {role} end",
                key=name,
            )
        return endpoint

    def to_env(self) -> dict[str, str]:
        env = {ENV_LINKS: json.dumps({n: asdict(e) for n, e in self.endpoints.items()})}
        if self.rendezvous is not None:
            env[ENV_RENDEZVOUS] = str(self.rendezvous)
        return env

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LinkTable:
        environ = dict(os.environ) if environ is None else environ
        raw = environ.get(ENV_LINKS, "{}")
        try:
            if not raw.lstrip().startswith("{"):  # a file (the launcher's: secrets stay off argv)
                raw = Path(raw).read_text()
            entries = json.loads(raw)
            endpoints = {name: LinkEndpoint(**entry) for name, entry in entries.items()}
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"malformed {ENV_LINKS}: {exc}", key=ENV_LINKS) from exc
        rendezvous = environ.get(ENV_RENDEZVOUS)
        return cls(endpoints, Path(rendezvous) if rendezvous else None)


_current: ContextVar[LinkTable | None] = ContextVar("actors_links", default=None)


_from_env: dict[tuple[str | None, str | None], LinkTable] = {}


def current_links() -> LinkTable:
    """The link table of the running (logical) process: context, else environment.

    The table read from the environment is cached (the same object while the
    environment variables are unchanged), so its identity can key per-process state.
    """
    table = _current.get()
    if table is not None:
        return table
    key = (os.environ.get(ENV_LINKS), os.environ.get(ENV_RENDEZVOUS))
    table = _from_env.get(key)
    if table is None:
        table = _from_env[key] = LinkTable.from_env()
    return table


@contextlib.contextmanager
def use_links(table: LinkTable) -> Iterator[None]:
    """Make ``table`` the link table for code run in this context (and its tasks)."""
    token = _current.set(table)
    try:
        yield
    finally:
        _current.reset(token)


def enter_links(table: LinkTable) -> None:
    """Make ``table`` the link table for the rest of the current context.

    For a task's own context (``contextvars.copy_context().run(enter_links, t)``):
    each schedule of a follower serving several controllers gets its own table
    object, hence its own channels.
    """
    _current.set(table)


def _address_file(table: LinkTable, name: str) -> Path | None:
    return None if table.rendezvous is None else table.rendezvous / f"{name}.addr"


def published_address(name: str, table: LinkTable | None = None) -> str | None:
    """The address the server of link ``name`` published (None: none yet, or no rendezvous)."""
    path = _address_file(table or current_links(), name)
    try:
        return None if path is None else path.read_text().strip()
    except OSError:
        return None


def _load_ucx_before_mpi(table: LinkTable) -> None:
    """Load ucx:// before mpi:// where this process has links of both: an MPI library
    built with UCX (MPICH's ch4:ucx) brings a UCX of its own, after which ucxx's
    does not load (ConfigError), while the other way round both work."""
    schemes = {split_url(endpoint.url)[0] for endpoint in table.endpoints.values()}
    if "ucx" in schemes and "mpi" in schemes:
        get_backend("ucx")


def _needs_rendezvous(url: str) -> bool:
    return url.partition("://")[0] in _NEEDS_RENDEZVOUS


async def listen_named(name: str, table: LinkTable | None = None) -> Listener:
    """Listen on the server end of link ``name`` and publish the bound address."""
    table = table or current_links()
    endpoint = table.get(name, "server")
    _load_ucx_before_mpi(table)
    listener = await listen(endpoint.url, secret=endpoint.secret)
    path = _address_file(table, name)
    if path is not None:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(listener.address)
        tmp.replace(path)
    return listener


async def connect_named(name: str, table: LinkTable | None = None, timeout: float = 60.0) -> Link:
    """Connect the client end of link ``name``, waiting for its server to publish.

    Raises PeerLost naming the link and peer when the server does not appear
    within ``timeout`` seconds; BackendUnavailable at once, before any wait,
    when the link's transport cannot be loaded here.
    """
    table = table or current_links()
    endpoint = table.get(name, "client")
    _load_ucx_before_mpi(table)
    url = endpoint.url
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    path = _address_file(table, name)
    if path is not None and _needs_rendezvous(url):
        # load the transport (ucxx: 0.15 s) while the server starts, not after
        get_backend(split_url(url)[0])
        delay = 0.005
        while not path.exists():
            if loop.time() > deadline:
                raise PeerLost(
                    f"link {name!r}: process {endpoint.peer!r} did not start listening "
                    f"within {timeout:.0f} s (no {path})"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_SECONDS)
        url = path.read_text().strip()
    remaining = max(deadline - loop.time(), 1.0)
    try:
        return await connect(url, secret=endpoint.secret, timeout=remaining)
    except PeerLost as exc:
        raise PeerLost(f"link {name!r} to process {endpoint.peer!r} at {url}: {exc}") from exc
