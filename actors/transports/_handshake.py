"""The one connection handshake of every transport that takes a secret.

tcp://, the shm:// control socket, the ucx:// stream channel and the TCP side
channel of mpi:// all run this exchange right after connecting. The *listener*
is the side that accepted the link (or, for ``mpi://rank``, the rank that
listens); the *connector* is the other one. Fixed-size records, so nothing is
ever sized from what a peer sends::

    listener  -> connector  HELLO   magic(8) version(1) flags(1) nonce_l(32) extra_l(E)
    connector -> listener   PROOF   magic(8) version(1) flags(1) nonce_c(32) extra_c(E) mac_c(32)
    listener  -> connector  VERDICT status(1) mac_l(32)

``flags`` bit 0: this side holds a secret. ``extra`` is a fixed-length,
transport-defined payload (ucx:// sends its receive tag there; E = 0 elsewhere).
With the transcript ``T = HELLO + PROOF without its mac`` and a per-transport
``context`` string (tcp and shm share "stream")::

    mac_c = HMAC-SHA256(secret, DOMAIN + context + b"|connector|" + T)
    mac_l = HMAC-SHA256(secret, DOMAIN + context + b"|listener|" + T)

Both sides prove the secret (mutual), the MACs bind both fresh 32-byte nonces
(a recorded PROOF or VERDICT is useless on another connection: no replay), the
role (no reflection), the extras (a tag cannot be swapped) and the transport.
Digests are compared with :func:`hmac.compare_digest`; the secret itself never
travels and never appears in a message or a log line. Without secrets on both
sides the MACs are zeros and the link is open. A secret on one side only is a
refusal on both sides: a connector with a secret does not trust a listener
that cannot prove it. ``status``: 0 ok, 1 refused (authentication), 2 protocol
error.

Errors: a peer that does not speak this protocol -> ProtocolError; a wrong,
missing or unexpected secret -> AuthenticationError (both sides); EOF ->
PeerLost; not finished within ``timeout`` seconds (default
:data:`HANDSHAKE_TIMEOUT`) -> PeerLost. The drivers run on the caller's event
loop; :class:`HandshakeChannel` adapts a transport's byte channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Protocol

from ..errors import AuthenticationError, PeerLost, ProtocolError

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "HandshakeChannel",
    "SocketChannel",
    "StreamsChannel",
    "accept_handshake",
    "client_handshake",
    "connect_handshake",
    "hello_size",
    "proof_size",
    "server_handshake",
]

#: Seconds either side gives the other to finish the handshake.
HANDSHAKE_TIMEOUT = 5.0

MAGIC = b"HEPACTRS"
VERSION = 2
DOMAIN = b"hep-actors handshake v2|"
NONCE = 32
MAC = 32
VERDICT_SIZE = 1 + MAC
_HEAD = len(MAGIC) + 2
_HAS_SECRET = 1
_OK, _REFUSED, _PROTOCOL = 0, 1, 2
_ZERO_MAC = bytes(MAC)


class HandshakeChannel(Protocol):
    """Bytes to and from the peer, for the handshake only."""

    async def send(self, data: bytes) -> None:
        """Send all of ``data``; PeerLost (or OSError) when the peer is gone."""

    async def recv(self, n: int) -> bytes:
        """Exactly ``n`` bytes; PeerLost at EOF."""


def hello_size(extra_len: int = 0) -> int:
    """Bytes of a HELLO record with ``extra_len`` bytes of extra."""
    return _HEAD + NONCE + extra_len


def proof_size(extra_len: int = 0) -> int:
    """Bytes of a PROOF record with ``extra_len`` bytes of extra."""
    return _HEAD + NONCE + extra_len + MAC


def _mac(secret: bytes | None, context: bytes, role: bytes, transcript: bytes) -> bytes:
    if secret is None:
        return _ZERO_MAC
    import hashlib  # here: a link without a secret never loads OpenSSL (~1 ms of start-up)
    import hmac

    return hmac.new(secret, DOMAIN + context + role + transcript, hashlib.sha256).digest()


def _proves(secret: bytes, context: bytes, role: bytes, transcript: bytes, mac: bytes) -> bool:
    """Whether ``mac`` is ``role``'s MAC of ``transcript`` (compared in constant time)."""
    import hmac

    return hmac.compare_digest(_mac(secret, context, role, transcript), mac)


def _record(secret: bytes | None, nonce: bytes, extra: bytes) -> bytes:
    return MAGIC + bytes([VERSION, _HAS_SECRET if secret is not None else 0]) + nonce + extra


def _parse_head(data: bytes, peer: str) -> int:
    """Check magic and version of a HELLO/PROOF; its flags."""
    if data[: len(MAGIC)] != MAGIC:
        raise ProtocolError(
            f"{peer} does not speak the hep-actors protocol (got {data[: len(MAGIC)]!r})"
        )
    version, flags = data[len(MAGIC)], data[len(MAGIC) + 1]
    if version != VERSION:
        raise ProtocolError(f"{peer} speaks handshake version {version}, this side {VERSION}")
    if flags & ~_HAS_SECRET:
        raise ProtocolError(f"{peer} sent unknown handshake flags {flags:#x}")
    return flags


