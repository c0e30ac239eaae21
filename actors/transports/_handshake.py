"""Connection handshake for stream transports (tcp, shm control channel).

Sequence (the listener speaks first)::

    listener -> client   b"HEPACTRS" version auth nonce_s[32]                 42 bytes
    client -> listener   b"HEPACTRS" version has_secret nonce_c[32] mac_c[32] 74 bytes
    listener -> client   status mac_s[32]                                     33 bytes

``mac_c = HMAC-SHA256(secret, b"client" + nonce_s + nonce_c)`` and
``mac_s = HMAC-SHA256(secret, b"server" + nonce_c + nonce_s)``: both sides prove
they know the secret without sending it, and fresh nonces stop replays.
Digests are compared with :func:`hmac.compare_digest`. ``status`` is 0 (ok),
1 (authentication refused) or 2 (protocol error).

Errors: a peer that is not speaking this protocol -> ProtocolError; a wrong or
missing secret -> AuthenticationError (on both sides); EOF -> PeerLost.
Sockets must be non-blocking; the caller bounds the time taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import socket

from ..errors import AuthenticationError, PeerLost, ProtocolError

__all__ = ["HANDSHAKE_TIMEOUT", "client_handshake", "server_handshake"]

#: Seconds a listener waits for a connecting peer to finish the handshake.
HANDSHAKE_TIMEOUT = 5.0

_MAGIC = b"HEPACTRS"
_VERSION = 1
_NONCE = 32
_OK, _AUTH_REFUSED, _PROTOCOL = 0, 1, 2
_ZERO_MAC = bytes(32)


def _mac(secret: bytes, role: bytes, a: bytes, b: bytes) -> bytes:
    return hmac.new(secret, role + a + b, hashlib.sha256).digest()


async def _recv_exact(sock: socket.socket, n: int, peer: str) -> bytes:
    loop = asyncio.get_running_loop()
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = await loop.sock_recv_into(sock, view[got:])
        if k == 0:
            raise PeerLost(f"{peer} closed the connection during the handshake")
        got += k
    return bytes(buf)


def _check_magic(data: bytes, peer: str) -> None:
    if data[:8] != _MAGIC:
        raise ProtocolError(f"{peer} does not speak the hep-actors protocol (got {data[:8]!r})")
    if data[8] != _VERSION:
        raise ProtocolError(f"{peer} speaks handshake version {data[8]}, this side {_VERSION}")


async def client_handshake(sock: socket.socket, secret: bytes | None, peer: str) -> None:
    """Run the connecting side; returns when the link is accepted."""
    loop = asyncio.get_running_loop()
    hello = await _recv_exact(sock, 42, peer)
    _check_magic(hello, peer)
    auth, nonce_s = hello[9], hello[10:]
    nonce_c = os.urandom(_NONCE)
    mac_c = _mac(secret, b"client", nonce_s, nonce_c) if secret is not None else _ZERO_MAC
    await loop.sock_sendall(sock, _MAGIC + bytes([_VERSION, secret is not None]) + nonce_c + mac_c)
    reply = await _recv_exact(sock, 33, peer)
    if reply[0] == _AUTH_REFUSED:
        raise AuthenticationError(f"{peer} refused our secret (wrong or missing)")
    if reply[0] != _OK:
        raise ProtocolError(f"{peer} refused the handshake (status {reply[0]})")
    if auth and secret is not None:
        expected = _mac(secret, b"server", nonce_c, nonce_s)
        if not hmac.compare_digest(expected, reply[1:]):
            raise AuthenticationError(f"{peer} does not know the shared secret")


async def server_handshake(sock: socket.socket, secret: bytes | None, peer: str) -> None:
    """Run the listening side; raises (and tells the peer) when it fails."""
    loop = asyncio.get_running_loop()
    nonce_s = os.urandom(_NONCE)
    await loop.sock_sendall(sock, _MAGIC + bytes([_VERSION, secret is not None]) + nonce_s)
    head = await _recv_exact(sock, 10, peer)
    try:
        _check_magic(head, peer)
    except ProtocolError:
        await _send_status(sock, _PROTOCOL)
        raise
    rest = await _recv_exact(sock, 64, peer)
    nonce_c, mac_c = rest[:32], rest[32:]
    if secret is not None:
        expected = _mac(secret, b"client", nonce_s, nonce_c)
        if not hmac.compare_digest(expected, mac_c):
            await _send_status(sock, _AUTH_REFUSED)
            raise AuthenticationError(f"{peer} presented a wrong or missing secret")
        mac_s = _mac(secret, b"server", nonce_c, nonce_s)
    else:
        mac_s = _ZERO_MAC
    await loop.sock_sendall(sock, bytes([_OK]) + mac_s)


async def _send_status(sock: socket.socket, status: int) -> None:
    with contextlib.suppress(OSError):  # peer gone already; the caller raises the reason
        await asyncio.get_running_loop().sock_sendall(sock, bytes([status]) + _ZERO_MAC)
