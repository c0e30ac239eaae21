"""Settings both sides must agree on are checked at the handshake, naming both values."""

from __future__ import annotations

import pytest

from actors.distributed._handshake import compare_settings, job_settings
from actors.errors import SchemaMismatch
from actors.framework import JobReport, Options

from .test_inproc import local_process, remote_process, run_two


async def test_follower_with_fewer_lumis_than_controller_is_refused_on_both_sides() -> None:
    local, remote = local_process(), remote_process()
    local.options.max_concurrent_lumis = 2
    remote.options.max_concurrent_lumis = 1
    results = await run_two(local, remote)
    for side in ("local", "remote"):
        error = results[side]
        assert isinstance(error, BaseException), (side, error)
        assert isinstance(error, SchemaMismatch) or isinstance(error.__cause__, SchemaMismatch)
        text = str(error.__cause__ or error)
        assert "link 'offload'" in text
        assert "max_concurrent_lumis: controller 'LOCAL' has 2, follower 'REMOTE' has 1" in text


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
    assert job_settings(Options(max_concurrent_lumis=3)) == {"max_concurrent_lumis": 3}
    assert job_settings(None) == {}
    assert compare_settings({"max_concurrent_lumis": 2}, {}, "c", "f") == []  # older peer
