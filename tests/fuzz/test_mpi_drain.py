"""Regression: the ``mpi://`` close-time drain trusts the peer no more than the link.

After ``close()`` a background drain (``mpi/_drain.py``) receives and discards
what the peer still sends until its BYE. It used to parse header messages
with a limit of 2^62 bytes and allocate ``bytearray(size)`` from them: a
header announcing 2^60 bytes made the drain task die with MemoryError (or, for
sizes that fit, allocate and zero them). These tests drive the real
:class:`~actors.transports.mpi._inbox.Inbox` and drain over a scripted
stand-in for MPI (no MPI library needed): an oversized announcement is a
ProtocolError naming the peer, with nothing allocated from it, and valid
traffic is still drained up to the BYE.
"""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from actors.errors import ProtocolError
from actors.transports.mpi import _drain
from actors.transports.mpi._frame import (
    INLINED,
    KIND_BYE,
    KIND_MESSAGE,
    TAG_DATA,
    TAG_LONG,
    long_header_limit,
    pack_announcement,
    pack_header,
)
from actors.transports.mpi._inbox import Inbox
from tests.fuzz._support import BOUND_S, FUZZ_MAX

PEER = "rank 1 of test-comm"


class _MPIError(Exception):
    pass


class _Status:
    def __init__(self) -> None:
        self.count = 0

    def Get_count(self, datatype: object) -> int:
        return self.count


class _FakeMPI:
    Exception = _MPIError
    BYTE = "byte"

    @staticmethod
    def Status() -> _Status:
        return _Status()


class _HeaderRequest:
    """The persistent header receive (mpi4py method names): each Start takes the
    next scripted message."""

    def __init__(self, comm: _Comm, buf: bytearray) -> None:
        self.comm, self.buf = comm, buf
        self.loaded: bytes | None = None
        self.freed = False

    def Start(self) -> None:
        self.loaded = self.comm.headers.popleft() if self.comm.headers else None
        if self.loaded is not None:
            self.buf[: len(self.loaded)] = self.loaded

    def Test(self, status: _Status | None = None) -> bool:
        if self.loaded is None:
            return False
        if status is not None:
            status.count = len(self.loaded)
        return True

    def Cancel(self) -> None:
        pass

    def Wait(self) -> None:
        pass

    def Free(self) -> None:
        self.freed = True


class _Comm:
    def __init__(self, headers: Sequence[bytes], longs: Sequence[bytes] = ()) -> None:
        self.headers = deque(headers)
        self.longs = deque(longs)
        self.posted: list[tuple[int, int]] = []  # (tag, bytes) of every Irecv
        self.header_req: _HeaderRequest | None = None

    def Recv_init(self, spec: list[Any], source: int, tag: int) -> _HeaderRequest:
        self.header_req = _HeaderRequest(self, spec[0])
        return self.header_req

    def Irecv(self, spec: list[Any], source: int, tag: int) -> object:
        buf = spec[0]
        self.posted.append((tag, memoryview(buf).nbytes))
        if tag == TAG_LONG:
            data = self.longs.popleft()
            np.frombuffer(buf, np.uint8)[: len(data)] = np.frombuffer(data, np.uint8)
        return object()


class _Poller:
    """Every posted receive completes at once (the scripted peer sent it)."""

    def submit(self, requests: Any, keep: Any, **_: Any) -> asyncio.Future[None]:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def _inbox(headers: Sequence[bytes], longs: Sequence[bytes] = ()) -> tuple[Inbox, _Comm]:
    comm = _Comm(headers, longs)
    return Inbox(_FakeMPI, _Poller(), comm, 1), comm  # type: ignore[arg-type]


_BYE = pack_header(KIND_BYE, b"", [], [])
_HUGE = pack_header(KIND_MESSAGE, b"h", [1 << 60], [0])  # announces 2^60 bytes


async def _drain_traced(inbox: Inbox) -> tuple[BaseException | None, int]:
    """Run the drain; (what it raised, peak bytes allocated meanwhile)."""
    tracemalloc.start()
    try:
        async with asyncio.timeout(BOUND_S):
            await _drain.drain(inbox, PEER, FUZZ_MAX)
    except ProtocolError as exc:
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


async def test_header_announcing_2_to_the_60_allocates_nothing_and_names_the_peer() -> None:
    inbox, comm = _inbox([_HUGE, _BYE])
    error, peak = await _drain_traced(inbox)
    assert isinstance(error, ProtocolError)
    assert PEER in str(error) and f"max_message_size={FUZZ_MAX}" in str(error)
    assert comm.posted == []  # no body receive, so no buffer, was made for it
    assert peak < 1 << 20


async def test_just_over_the_link_limit_is_refused_too() -> None:
    # the old limit (2^62) let this through and allocated FUZZ_MAX + 1 zeroed bytes
    inbox, comm = _inbox([pack_header(KIND_MESSAGE, b"", [FUZZ_MAX + 1], [0]), _BYE])
    error, peak = await _drain_traced(inbox)
    assert isinstance(error, ProtocolError) and PEER in str(error)
    assert comm.posted == [] and peak < 1 << 20


async def test_oversized_long_header_announcement_allocates_nothing() -> None:
    # a long header's size is a u32: its largest value, and one byte over the limit
    for size in ((1 << 32) - 1, long_header_limit(FUZZ_MAX) + 1):
        inbox, comm = _inbox([pack_announcement(size), _BYE])
        error, peak = await _drain_traced(inbox)
        assert isinstance(error, ProtocolError) and "too large" in str(error)
        assert PEER in str(error)
        assert comm.posted == [] and peak < 1 << 20


async def test_long_header_hiding_an_oversized_message_is_refused() -> None:
    inner = pack_header(KIND_MESSAGE, b"x", [1 << 60], [0])
    announce = pack_announcement(len(inner))
    inbox, comm = _inbox([announce, _BYE], [inner])
    error, peak = await _drain_traced(inbox)
    assert isinstance(error, ProtocolError) and PEER in str(error)
    assert comm.posted == [(TAG_LONG, len(inner))]  # the long header only
    assert peak < 1 << 20


async def test_valid_traffic_is_drained_up_to_the_bye() -> None:
    small = pack_header(KIND_MESSAGE, b"m", [3, 1000], [INLINED, 0], [b"abc"])
    inner = pack_header(KIND_MESSAGE, b"L" * 200, [4096], [0])
    announce = pack_announcement(len(inner))
    inbox, comm = _inbox([small, announce, _BYE, small], [inner])
    error, _ = await _drain_traced(inbox)
    assert error is None
    assert comm.posted == [(TAG_DATA, 1000), (TAG_LONG, len(inner)), (TAG_DATA, 4096)]
    assert inbox.ready()  # the BYE stays in; the message after it is not taken
    assert list(comm.headers) == [small]


async def test_background_drain_logs_the_refusal_and_frees_the_inbox(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox, comm = _inbox([_HUGE, _BYE])
    with caplog.at_level(logging.WARNING, logger="actors.transports.mpi"):
        _drain.start_drain(inbox, PEER, FUZZ_MAX)
        (task,) = _drain._draining
        async with asyncio.timeout(BOUND_S):
            await task
    assert comm.header_req is not None and comm.header_req.freed
    assert any(PEER in r.getMessage() and "exceeds" in r.getMessage() for r in caplog.records)
    assert comm.posted == []
