"""``mpi://`` - links over MPI through mpi4py (``pip install 'hep-actors[mpi]'``).

Addresses
---------
``mpi://rank/N``
    All processes in one ``mpiexec`` job (MPMD or SPMD). Rank N listens and
    accepts one link per connecting rank; any other rank connects to it. See
    :mod:`actors.transports.mpi._rank`.
``mpi://port-file/<path>``
    Independent processes, each under its own ``mpiexec -n 1``: the listener
    opens an MPI port and writes its name to ``<path>`` (relative to the cwd,
    or absolute with ``mpi://port-file//abs/path``); the client reads it and
    connects. See :mod:`actors.transports.mpi._portfile`.

How a message travels (:mod:`actors.transports.mpi._link`, wire format in
:mod:`actors.transports.mpi._frame`): a small header message (sizes and
host/device flags of every buffer, the header bytes, and host buffers of at
most 32 KiB inline) into an always-active persistent receive, then each
other buffer with nonblocking ``Isend``/``Irecv`` straight from and into its
own memory, in chunks of at most 1 GiB (below MPI-3's 2 GiB count limit).
Received host buffers are numpy ``uint8`` arrays; large ones come from a pool
of already-mapped memory, reused only once the array and all its views are
gone (:mod:`actors.transports.mpi._pool`). Device buffers (cupy) go directly
when the MPI library is CUDA-aware, else through one host copy on each side.

Isolation scheme: every link owns a private communicator (a two-rank
``Create_group`` in rank mode, the ``Accept``/``Connect`` inter-communicator in
port-file mode); inside it, tag 1 carries header messages and tag 2 buffer
chunks, and MPI's non-overtaking order keeps messages whole. Rank-mode setup
uses tags 32711-32713 of ``COMM_WORLD``.

asyncio: the loop is never blocked by MPI. Progress is adaptive polling from
the loop: a waiting task polls its own request (no future or task per message),
for an adaptive spin budget (at most 0.5 ms; 0 while replies come later), then
the loop's poller naps 1 ms for 20 ms,
then backs off to 10 ms (1 % of a core when idle); chosen by measurement over a
progress thread whose blocking MPI calls spin a full core (99 %) when idle; see
:mod:`actors.transports.mpi._runtime` and docs/mpi.md for the figures.

Peer death: MPI cannot see it, so each link also holds a TCP side channel whose
EOF (or 30 s without heartbeat) fails pending and later calls with PeerLost
(:mod:`actors.transports.mpi._side`). Under one ``mpiexec`` the launcher (hydra)
usually kills the whole job when a rank dies; in port-file mode the survivor
lives on.

``mpi4py`` is imported, and MPI initialised with ``MPI_THREAD_MULTIPLE``, on
the first listen/connect, never at ``import actors``.
"""

from __future__ import annotations

import importlib.util

from ...errors import BackendUnavailable, ConfigError
from ...settings import SETTINGS
from .._base import Backend, Capabilities, Link, Listener
from ._portfile import PortFileListener, connect_port_file, port_file_path
from ._rank import RankListener, connect_rank, parse_rank
from ._runtime import cuda_aware, load_mpi
from ._side import heartbeat_settings

__all__ = ["MPIBackend"]


def _split(address: str) -> tuple[str, str]:
    mode, sep, rest = address.partition("/")
    if not sep or mode not in ("rank", "port-file"):
        raise ConfigError(f"mpi://{address}: expected mpi://rank/<N> or mpi://port-file/<path>")
    return mode, rest


def _check_settings() -> None:
    """Read every ``ACTORS_MPI_*`` setting once: ConfigError naming the variable
    before a link opens anything (the link, its poller and its side channel's
    tasks read them later, where a bad value would leave resources half set up)."""
    for setting in SETTINGS:
        if setting.name.startswith("ACTORS_MPI_"):
            setting.get()
    heartbeat_settings()


class MPIBackend(Backend):
    """The ``mpi`` scheme. Constructing it checks that mpi4py is installed
    (BackendUnavailable otherwise) but does not initialise MPI."""

    scheme = "mpi"

    def __init__(self) -> None:
        if importlib.util.find_spec("mpi4py") is None:
            raise BackendUnavailable("mpi4py", "mpi")
        self._caps: Capabilities | None = None

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """Zero-copy receive, crosses nodes; device memory iff MPI is CUDA-aware.

        Initialises MPI on first access (to ask the library).
        """
        if self._caps is None:
            self._caps = Capabilities(
                zero_copy_receive=True, device_memory=cuda_aware(), crosses_nodes=True
            )
        return self._caps

    async def listen(
        self, address: str, *, secret: bytes | None, max_message_size: int
    ) -> Listener:
        mode, rest = _split(address)
        _check_settings()
        caps = self.capabilities
        if mode == "port-file":
            listener = PortFileListener(port_file_path(rest), caps, secret, max_message_size)
            await listener.start()
            return listener
        world = load_mpi().COMM_WORLD
        rank = parse_rank(rest, world.Get_size())
        if rank != world.Get_rank():
            raise ConfigError(
                f"mpi://rank/{rank}: this process is rank {world.Get_rank()}; "
                "a rank listens only at its own address"
            )
        return RankListener(caps, secret, max_message_size)

    async def connect(
        self, address: str, *, secret: bytes | None, timeout: float, max_message_size: int
    ) -> Link:
        mode, rest = _split(address)
        _check_settings()
        if mode == "port-file":
            return await connect_port_file(
                rest, self.capabilities, secret, timeout, max_message_size
            )
        return await connect_rank(rest, self.capabilities, secret, timeout, max_message_size)
