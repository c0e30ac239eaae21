"""tcp:// specifics: addresses, loopback default, socket options."""

from __future__ import annotations

import socket

import pytest

from actors.errors import ConfigError
from actors.transports import connect, listen
from actors.transports.stream.tcp import parse_host_port


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("", ("127.0.0.1", 0)),
        (":0", ("127.0.0.1", 0)),
        ("localhost:80", ("localhost", 80)),
        ("0.0.0.0:1234/", ("0.0.0.0", 1234)),
        ("[::1]:5", ("::1", 5)),
        ("example.org", ("example.org", 0)),
    ],
)
def test_parse_host_port(address: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(address) == expected


@pytest.mark.parametrize("address", ["h:port", "h:70000"])
def test_parse_host_port_errors(address: str) -> None:
    with pytest.raises(ConfigError, match="tcp://"):
        parse_host_port(address)


@pytest.mark.parametrize("url", ["tcp://", "tcp://:0"])
async def test_listener_binds_loopback_and_resolves_port(url: str) -> None:
    async with await listen(url) as lst:
        host, port = parse_host_port(lst.address.removeprefix("tcp://"))
        assert host == "127.0.0.1" and port > 0
        client = await connect(lst.address)
        server = await lst.accept()
        async with client, server:
            assert client.capabilities.crosses_nodes and client.capabilities.zero_copy_receive
            assert not client.capabilities.device_memory
            sock = client._sock  # type: ignore[attr-defined]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            assert sock.getpeername()[0] == "127.0.0.1"


async def test_port_in_use_is_a_config_error() -> None:
    async with await listen("tcp://127.0.0.1:0") as lst:
        with pytest.raises(ConfigError, match=lst.address.removeprefix("tcp://")):
            await listen(lst.address)
