"""The launcher's reading of its processes' output lines (``actors.launch._console``)."""

from __future__ import annotations

import io

from rich.console import Console

from actors.launch._console import LaunchState, handle_line


def test_exit_line_of_an_mpmd_rank_is_recorded_under_its_process() -> None:
    state = LaunchState(["local", "remote"])
    out = io.StringIO()
    console = Console(file=out, width=200)
    handle_line('[1] @@actors-exit {"code": 2}', "mpiexec", state, console)
    assert state.ended == {"remote": 2}
    assert out.getvalue() == ""  # consumed, not echoed


def test_malformed_exit_line_is_echoed_not_recorded() -> None:
    state = LaunchState(["local"])
    out = io.StringIO()
    console = Console(file=out, width=200)
    handle_line('@@actors-exit {"code": "two"}', "local", state, console)
    handle_line("@@actors-exit not json", "local", state, console)
    assert state.ended == {}
    assert out.getvalue().count("[local] @@actors-exit") == 2


def test_exit_line_glued_to_an_error_line_is_still_recorded() -> None:
    """Under mpiexec a rank's error text may arrive before its newline, with the exit line
    between them (seen in CI): the error is echoed and the exit recorded."""
    state = LaunchState(["local", "remote"])
    out = io.StringIO()
    console = Console(file=out, width=400)
    error = "[0] error: offload_local.toml:12: source: input file not found"
    glued = error + '[0] @@actors-exit {"code": 2}'
    handle_line(glued, "mpiexec", state, console)
    assert state.ended == {"local": 2}
    assert out.getvalue() == "[local] error: offload_local.toml:12: source: input file not found\n"
