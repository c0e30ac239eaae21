"""``shm://name`` - same-host links: control on a Unix socket, payload in shared memory.

Scheme
------
* Control channel: a Unix stream socket in the Linux abstract namespace,
  ``@hep-actors-shm-<name>`` (no file to clean up; it vanishes with the
  listener). It carries the frames of :mod:`._framing` and the handshake of
  :mod:`._handshake` (optional shared secret), exactly like ``tcp://``.
* Buffers smaller than :data:`INLINE_MAX` travel inline on the socket. Larger
  ones are copied once by the sender (by several threads when large: :mod:`._copy`)
  into a shared-memory segment (see
  :mod:`._segments`: a sealed memfd whose descriptor crosses the socket once,
  with SCM_RIGHTS, in the first frame that uses it - flag SHM_NEW). Later frames
  refer to the segment by id (flag SHM). The receiver hands out a zero-copy
  ``memoryview`` over the mapping.
* Reuse and flow control: a segment stays busy until the receiver has dropped
  every view of it; the receiver then sends an ACK frame with the segment ids
  (batched) and the sender puts them back into its pool. A sender whose busy
  segments exceed :data:`MAX_BUSY_BYTES` waits for ACKs (or PeerLost) before it
  fills another one, so a receiver that holds views bounds the memory used.
  Idle segments above :data:`MAX_IDLE_BYTES` are unmapped by the sender, which
  sends a DROP frame so that the receiver unmaps them too.
* Bounds on the receiving side: one link maps at most ``ACTORS_SHM_MAX_SEGMENTS``
  segments (default 4096) and ``ACTORS_SHM_MAX_MAPPED_BYTES`` bytes of them
  (default 64 GiB, at least 4x the link's max_message_size) for its peer at
  once; a segment counts from its announcement until the peer DROPs it. A peer
  that announces one more is refused: ProtocolError naming the peer and the
  limit, that link closed, other links untouched. A sender that follows this
  protocol stays far below the byte limit (busy + idle bytes are bounded
  above); it reaches the segment limit only when the receiver holds thousands
  of views of large buffers at once.
* Cleanup: segments never have a name in /dev/shm; the kernel frees them when
  both processes have unmapped them, also after a crash. Closing a link, by
  ``close`` or by an error, unmaps the sender's pool and every received
  segment no view of which is held, and closes every received descriptor;
  views already handed out stay valid until dropped (their segment is unmapped
  with the last one).
* No busy waiting when idle: a quiet link blocks in the event loop on its
  socket (0.0 % CPU measured). Within 2 ms of the last message ``recv`` polls
  the socket for up to 100 us first (:mod:`._spin`), which skips the loop
  wake-up: 8-byte RTT 37 us vs 43 us for a raw socketpair wake-up round trip
  with event loops on both sides (2-core VM, uvloop; it was 89 us).

Device buffers are staged like ``tcp://``: the device-to-host copy lands
directly in the segment (one copy), and the receiver copies back to the device.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import os
import socket
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

from ...buffers import as_host_view, device_to_host, is_device, nbytes
from ...errors import ConfigError, PeerLost, ProtocolError
from ...settings import SHM_MAX_MAPPED_BYTES, SHM_MAX_SEGMENTS
from .._base import Backend, Capabilities, Link, Listener
from ._copy import copy_into
from ._framing import FLAG_DEVICE, FLAG_SHM, FLAG_SHM_NEW, KIND_ACK, KIND_DATA, KIND_DROP, Entry
from ._link import StreamLink
from ._listen import StreamListener, connect_stream, sock_connect
from ._segments import RecvMaps, Segment, SendPool

__all__ = ["INLINE_MAX", "MAX_BUSY_BYTES", "MAX_IDLE_BYTES", "SHMBackend", "SHMLink"]

_CAPS = Capabilities(zero_copy_receive=True, device_memory=False, crosses_nodes=False)
#: Buffers below this many bytes go inline on the socket.
INLINE_MAX = 1 << 16
#: Most bytes of segments one link direction keeps busy before send waits for ACKs.
MAX_BUSY_BYTES = 2 << 30
#: Most bytes of idle (acknowledged) segments a sender keeps for reuse; beyond it the
#: least recently used are unmapped and the receiver told to DROP its mapping.
MAX_IDLE_BYTES = 512 << 20
#: Most descriptors one sendmsg may pass (the kernel's SCM_MAX_FD); further large
#: buffers of the same message go inline.
_MAX_FDS = 253
#: Most received descriptors waiting for the frame that announces them.
_MAX_PENDING_FDS = 4 * _MAX_FDS
_anonymous = itertools.count(1)
_ANC_SPACE = socket.CMSG_SPACE(_MAX_FDS * 4)
_MSG_CTRUNC = int(socket.MSG_CTRUNC)  # a plain int: enum arithmetic is slow
_SCM_RIGHTS = (socket.SOL_SOCKET, socket.SCM_RIGHTS)


def _socket_name(name: str) -> bytes:
    return b"\0hep-actors-shm-" + name.encode()


class SHMLink(StreamLink):
    """A StreamLink whose large buffers travel through shared-memory segments.

    ``max_segments`` and ``max_mapped_bytes`` bound what the peer may make this
    link map (see the module docstring); None reads ``ACTORS_SHM_MAX_SEGMENTS``
    and ``ACTORS_SHM_MAX_MAPPED_BYTES`` now (ConfigError naming the variable
    when it does not parse). The byte limit in force is at least
    ``4 * max_message_size``.
    """

    _OOB_FLAGS = FLAG_SHM

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        max_message_size: int,
        *,
        max_segments: int | None = None,
        max_mapped_bytes: int | None = None,
    ) -> None:
        if max_segments is None:
            max_segments = SHM_MAX_SEGMENTS.get()
        if max_mapped_bytes is None:
            max_mapped_bytes = SHM_MAX_MAPPED_BYTES.get()
        self._pool = SendPool()
        self._maps = RecvMaps(
            peer,
            max_segments=max_segments,
            max_bytes=max(max_mapped_bytes, 4 * max_message_size),
        )
        self._fdq: deque[int] = deque()
        self._control: dict[int, list[int]] = {KIND_ACK: [], KIND_DROP: []}
        self._credit: asyncio.Future[None] | None = None
        self._control_task: asyncio.Task[None] | None = None
        super().__init__(sock, peer, max_message_size, _CAPS)

    # -- sending ------------------------------------------------------------------

    async def send(self, header: bytes, buffers: Sequence[Any] = ()) -> None:
        self._check_usable()
        total = sum(nbytes(b) for b in buffers)
        if total > self._max:
            raise ProtocolError(
                f"message of {total} bytes exceeds max_message_size={self._max} on {self.peer}"
            )
        big = sum(nbytes(b) for b in buffers if nbytes(b) >= INLINE_MAX)
        while big and self._pool.busy_bytes and self._pool.busy_bytes + big > MAX_BUSY_BYTES:
            await self._wait_credit()
        entries: list[Entry] = []
        views: list[Any] = []
        fds: list[int] = []
        taken: list[Segment] = []
        try:
            for b in buffers:
                entries.append(self._place(b, views, fds, taken))
            await self._send_frame(KIND_DATA, header, entries, views, fds)
        except BaseException:
            if not self._closed:  # nothing went out: the segments are still ours
                for seg in taken:
                    seg.announced = seg.announced and seg.fd not in fds
                    self._pool.release(seg.id)
            raise

    def _place(self, b: Any, views: list[Any], fds: list[int], taken: list[Segment]) -> Entry:
        """The table entry for ``b``: inline (view appended) or copied into a segment."""
        size = nbytes(b)
        flags = FLAG_DEVICE if is_device(b) else 0
        if size < INLINE_MAX or len(fds) == _MAX_FDS:
            views.append(as_host_view(device_to_host(b)) if flags else as_host_view(b))
            return Entry(size, flags)
        seg = self._pool.acquire(size)
        taken.append(seg)
        if flags:
            device_to_host(b, out=seg.array[:size])
        else:
            copy_into(seg.array[:size], as_host_view(b))  # the one copy
        if not seg.announced:
            seg.announced, flags = True, flags | FLAG_SHM_NEW
            fds.append(seg.fd)
        return Entry(size, flags | FLAG_SHM, seg.id)

    async def _wait_credit(self) -> None:
        if self._credit is None or self._credit.done():
            self._credit = self._loop.create_future()
        await self._credit
        self._check_usable()

    # -- receiving ----------------------------------------------------------------

    def _read_into(self, view: memoryview) -> int:
        n, anc, flags, _ = self._sock.recvmsg_into([view], _ANC_SPACE)
        for level, kind, data in anc:
            if (level, kind) == _SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
                self._fdq.extend(fds)
        if len(self._fdq) > _MAX_PENDING_FDS:  # descriptors no frame announces
            raise ProtocolError(f"{self.peer} sent {len(self._fdq)} unannounced descriptors")
        if flags & _MSG_CTRUNC:
            raise ProtocolError(f"{self.peer} sent more descriptors than one read can carry")
        return n

    def _resolve(self, entry: Entry) -> Any:
        """The zero-copy view of a buffer that came through segment ``entry.aux``."""
        if entry.flags & FLAG_SHM_NEW:
            if not self._fdq:
                raise ProtocolError(f"{self.peer} announced segment {entry.aux} without its fd")
            self._maps.add(entry.aux, self._fdq.popleft(), entry.size)
        arr = self._maps.view(entry.aux, entry.size)
        done = weakref.finalize(arr, _ack_from_any_thread, weakref.ref(self), entry.aux)
        done.atexit = False
        return arr.data

    def _on_control(self, kind: int, entries: list[Entry]) -> None:
        if kind == KIND_DROP:
            for e in entries:
                self._maps.drop(e.aux)
            return
        if kind != KIND_ACK:
            super()._on_control(kind, entries)
        for e in entries:
            if not self._pool.release(e.aux):
                raise ProtocolError(f"{self.peer} acknowledged segment {e.aux} that is not busy")
        for seg_id in self._pool.trim(MAX_IDLE_BYTES):
            self._queue_control(KIND_DROP, seg_id)
        if self._credit is not None and not self._credit.done():
            self._credit.set_result(None)

    def _ack(self, seg_id: int) -> None:
        self._queue_control(KIND_ACK, seg_id)

    def _queue_control(self, kind: int, seg_id: int) -> None:
        """Queue an ACK/DROP for ``seg_id``; one task sends them in batches."""
        if self._closed:
            return
        self._control[kind].append(seg_id)
        if self._control_task is None:
            self._control_task = self._loop.create_task(self._flush_control())

    async def _flush_control(self) -> None:
        try:
            while not self._closed and any(self._control.values()):
                for kind, ids in self._control.items():
                    if ids:
                        self._control[kind] = []
                        entries = [Entry(0, 0, i) for i in ids]
                        await self._send_frame(kind, b"", entries, [])
        except PeerLost:
            pass  # the link is gone: nothing is left to acknowledge
        finally:
            self._control_task = None

    # -- closing ------------------------------------------------------------------

    def _release(self) -> None:
        self._pool.close()
        self._maps.close()
        while self._fdq:
            os.close(self._fdq.popleft())
        if self._credit is not None and not self._credit.done():
            self._credit.set_result(None)
        if self._control_task is not None:
            self._control_task.cancel()


def _ack_from_any_thread(ref: weakref.ref[SHMLink], seg_id: int) -> None:
    """Finalizer of a received view: runs wherever the view was freed."""
    link = ref()
    if link is None or link._closed:
        return
    try:
        if link._loop.is_closed():
            return
        link._loop.call_soon_threadsafe(link._ack, seg_id)
    except RuntimeError:
        pass  # the loop was closed meanwhile


def _limits() -> dict[str, int]:
    """The receive bounds of new links, read when listen/connect is called (a value
    that does not parse is a ConfigError there, not in the accept loop)."""
    return {
        "max_segments": SHM_MAX_SEGMENTS.get(),
        "max_mapped_bytes": SHM_MAX_MAPPED_BYTES.get(),
    }


class SHMBackend(Backend):
    """Registered under ``shm``; see the module docstring."""

    scheme = "shm"
    capabilities = _CAPS

    async def listen(
        self, address: str, *, secret: bytes | None, max_message_size: int
    ) -> Listener:
        name = address.strip("/") or f"anonymous-{os.getpid()}-{next(_anonymous)}"
        limits = _limits()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(_socket_name(name))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on shm://{name}: {exc}") from exc

        def make_link(conn: socket.socket, peer: str) -> Link:
            return SHMLink(conn, f"shm://{name} (client)", max_message_size, **limits)

        return StreamListener(sock, f"shm://{name}", secret, make_link)

    async def connect(
        self, address: str, *, secret: bytes | None, timeout: float, max_message_size: int
    ) -> Link:
        name = address.strip("/")
        limits = _limits()

        async def open_socket() -> socket.socket:
            return await sock_connect(socket.AF_UNIX, _socket_name(name))

        def make_link(conn: socket.socket, peer: str) -> Link:
            return SHMLink(conn, f"shm://{name}", max_message_size, **limits)

        return await connect_stream(open_socket, f"shm://{name}", secret, timeout, make_link)
