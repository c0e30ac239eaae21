"""FrameReader: the same messages whatever the read boundaries (fast and general paths)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest

from actors.errors import ProtocolError
from actors.transports.stream._framereader import SCRATCH, FrameReader
from actors.transports.stream._framing import (
    FLAG_DEVICE,
    FLAG_SHM,
    KIND_ACK,
    KIND_DATA,
    Entry,
    encode_preamble,
)


def _frame(header: bytes, bufs: list[bytes], flags: list[int] | None = None) -> bytes:
    flags = flags or [0] * len(bufs)
    entries = [Entry(len(b), f) for b, f in zip(bufs, flags, strict=True)]
    return encode_preamble(KIND_DATA, header, entries) + b"".join(bufs)


class Feed:
    """A read function that hands out ``data`` in chunks of ``step`` bytes."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def __call__(self, view: memoryview) -> int:
        if self.pos == len(self.data):
            raise BlockingIOError
        n = min(self.step, len(view), len(self.data) - self.pos)
        view[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def _read_all(data: bytes, step: int, **kw: Any) -> list[tuple[bytes, list[bytes], Any]]:
    got: list[tuple[bytes, list[bytes], Any]] = []
    reader = FrameReader(
        1 << 30,
        "peer",
        lambda h, b, d: got.append((h, [bytes(x) for x in b], d)),
        kw.get("on_control", lambda kind, entries: None),
        kw.get("resolve", lambda entry: b"oob%d" % entry.aux),
        kw.get("oob", 0),
    )
    feed = Feed(data, step)
    while feed.pos < len(data):
        with contextlib.suppress(BlockingIOError):
            assert reader.pump(feed)
    assert not reader.mid_message
    return got


MESSAGES = [
    (b"", []),
    (b"h", [b"12345678"]),
    (b"two", [b"", b"abc"]),
    (b"x" * 70_000, [b"y" * 5]),  # preamble larger than the scratch area
    (b"big", [bytes(np.arange(3 * SCRATCH, dtype=np.uint8))]),  # direct read
    (b"many", [b"%d" % i for i in range(64)]),
]


@pytest.mark.parametrize("step", [1, 7, 4096, SCRATCH, 1 << 30])
def test_same_messages_for_any_read_size(step: int) -> None:
    data = b"".join(_frame(h, b) for h, b in MESSAGES)
    got = _read_all(data, step)
    assert [(h, b) for h, b, _ in got] == [(h, b) for h, b in MESSAGES]
    assert all(d is None for _, _, d in got)


@pytest.mark.parametrize("step", [3, 1 << 30])
def test_device_flags_and_out_of_band_buffers(step: int) -> None:
    shm_entry = Entry(100, FLAG_SHM, 9)
    frame = (
        encode_preamble(KIND_DATA, b"m", [Entry(2, FLAG_DEVICE), shm_entry, Entry(1, 0)])
        + b"ab"
        + b"c"
    )
    controls: list[tuple[int, list[Entry]]] = []
    ack = encode_preamble(KIND_ACK, b"", [Entry(0, 0, 4)])
    got = _read_all(
        frame + ack,
        step,
        oob=FLAG_SHM,
        on_control=lambda kind, entries: controls.append((kind, entries)),
    )
    assert got == [(b"m", [b"ab", b"oob9", b"c"], [True, False, False])]
    assert controls == [(KIND_ACK, [Entry(0, 0, 4)])]


def test_oversized_frame_is_refused_before_allocation() -> None:
    reader = FrameReader(100, "peer", lambda h, b, d: None, lambda k, e: None, lambda e: None)
    with pytest.raises(ProtocolError, match="max_message_size=100"):
        reader.pump(Feed(_frame(b"", [b"z" * 200]), 1 << 30))
