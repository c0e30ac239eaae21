"""The ``ucx://`` wire format (prefix packing, validation) and UCX options; no UCX needed."""

from __future__ import annotations

import os
import struct

import pytest

from actors.errors import ProtocolError
from actors.transports.ucx import _wire as wire


def _parse(prefix: bytes, max_size: int = 1 << 30) -> wire.Layout:
    """As the link parses: the received bytes, inside its prefix buffer."""
    buf = bytearray(wire.PREFIX_CAPACITY)
    buf[: len(prefix)] = prefix
    return wire.parse_prefix(memoryview(buf)[: len(prefix)], max_size, "peer-x")


def test_small_message_is_one_frame_with_everything_inline() -> None:
    prefix, header_inline, separate = wire.pack_prefix(
        b"hdr", [3, 0], [False, False], [b"abc", b""]
    )
    assert header_inline and separate == []
    layout = _parse(prefix)
    assert layout.sizes == (3, 0) and layout.kinds == (wire.INLINE, wire.INLINE)
    data = prefix[layout.data_offset :]
    assert data == b"hdrabc"


def test_large_and_device_buffers_travel_as_frames() -> None:
    big = wire.INLINE_LIMIT + 1
    prefix, header_inline, separate = wire.pack_prefix(
        b"h", [big, 10, 5], [False, True, False], [None, None, b"12345"]
    )
    assert header_inline and separate == [0, 1]
    layout = _parse(prefix)
    assert layout.kinds == (wire.HOST, wire.DEVICE, wire.INLINE)
    assert layout.total == 1 + big + 10 + 5


def test_buffers_ride_in_the_prefix_while_it_stays_within_the_inline_limit() -> None:
    """A 32 KiB product travels inside its message's one frame (eager within a host);
    a second one that would take the prefix past INLINE_LIMIT gets a frame of its own."""
    product = memoryview(bytes(range(256)) * 128)  # 32 KiB, a host view as the link offers
    prefix, header_inline, separate = wire.pack_prefix(b"h", [len(product)], [False], [product])
    assert header_inline and separate == [] and len(prefix) <= wire.INLINE_LIMIT
    layout = _parse(prefix)
    assert layout.kinds == (wire.INLINE,)
    assert prefix[layout.data_offset + 1 :] == product.tobytes()
    prefix, _, separate = wire.pack_prefix(b"h", [32768, 32768], [False] * 2, [product] * 2)
    assert separate == [1] and len(prefix) <= wire.INLINE_LIMIT
    assert _parse(prefix).kinds == (wire.INLINE, wire.HOST)


def test_long_header_gets_its_own_frame() -> None:
    header = bytes(wire.PREFIX_CAPACITY)
    prefix, header_inline, _ = wire.pack_prefix(header, [], [], [])
    assert not header_inline
    assert _parse(prefix).header_len == len(header)


def test_oversized_announcement_is_refused_before_allocation() -> None:
    prefix, _, _ = wire.pack_prefix(b"", [1 << 40], [False], [None])
    with pytest.raises(ProtocolError, match="peer-x exceeds max_message_size"):
        _parse(prefix, max_size=1 << 20)


@pytest.mark.parametrize(
    "prefix, match",
    [
        (b"\x01", "truncated"),
        (struct.pack("<BBHIQ", 9, 0, 0, 0, 0), "version 9"),
        (struct.pack("<BBHIQ", 1, 0, 0, 10**6, 0), "too many"),
        (struct.pack("<BBHIQ", 1, 0, 0, 1, 0) + struct.pack("<QB", 1, 7), "kind 7"),
        (struct.pack("<BBHIQ", 1, 1, 0, 0, 1 << 20), "runs past"),
        (struct.pack("<BBHIQ", 1, wire.GOODBYE, 0, 0, 3) + b"abc", "goodbye prefix"),
    ],
)
def test_malformed_prefixes_raise_protocol_error_naming_the_peer(prefix: bytes, match: str) -> None:
    if len(prefix) < 16:
        with pytest.raises(ProtocolError, match=match):
            wire.parse_prefix(memoryview(prefix), 1 << 30, "peer-x")
        return
    with pytest.raises(ProtocolError, match=match) as info:
        _parse(prefix)
    assert "peer-x" in str(info.value)


def test_too_many_buffers_is_refused_by_the_sender() -> None:
    n = wire.MAX_BUFFERS + 1
    with pytest.raises(ProtocolError, match="buffers"):
        wire.pack_prefix(b"", [0] * n, [False] * n, [b""] * n)


def test_goodbye_prefix_announces_the_end_and_nothing_else() -> None:
    layout = _parse(wire.GOODBYE_PREFIX)
    assert layout.goodbye and layout.sizes == () and layout.total == 0
    assert not _parse(wire.pack_prefix(b"h", [], [], [])[0]).goodbye


