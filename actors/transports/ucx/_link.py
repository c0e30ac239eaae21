"""The ``ucx://`` link: framing over one UCX endpoint, host and device buffers.

See :mod:`actors.transports.ucx` for the contract, the tag scheme, progress
and peer-death rules; this module holds :class:`UCXLink` itself, including its
handshake (:meth:`UCXLink.handshake`, which the listener and ``connect`` run:
the link's tags stay the link's own). Its receives go through the probed
receives of :mod:`._probe` (a link is their :class:`~._probe.TagQueue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...buffers import as_host_view, device_empty, is_device, nbytes
from ...errors import BackendUnavailable, PeerLost, ProtocolError
from .._base import Capabilities, Link, Message, warn_no_device
from .._handshake import accept_handshake, connect_handshake
from .._spin import AdaptivePoll
from . import _wire as wire
from ._library import ucxx_api
from ._probe import ProbedFrames, ProbedRecv
from ._progress import Engine, poll_seconds

__all__ = ["UCX_CAPABILITIES", "UCXLink"]

log = logging.getLogger("actors.transports.ucx")
UCX_CAPABILITIES = Capabilities(zero_copy_receive=True, device_memory=True, crosses_nodes=True)
_CLOSE_TIMEOUT = 1.0
#: How long a link whose endpoint UCX reported closed still takes messages
#: when no goodbye came (a peer that died, or one whose goodbye is late): UCX's
#: disconnect can overtake the last messages of a shared-memory queue.
LOSS_GRACE_SECONDS = 0.1
#: ``send`` returns once its frames are posted; it waits only while more than
#: this many bytes of earlier sends are still being transferred (large frames
#: complete when the peer receives them).
SEND_WINDOW = 64 << 20


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

    capabilities = UCX_CAPABILITIES

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
        #: the prefix receive in progress (kept across a cancelled recv)
        self._prefix_req: ProbedRecv | None = None
        #: When and how long ``recv`` polls the worker before it waits (see :mod:`._spin`).
        self.poller = AdaptivePoll(poll_seconds(), eng.spinner)
        self._inflight: deque[tuple[asyncio.Future[None], int]] = deque()
        self._inflight_bytes = 0
        self._closed = False
        self._lost: str | None = None
        self._grace_ended = False  # LOSS_GRACE_SECONDS passed since UCX reported the loss
        self._goodbye = False  # the peer's goodbye arrived: no message follows
        self._device_ok = True  # until a device buffer finds no cupy here
        self._send_what = f"ucx send to {peer}"
        self._prefix_what = f"ucx message prefix from {peer}"
        eng.acquire()
        ep.set_close_callback(self._on_endpoint_closed)

    # -- state -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed or self._lost is not None

    def _on_endpoint_closed(self) -> None:
        """UCX endpoint error/close callback (runs inside worker progress).

        Receives go on taking what arrives until the peer's goodbye or for
        :data:`LOSS_GRACE_SECONDS`; then every wait of this link fails."""
        if self._lost is None:
            self._lost = "the peer closed the link or died"
            self._eng.loop.call_later(LOSS_GRACE_SECONDS, self._grace_over)
            self._eng.poke()

    def _grace_over(self) -> None:
        self._grace_ended = True
        if not self._eng.closed:
            self._eng.fail(self, self.lost_error)
            self._eng.fail(self._inflight, self.lost_error)
            self._eng.poke()

    def lost_error(self) -> PeerLost:
        """The PeerLost that a use of this closed or lost link raises (names the peer)."""
        why = "the link is closed" if self._closed else self._lost or "the link is closed"
        return PeerLost(f"ucx link to {self.peer}: {why}")

    def _usable(self) -> Any:
        ep = self._ep
        if self._closed or self._lost is not None or ep is None or not ep.alive:
            raise self.lost_error()
        return ep

    def _post(self, what: str, post: Any, *args: Any) -> Any:
        try:
            return post(*args)
        except Exception as exc:
            raise PeerLost(f"ucx link to {self.peer}: {what} failed: {exc!r}") from exc

    def take(self, arr: Any) -> tuple[Any, int] | None:
        """Take the next message of this link's tag out of UCX's unexpected queue
        into ``arr`` (a tag probe with remove, then a receive with its handle, on
        the endpoint while it is alive, else on the worker): the receive request
        and the message's length, or None when no message is there."""
        worker = self._eng.worker
        if worker is None:
            return None
        probe = worker.tag_probe(self._recv_tag, remove=True)
        if not probe.matched:
            return None
        ep = self._ep
        owner = ep if ep is not None and ep.alive else worker
        return owner.tag_recv_with_handle(arr, probe), int(probe.length)

    def ended(self) -> bool:
        """True when no further message can come: the link closed, the peer's
        goodbye taken, the worker freed, or the peer lost longer than
        :data:`LOSS_GRACE_SECONDS` ago."""
        return self._closed or self._goodbye or self._grace_ended or self._eng.worker is None

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

    # -- handshake ---------------------------------------------------------------

    @property
    def recv_tag(self) -> int:
        """The UCX tag of this link's incoming frames: random, one per link (UCX
        matches tags per worker); the peer learns it in :meth:`handshake`."""
        return self._recv_tag_value

    async def handshake(self, secret: bytes | None, *, listener: bool, timeout: float) -> None:
        """Run the handshake of :mod:`actors.transports._handshake` on the
        endpoint's stream channel, as the side that accepted the endpoint
        (``listener``) or the one that connected; each side's extra is its
        :attr:`recv_tag`, and the peer's becomes the tag this link sends with.

        Raises AuthenticationError (secret refused), ProtocolError (not a
        hep-actors peer), PeerLost (peer gone, or not done within ``timeout``).
        """
        run = accept_handshake if listener else connect_handshake
        extra = await run(
            _StreamChannel(self),
            secret,
            self.peer,
            context=wire.CONTEXT,
            extra=wire.TAG.pack(self._recv_tag_value),
            timeout=timeout,
        )
        self._send_tag = _tag(wire.TAG.unpack(extra)[0])

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
        prefix = None if buffers or len(header) > self._max else wire.header_prefix(header)
        # Post every frame before awaiting anything: messages never interleave.
        self._post_frames(ep, [prefix] if prefix is not None else self._frames(header, buffers))
        self._eng.spinner.kick()  # traffic: keep the loop awake (ACTORS_LOOP_SPIN_US)
        if self._inflight:
            await self._drain(SEND_WINDOW)

    def _frames(self, header: bytes, buffers: Sequence[Any]) -> list[Any]:
        """The frames of a message: its prefix, then the header and the buffers
        that travel on their own. Raises ProtocolError (see :meth:`send`)."""
        device = [is_device(b) for b in buffers]
        bufs = [b if dev else as_host_view(b) for b, dev in zip(buffers, device, strict=True)]
        sizes = [nbytes(b) for b in bufs]
        total = len(header) + sum(sizes)
        if total > self._max:
            raise ProtocolError(
                f"message of {total} bytes exceeds max_message_size={self._max} on {self.peer}"
            )
        # every host buffer is offered; pack_prefix inlines while the prefix has room
        inline = [None if dev else b for b, dev in zip(bufs, device, strict=True)]
        prefix, header_inline, separate = wire.pack_prefix(header, sizes, device, inline)
        frames: list[Any] = [prefix]
        if not header_inline:
            frames.append(header)
        frames.extend(bufs[i] for i in separate if sizes[i] > 0)
        return frames

    def _post_frames(self, ep: Any, frames: list[Any]) -> None:
        """Post the frames of one message in order; those not complete at once
        are tracked (the link holds them until UCX is done)."""
        eng = self._eng
        for f in frames:
            arr = _array(f)
            req = self._post("send", ep.tag_send, arr, self._send_tag)
            if req.completed:  # small frames usually complete while posted
                eng.check(req, self._send_what)
                continue
            size = nbytes(f)
            # owned by the deque: close() fails the receives only, and waits for these
            self._inflight.append((eng.track(req, self._inflight, arr), size))
            self._inflight_bytes += size

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
                raise self.lost_error() from fut.exception()

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
            raise self.lost_error()
        rx = self._rx
        if rx is None:
            try:
                received = await self._recv_prefix()
                # exactly the bytes of this prefix: the rest of the buffer holds
                # older prefixes, never to be read as this one's
                view = memoryview(self._prefix)[:received]
                header_only = wire.header_only(view, self._max)
                if header_only is not None:  # most messages: no buffers
                    return header_only, []
                layout = wire.parse_prefix(view, self._max, self.peer)
            except ProtocolError:
                await self.close()
                raise
            if layout.goodbye:
                self._goodbye = True
                self._lost = self._lost or "the peer closed the link"
                raise self.lost_error()
            header, buffers, frames = self._unpack(layout)
            if not frames:
                assert isinstance(header, bytes)
                return header, buffers
            rx = self._rx = asyncio.get_running_loop().create_task(
                self._finish(header, buffers, frames)
            )
        try:
            message = await asyncio.shield(rx)
        except asyncio.CancelledError:
            # rx stays for the next call, also when it finished just as this call was
            # cancelled (clearing it then lost the message: the next recv waited forever)
            raise
        except ProtocolError:
            if self._rx is rx:
                self._rx = None
            await self.close()
            raise
        except BaseException:
            if self._rx is rx:
                self._rx = None
            raise
        if self._rx is rx:
            self._rx = None
        return message

    async def _recv_prefix(self) -> int:
        """Receive the next prefix frame into ``self._prefix``; its length in bytes.

        ucxx's tag receive does not report how many bytes arrived, so the
        prefix is received through a probe (:class:`ProbedRecv`), which does.
        The receive survives a cancelled call (the next call waits for the
        same one), so no message is lost or split. Raises ProtocolError for a
        prefix frame larger than :data:`wire.PREFIX_CAPACITY`.
        """
        req = self._prefix_req
        if req is None:
            ep = self._ep
            if self._lost is not None or ep is None or not ep.alive:
                return await self._prefix_arrived()
            req = self._prefix_req = ProbedRecv(self, self._prefix_arr)
        eng = self._eng
        what = self._prefix_what

        def arrived() -> bool:
            eng.progress()
            return bool(req.completed)

        if not req.completed and not arrived() and not self.poller.run(arrived):
            try:
                await eng.wait(req, what, self, self._prefix_arr, on_arrival=not req.matched)
            except PeerLost:
                if not req.completed:
                    self._prefix_req = None
                    raise
        self._prefix_req = None
        eng.check(req, what)
        self.poller.activity()
        eng.spinner.kick()
        return self._prefix_length(req)

    def _prefix_length(self, req: ProbedRecv) -> int:
        """Bytes of a completed prefix receive; ProtocolError when it was longer
        than the prefix buffer (UCX reports that as a truncation already)."""
        if req.length > wire.PREFIX_CAPACITY:
            raise ProtocolError(
                f"message prefix of {req.length} bytes from {self.peer} exceeds "
                f"{wire.PREFIX_CAPACITY} bytes"
            )
        return req.length

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
            buf = self._allocate(size, kind == wire.DEVICE)
            buffers.append(buf)
            if size:
                frames.append(buf)
        return header, buffers, frames

    def _allocate(self, size: int, device: bool) -> Any:
        """The buffer an announced frame is received into: device memory for a
        device buffer, host memory otherwise - and for a device buffer when this
        process has no cupy (the peer's flag is no error here; decoding a cupy
        array from it raises CodecError). Logged once per link, naming the peer."""
        if device and self._device_ok:
            try:
                return device_empty(size)
            except BackendUnavailable as exc:
                self._device_ok = False
                warn_no_device(log, self.peer, exc)
        return np.empty(size, np.uint8)

    async def _finish(self, header: Any, buffers: list[Any], frames: list[Any]) -> Message:
        """Receive the out-of-line frames of a message (a task: survives cancelled recv)."""
        await self._recv_frames(frames)
        return (header if isinstance(header, bytes) else header.tobytes()), buffers

    async def _recv_frames(self, frames: list[Any]) -> None:
        """Receive the frames of one message, each straight into its final buffer.

        Every frame must carry exactly the bytes its prefix announced: a
        shorter one would leave unwritten bytes in the buffer the application
        gets, a longer one would be cut. ucxx's tag receive reports neither, so
        the frames are taken through probes (:class:`ProbedFrames`), which
        give each frame's length. Raises ProtocolError (naming the peer) for a
        frame of another length, PeerLost when the peer goes before they arrive.
        """
        arrays = [_array(f) for f in frames]
        req = ProbedFrames(self, arrays, [nbytes(f) for f in frames])
        what = f"ucx message frames from {self.peer}"
        ep = self._ep
        if self._lost is None and ep is not None and ep.alive:
            await self._eng.wait(req, what, self, arrays)
            return
        await self._after_loss(req, what, arrays)  # only frames sent before the loss

    async def _prefix_arrived(self) -> int:
        """Receive a prefix frame sent before the peer was lost (its length), else
        PeerLost (see :meth:`_after_loss`)."""
        req = ProbedRecv(self, self._prefix_arr)
        await self._after_loss(req, f"ucx message prefix from {self.peer}", self._prefix_arr)
        return self._prefix_length(req)

    async def _after_loss(self, req: ProbedRecv | ProbedFrames, what: str, keep: object) -> None:
        """Wait for a probed receive on a lost link: one whose message arrived, or
        arrives before the peer's goodbye or within :data:`LOSS_GRACE_SECONDS` of
        the loss; PeerLost when none can (or it does not complete within 2 s)."""
        self._eng.worker.progress()
        req.poll()  # takes a message that arrived before the loss
        if self._closed or (not req.matched and self.ended()):
            raise self.lost_error()  # nothing had arrived, nothing can
        try:
            async with asyncio.timeout(2.0):
                await self._eng.wait(req, what, None, keep)
        except TimeoutError:
            raise self.lost_error() from None

    # -- close -------------------------------------------------------------------

    async def close(self) -> None:
        """Close the link (flushes what was sent); idempotent, never raises PeerLost."""
        if self._closed:
            return
        self._closed = True
        self._prefix_req = None  # an unmatched probe completes as gone in the engine
        self._eng.fail(self, self.lost_error)
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
                    await self._drain(0)  # closing the endpoint cancels sends in flight
                    await self._say_goodbye(ep)
                    await self._eng.wait(ep.close(), f"closing ucx link to {self.peer}")
        except (TimeoutError, PeerLost, ProtocolError):
            pass
        finally:
            with contextlib.suppress(Exception):
                ep.close_blocking()  # cancels what is still in flight: frees the worker
            del ep
            self._inflight.clear()
            self._eng.release()

    async def _say_goodbye(self, ep: Any) -> None:
        """Send the goodbye prefix (after everything sent so far, on the same tag),
        unless the peer is lost or the handshake never gave its tag."""
        if self._lost is not None or self._send_tag is None:
            return
        arr = _array(wire.GOODBYE_PREFIX)
        req = self._post("send", ep.tag_send, arr, self._send_tag)
        await self._eng.wait(req, f"goodbye to {self.peer}", None, arr)


class _StreamChannel:
    """A link's stream channel as a :class:`~actors.transports._handshake.HandshakeChannel`."""

    def __init__(self, link: UCXLink) -> None:
        self._link = link

    async def send(self, data: bytes) -> None:
        await self._link._stream(data, 0, "handshake")

    async def recv(self, n: int) -> bytes:
        return await self._link._stream(None, n, "handshake")
