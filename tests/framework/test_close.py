"""``close()`` on modules and sources: once at the end of every job, whatever its outcome."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from actors.errors import ModuleError
from actors.framework import Declarer, Event, Process, Producer, run
from actors.framework import hooks as framework_hooks
from tests.framework.mods import CountingSource, M

HERE = __name__
CLOSED: list[tuple[str, str]] = []  # (label, thread name or "loop")
ORDER: list[str] = []  # every hook call, in order


class Tracked(Producer):
    """Puts an int; ``fail_at`` raises in that event, ``fail_in`` in that hook."""

    def __init__(self, *, fail_at: int = 0, fail_in: str = "", close_error: bool = False) -> None:
        self.fail_at, self.fail_in, self.close_error = fail_at, fail_in, close_error

    def declare(self, d: Declarer) -> None:
        self.n = d.consumes("source")
        d.produces("int")

    def begin_job(self) -> None:
        ORDER.append(f"begin_job {self.label}")
        if self.fail_in == "begin_job":
            raise RuntimeError(f"{self.label} cannot begin")

    def produce(self, event: Event) -> None:
        if event.get(self.n) == self.fail_at:
            raise RuntimeError(f"boom at {self.fail_at}")
        event.put(0)

    def end_job(self) -> None:
        ORDER.append(f"end_job {self.label}")

    def close(self) -> None:
        thread = threading.current_thread()
        CLOSED.append((self.label, "loop" if thread is threading.main_thread() else "thread"))
        ORDER.append(f"close {self.label}")
        if self.close_error:
            raise OSError(f"{self.label} cannot release its file")


class AsyncTracked(Tracked):
    """As Tracked, with an ``async def close`` (``hang`` never returns)."""

    def __init__(self, *, hang: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.hang = hang

    async def close(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        CLOSED.append((self.label, "async"))
        ORDER.append(f"close {self.label}")
        if self.hang:
            await asyncio.Event().wait()


class ClosingSource(CountingSource):
    def close(self) -> None:
        CLOSED.append((self.label, "source"))
        ORDER.append(f"close {self.label}")


def _process(threads: int = 1, second: dict[str, Any] | None = None, **first: Any) -> Process:
    p = Process("CLOSE")
    p.set_source(f"{HERE}:ClosingSource", runs=1, lumis=1, events=5)
    p.options.threads = threads
    p.options.streams = 2
    p.add_module("first", f"{HERE}:Tracked", **first)
    p.add_module("second", f"{HERE}:AsyncTracked", **(second or {}))
    p.add_module("plain", f"{M}:Add")
    p.add_path("p", ["first", "second", "plain"])
    CLOSED.clear()
    ORDER.clear()
    return p


@pytest.mark.parametrize("threads", [0, 2])
def test_close_runs_per_instance_after_end_job_last_node_first_source_last(threads: int) -> None:
    report = run(_process(threads))
    assert report.events == 5
    closes = [e for e in ORDER if e.startswith("close")]
    # once per instance (one per stream: STREAM modules), the last node first
    assert closes == ["close second"] * 2 + ["close first"] * 2 + ["close source"]
    assert ORDER.index("end_job first") < ORDER.index("close second")
    sync_close = dict(CLOSED)["first"]
    assert sync_close == ("loop" if threads == 0 else "thread")  # in the job's threads


def test_close_runs_after_a_failed_event_and_the_job_error_is_raised() -> None:
    with pytest.raises(ModuleError, match="boom at 3") as info:
        run(_process(fail_at=3))
    assert "end_job first" not in ORDER  # no transition hook after a failure
    closes = [e for e in ORDER if e.startswith("close")]
    assert closes == ["close second"] * 2 + ["close first"] * 2 + ["close source"]
    assert info.value.label == "first"


def test_close_runs_when_begin_job_fails() -> None:
    with pytest.raises(ModuleError, match="cannot begin"):
        run(_process(fail_in="begin_job"))
    assert {label for label, _ in CLOSED} == {"first", "second", "source"}


def test_a_failing_close_fails_a_successful_job_after_every_close_ran() -> None:
    with pytest.raises(ModuleError, match="cannot release its file") as info:
        run(_process(close_error=True))
    assert info.value.label == "first"
    assert info.value.transition == "close"
    assert {label for label, _ in CLOSED} == {"first", "second", "source"}


def test_a_failing_close_after_a_failed_job_is_noted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(ModuleError, match="boom at 2") as info:
        run(_process(fail_at=2, close_error=True))
    notes = getattr(info.value, "__notes__", [])
    assert any("cannot release its file" in n and "close" in n for n in notes)
    assert "cannot release its file" in caplog.text
    assert {label for label, _ in CLOSED} == {"first", "second", "source"}


def test_an_async_close_that_never_returns_is_stopped_and_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(framework_hooks, "CLOSE_TIMEOUT_S", 0.2)
    with pytest.raises(ModuleError, match=r"did not return within 0\.2 s") as info:
        run(_process(second={"hang": True}))
    assert info.value.label == "second"
    assert {label for label, _ in CLOSED} == {"first", "second", "source"}
