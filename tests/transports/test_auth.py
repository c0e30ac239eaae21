"""The one mutual challenge-response (actors/transports/_handshake.py) on every transport.

Who may connect, per scheme (inproc, tcp, shm, ucx in process; mpi rank and port-file
modes under mpiexec), and the properties of the exchange itself on a
socketpair: both sides prove the secret, a recorded proof or verdict cannot
be replayed, extras are bound, the secret never travels or reaches a log, and
a silent peer is dropped within the handshake timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from actors.errors import AuthenticationError, PeerLost, ProtocolError
from actors.transports import connect, listen
from actors.transports._handshake import (
    SocketChannel,
    accept_handshake,
    connect_handshake,
    hello_size,
    proof_size,
)
from tests.transports.schemes import LISTEN_URLS, params, require

HERE = Path(__file__).resolve().parent

# -- who may connect, per scheme ----------------------------------------------------


@pytest.mark.parametrize("scheme", params(("inproc", "tcp", "shm", "ucx")))
@pytest.mark.parametrize(
    ("listener_secret", "connector_secret", "ok"),
    [
        (None, None, True),
        (b"s3cret", b"s3cret", True),
        (b"s3cret", b"wrong", False),
        (b"s3cret", None, False),
        (None, b"s3cret", False),  # the listener cannot prove a secret: not trusted
    ],
)
async def test_who_may_connect(
    scheme: str, listener_secret: bytes | None, connector_secret: bytes | None, ok: bool
) -> None:
    require(scheme)
    async with await listen(LISTEN_URLS[scheme](), secret=listener_secret) as lst:
        if not ok:
            with pytest.raises(AuthenticationError):
                await connect(lst.address, secret=connector_secret, timeout=10)
        # the listener carries on: a good client still gets through
        client = await connect(lst.address, secret=listener_secret, timeout=10)
        server = await asyncio.wait_for(lst.accept(), 10)
        async with server, client:
            await client.send(b"after")
            assert (await server.recv())[0] == b"after"


async def test_refusal_logs_never_show_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with await listen("tcp://127.0.0.1:0", secret=b"listener-secret-value") as lst:
        with pytest.raises(AuthenticationError) as info:
            await connect(lst.address, secret=b"connector-secret-value", timeout=10)
        await asyncio.sleep(0.05)  # the listener logs the refusal
    text = caplog.text + str(info.value)
    assert "refused" in caplog.text
    assert "secret-value" not in text


# -- the exchange itself, on a socketpair -----------------------------------------------


class Recorder(SocketChannel):
    """A SocketChannel that keeps what it sent and received."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        super().__init__(sock, peer)
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    async def send(self, data: bytes) -> None:
        self.sent.append(data)
        await super().send(data)

    async def recv(self, n: int) -> bytes:
        data = await super().recv(n)
        self.received.append(data)
        return data


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def _run(
    listener_secret: bytes | None,
    connector_secret: bytes | None,
    *,
    extras: tuple[bytes, bytes] = (b"", b""),
) -> tuple[Recorder, Recorder, list[object]]:
    a, b = _pair()
    with a, b:
        ca, cb = Recorder(a, "connector"), Recorder(b, "listener")
        results = await asyncio.gather(
            accept_handshake(ca, listener_secret, "connector", context=b"t", extra=extras[0]),
            connect_handshake(cb, connector_secret, "listener", context=b"t", extra=extras[1]),
            return_exceptions=True,
        )
    return ca, cb, list(results)


async def test_both_sides_prove_and_the_secret_never_travels() -> None:
    secret = b"a-long-shared-secret"
    listener, connector, results = await _run(secret, secret, extras=(b"L" * 8, b"C" * 8))
    assert results == [b"C" * 8, b"L" * 8]  # each side learns the other's extra
    wire = b"".join(listener.sent + connector.sent)
    assert len(wire) == hello_size(8) + proof_size(8) + 33
    assert secret not in wire
    assert listener.sent[1][1:] != bytes(32)  # the listener's proof is a real MAC


