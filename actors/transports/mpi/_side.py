"""The TCP side channel of an ``mpi://`` link: rendezvous, secret and death watch.

MPI cannot tell that a peer died: a receive from a SIGKILLed process simply
never completes. Every MPI link therefore owns one small TCP connection to the
same peer, opened at link setup:

- the kernel closes it when the peer process dies, so EOF means death
  (detected immediately on the same host and across hosts while the peer's
  node is up);
- each side writes a heartbeat byte every ``ACTORS_MPI_HEARTBEAT_S`` seconds; silence
  longer than ``ACTORS_MPI_HEARTBEAT_TIMEOUT_S`` (node or network failure) means death
  too. The timeout is long on purpose, so that a peer whose loop is busy for a
  while is not declared dead (``ACTORS_MPI_HEARTBEAT_TIMEOUT_S``);
- a graceful close writes ``C`` before closing, so the survivor knows the
  in-band MPI ``BYE`` is coming and still delivers the messages before it;
- the doorbell: a side whose header waits fall back to the poller's naps
  writes ``n`` once; the peer then writes ``w`` after every ``send``, which
  wakes the napping loop at once (the kernel wakes it, like any socket), until
  the side writes ``a`` (its waits spin again). See
  :mod:`actors.transports.mpi._runtime` (progress) for why;
- the side lane: while the peer naps, a small message travels here instead
  of over MPI, as ``m`` | length u32 | its header message (which doubles as
  the ring); see :mod:`actors.transports.mpi._sidelane`.

Setup: the connection first runs the one mutual challenge-response of
:mod:`actors.transports._handshake` (:func:`side_accept` / :func:`side_connect`;
both sides prove the optional shared secret), then handshake lines (JSON,
newline terminated, at most :data:`MAX_LINE` bytes), so that a refused peer
never reaches the blocking MPI ``Accept``/``Connect``.

Addresses: a side listener binds ``ACTORS_MPI_SIDE_HOST`` if set, otherwise all
interfaces, and advertises the host name plus its IPv4 addresses; a dialer on
the same host uses 127.0.0.1 first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from ...errors import ConfigError, PeerLost, ProtocolError
from ...settings import MPI_HEARTBEAT_S, MPI_HEARTBEAT_TIMEOUT_S, MPI_SIDE_HOST
from .._handshake import StreamsChannel, accept_handshake, connect_handshake

__all__ = [
    "SIDE_MESSAGE_MAX",
    "SideChannel",
    "advertised",
    "bind_host",
    "dial",
    "heartbeat_settings",
    "read_json",
    "side_accept",
    "side_connect",
    "write_json",
]

log = logging.getLogger("actors.transports.mpi")

MAX_LINE = 8192
_HEARTBEAT = b"h"
_GOODBYE = b"C"
_NAPPING = b"n"  # "my header wait went to the poller's naps: ring me when you send"
_RING = b"w"  # "I sent you a message: poll now"
_AWAKE = b"a"  # "my header waits spin again: stop ringing"
_MESSAGE = b"m"  # then a u32 length and a header message: the side lane
_LENGTH = struct.Struct("<I")
SIDE_MESSAGE_MAX = 64 << 10  # longest side-lane message accepted (senders stay far below)
_BACKLOG = 256 << 10  # unsent bytes above which side-lane messages go over MPI instead


def heartbeat_settings() -> tuple[float, float]:
    """``(interval, timeout)`` of the side channel's heartbeat, in seconds.

    Raises ConfigError naming the variables when one does not parse or the
    timeout is not longer than the interval (every quiet link would count as
    lost). :mod:`actors.transports.mpi` calls it before a link takes any
    resource, so that the side channel's tasks never meet a bad value.
    """
    interval_s, timeout_s = MPI_HEARTBEAT_S.get(), MPI_HEARTBEAT_TIMEOUT_S.get()
    if timeout_s <= interval_s:
        raise ConfigError(
            f"{MPI_HEARTBEAT_TIMEOUT_S.name}={timeout_s:g} must be longer than "
            f"{MPI_HEARTBEAT_S.name}={interval_s:g}: every quiet mpi:// link would count as lost"
        )
    return interval_s, timeout_s


def bind_host() -> str:
    """Interface that side listeners bind (``ACTORS_MPI_SIDE_HOST`` or all)."""
    return MPI_SIDE_HOST.get() or "0.0.0.0"  # the channel is authenticated


def advertised(port: int) -> dict[str, Any]:
    """What a peer needs to dial a side listener on ``port``."""
    host = MPI_SIDE_HOST.get()
    if host:
        addrs = [host]
    else:
        try:
            addrs = socket.gethostbyname_ex(socket.gethostname())[2]
        except OSError:
            addrs = []
        addrs = [a for a in addrs if not a.startswith("127.")]
    return {"host": socket.gethostname(), "addrs": addrs, "port": port}


async def dial(where: dict[str, Any], timeout: float) -> tuple[asyncio.StreamReader, Any]:
    """Open a TCP connection to an advertised side listener within ``timeout`` s.

    Raises OSError (the last failure) or TimeoutError.
    """
    addrs = list(where.get("addrs", []))
    if where.get("host") == socket.gethostname() or not addrs:
        addrs.insert(0, "127.0.0.1")
    last: Exception = OSError(f"no address to dial in {where!r}")
    async with asyncio.timeout(timeout):
        for addr in addrs:
            try:
                reader, writer = await asyncio.open_connection(addr, int(where["port"]))
            except OSError as exc:
                last = exc
                continue
            _nodelay(writer)
            return reader, writer
    raise last


def _nodelay(writer: Any) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def write_json(writer: Any, obj: dict[str, Any]) -> None:
    writer.write(json.dumps(obj).encode() + b"\n")
    await writer.drain()


async def read_json(reader: asyncio.StreamReader, what: str) -> dict[str, Any]:
    """Read one handshake line; ProtocolError if malformed, PeerLost on EOF."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise PeerLost(f"{what}: connection closed during handshake") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"{what}: handshake line longer than {MAX_LINE} bytes") from None
    try:
        obj = json.loads(line)
    except ValueError:
        raise ProtocolError(f"{what}: malformed handshake line {line[:80]!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what}: handshake line is not an object: {line[:80]!r}")
    return obj