async def accept_handshake(
    channel: HandshakeChannel,
    secret: bytes | None,
    peer: str,
    *,
    context: bytes,
    extra: bytes = b"",
    timeout: float = HANDSHAKE_TIMEOUT,
) -> bytes:
    """Run the listener's side; returns the connector's extra (same length as ``extra``).

    Raises (and tells the peer) ProtocolError or AuthenticationError; PeerLost
    when the peer goes away or does not finish within ``timeout``.
    """
    try:
        async with asyncio.timeout(timeout):
            return await _accept(channel, secret, peer, context, extra)
    except TimeoutError:
        raise PeerLost(f"{peer} did not finish the handshake within {timeout:g} s") from None


async def _accept(
    channel: HandshakeChannel, secret: bytes | None, peer: str, context: bytes, extra: bytes
) -> bytes:
    hello = _record(secret, os.urandom(NONCE), extra)
    await channel.send(hello)
    proof = await channel.recv(proof_size(len(extra)))
    try:
        flags = _parse_head(proof, peer)
    except ProtocolError:
        await _send_status(channel, _PROTOCOL)
        raise
    body, mac_c = proof[:-MAC], proof[-MAC:]
    transcript = hello + body
    if secret is None:
        if flags & _HAS_SECRET:
            await _send_status(channel, _REFUSED)
            raise AuthenticationError(f"{peer} presented a secret but this listener has none")
    elif not _proves(secret, context, b"|connector|", transcript, mac_c):
        await _send_status(channel, _REFUSED)
        raise AuthenticationError(f"{peer} presented a wrong or missing secret")
    await channel.send(bytes([_OK]) + _mac(secret, context, b"|listener|", transcript))
    return body[_HEAD + NONCE :]


async def connect_handshake(
    channel: HandshakeChannel,
    secret: bytes | None,
    peer: str,
    *,
    context: bytes,
    extra: bytes = b"",
    timeout: float = HANDSHAKE_TIMEOUT,
) -> bytes:
    """Run the connector's side; returns the listener's extra (same length as ``extra``).

    Raises ProtocolError, AuthenticationError (refused, or the listener cannot
    prove the secret), PeerLost (EOF, or not finished within ``timeout``).
    """
    try:
        async with asyncio.timeout(timeout):
            return await _connect(channel, secret, peer, context, extra)
    except TimeoutError:
        raise PeerLost(f"{peer} did not finish the handshake within {timeout:g} s") from None


async def _connect(
    channel: HandshakeChannel, secret: bytes | None, peer: str, context: bytes, extra: bytes
) -> bytes:
    hello = await channel.recv(hello_size(len(extra)))
    _parse_head(hello, peer)
    body = _record(secret, os.urandom(NONCE), extra)
    transcript = hello + body
    await channel.send(body + _mac(secret, context, b"|connector|", transcript))
    verdict = await channel.recv(VERDICT_SIZE)
    if verdict[0] == _REFUSED:
        raise AuthenticationError(f"{peer} refused the connection: secrets differ")
    if verdict[0] != _OK:
        raise ProtocolError(f"{peer} refused the handshake (status {verdict[0]})")
    if secret is not None and not _proves(secret, context, b"|listener|", transcript, verdict[1:]):
        raise AuthenticationError(f"{peer} could not prove it knows the shared secret")
    return hello[_HEAD + NONCE :]


async def _send_status(channel: HandshakeChannel, status: int) -> None:
    with contextlib.suppress(OSError, PeerLost):  # peer gone already; the caller raises
        await channel.send(bytes([status]) + _ZERO_MAC)


# -- channels -------------------------------------------------------------------------


class SocketChannel:
    """A connected non-blocking socket on the running loop."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self._sock = sock
        self._peer = peer

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self._sock, data)

    async def recv(self, n: int) -> bytes:
        loop = asyncio.get_running_loop()
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = await loop.sock_recv_into(self._sock, view[got:])
            if k == 0:
                raise PeerLost(f"{self._peer} closed the connection during the handshake")
            got += k
        return bytes(buf)


class StreamsChannel:
    """An asyncio ``StreamReader``/``StreamWriter`` pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str):
        self._reader = reader
        self._writer = writer
        self._peer = peer

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def recv(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise PeerLost(f"{self._peer} closed the connection during the handshake") from None


# -- stream transports (tcp, shm) ---------------------------------------------------

_STREAM = b"stream"


async def client_handshake(sock: socket.socket, secret: bytes | None, peer: str) -> None:
    """Connector side on a stream socket (tcp, shm); see :func:`connect_handshake`."""
    await connect_handshake(SocketChannel(sock, peer), secret, peer, context=_STREAM)


async def server_handshake(sock: socket.socket, secret: bytes | None, peer: str) -> None:
    """Listener side on a stream socket (tcp, shm); see :func:`accept_handshake`."""
    await accept_handshake(SocketChannel(sock, peer), secret, peer, context=_STREAM)
