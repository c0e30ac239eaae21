"""A crafted pickle frame from the wire is refused without running anything.

The peer is played by the test on a real tcp:// link: it sends a codec header
naming the ``pickle`` codec whose payload would call :func:`_record` when
unpickled. Without the process's opt-in the receiver's decode raises
CodecError and nothing ran - at the top level, nested in a container, as a
layout column and through ``decode_parts`` (the distributed product path).
With the opt-in the same frame does run (so the test would notice).
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest

from actors.codecs import allow_pickle, decode, decode_parts, pickle_allowed, register_layout
from actors.errors import CodecError
from actors.transports import connect, listen

RAN: list[str] = []


def _record(what: str) -> str:
    RAN.append(what)
    return what


class _Payload:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _record, ("unpickled",)


PAYLOAD = pickle.dumps(_Payload(), protocol=5)


@register_layout(name="tests.PickleColumn")
@dataclasses.dataclass
class _Column:
    col: Any


def _ext(name: str, meta: Any, first: int = 0, count: int = 0) -> msgpack.ExtType:
    return msgpack.ExtType(1, msgpack.packb([name, meta, first, count]))


HEADERS = {
    "top-level": msgpack.packb(_ext("pickle", PAYLOAD)),
    "nested": msgpack.packb({"events": [1, 2, _ext("pickle", PAYLOAD)]}),
    "layout-column": msgpack.packb(
        _ext("tests.PickleColumn", [[["col", "pickle", PAYLOAD, 0]], {}])
    ),
}


@pytest.fixture
def opt_in_restored() -> Iterator[None]:
    before = pickle_allowed()
    RAN.clear()
    yield
    allow_pickle(before)
    RAN.clear()


async def _over_the_wire(header: bytes) -> bytes:
    """What a receiver gets for ``header`` sent by a peer on a real tcp:// link."""
    async with await listen("tcp://127.0.0.1:0") as lst:
        client = await connect(lst.address, timeout=10)
        server = await lst.accept()
        async with client, server:
            await client.send(header)
            received, _ = await server.recv()
    return received


@pytest.mark.parametrize("where", sorted(HEADERS))
async def test_crafted_pickle_is_refused_without_running(where: str, opt_in_restored: None) -> None:
    allow_pickle(False)
    received = await _over_the_wire(HEADERS[where])
    with pytest.raises(CodecError, match="did not opt into pickle"):
        decode(received, [])
    with pytest.raises(CodecError, match="did not opt into pickle"):
        decode_parts("pickle", PAYLOAD, [])
    assert RAN == []


async def test_with_the_opt_in_the_same_frame_runs(opt_in_restored: None) -> None:
    allow_pickle(True)
    received = await _over_the_wire(HEADERS["top-level"])
    assert decode(received, []) == "unpickled"
    assert RAN == ["unpickled"]


def test_numpy_object_dtype_is_no_pickle_back_door(opt_in_restored: None) -> None:
    """An object dtype in array meta cannot smuggle Python objects in."""
    allow_pickle(False)
    for descr in ("|O", [["a", "|O"]]):
        header = msgpack.packb(_ext("numpy.ndarray", [descr, [1]], 0, 1))
        with pytest.raises(CodecError):
            decode(header, [np.frombuffer(PAYLOAD[:8], np.uint8)])
        header = msgpack.packb(_ext("numpy.scalar", [descr, PAYLOAD[:8]]))
        with pytest.raises(CodecError):
            decode(header, [])
    assert RAN == []