_CONTEXT = b"mpi-side"


async def side_accept(
    reader: asyncio.StreamReader, writer: Any, secret: bytes | None, what: str
) -> None:
    """Listener side of the link's handshake on its side connection.

    The one mutual challenge-response of :mod:`actors.transports._handshake`
    (bounded by its timeout). Raises AuthenticationError (told to the peer),
    ProtocolError, PeerLost.
    """
    await accept_handshake(StreamsChannel(reader, writer, what), secret, what, context=_CONTEXT)


async def side_connect(
    reader: asyncio.StreamReader, writer: Any, secret: bytes | None, what: str
) -> None:
    """Connector side of :func:`side_accept`; same errors."""
    await connect_handshake(StreamsChannel(reader, writer, what), secret, what, context=_CONTEXT)


class SideChannel:
    """Watches one established side connection; reports death or graceful close.

    ``on_event(kind, reason)`` is called once on the loop with kind ``"closed"``
    (peer closed gracefully) or ``"lost"`` (EOF without goodbye, heartbeat
    timeout, socket error); before that, any number of times with kind
    ``"napping"``, ``"awake"`` or ``"ring"`` (the doorbell, reason ``""``), and
    ``on_message(frame)`` with each side-lane message, in the order the peer
    wrote them (a malformed one is reported as ``"lost"``). :meth:`close`
    says goodbye and stops watching.

    The channel takes the connection over from ``reader`` (which must not be
    read afterwards): what the handshake left unread comes first, then the
    peer's bytes are handled in protocol callbacks as they are read. A peer
    whose EOF came during the setup is reported lost at once; one that also
    wrote bytes before it is noticed when a heartbeat write fails. Loop rules:
    construct and use on the connection's loop.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: Any,
        peer: str,
        on_event: Callable[[str, str], None],
        on_message: Callable[[bytes], None] | None = None,
    ) -> None:
        self._writer = writer
        self._peer = peer
        self._on_event: Callable[[str, str], None] | None = on_event
        self._on_message = on_message
        self._unread = bytearray()  # the start of a side-lane message, until it is whole
        interval_s, timeout_s = heartbeat_settings()
        loop = self._loop = asyncio.get_running_loop()
        self._heard = loop.time()  # when the peer's last bytes were read
        self._silence: asyncio.TimerHandle | None = loop.call_at(
            self._heard + timeout_s, self._check_silence, timeout_s
        )
        self._beating = loop.create_task(self._beat(interval_s), name=f"mpi-beat {peer}")
        self._take_over(reader, writer.transport)

    def _take_over(self, reader: asyncio.StreamReader, transport: Any) -> None:
        """Read the connection from now on in :class:`_SideProtocol`'s callbacks
        (no task step per read), after what the handshake left in ``reader``."""
        if reader.at_eof():  # the peer ended it during the setup
            self._ended(reader.exception())
            return
        try:
            left = _unread_bytes(reader)
        except Exception as exc:  # the connection failed during the setup
            self._ended(exc)
            return
        transport.set_protocol(_SideProtocol(transport.get_protocol(), self))
        transport.resume_reading()  # the stream pair may have paused it (no-op otherwise)
        if left:
            self._received(left)

    def _report(self, kind: str, reason: str) -> None:
        callback, self._on_event = self._on_event, None
        if callback is not None:
            callback(kind, reason)
        self._stop_silence_check()

    def _stop_silence_check(self) -> None:
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None

    def _received(self, data: bytes) -> None:
        """The peer's bytes (every read counts as hearing from it: no timer per
        read, the silence check of :meth:`_check_silence` re-arms itself from the
        time last heard)."""
        if self._on_event is None:
            return
        self._heard = self._loop.time()
        if self._unread:
            self._unread += data
            data, self._unread = bytes(self._unread), bytearray()
        self._dispatch(data)

    def _ended(self, exc: BaseException | None) -> None:
        """The connection ended: EOF (``exc`` None) or a socket error. A peer
        that closes or dies with our heartbeats unread resets the connection
        instead of closing it: the same loss, said the same way."""
        if exc is None:
            self._report("lost", f"peer {self._peer} died (side channel closed)")
        elif isinstance(exc, ConnectionResetError | BrokenPipeError):
            self._report("lost", f"peer {self._peer} died (side channel reset)")
        else:
            self._report("lost", f"side channel to {self._peer} failed: {exc}")

    def _dispatch(self, data: bytes) -> None:
        """Report the events and side-lane messages in ``data``, in order; keep
        an incomplete message's start for the next read."""
        pos, end = 0, len(data)
        while pos < end and self._on_event is not None:
            byte = data[pos : pos + 1]
            if byte == _MESSAGE:
                if end - pos < 1 + _LENGTH.size:
                    break
                (size,) = _LENGTH.unpack_from(data, pos + 1)
                if size > SIDE_MESSAGE_MAX:
                    self._report(
                        "lost",
                        f"side-lane message of {size} bytes from {self._peer} "
                        f"(limit {SIDE_MESSAGE_MAX})",
                    )
                    return
                start = pos + 1 + _LENGTH.size
                if end - start < size:
                    break
                if self._on_message is not None:
                    self._on_message(data[start : start + size])
                pos = start + size
                continue
            self._event(byte)
            pos += 1
        if pos < end:
            self._unread += data[pos:]

    def _event(self, byte: bytes) -> None:
        """One single-byte event of the peer's (heartbeats count as heard only)."""
        callback = self._on_event
        if callback is None:
            return
        if byte == _GOODBYE:
            self._report("closed", f"peer {self._peer} closed the link")
        elif byte == _NAPPING:
            callback("napping", "")
        elif byte == _AWAKE:
            callback("awake", "")
        elif byte == _RING:
            callback("ring", "")

    def _check_silence(self, timeout_s: float) -> None:
        """Timer callback: the peer is lost when nothing came for ``timeout_s``;
        otherwise check again when that much time has passed since it was heard."""
        loop = asyncio.get_running_loop()
        due = self._heard + timeout_s
        if loop.time() < due:
            self._silence = loop.call_at(due, self._check_silence, timeout_s)
            return
        self._report("lost", f"no heartbeat from {self._peer} for {timeout_s:g} s")

    def _write(self, byte: bytes) -> None:
        if self._on_event is None or self._writer.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.write(byte)

    def napping(self) -> None:
        """Tell the peer that our header waits nap (it rings on every send until
        :meth:`awake`)."""
        self._write(_NAPPING)

    def awake(self) -> None:
        """Tell the peer that our header waits spin again (it stops ringing)."""
        self._write(_AWAKE)

    def ring(self) -> None:
        """Wake the peer's napping header wait (we just sent it a message)."""
        self._write(_RING)

    def send_message(self, frame: bytes) -> bool:
        """Write one side-lane message (at most :data:`SIDE_MESSAGE_MAX`
        bytes); False, having written nothing, when the channel is closing or
        its unsent backlog is large (the peer does not read it): send it over
        MPI then."""
        writer = self._writer
        if self._on_event is None or writer.is_closing():
            return False
        if writer.transport.get_write_buffer_size() > _BACKLOG:
            return False
        try:
            writer.write(_MESSAGE + _LENGTH.pack(len(frame)) + frame)
        except (OSError, RuntimeError):
            return False
        return True

    async def _beat(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self._writer.write(_HEARTBEAT)
                await self._writer.drain()
            except OSError as exc:
                self._ended(exc)
                return

    async def close(self, goodbye: bool) -> None:
        """Stop watching; write the goodbye byte first when ``goodbye``. Idempotent."""
        self._on_event = None
        self._beating.cancel()
        self._stop_silence_check()
        if self._writer.is_closing():
            return
        if goodbye:
            with contextlib.suppress(OSError):
                self._writer.write(_GOODBYE)
                async with asyncio.timeout(1.0):
                    await self._writer.drain()
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


def _unread_bytes(reader: asyncio.StreamReader) -> bytes:
    """What ``reader`` holds unread, taken now (its connection then belongs to
    :class:`_SideProtocol`). Raises the reader's exception. A read after
    ``feed_eof`` never waits, so the coroutine finishes on its first step."""
    reader.feed_eof()
    reading = reader.read()
    try:
        reading.send(None)
    except StopIteration as done:
        data: bytes = done.value
        return data
    reading.close()
    raise RuntimeError("a StreamReader read at EOF waited")  # asyncio changed


class _SideProtocol(asyncio.Protocol):
    """The side connection's protocol after the handshake: bytes go straight to
    the :class:`SideChannel`; flow control and the connection's end go on to the
    stream pair's protocol as well, so that its writer's ``drain`` and
    ``wait_closed`` keep working."""

    def __init__(self, streams: Any, channel: SideChannel) -> None:
        self._streams = streams
        self._channel = channel

    def data_received(self, data: bytes) -> None:
        self._channel._received(data)

    def eof_received(self) -> bool:
        self._channel._ended(None)
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._channel._ended(exc)
        self._streams.connection_lost(exc)

    def pause_writing(self) -> None:
        self._streams.pause_writing()

    def resume_writing(self) -> None:
        self._streams.resume_writing()
