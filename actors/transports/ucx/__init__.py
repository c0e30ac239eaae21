"""``ucx://host:port`` - links over UCX (ucxx), host and GPU memory alike.

Install with ``pip install 'hep-actors[ucx]'`` (``ucxx-cu12``). Without a GPU
UCX runs over its shared-memory and TCP transports; with one, device buffers
(cupy arrays, anything with ``__cuda_array_interface__``) are sent from and
received into GPU memory without staging through the host
(``device_memory=True``), and a receive lands straight in a buffer allocated
from the announced size (``zero_copy_receive=True``).

Addresses: ``listen("ucx://:0")`` listens on a free port and reports
``ucx://127.0.0.1:<port>``; ``connect("ucx://host:port")``. ucxx cannot choose
the interface a listener binds: it accepts on *all* interfaces, so give a
``secret`` whenever the network is not trusted (see docs/ucx.md).

Handshake and framing: the mutual challenge-response of
:mod:`actors.transports._handshake` on the endpoint's stream channel (each
side's tag in its extra; :meth:`UCXLink.handshake`, run by the listener for each
accepted endpoint and by ``connect``), then the frames of
:mod:`actors.transports.ucx._wire`:
a prefix frame and one frame per large buffer, tagged with a random per-link
tag. Concurrent senders: all frames of
one message are *posted* synchronously (no ``await`` in between) and UCX keeps
the posting order of same-tag messages on one endpoint, so messages never
interleave and no lock is needed. Progress: :mod:`._progress` (no busy
wait when idle). Small messages: a send that completes while posted is not
tracked, and ``recv`` progresses the worker inline and polls it briefly after
recent activity (:mod:`._spin`), so a prefix-only message needs no task, future
or event-loop pass (8-byte RTT on a 2-core VM: 81 us vs 58 us raw ucxx; it was
218 us).

Peer death: UCX endpoint error handling is on; the endpoint's close callback
marks the link lost, so a later ``send`` raises PeerLost at once (the kernel
reports a killed peer's connection within milliseconds). ``recv`` still takes
the messages the peer sent before: up to its goodbye (the last message of a
link closed with ``close()``), or for ``LOSS_GRACE_SECONDS`` (0.1 s) after the
loss when no goodbye comes (UCX's report can overtake the last messages of a
shared-memory queue); then pending requests fail and ``recv`` raises PeerLost.

Loop rules: a link or listener belongs to the event loop it was made on
(one UCX worker per loop); ``recv`` by one task at a time - a cancelled
``recv`` keeps its partial message for the next call.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from ...errors import AuthenticationError, ConfigError, PeerLost, ProtocolError
from .._base import Backend, Link, Listener, QueuedListener
from ._library import ucxx_api
from ._link import UCX_CAPABILITIES, UCXLink
from ._progress import Engine, engine

__all__ = ["HANDSHAKE_TIMEOUT", "UCXBackend", "UCXLink", "UCXListener", "parse_address"]


log = logging.getLogger("actors.transports.ucx")
_CAPS = UCX_CAPABILITIES
#: Seconds a listener gives a new endpoint to complete the handshake.
HANDSHAKE_TIMEOUT = 10.0


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` / ``"[v6]:port"`` / ``":0"`` -> (host, port); empty host = loopback."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"ucx address {address!r} is not host:port (e.g. 'ucx://127.0.0.1:0')")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


# -- listener and backend -----------------------------------------------------------


class UCXListener(QueuedListener):
    """Accepts ``ucx://`` links; each passes the handshake before ``accept`` sees it."""

    def __init__(
        self, eng: Engine, host: str, port: int, secret: bytes | None, max_message_size: int
    ) -> None:
        super().__init__()
        self._eng = eng
        self._secret = secret
        self._max = max_message_size
        self._handshakes: set[asyncio.Task[None]] = set()
        api = ucxx_api()
        self._listener: Any = api.UCXListener.create(
            worker=eng.worker, port=port, cb_func=self._on_connection
        )
        eng.acquire()
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
        self.address = f"ucx://{shown}:{self._listener.port}"

    def _on_connection(self, conn_request: int) -> None:
        """UCX listener callback (inside worker progress): start the handshake."""
        if self._closed or self._listener is None:
            return
        try:
            ep = self._listener.create_endpoint_from_conn_request(conn_request, True)
        except Exception as exc:
            log.warning("%s: could not accept a connection: %r", self.address, exc)
            return
        link = UCXLink(self._eng, ep, f"client of {self.address}", self._max)
        task = self._eng.loop.create_task(self._handshake(link))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, link: UCXLink) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await link.handshake(self._secret, listener=True, timeout=HANDSHAKE_TIMEOUT)
        except (TimeoutError, PeerLost, ProtocolError, AuthenticationError) as exc:
            log.warning("%s: dropped a connection at handshake: %s", self.address, exc)
            await link.close()
            return
        except asyncio.CancelledError:
            await link.close()
            raise
        if self._closed:
            await link.close()
        else:
            self._deliver(link)

    async def close(self) -> None:
        """Stop accepting; idempotent. Accepted links stay open, unaccepted ones close."""
        if self._closed:
            return
        self._closed = True
        self._listener = None  # frees the UCX listener
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        await self._close_queue()
        self._eng.release()


class UCXBackend(Backend):
    """The ``ucx`` scheme. Raises BackendUnavailable("ucxx", "ucx") without ucxx."""

    scheme = "ucx"
    capabilities = _CAPS

    def __init__(self) -> None:
        ucxx_api()  # fail early, at get_backend("ucx"), when ucxx is missing

    async def listen(
        self, address: str, *, secret: bytes | None, max_message_size: int
    ) -> Listener:
        host, port = parse_address(address)
        return UCXListener(engine(), host, port, secret, max_message_size)

    async def connect(
        self, address: str, *, secret: bytes | None, timeout: float, max_message_size: int
    ) -> Link:
        """Connect, retrying until ``timeout`` while nobody listens yet.

        Raises PeerLost on timeout, AuthenticationError when the secret is
        refused, ProtocolError when the peer is not a hep-actors listener.
        """
        host, port = parse_address(address)
        url = f"ucx://{host}:{port}"
        eng = engine()
        eng.acquire()  # keeps the worker between attempts
        last: Exception | None = None
        try:
            async with asyncio.timeout(timeout):
                ip = await _resolve(host)
                while True:
                    try:
                        return await _connect_once(eng, ip, port, url, secret, max_message_size)
                    except PeerLost as exc:
                        last = exc
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise PeerLost(f"nobody accepted at {url} within {timeout:g} s ({last})") from None
        finally:
            eng.release()


async def _resolve(host: str) -> str:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    if not infos:
        raise PeerLost(f"cannot resolve ucx host {host!r}")
    return str(infos[0][4][0])


async def _connect_once(
    eng: Engine, ip: str, port: int, url: str, secret: bytes | None, max_message_size: int
) -> UCXLink:
    try:
        ep = ucxx_api().UCXEndpoint.create(eng.worker, ip, port, True)
    except Exception as exc:
        raise PeerLost(f"cannot reach {url}: {exc!r}") from exc
    link = UCXLink(eng, ep, url, max_message_size)
    try:
        await link.handshake(secret, listener=False, timeout=HANDSHAKE_TIMEOUT)
    except BaseException:
        await link.close()
        raise
    return link