def test_ucx_options_put_shared_memory_in_endpoints_unless_the_user_chose() -> None:
    """Without ``UCX_MM_ERROR_HANDLING=y`` UCX left shared memory out of every
    endpoint made through a listener: two processes of one host used tcp/lo."""
    from actors.transports.ucx._library import ucx_config

    with pytest.MonkeyPatch.context() as env:
        env.delenv("UCX_MM_ERROR_HANDLING", raising=False)
        env.delenv("UCX_TLS", raising=False)
        config = ucx_config()
        assert config["MM_ERROR_HANDLING"] == "y" and "sm" in config["TLS"].split(",")
        env.setenv("UCX_MM_ERROR_HANDLING", "n")
        env.setenv("UCX_TLS", "tcp")
        config = ucx_config()
        assert "MM_ERROR_HANDLING" not in config and "TLS" not in config


def test_options_ucxx_sets_at_import_go_to_the_context_below_ours_and_the_users() -> None:
    """ucxx's import sets ``UCX_*`` variables (``UCX_RNDV_THRESH=8192``...): taken
    out of the environment (child processes never read them as the user's),
    passed to the context instead, below our options and any the user sets."""
    from actors.transports.ucx import _library

    with pytest.MonkeyPatch.context() as env:
        env.setattr(_library, "_ucxx_options", {})
        for name in ("UCX_RNDV_THRESH", "UCX_MEMTYPE_CACHE", "UCX_TLS"):
            env.delenv(name, raising=False)
        before = set(os.environ)
        env.setenv("UCX_RNDV_THRESH", "8192")  # what ucxx's import does
        env.setenv("UCX_MEMTYPE_CACHE", "n")
        env.setenv("NOT_UCX", "1")
        _library._take_back_ucxx_options(before)
        assert "UCX_RNDV_THRESH" not in os.environ and "UCX_MEMTYPE_CACHE" not in os.environ
        assert os.environ["NOT_UCX"] == "1"
        config = _library.ucx_config()
        assert config["MEMTYPE_CACHE"] == "n"
        assert config["RNDV_THRESH"] == _library.DEFAULT_UCX_CONFIG["RNDV_THRESH"]
        env.setenv("UCX_RNDV_THRESH", "64K")  # the user's choice
        env.setenv("UCX_MEMTYPE_CACHE", "y")
        config = _library.ucx_config()
        assert "RNDV_THRESH" not in config and "MEMTYPE_CACHE" not in config


def test_ucx_load_time_options_are_set_for_the_import_only_and_never_over_the_user() -> None:
    """UCX's memory hooks wait 0.4 s at load: our shorter grace stands for the
    import only (child processes and other UCX libraries never see it), and
    never where the user chose the option or the transports."""
    from actors.transports.ucx._library import load_time_config

    key = "UCX_MEM_BISTRO_GRACE_DURATION"
    with pytest.MonkeyPatch.context() as env:
        env.delenv(key, raising=False)
        env.delenv("UCX_TLS", raising=False)
        env.delenv("UCX_MEM_MMAP_HOOK_MODE", raising=False)
        with load_time_config():
            assert os.environ[key] == "5ms"
            assert "UCX_MEM_MMAP_HOOK_MODE" not in os.environ  # reloc: see test_ucx.py
        assert key not in os.environ
        env.setenv(key, "50ms")
        with load_time_config():
            assert os.environ[key] == "50ms"
        assert os.environ[key] == "50ms"
        env.delenv(key)
        env.setenv("UCX_TLS", "rc,sm")
        with load_time_config():
            assert key not in os.environ


def test_header_prefix_is_the_prefix_of_a_message_without_buffers() -> None:
    for header in (b"", b"h", b"x" * 1000, b"y" * (wire.PREFIX_CAPACITY - 16)):
        assert wire.header_prefix(header) == wire.pack_prefix(header, [], [], [])[0]
        layout = _parse(wire.header_prefix(header) or b"")
        assert layout.header_inline and layout.header_len == len(header) and layout.sizes == ()
    assert wire.header_prefix(b"z" * wire.PREFIX_CAPACITY) is None


def test_header_only_reads_exactly_the_prefixes_of_messages_without_buffers() -> None:
    def read(prefix: bytes, max_size: int = 1 << 30) -> bytes | None:
        buf = bytearray(wire.PREFIX_CAPACITY)
        buf[: len(prefix)] = prefix
        return wire.header_only(memoryview(buf)[: len(prefix)], max_size)

    for header in (b"", b"h", b"x" * 1000):
        assert read(wire.pack_prefix(header, [], [], [])[0]) == header
    prefix = wire.header_prefix(b"abc")
    assert prefix is not None
    # anything else goes to parse_prefix, which reads it or raises
    assert read(wire.pack_prefix(b"h", [3], [False], [b"abc"])[0]) is None
    assert read(wire.pack_prefix(b"h", [9000], [False], [None])[0]) is None
    assert read(wire.GOODBYE_PREFIX) is None
    assert read(prefix[:-1]) is None and read(prefix + b"!") is None
    assert read(prefix[:10]) is None
    assert read(bytes([wire.VERSION + 1]) + prefix[1:]) is None
    assert read(prefix, max_size=2) is None
