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

Handshake and framing: :mod:`actors.transports._ucx_wire` (HMAC challenge on
the endpoint's stream channel; then a prefix frame and one frame per large
buffer, tagged with a random per-link tag). Concurrent senders: all frames of
one message are *posted* synchronously (no ``await`` in between) and UCX keeps
the posting order of same-tag messages on one endpoint, so messages never
interleave and no lock is needed. Progress: :mod:`._ucx_progress` (no busy
wait when idle). Small messages: a send that completes while posted is not
tracked, and ``recv`` progresses the worker inline and polls it briefly after
recent activity (:mod:`._spin`), so a prefix-only message needs no task, future
or event-loop pass (8-byte RTT on a 2-core VM: 81 us vs 58 us raw ucxx; it was
218 us).

Peer death: UCX endpoint error handling is on; the endpoint's close callback
marks the link lost and fails its pending requests, so pending ``recv`` and
later ``send`` raise PeerLost (the kernel reports a killed peer's connection
within milliseconds). Messages that arrived before the loss are still
delivered.

Loop rules: a link or listener belongs to the event loop it was made on
(one UCX worker per loop); ``recv`` by one task at a time - a cancelled
``recv`` keeps its partial message for the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..buffers import as_host_view, device_empty, is_device, nbytes
from ..errors import AuthenticationError, BackendUnavailable, ConfigError, PeerLost, ProtocolError
from . import _ucx_wire as wire
from ._base import Backend, Capabilities, Link, Listener, Message
from ._spin import AdaptivePoll
from ._ucx_progress import POLL_SECONDS, Engine, engine, ucxx_api

__all__ = ["HANDSHAKE_TIMEOUT", "UCXBackend", "UCXLink", "UCXListener", "parse_address"]