async def test_a_recorded_proof_cannot_be_replayed() -> None:
    """Replaying yesterday's PROOF against a fresh listener nonce is refused."""
    secret = b"s"
    _, recorded, _ = await _run(secret, secret)
    proof = recorded.sent[0]
    a, b = _pair()
    with a, b:
        task = asyncio.ensure_future(
            accept_handshake(SocketChannel(a, "x"), secret, "x", context=b"t")
        )
        loop = asyncio.get_running_loop()
        await SocketChannel(b, "l").recv(hello_size())  # a fresh nonce we ignore
        await loop.sock_sendall(b, proof)
        with pytest.raises(AuthenticationError):
            await task
        assert (await SocketChannel(b, "l").recv(33))[0] == 1  # told: refused


async def test_a_recorded_verdict_cannot_be_replayed() -> None:
    """A fake listener replaying a recorded HELLO and VERDICT fails the connector's check."""
    secret = b"s"
    recorded, _, _ = await _run(secret, secret)
    hello, verdict = recorded.sent
    a, b = _pair()
    with a, b:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            connect_handshake(SocketChannel(a, "fake"), secret, "fake", context=b"t")
        )
        await loop.sock_sendall(b, hello)
        await SocketChannel(b, "c").recv(proof_size())  # a fresh connector nonce
        await loop.sock_sendall(b, verdict)
        with pytest.raises(AuthenticationError, match="could not prove"):
            await task


async def test_context_separates_transports() -> None:
    a, b = _pair()
    with a, b:
        results = await asyncio.gather(
            accept_handshake(SocketChannel(a, "c"), b"s", "c", context=b"stream"),
            connect_handshake(SocketChannel(b, "l"), b"s", "l", context=b"ucx"),
            return_exceptions=True,
        )
    assert all(isinstance(r, AuthenticationError) for r in results)


async def test_garbage_is_a_protocol_error_on_both_sides() -> None:
    a, b = _pair()
    with a, b:
        task = asyncio.ensure_future(
            accept_handshake(SocketChannel(a, "c"), None, "c", context=b"t")
        )
        await SocketChannel(b, "l").recv(hello_size())
        await asyncio.get_running_loop().sock_sendall(b, b"GET / HTTP/1.1\r\n" + bytes(100))
        with pytest.raises(ProtocolError, match="does not speak"):
            await task


async def test_silent_peer_is_dropped_within_the_timeout() -> None:
    a, b = _pair()
    with a, b:
        start = asyncio.get_running_loop().time()
        with pytest.raises(PeerLost, match="did not finish the handshake"):
            await accept_handshake(SocketChannel(a, "c"), b"s", "c", context=b"t", timeout=0.2)
        assert asyncio.get_running_loop().time() - start < 2


# -- mpi:// side channels ------------------------------------------------------------


@pytest.mark.mpi
def test_mpi_rank_mode_secret(tmp_path: Path) -> None:
    from tests.transports.test_mpi import _finish, _rows, _start

    proc = _start(tmp_path, "-n", "2", str(HERE / "mpi_auth.py"), "rank")
    rc, _, err = _finish(proc, timeout=120)
    assert rc == 0, err[-3000:]
    _assert_auth_rows(_rows(tmp_path))


@pytest.mark.mpi
def test_mpi_port_file_mode_secret(tmp_path: Path) -> None:
    from tests.transports.test_mpi import _finish, _rows, _start

    port_file = str(tmp_path / "auth.port")
    results = tmp_path / "results"
    server = _start(results, "-n", "1", str(HERE / "mpi_auth.py"), "server", port_file)
    client = _start(results, "-n", "1", str(HERE / "mpi_auth.py"), "client", port_file)
    rc_client, _, err_client = _finish(client, timeout=120)
    rc_server, _, err_server = _finish(server, timeout=30)
    assert rc_client == 0 and rc_server == 0, err_client[-2000:] + err_server[-2000:]
    _assert_auth_rows(_rows(results))


def _assert_auth_rows(rows: list[dict[str, object]]) -> None:
    by_side = {str(r["side"]): r for r in rows}
    assert by_side["server"]["got"] == "hello"
    client = by_side["client"]
    assert client["got"] == "hello back"
    refused = client["refused"]
    assert isinstance(refused, list) and len(refused) == 2
    assert all("refused" in str(r) for r in refused)
