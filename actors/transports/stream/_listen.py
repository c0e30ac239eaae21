"""Accepting and connecting stream sockets (shared by tcp and shm).

:class:`StreamListener` runs one accept task; each new connection gets its own
handshake task bounded by :data:`~._handshake.HANDSHAKE_TIMEOUT`, so a slow or
hostile peer never blocks other clients. Connections that fail the handshake
are logged (logger ``actors.transports``) and closed; good ones wait in a queue
for :meth:`StreamListener.accept`.

:func:`connect_stream` retries refused connections with capped exponential
backoff until ``timeout``, then raises PeerLost naming the address.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable

from ...errors import AuthenticationError, PeerLost, ProtocolError
from .._base import Link, QueuedListener
from .._handshake import HANDSHAKE_TIMEOUT, client_handshake, server_handshake
from ._link import log

__all__ = ["StreamListener", "connect_stream", "sock_connect"]

LinkFactory = Callable[[socket.socket, str], Link]
_RETRY_ERRNOS = {errno.ECONNREFUSED, errno.ENOENT, errno.EAGAIN, errno.ECONNRESET}


class StreamListener(QueuedListener):
    """Accepts handshaken links on a bound, listening, non-blocking socket."""

    def __init__(
        self,
        sock: socket.socket,
        address: str,
        secret: bytes | None,
        make_link: LinkFactory,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.address = address
        self._sock = sock
        self._secret = secret
        self._make_link = make_link
        self._on_close = on_close
        self._handshakes: set[asyncio.Task[None]] = set()
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._task.cancel()
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(self._task, *self._handshakes, return_exceptions=True)
        self._sock.close()
        if self._on_close is not None:
            self._on_close()
        await self._close_queue()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self._sock)
            except OSError as exc:  # e.g. EMFILE: report, back off, keep serving
                log.warning("accept on %s failed: %s", self.address, exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            task = loop.create_task(self._handshake(conn, _describe(addr, self.address)))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, peer: str) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await server_handshake(conn, self._secret, peer)
            link = self._make_link(conn, peer)
        except TimeoutError:
            log.warning(
                "%s: dropped %s: handshake not finished in %s s",
                self.address,
                peer,
                HANDSHAKE_TIMEOUT,
            )
            conn.close()
            return
        except (ProtocolError, AuthenticationError, PeerLost, OSError) as exc:  # after TimeoutError
            log.warning(
                "%s: refused connection from %s: %s: %s",
                self.address,
                peer,
                type(exc).__name__,
                exc,
            )
            conn.close()
            return
        except BaseException:
            conn.close()
            raise
        self._deliver(link)


def _describe(addr: object, address: str) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]} (on {address})"
    return f"a client of {address}"


async def connect_stream(
    open_socket: Callable[[], Awaitable[socket.socket]],
    address: str,
    secret: bytes | None,
    timeout: float,
    make_link: LinkFactory,
) -> Link:
    """Connect (retrying refusals), handshake, and wrap the socket in a link.

    Raises PeerLost when no listener accepted within ``timeout`` seconds,
    AuthenticationError when the secret is refused, ProtocolError when the
    listener does not speak this protocol.
    """
    delay = 0.005
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    sock = await open_socket()
                except OSError as exc:
                    if exc.errno not in _RETRY_ERRNOS:
                        raise PeerLost(f"cannot connect to {address}: {exc}") from exc
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.25)
                    continue
                try:
                    await client_handshake(sock, secret, address)
                    return make_link(sock, address)
                except BaseException:
                    sock.close()
                    raise
    except TimeoutError:
        raise PeerLost(
            f"no listener accepted a connection at {address} within {timeout:g} s"
        ) from None


async def sock_connect(family: int, target: object) -> socket.socket:
    """A connected non-blocking socket of ``family`` (closed again on failure)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, target)  # type: ignore[arg-type]
    except BaseException:
        sock.close()
        raise
    return sock