log = logging.getLogger("actors.transports.ucx")
_CAPS = Capabilities(zero_copy_receive=True, device_memory=True, crosses_nodes=True)
#: Seconds a listener gives a new endpoint to complete the handshake.
HANDSHAKE_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 1.0
#: ``send`` returns once its frames are posted; it waits only while more than
#: this many bytes of earlier sends are still being transferred (large frames
#: complete when the peer receives them).
SEND_WINDOW = 64 << 20


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` / ``"[v6]:port"`` / ``":0"`` -> (host, port); empty host = loopback."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"ucx address {address!r} is not host:port (e.g. 'ucx://127.0.0.1:0')")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


_Array: Any = None


def _array(buf: Any) -> Any:
    global _Array
    if _Array is None:
        from ucxx._lib.arr import Array

        _Array = Array
    return _Array(buf)


def _tag(value: int) -> Any:
    return ucxx_api().UCXXTag(value)


def _new_tag() -> int:
    return int.from_bytes(os.urandom(8), "little") | 1


class UCXLink(Link):
    """One ``ucx://`` link: a UCX endpoint plus the two per-link tags."""

    capabilities = _CAPS

    def __init__(self, eng: Engine, ep: Any, peer: str, max_message_size: int) -> None:
        self.peer = peer
        self._eng = eng
        self._ep: Any = ep
        self._max = max_message_size
        self._send_tag: Any = None
        self._recv_tag_value = _new_tag()
        self._recv_tag = _tag(self._recv_tag_value)
        self._prefix = bytearray(wire.PREFIX_CAPACITY)
        self._prefix_arr = _array(self._prefix)
        self._rx: asyncio.Task[Message] | None = None
        self._prefix_req: Any = None  # posted prefix receive (kept across a cancelled recv)
        #: When and how long ``recv`` polls the worker before it waits (see :mod:`._spin`).
        self.poller = AdaptivePoll(POLL_SECONDS)
        self._inflight: deque[tuple[asyncio.Future[None], int]] = deque()
        self._inflight_bytes = 0
        self._closed = False
        self._lost: str | None = None
        eng.acquire()
        ep.set_close_callback(self._on_endpoint_closed)

    # -- state -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed or self._lost is not None

    def _on_endpoint_closed(self) -> None:
        """UCX endpoint error/close callback (runs inside worker progress)."""
        if self._lost is None:
            self._lost = "the peer closed the link or died"
            self._eng.fail(self, self._lost_error)
            self._eng.poke()

    def _lost_error(self) -> PeerLost:
        why = "the link is closed" if self._closed else self._lost or "the link is closed"
        return PeerLost(f"ucx link to {self.peer}: {why}")

    def _usable(self) -> Any:
        ep = self._ep
        if self._closed or self._lost is not None or ep is None or not ep.alive:
            raise self._lost_error()
        return ep

    def _post(self, what: str, post: Any, *args: Any) -> Any:
        try:
            return post(*args)
        except Exception as exc:
            raise PeerLost(f"ucx link to {self.peer}: {what} failed: {exc!r}") from exc

    async def _stream(self, data: bytes | None, size: int, what: str) -> bytes:
        """Handshake helper: stream-send ``data``, or stream-receive ``size`` bytes.

        Any failure is PeerLost (a stream cut short means the peer went away).
        """
        try:
            return await self._stream_once(data, size, what)
        except ProtocolError as exc:
            raise PeerLost(str(exc)) from exc

    async def _stream_once(self, data: bytes | None, size: int, what: str) -> bytes:
        ep = self._usable()
        if data is not None:
            arr = _array(data)
            req = self._post(what, ep.stream_send, arr)
            await self._eng.wait(req, f"ucx {what} with {self.peer}", self, arr)
            return data
        out = bytearray(size)
        arr = _array(out)
        req = self._post(what, ep.stream_recv, arr)
        await self._eng.wait(req, f"ucx {what} with {self.peer}", self, arr)
        return bytes(out)

    def _set_send_tag(self, value: int) -> None:
        self._send_tag = _tag(value)

    # -- send --------------------------------------------------------------------

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        """Send one message; see the module docstring for the frame scheme.

        Returns once the frames are posted (the buffers then belong to the
        link until UCX is done with them), waiting only while more than
        :data:`SEND_WINDOW` bytes of earlier messages are still in flight.
        Raises PeerLost when the link is closed or the peer gone, ProtocolError
        (link stays open) when the message exceeds max_message_size or carries
        more than ``_ucx_wire.MAX_BUFFERS`` buffers.
        """
        ep = self._usable()
        header = bytes(header)
        bufs = [b if is_device(b) else as_host_view(b) for b in buffers]
        sizes = [nbytes(b) for b in bufs]
        device = [is_device(b) for b in bufs]
        total = len(header) + sum(sizes)
        if total > self._max:
            raise ProtocolError(
                f"message of {total} bytes exceeds max_message_size={self._max} on {self.peer}"
            )
        inline = [
            None if dev or size > wire.INLINE_LIMIT else bytes(b)
            for b, size, dev in zip(bufs, sizes, device, strict=True)
        ]
        prefix, header_inline, separate = wire.pack_prefix(header, sizes, device, inline)
        frames: list[Any] = [prefix]
        if not header_inline:
            frames.append(header)
        frames.extend(bufs[i] for i in separate if sizes[i] > 0)
        # Post every frame before awaiting anything: messages never interleave.
        eng = self._eng
        for f in frames:
            arr = _array(f)
            req = self._post("send", ep.tag_send, arr, self._send_tag)
            if req.completed:  # small frames usually complete while posted
                eng.check(req, f"ucx send to {self.peer}")
                continue
            size = nbytes(f)
            self._inflight.append((eng.track(req, self, arr), size))
            self._inflight_bytes += size
        if self._inflight:
            await self._drain(SEND_WINDOW)

    async def _drain(self, window: int) -> None:
        """Forget completed sends; wait while more than ``window`` bytes are in flight."""
        inflight = self._inflight
        while inflight and (inflight[0][0].done() or self._inflight_bytes > window):
            fut, size = inflight[0]
            if not fut.done():
                await asyncio.wait([fut])  # another sender may pop it meanwhile
                continue
            inflight.popleft()
            self._inflight_bytes -= size
            if fut.exception() is not None:
                raise self._lost_error() from fut.exception()

    # -- recv --------------------------------------------------------------------

    async def recv(self) -> Message:
        """Receive the next message (host buffers: numpy/bytes; device: cupy).

        Raises PeerLost (closed, peer gone), ProtocolError (malformed or
        oversized frame: the link is then closed). Cancelling leaves the
        message in progress to the next call.

        A message that fits in its prefix frame (small messages) is taken
        without any task or future when it is already there or arrives while
        ``recv`` polls (see :mod:`._spin`); only out-of-line buffers are
        received in a task of their own.
        """
        if self._closed:
            raise self._lost_error()
        rx = self._rx
        if rx is None:
            await self._recv_prefix()
            try:
                layout = wire.parse_prefix(memoryview(self._prefix), self._max, self.peer)
            except ProtocolError:
                await self.close()
                raise
            header, buffers, frames = self._unpack(layout)
            if not frames:
                assert isinstance(header, bytes)
                return header, buffers
            rx = self._rx = asyncio.get_running_loop().create_task(
                self._finish(header, buffers, frames)
            )
        try:
            return await asyncio.shield(rx)
        except ProtocolError:
            await self.close()
            raise
        finally:
            if rx.done() and self._rx is rx:
                self._rx = None

    async def _recv_prefix(self) -> None:
        """Receive the next prefix frame into ``self._prefix``.

        The posted request survives a cancelled call (the next call waits for
        the same one), so no message is lost or split.
        """
        req = self._prefix_req
        if req is None:
            ep = self._ep
            if self._lost is not None or ep is None or not ep.alive:
                await self._recv_arrived(self._prefix_arr, "message prefix")
                return
            req = self._prefix_req = self._post(
                "recv", ep.tag_recv, self._prefix_arr, self._recv_tag
            )
        eng = self._eng
        what = f"ucx message prefix from {self.peer}"

        def arrived() -> bool:
            eng.progress()
            return bool(req.completed)

        if not req.completed and not arrived() and not self.poller.run(arrived):
            try:
                await eng.wait(req, what, self, self._prefix_arr)
            except PeerLost:
                if not req.completed:
                    self._prefix_req = None
                    raise
        self._prefix_req = None
        eng.check(req, what)
        self.poller.activity()

    def _unpack(self, layout: wire.Layout) -> tuple[Any, list[Any], list[Any]]:
        """Header, buffers and the frames still to receive, from a parsed prefix."""
        view = memoryview(self._prefix)
        offset = layout.data_offset
        frames: list[Any] = []
        if layout.header_inline:
            header: Any = bytes(view[offset : offset + layout.header_len])
            offset += layout.header_len
        else:
            header = np.empty(layout.header_len, np.uint8)
            frames.append(header)
        buffers: list[Any] = []
        for size, kind in zip(layout.sizes, layout.kinds, strict=True):
            if kind == wire.INLINE:
                buffers.append(bytes(view[offset : offset + size]))
                offset += size
                continue
            buf = _allocate(size, kind == wire.DEVICE)
            buffers.append(buf)
            if size:
                frames.append(buf)
        return header, buffers, frames

    async def _finish(self, header: Any, buffers: list[Any], frames: list[Any]) -> Message:
        """Receive the out-of-line frames of a message (a task: survives cancelled recv)."""
        await self._recv_frames([_array(f) for f in frames])
        return (header if isinstance(header, bytes) else header.tobytes()), buffers

    async def _recv_frames(self, arrays: list[Any]) -> None:
        """Receive the frames of one message: all posted at once, then awaited."""
        ep = self._ep
        if self._lost is not None or ep is None or not ep.alive:
            for arr in arrays:
                await self._recv_arrived(arr, "message frame")
            return
        tracked = [
            self._eng.track(self._post("recv", ep.tag_recv, arr, self._recv_tag), self, arr)
            for arr in arrays
        ]
        await asyncio.gather(*tracked)

    async def _recv_arrived(self, buf: Any, what: str) -> None:
        """Receive a frame that arrived before the peer was lost, else PeerLost."""
        worker = self._eng.worker
        worker.progress()
        if self._closed or not worker.tag_probe(self._recv_tag).matched:
            raise self._lost_error()
        req = worker.tag_recv(buf, self._recv_tag)
        try:
            async with asyncio.timeout(2.0):
                await self._eng.wait(req, f"ucx {what} from {self.peer}", None, buf)
        except TimeoutError:
            raise self._lost_error() from None

    # -- close -------------------------------------------------------------------

    async def close(self) -> None:
        """Close the link (flushes what was sent); idempotent, never raises PeerLost."""
        if self._closed:
            return
        self._closed = True
        self._eng.fail(self, self._lost_error)
        rx, self._rx = self._rx, None
        if rx is not None:
            rx.cancel()
            await asyncio.wait([rx])
            if not rx.cancelled():
                rx.exception()  # retrieved: the message in progress is dropped
        ep, self._ep = self._ep, None
        try:
            ep.remove_close_callback()
            if ep.alive:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await self._eng.wait(ep.close(), f"closing ucx link to {self.peer}")
        except (TimeoutError, PeerLost, ProtocolError):
            pass
        finally:
            with contextlib.suppress(Exception):
                ep.close_blocking()  # cancels what is still in flight: frees the worker
            del ep
            self._inflight.clear()
            self._eng.release()


def _allocate(size: int, device: bool) -> Any:
    if device:
        try:
            return device_empty(size)
        except BackendUnavailable:
            log.warning("device buffer received without cupy: it lands in host memory")
    return np.empty(size, np.uint8)


# -- handshake ----------------------------------------------------------------------


async def _server_handshake(link: UCXLink, secret: bytes | None) -> None:
    nonce = os.urandom(32)
    flags = wire.FLAG_SECRET if secret is not None else 0
    hello = wire.HELLO.pack(wire.MAGIC, flags, link._recv_tag_value, nonce)
    await link._stream(hello, 0, "handshake hello")
    magic, client_tag, proof = wire.REPLY.unpack(
        await link._stream(None, wire.REPLY.size, "handshake reply")
    )
    if magic != wire.MAGIC:
        raise ProtocolError(f"{link.peer} is not a hep-actors ucx:// peer (bad handshake)")
    if secret is not None and not hmac.compare_digest(proof, wire.mac(secret, nonce)):
        await link._stream(wire.VERDICT_REFUSED, 0, "handshake verdict")
        raise AuthenticationError(f"{link.peer} presented a wrong or missing secret")
    await link._stream(wire.VERDICT_ACCEPTED, 0, "handshake verdict")
    link._set_send_tag(client_tag)


async def _client_handshake(link: UCXLink, secret: bytes | None) -> None:
    magic, _flags, server_tag, nonce = wire.HELLO.unpack(
        await link._stream(None, wire.HELLO.size, "handshake hello")
    )
    if magic != wire.MAGIC:
        raise ProtocolError(f"{link.peer} is not a hep-actors ucx:// listener")
    reply = wire.REPLY.pack(wire.MAGIC, link._recv_tag_value, wire.mac(secret, nonce))
    await link._stream(reply, 0, "handshake reply")
    verdict = await link._stream(None, len(wire.VERDICT_ACCEPTED), "handshake verdict")
    if verdict != wire.VERDICT_ACCEPTED:
        raise AuthenticationError(f"{link.peer} refused our secret (wrong or missing)")
    link._set_send_tag(server_tag)


# -- listener and backend -----------------------------------------------------------


class UCXListener(Listener):
    """Accepts ``ucx://`` links; each passes the handshake before ``accept`` sees it."""

    def __init__(
        self, eng: Engine, host: str, port: int, secret: bytes | None, max_message_size: int
    ) -> None:
        self._eng = eng
        self._secret = secret
        self._max = max_message_size
        self._accepted: asyncio.Queue[UCXLink | None] = asyncio.Queue()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._closed = False
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
                await _server_handshake(link, self._secret)
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
            self._accepted.put_nowait(link)

    async def accept(self) -> Link:
        """The next authenticated link; PeerLost once the listener is closed."""
        if self._closed:
            raise PeerLost(f"listener {self.address} is closed")
        link = await self._accepted.get()
        if link is None:
            self._accepted.put_nowait(None)
            raise PeerLost(f"listener {self.address} is closed")
        return link

    async def close(self) -> None:
        """Stop accepting; idempotent. Accepted links stay open."""
        if self._closed:
            return
        self._closed = True
        self._listener = None  # frees the UCX listener
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        self._accepted.put_nowait(None)
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
            raise PeerLost(f"nobody accepted at {url} within {timeout} s ({last})") from None
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
        await _client_handshake(link, secret)
    except BaseException:
        await link.close()
        raise
    return link
