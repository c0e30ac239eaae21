"""What both sides must agree on is checked at the handshake, naming both values.

Checked (see :mod:`actors.distributed._handshake`): the protocol version, the
schema (test_inproc), the process names, ``max_concurrent_lumis`` and
``pickle``. Each mismatch is refused on both sides before the first event.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from actors.distributed import _handshake as handshake
from actors.distributed import current_links
from actors.distributed._handshake import (
    Flow,
    answer_controller,
    compare_settings,
    expect,
    greet_follower,
    job_settings,
)
from actors.distributed.protocol import HELLO, VERSION, WELCOME, pack
from actors.errors import ProtocolError, SchemaMismatch
from actors.framework import JobReport, Options
from actors.transports import connect, listen

from .helpers import inproc_tables, run_all
from .test_inproc import local_process, offload_pair, remote_process, run_two


def refused_on_both_sides(results: dict[str, Any], *expected: str) -> None:
    for side in ("local", "remote"):
        error = results[side]
        assert isinstance(error, BaseException), (side, error)
        assert isinstance(error, SchemaMismatch) or isinstance(error.__cause__, SchemaMismatch)
        text = str(error.__cause__ or error)
        assert "link 'offload' (peer inproc://" in text, text
        for part in expected:
            assert part in text, (side, text)


async def test_follower_with_fewer_lumis_than_controller_is_refused_on_both_sides() -> None:
    local, remote = local_process(), remote_process()
    local.options.max_concurrent_lumis = 2
    remote.options.max_concurrent_lumis = 1
    results = await run_two(local, remote)
    refused_on_both_sides(
        results, "max_concurrent_lumis: controller 'LOCAL' has 2, follower 'REMOTE' has 1"
    )


@pytest.mark.parametrize(("controller", "follower"), [(1, 1), (1, 3), (2, 2)])
async def test_follower_with_as_many_lumis_or_more_runs(controller: int, follower: int) -> None:
    local, remote = local_process(), remote_process()
    local.options.max_concurrent_lumis = controller
    remote.options.max_concurrent_lumis = follower
    results = await run_two(local, remote)
    assert isinstance(results["local"], JobReport), results["local"]
    assert isinstance(results["remote"], JobReport), results["remote"]
    # LAYOUT holds 3 + 0 + 5 + 4 + 2 + 2 events
    assert results["remote"].events == results["local"].events == 16


def test_run_time_override_is_what_the_handshake_sees() -> None:
    settings = job_settings(Options(max_concurrent_lumis=3))
    assert settings["max_concurrent_lumis"] == 3
    assert "max_concurrent_lumis" not in job_settings(None)
    assert compare_settings({"max_concurrent_lumis": 2}, {}, "c", "f") == []  # older peer


async def test_same_process_name_on_both_sides_is_refused() -> None:
    results = await run_two(local_process("SAME"), remote_process("SAME"))
    refused_on_both_sides(results, "process name: controller and follower are both 'SAME'")


# -- pickle: a side that allows it and sends needs a peer that allows it too


async def run_pair_with_pickle(local_allows: bool, remote_allows: bool) -> dict[str, Any]:
    """offload_pair (products both ways) with pickle allowed per logical process."""
    local, remote = offload_pair()
    tables = inproc_tables({"offload": ("remote", "local")}, ["local", "remote"])
    allows = {id(tables["local"]): local_allows, id(tables["remote"]): remote_allows}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(handshake, "pickle_allowed", lambda: allows[id(current_links())])
        return await run_all(
            {"local": (local, tables["local"], {}), "remote": (remote, tables["remote"], {})}
        )


@pytest.mark.parametrize(
    ("local_allows", "remote_allows", "line"),
    [
        (True, False, "pickle: controller 'LOCAL' allows it, follower 'REMOTE' does not allow it"),
        (False, True, "pickle: controller 'LOCAL' does not allow it, follower 'REMOTE' allows it"),
    ],
)
async def test_pickle_allowed_on_one_sending_side_only_is_refused_on_both_sides(
    local_allows: bool, remote_allows: bool, line: str
) -> None:
    results = await run_pair_with_pickle(local_allows, remote_allows)
    refused_on_both_sides(results, line, "allow pickle in both processes")


async def test_pickle_allowed_on_both_sides_runs() -> None:
    results = await run_pair_with_pickle(True, True)
    assert isinstance(results["local"], JobReport), results["local"]
    assert isinstance(results["remote"], JobReport), results["remote"]


def test_pickle_rule_looks_only_at_the_sides_that_send() -> None:
    allows, refuses = {"pickle": True}, {"pickle": False}
    only_controller_sends = Flow(controller_sends=True, follower_sends=False)
    only_follower_sends = Flow(controller_sends=False, follower_sends=True)
    nothing = Flow(controller_sends=False, follower_sends=False)
    assert compare_settings(allows, refuses, "c", "f", only_controller_sends)
    assert not compare_settings(refuses, allows, "c", "f", only_controller_sends)
    assert compare_settings(refuses, allows, "c", "f", only_follower_sends)
    assert not compare_settings(allows, refuses, "c", "f", only_follower_sends)
    assert not compare_settings(allows, refuses, "c", "f", nothing)
    assert not compare_settings(allows, allows, "c", "f") and not compare_settings(
        refuses, refuses, "c", "f"
    )


# -- protocol version: both sides raise, naming both versions (peers played by the test)


async def test_follower_of_another_protocol_version_is_refused_naming_both() -> None:
    url = f"inproc://hs-version-{uuid.uuid4().hex[:8]}"
    async with await listen(url) as listener:

        async def fake_follower() -> None:
            link = await listener.accept()
            await expect(link, HELLO, 10, "test")
            await link.send(
                pack(WELCOME, VERSION + 1, {"process": "NEWER", "pairs": {}, "window": 8})
            )

        fake = asyncio.ensure_future(fake_follower())
        link = await connect(url, timeout=5)
        try:
            async with asyncio.timeout(10):
                with pytest.raises(ProtocolError) as info:
                    await greet_follower(link, "offload", {}, "LOCAL", 10, job_settings(None))
                await fake
        finally:
            await link.close()
    text = str(info.value)
    assert f"link 'offload' (peer {url}" in text, text
    assert (
        f"protocol version: controller 'LOCAL' speaks {VERSION}, follower 'NEWER' speaks "
        f"{VERSION + 1}" in text
    ), text


async def test_controller_of_another_protocol_version_is_told_and_refused() -> None:
    url = f"inproc://hs-version-{uuid.uuid4().hex[:8]}"
    async with await listen(url) as listener:

        async def follower() -> BaseException | None:
            link = await listener.accept()
            try:
                await answer_controller(link, "offload", {}, "REMOTE", 8, 10, job_settings(None))
            except ProtocolError as exc:
                return exc
            finally:
                await link.close()
            return None

        job = asyncio.ensure_future(follower())
        link = await connect(url, timeout=5)
        try:
            async with asyncio.timeout(10):
                await link.send(pack(HELLO, VERSION + 1, {"process": "NEWER", "pairs": {}}))
                welcome = await expect(link, WELCOME, 10, "test")
                error = await job
        finally:
            await link.close()
    expected = (
        f"protocol version: controller 'NEWER' speaks {VERSION + 1}, follower 'REMOTE' "
        f"speaks {VERSION}"
    )
    assert welcome[1] == VERSION and expected in welcome[2]["error"], welcome  # the controller
    assert error is not None and expected in str(error), error  # ... and the follower
