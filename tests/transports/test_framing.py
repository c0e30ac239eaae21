"""Unit tests of the shared frame format and the handshake."""

from __future__ import annotations

import asyncio
import socket

import pytest

from actors.errors import AuthenticationError, ProtocolError
from actors.transports._handshake import client_handshake, server_handshake
from actors.transports.stream._framing import (
    ENTRY,
    FLAG_DEVICE,
    KIND_DATA,
    MAGIC,
    PREFIX,
    VERSION,
    Entry,
    encode_preamble,
    parse_prefix,
    parse_table,
)


def test_preamble_round_trip() -> None:
    entries = [Entry(10, 0), Entry(0, FLAG_DEVICE, 7), Entry(1 << 33, 0, 3)]
    data = encode_preamble(KIND_DATA, b"header", entries)
    pre = parse_prefix(data[: PREFIX.size], 1 << 40, "peer")
    assert (pre.kind, pre.nbuffers, pre.header_len) == (KIND_DATA, 3, 6)
    body = data[PREFIX.size :]
    assert len(body) == pre.rest
    assert parse_table(body, pre, 1 << 40, "peer") == entries
    assert body[3 * ENTRY.size :] == b"header"


@pytest.mark.parametrize(
    ("prefix", "match"),
    [
        (PREFIX.pack(b"NOPE", VERSION, 0, 0, 0), "magic"),
        (PREFIX.pack(MAGIC, VERSION + 1, 0, 0, 0), "version"),
        (PREFIX.pack(MAGIC, VERSION, 99, 0, 0), "kind"),
        (PREFIX.pack(MAGIC, VERSION, 0, 0, 2000), "max_message_size"),
        (PREFIX.pack(MAGIC, VERSION, 0, 100, 0), "max_message_size"),
    ],
)
def test_bad_prefix_refused(prefix: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_prefix(prefix, 1000, "tcp://peer:1")


def test_table_sizes_checked_before_allocation() -> None:
    data = encode_preamble(KIND_DATA, b"h", [Entry(600), Entry(600)])
    pre = parse_prefix(data[: PREFIX.size], 1000, "p")
    with pytest.raises(ProtocolError, match="1201 bytes from p exceeds max_message_size=1000"):
        parse_table(data[PREFIX.size :], pre, 1000, "p")
    bad_flags = encode_preamble(KIND_DATA, b"", [Entry(1, 1 << 12)])
    pre = parse_prefix(bad_flags[: PREFIX.size], 1000, "p")
    with pytest.raises(ProtocolError, match="flags"):
        parse_table(bad_flags[PREFIX.size :], pre, 1000, "p")


async def _handshake(server_secret: bytes | None, client_secret: bytes | None) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        results = await asyncio.gather(
            server_handshake(a, server_secret, "client"),
            client_handshake(b, client_secret, "server"),
            return_exceptions=True,
        )
    for r in results:
        if isinstance(r, BaseException):
            raise r


@pytest.mark.parametrize(
    ("server", "client", "ok"),
    [
        (None, None, True),
        (b"s", b"s", True),
        (None, b"s", False),  # a listener that cannot prove the secret is refused
        (b"s", None, False),
        (b"s", b"t", False),
    ],
)
async def test_handshake_secrets(server: bytes | None, client: bytes | None, ok: bool) -> None:
    if ok:
        await _handshake(server, client)
    else:
        with pytest.raises(AuthenticationError):
            await _handshake(server, client)


async def test_handshake_never_sends_the_secret() -> None:
    secret = b"very-secret-value"
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        wire = bytearray()
        loop = asyncio.get_running_loop()
        orig = loop.sock_sendall

        async def spy(sock: socket.socket, data: bytes) -> None:
            wire.extend(data)
            await orig(sock, data)

        loop.sock_sendall = spy  # type: ignore[method-assign]
        try:
            await asyncio.gather(server_handshake(a, secret, "c"), client_handshake(b, secret, "s"))
        finally:
            del loop.sock_sendall
    assert len(wire) == 42 + 74 + 33
    assert secret not in wire
