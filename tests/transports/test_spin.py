"""The event-loop spinner: kept awake after traffic, backs off when spinning does not pay."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from actors.settings import Setting
from actors.transports._spin import (
    BACKOFF_MAX,
    AdaptivePoll,
    LoopAwake,
    LoopSpinner,
    loop_spinner,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _ticks(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_kick_keeps_the_loop_awake_until_its_window_ends() -> None:
    clock = Clock()
    spinner = LoopSpinner(asyncio.get_running_loop(), 100e-6, clock)
    spinner.kick()
    assert spinner.spinning
    await _ticks()
    assert spinner.spinning  # the callback keeps rescheduling itself
    clock.now += 150e-6
    await _ticks()
    assert not spinner.spinning


@pytest.mark.parametrize("kicked", ["its own", "another of its loop"])
async def test_a_receive_does_not_poll_while_a_spinner_keeps_its_loop_awake(kicked: str) -> None:
    # another: the remote actors' spinner (ACTORS_ASK_SPIN_US) beside the links'; a receive's
    # poll held up the reply an actor had just queued (one ask after another: ~150 -> ~100 µs)
    clock, awake, loop = Clock(), LoopAwake(), asyncio.get_running_loop()
    links = LoopSpinner(loop, 100e-6, clock, awake)
    asks = LoopSpinner(loop, 100e-6, clock, awake)
    poll = AdaptivePoll(1e-3, links)
    poll.activity()
    attempts: list[int] = []

    def attempt() -> bool:
        attempts.append(1)
        return True

    (links if kicked == "its own" else asks).kick()
    assert links.loop_awake and links.spinning == (kicked == "its own")
    assert not poll.run(attempt) and not attempts  # the loop polls anyway: no receive poll
    clock.now += 150e-6
    await _ticks()
    assert not links.loop_awake
    assert poll.run(attempt) and attempts == [1]  # asleep again: the receive polls first


async def test_the_spinners_of_one_loop_know_when_another_keeps_it_awake() -> None:
    loop = asyncio.get_running_loop()
    mine = loop_spinner(loop, Setting("TEST_MINE_SPIN_US", 0.0, float, "µs", "test"))
    other = loop_spinner(loop, Setting("TEST_OTHER_SPIN_US", 1e3, float, "µs", "test"))
    assert not mine.loop_awake
    other.kick()
    assert mine.loop_awake and not mine.spinning
    await asyncio.sleep(5e-3)
    assert not other.spinning and not mine.loop_awake


async def test_a_poll_runs_once_per_turn_and_ends_when_its_check_answers() -> None:
    clock = Clock()
    spinner = LoopSpinner(asyncio.get_running_loop(), 100e-6, clock)
    assert spinner.poll(lambda: True) is None  # asleep: nothing to poll on
    spinner.kick()
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        return len(calls) == 3

    polled = spinner.poll(check)
    assert polled is not None
    assert await asyncio.wait_for(polled, 1.0) is True
    assert len(calls) == 3  # once per turn, never again once it answered
    await _ticks()
    assert len(calls) == 3 and spinner.spinning


async def test_a_poll_ends_false_when_the_loop_sleeps_again_and_carries_errors() -> None:
    clock = Clock()
    spinner = LoopSpinner(asyncio.get_running_loop(), 100e-6, clock)
    spinner.kick()
    waiting = spinner.poll(lambda: False)
    failing = spinner.poll(lambda: 1 / 0 > 0)
    dropped = spinner.poll(lambda: pytest.fail("a cancelled poll is not called"))
    assert waiting is not None and failing is not None and dropped is not None
    dropped.cancel()
    with pytest.raises(ZeroDivisionError):
        await asyncio.wait_for(failing, 1.0)
    assert not waiting.done()
    clock.now += 150e-6  # the window ends: the waiting poll learns it
    assert await asyncio.wait_for(waiting, 1.0) is False
    assert not spinner.spinning


async def test_a_spin_without_traffic_backs_off_exponentially() -> None:
    clock = Clock()
    spinner = LoopSpinner(asyncio.get_running_loop(), 100e-6, clock)
    spinner.kick()  # a first spin that sees no traffic
    clock.now += 1e-3
    await _ticks()
    skipped = []
    for _ in range(4):
        n = 0
        while True:
            spinner.kick()
            if spinner.spinning:
                break
            n += 1
        skipped.append(n)
        clock.now += 1e-3  # this spin sees no traffic either
        await _ticks()
        assert not spinner.spinning
    assert skipped == [1, 2, 4, 8]


async def test_traffic_during_a_spin_extends_it_and_resets_the_back_off() -> None:
    clock = Clock()
    spinner = LoopSpinner(asyncio.get_running_loop(), 100e-6, clock)
    spinner.kick()
    clock.now += 1e-3
    await _ticks()
    spinner.kick()  # skipped: backing off after the wasted spin
    assert not spinner.spinning
    spinner.kick()
    clock.now += 80e-6
    spinner.kick()  # a reply came: the window restarts from now
    clock.now += 80e-6
    await _ticks()
    assert spinner.spinning
    clock.now += 1e-3
    await _ticks()
    assert not spinner.spinning
    spinner.kick()  # the spin paid: no back-off
    assert spinner.spinning
    clock.now += 1e-3
    await _ticks()


async def test_zero_never_spins() -> None:
    spinner = LoopSpinner(asyncio.get_running_loop(), 0.0)
    spinner.kick()
    assert not spinner.spinning


def test_a_closed_loop_and_its_spinner_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORS_LOOP_SPIN_US", "100")
    loop = asyncio.new_event_loop()
    spinner = loop_spinner(loop)
    ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert ref() is None
    spinner.kick()  # its loop is gone: nothing to keep awake
    assert not spinner.spinning


async def test_one_spinner_per_loop_with_the_setting_read_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTORS_LOOP_SPIN_US", "250")
    loop = asyncio.get_running_loop()
    spinner = loop_spinner(loop)
    assert spinner is loop_spinner(loop)
    assert spinner.seconds == pytest.approx(250e-6)
    assert BACKOFF_MAX >= 8


async def test_receive_polls_off_stops_a_receive_poll_on_this_loop_until_the_last_block_ends() -> (
    None
):
    from actors.transports import receive_polls_enabled, receive_polls_off
    from actors.transports._spin import AdaptivePoll

    attempts: list[int] = []

    def attempt() -> bool:
        attempts.append(1)
        return True

    poll = AdaptivePoll(1e-3)
    poll.activity()
    assert receive_polls_enabled() and poll.run(attempt) and len(attempts) == 1
    with receive_polls_off():
        with receive_polls_off():
            poll.activity()
            assert not receive_polls_enabled() and not poll.run(attempt)
        poll.activity()
        assert not receive_polls_enabled() and not poll.run(attempt)
        assert len(attempts) == 1  # no attempt while held off
    poll.activity()
    assert receive_polls_enabled() and poll.run(attempt) and len(attempts) == 2


def test_receive_polls_off_holds_only_its_own_loop() -> None:
    from actors.transports import receive_polls_enabled, receive_polls_off

    async def other_loop() -> bool:
        return receive_polls_enabled()

    async def held() -> tuple[bool, bool]:
        with receive_polls_off():
            here = receive_polls_enabled()
            elsewhere = await asyncio.to_thread(asyncio.run, other_loop())
        return here, elsewhere

    assert asyncio.run(held()) == (False, True)
