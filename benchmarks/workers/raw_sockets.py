"""Baselines over raw sockets between two processes (host memory only).

Variants:

``blocking``
    Blocking TCP sockets on 127.0.0.1 with TCP_NODELAY: ``sendall`` and
    ``recv_into`` straight into a preallocated buffer. The floor for ``tcp://``.
``asyncio`` / ``asyncio-uvloop``
    asyncio streams (``open_connection``/``start_server``, ``readexactly``,
    ``write`` + ``drain``) on the default loop and on uvloop.
``socketpair``
    Wake-up round trip through a Unix ``socketpair`` whose other end is
    handed to a child process; both sides wait in an event loop (``--loop``,
    uvloop by default) - what a same-host notification costs, the bar for
    ``shm://`` small messages. The client starts its own server child.

Protocol: before every batch the client sends ``(size, reps)`` as 16 bytes;
the server then echoes ``reps`` messages of ``size`` bytes. EOF ends it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
from typing import Any

from ..pingpong import emit, measure_async, measure_sync, run_loop
from ._common import Args, main

CMD = struct.Struct("!QQ")


def _recv_exact(sock: socket.socket, view: memoryview) -> bool:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            return False
        got += n
    return True


def _blocking_server(args: Args) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        emit(ready=f"127.0.0.1:{srv.getsockname()[1]}")
        conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    view = memoryview(bytearray(max(args.sizes)))
    cmd = memoryview(bytearray(CMD.size))
    with conn:
        while _recv_exact(conn, cmd):
            size, reps = CMD.unpack(cmd)
            for _ in range(reps):
                if not _recv_exact(conn, view[:size]):
                    return
                conn.sendall(view[:size])


def _blocking_client(args: Args) -> None:
    assert args.address is not None
    host, port = args.address.rsplit(":", 1)
    conn = socket.create_connection((host, int(port)))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = memoryview(bytearray(b"x" * max(args.sizes)))
    back = memoryview(bytearray(max(args.sizes)))

    def start(size: int, reps: int) -> None:
        conn.sendall(CMD.pack(size, reps))

    def iteration(size: int) -> None:
        conn.sendall(out[:size])
        if not _recv_exact(conn, back[:size]):
            raise ConnectionError("echo server closed the connection")

    with conn:
        emit(series=measure_sync(args.sizes, args.budget, start, iteration))


async def _streams_server(args: Args) -> None:
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size, reps = CMD.unpack(await reader.readexactly(CMD.size))
                for _ in range(reps):
                    writer.write(await reader.readexactly(size))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=1 << 27)
    emit(ready=f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
    async with server:
        await done.wait()


async def _streams_client(args: Args) -> None:
    assert args.address is not None
    host, port = args.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 27)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = memoryview(b"x" * max(args.sizes))

    async def start(size: int, reps: int) -> None:
        writer.write(CMD.pack(size, reps))
        await writer.drain()

    async def iteration(size: int) -> None:
        writer.write(out[:size])
        await writer.drain()
        await reader.readexactly(size)

    series = await measure_async(args.sizes, args.budget, start, iteration)
    writer.close()
    emit(series=series)


async def _pair_recv(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = await loop.sock_recv(sock, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


async def _pair_server(fd: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    try:
        await loop.sock_sendall(sock, b"R")  # ready
        while True:
            size, reps = CMD.unpack(await _pair_recv(loop, sock, CMD.size))
            for _ in range(reps):
                await loop.sock_sendall(sock, await _pair_recv(loop, sock, size))
    except (EOFError, ConnectionError):
        pass
    finally:
        sock.close()


async def _pair_client(args: Args, sock: socket.socket) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    out = b"x" * max(args.sizes)
    await _pair_recv(loop, sock, 1)  # the child is up

    async def start(size: int, reps: int) -> None:
        await loop.sock_sendall(sock, CMD.pack(size, reps))

    async def iteration(size: int) -> None:
        await loop.sock_sendall(sock, out[:size])
        await _pair_recv(loop, sock, size)

    return await measure_async(args.sizes, args.budget, start, iteration)


def _socketpair(args: Args) -> None:
    loop = args.extra.get("loop", "uvloop")
    if args.role == "server":
        assert args.address is not None
        run_loop(_pair_server(int(args.address)), loop)
        return
    mine, theirs = socket.socketpair()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            __spec__.name,
            "socketpair",
            "server",
            sys.argv[3],
            str(theirs.fileno()),
        ],
        pass_fds=[theirs.fileno()],
    )
    theirs.close()
    try:
        series = run_loop(_pair_client(args, mine), loop)
    finally:
        mine.close()
        child.wait(timeout=10)
    emit(series=series)


def run(args: Args) -> None:
    if args.variant == "socketpair":
        _socketpair(args)
    elif args.variant == "blocking":
        (_blocking_server if args.role == "server" else _blocking_client)(args)
    else:
        loop = "uvloop" if args.variant == "asyncio-uvloop" else "asyncio"
        coro = _streams_server(args) if args.role == "server" else _streams_client(args)
        run_loop(coro, loop)


if __name__ == "__main__":
    main(run)
