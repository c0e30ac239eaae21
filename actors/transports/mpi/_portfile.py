"""``mpi://port-file/<path>``: independent processes meeting through a port file.

The listener opens an MPI port (``MPI.Open_port``) and a side listener (TCP),
then writes ``<path>`` atomically (temporary file + rename)::

    <MPI port name>
    {"host": ..., "addrs": [...], "port": <side port>}

so that the first line alone is what a plain mpi4py client expects. A client
waits for the file (within its timeout), dials the side listener, answers
the listener's challenge (the mutual handshake of ``_side``), and only after
``{"ok": true}`` do both sides enter the blocking ``Comm.Accept`` /
``Comm.Connect`` (in a thread, one such call at a time per process: see
:func:`~actors.transports.mpi._setup.run_setup_call`). So a stale file or a
dead server gives PeerLost naming the file instead of a hang, a refused client never reaches
MPI, and the listener never sits in ``Accept`` when nobody is coming. Accepts
are serialised: one MPI ``Accept`` at a time per listener.

Each side must run under its own ``mpiexec -n 1`` with the mpich wheel: two
bare singletons fail in Accept/Connect with "Local and remote groups ...
overlap" (see docs/mpi.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ...errors import AuthenticationError, ConfigError, PeerLost, ProtocolError
from .._base import Capabilities, Link, QueuedListener
from ._link import MPILink
from ._runtime import cuda_aware, load_mpi, poller
from ._setup import run_setup_call
from ._side import (
    MAX_LINE,
    SideChannel,
    advertised,
    bind_host,
    dial,
    read_json,
    side_accept,
    side_connect,
    write_json,
)

__all__ = ["PortFileListener", "connect_port_file", "port_file_path"]

log = logging.getLogger("actors.transports.mpi")
SETUP_TIMEOUT_S = 30.0


def port_file_path(rest: str) -> Path:
    """The port file of ``mpi://port-file/<rest>`` (relative to the cwd unless absolute)."""
    if not rest:
        raise ConfigError("mpi://port-file/<path>: the path is missing")
    return Path(rest).absolute()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _new_link(comm: Any, peer: str, caps: Capabilities, max_size: int) -> MPILink:
    return MPILink(load_mpi(), poller(), comm, 0, peer, caps, max_size, cuda_aware())


class PortFileListener(QueuedListener):
    """Accepts clients that find it through its port file (queue and ``accept``
    from :class:`~actors.transports._base.QueuedListener`)."""

    def __init__(
        self, path: Path, caps: Capabilities, secret: bytes | None, max_message_size: int
    ) -> None:
        super().__init__()
        self._mpi = load_mpi()
        self.path = path
        self.address = f"mpi://port-file/{path}"
        self._caps = caps
        self._secret = secret
        self._max = max_message_size
        self._lock = asyncio.Lock()  # one MPI Accept at a time
        self._server: asyncio.Server | None = None
        self._port = ""

    async def start(self) -> None:
        self._port = self._mpi.Open_port()
        self._server = await asyncio.start_server(self._admit, bind_host(), 0, limit=MAX_LINE)
        side = advertised(self._server.sockets[0].getsockname()[1])
        _write_atomically(self.path, f"{self._port}\n{json.dumps(side)}\n")

    async def close(self) -> None:
        """Stop accepting, remove the port file, close the MPI port, close the
        links nobody accepted (one whose MPI ``Accept`` is still running is
        closed when it finishes). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(OSError):
            if self.path.read_text().split("\n", 1)[0] == self._port:
                self.path.unlink()
        if self._port and not self._lock.locked():
            self._mpi.Close_port(self._port)
        await self._close_queue()

    async def _admit(self, reader: asyncio.StreamReader, writer: Any) -> None:
        peer = f"client {writer.get_extra_info('peername')} of {self.address}"
        try:
            link = await self._handshake(reader, writer, peer)
        except (OSError, TimeoutError, PeerLost, ProtocolError, AuthenticationError) as exc:
            log.warning("%s: dropped %s: %s", self.address, peer, exc)
            writer.close()
            return
        except self._mpi.Exception as exc:
            log.error("%s: MPI Accept failed for %s: %s", self.address, peer, exc)
            writer.close()
            return
        if link is None:
            writer.close()
            return
        link.attach(SideChannel(reader, writer, peer, link.on_side_event, link.on_side_message))
        if self._closed:  # closed while MPI Accept ran: nobody will accept it
            await link.close()
            return
        self._deliver(link)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: Any, peer: str
    ) -> MPILink | None:
        await side_accept(reader, writer, self._secret, f"{self.address}: {peer}")
        async with self._lock:
            if self._closed:
                return None
            await write_json(writer, {"ok": True})
            port, comm_self = self._port, self._mpi.COMM_SELF
            comm = await run_setup_call(lambda: comm_self.Accept(port), SETUP_TIMEOUT_S)
        return _new_link(comm, peer, self._caps, self._max)


async def _read_port_file(path: Path) -> tuple[str, dict[str, Any]]:
    """Wait until ``path`` exists and parse it (it is written atomically)."""
    while True:
        try:
            port, side = (await asyncio.to_thread(path.read_text)).split("\n")[:2]
            return port, json.loads(side)
        except FileNotFoundError:
            await asyncio.sleep(0.05)
        except ValueError:
            raise ConfigError(f"{path} is not an mpi:// port file") from None


async def connect_port_file(
    rest: str, caps: Capabilities, secret: bytes | None, timeout: float, max_message_size: int
) -> Link:
    """Connect to the listener whose port file is ``rest``.

    Raises PeerLost naming the file when it does not appear, or nobody answers
    behind it, within ``timeout``; AuthenticationError when the secret is refused.
    """
    mpi = load_mpi()
    path = port_file_path(rest)
    url = f"mpi://port-file/{path}"
    deadline = time.monotonic() + timeout
    state = f"port file {path} did not appear"
    try:
        async with asyncio.timeout(timeout):
            port, side = await _read_port_file(path)
            state = f"nobody answers behind port file {path} (stale file?)"
            reader, writer = await _dial_until(side, deadline)
            state = f"handshake with the listener of {path} did not finish"
            try:
                await side_connect(reader, writer, secret, url)
            except (AuthenticationError, ProtocolError):
                writer.close()
                raise
            verdict = await read_json(reader, url)
    except (TimeoutError, PeerLost) as exc:
        raise PeerLost(f"cannot connect to {url}: {state} within {timeout:g} s") from exc
    if not verdict.get("ok"):
        writer.close()
        raise AuthenticationError(f"{url}: {verdict.get('error', 'refused')}")
    try:
        comm = await run_setup_call(lambda: mpi.COMM_SELF.Connect(port), SETUP_TIMEOUT_S)
    except (TimeoutError, mpi.Exception) as exc:
        writer.close()
        raise PeerLost(
            f"MPI Connect to the port in {path} failed: {exc} (start each side under its "
            "own 'mpiexec -n 1'; see docs/mpi.md)"
        ) from exc
    link = _new_link(comm, url, caps, max_message_size)
    link.attach(SideChannel(reader, writer, url, link.on_side_event, link.on_side_message))
    return link


async def _dial_until(side: dict[str, Any], deadline: float) -> tuple[asyncio.StreamReader, Any]:
    while True:
        try:
            return await dial(side, timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        except (OSError, TimeoutError):
            if time.monotonic() >= deadline:
                raise TimeoutError from None
            await asyncio.sleep(0.1)
