"""Fuzz target: the distributed protocol decoder (``distributed/protocol.unpack``).

Every header a peer's link delivers goes through ``unpack`` before the
controller's or follower's handler touches it. Generated headers - well-formed
messages of every kind with elements replaced, dropped or added, arbitrary
msgpack values, raw bytes - either raise ProtocolError naming the peer, or
come out in a shape the handlers can consume without an IndexError,
TypeError or ValueError (``consume`` below does what they do), within 2 s.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.distributed.protocol import (
    CREDIT,
    DATA,
    END,
    ERROR,
    FINISHED,
    HELLO,
    TRANS,
    VERSION,
    WELCOME,
    pack,
    unpack,
)
from actors.errors import ProtocolError
from tests.fuzz._support import BOUND_S, SLOW_TIMEOUT_S, fuzz_settings

_product = [
    "Muons",
    "reco",
    "",
    "HLT",
    "numpy.ndarray",
    ["<f4", [3]],
    [12],
    [False],
    ["muonProducer", "MuonProducer", "abc123", "HLT", [["Hits", "raw", "", "HLT"]]],
]
VALID = [
    [HELLO, VERSION, {"process": "p", "link": "l", "pairs": {}}],
    [WELCOME, VERSION, {"process": "p", "pairs": {}, "error": None}],
    [TRANS, [[0, 1, [["HLT", "h"]]], [1, 1, 2], [2, 1, 2, 3, 7], [3, 1, 2], [4, 1]]],
    [CREDIT, 4],
    [DATA, 7, 1, 1, True, [_product]],
    [DATA, 7, 1, -1, False, []],
    [END],
    [FINISHED, 100],
    [ERROR, "boom"],
]

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
)
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


def _mutate(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with one element somewhere replaced, dropped, or added."""
    if not isinstance(value, list) or not value or depth > 4:
        return draw(_value)
    value = list(value)
    i = draw(st.integers(0, len(value) - 1))
    action = draw(st.integers(0, 3))
    if action == 0:
        value[i] = draw(_value)
    elif action == 1:
        del value[i]
    elif action == 2:
        value.insert(i, draw(_value))
    else:
        value[i] = _mutate(draw, value[i], depth + 1)
    return value


@st.composite
def header(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=64))
    if choice == 1:
        return msgpack.packb(draw(_value))
    message = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(0, 2))):
        message = _mutate(draw, message)
    return pack(*message) if isinstance(message, list) else msgpack.packb(message)


def consume(msg: list[Any]) -> None:
    """What the controller's and follower's handlers do with a message."""
    kind = msg[0]
    if kind in (HELLO, WELCOME):
        msg[2].get("process", "?")
    elif kind == TRANS:
        for t in msg[1]:
            if t[0] == 0:
                tuple((str(n), str(h)) for n, h in t[2])
            else:
                tuple(int(v) for v in t[1:])
    elif kind in (CREDIT, FINISHED):
        int(msg[1])
    elif kind == DATA:
        int(msg[1]), int(msg[2]), int(msg[3])
        for m in msg[5]:
            (m[0], m[1], m[2], m[3])
            sizes, device = m[6], m[7]
            list(zip(sizes, device, strict=True))
            [tuple(p) for p in m[8][4]]
    elif kind == ERROR:
        str(msg[1])


def check(data: bytes) -> None:
    start = time.monotonic()
    try:
        msg = unpack(data, "fuzz-peer")
    except ProtocolError as exc:
        assert "fuzz-peer" in str(exc)
    else:
        consume(msg)
    assert time.monotonic() - start < BOUND_S


@fuzz_settings(slow=False)
@given(data=header())
def test_protocol_messages(data: bytes) -> None:
    check(data)


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
@fuzz_settings(slow=True)
@given(data=header())
def test_protocol_messages_slow(data: bytes) -> None:
    check(data)


@pytest.mark.parametrize("message", VALID, ids=lambda m: str(m[0]))
def test_every_well_formed_kind_passes(message: list[Any]) -> None:
    assert unpack(pack(*message), "p") == message
