"""Stall reports on a provoked deadlock: a receiver whose sender never sends.

The follower declares the sender of instance 2 (so the handshake agrees) but
runs it on no path: the controller's receiver waits for event 1:1:1 forever.
The report must name the receiver, its instance, the event and the link.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from actors.distributed import use_links
from actors.distributed.hub import close_channels
from actors.framework import Process, run_process, stall

from .helpers import inproc_tables
from .mods import M

D = "actors.distributed"
REPO = Path(__file__).resolve().parents[2]


def deadlocked_pair() -> tuple[Process, Process]:
    """Controller with a receiver of instance 2; follower whose sender of 2 never runs."""
    local = Process("LOCAL")
    local.set_source(f"{M}:Lumis", layout=[[1, [3]]])
    local.add_module("offload", f"{D}:Controller", link="offload")
    local.add_module(
        "back",
        f"{D}:Receiver",
        upstream="offload",
        instance=2,
        products=[{"type": "float64", "label": "total", "instance": "total"}],
    )
    local.add_path("p", ["offload", "back"])
    remote = Process("REMOTE")
    remote.set_source(f"{D}:FollowerSource", link="offload")
    remote.add_module("total", f"{M}:Sum", src="ChannelToken_source__*")
    remote.add_module("send", f"{D}:Sender", upstream="source", instance=2, products=["total"])
    remote.add_module("seen", f"{M}:Transitions", name="REMOTE-seen")
    remote.add_path("p", ["seen"])  # the sender is on no path: it never sends
    return local, remote


async def _run(process: Process, table: Any) -> None:
    with use_links(table):
        try:
            await run_process(process)
        finally:
            await close_channels()


async def _until_stalled() -> str:
    async with asyncio.timeout(20):
        while True:
            text = stall.report()
            if "waits for instance" in text:
                return text
            await asyncio.sleep(0.05)


async def test_report_names_the_waiting_receiver_its_instance_event_and_link() -> None:
    local, remote = deadlocked_pair()
    tables = inproc_tables({"offload": ("remote", "local")}, ["local", "remote"])
    jobs = [
        asyncio.ensure_future(_run(local, tables["local"])),
        asyncio.ensure_future(_run(remote, tables["remote"])),
    ]
    try:
        text = await _until_stalled()
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    assert "job of process 'LOCAL'" in text, text
    assert "event 1:1:1 (stream 0): running ['back']" in text, text
    assert "controller channel 'offload'" in text and "follower channel 'source'" in text, text
    assert (
        "receiver 'back' waits for instance 2 of event 1:1:1 (key 1) on link 'offload' "
        "(peer process 'REMOTE'" in text
    ), text
    assert "credit " in text and "outbox 0 message(s)" in text, text


async def test_sigusr1_prints_the_report(capfd: pytest.CaptureFixture[str]) -> None:
    local, remote = deadlocked_pair()
    tables = inproc_tables({"offload": ("remote", "local")}, ["local", "remote"])
    jobs = [
        asyncio.ensure_future(_run(local, tables["local"])),
        asyncio.ensure_future(_run(remote, tables["remote"])),
    ]
    try:
        await _until_stalled()
        assert stall.install()
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.1)  # the handler runs at the next bytecode boundary
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    err = capfd.readouterr().err
    assert f"stall report of pid {os.getpid()}" in err, err
    assert "receiver 'back' waits for instance 2 of event 1:1:1" in err, err


LOCAL_TOML = """
[process]
name = "LOCAL"
[source]
type = "tests.distributed.mods:Lumis"
layout = [[1, [3]]]
[modules.offload]
type = "actors.distributed:Controller"
link = "offload"
[modules.back]
type = "actors.distributed:Receiver"
upstream = "offload"
instance = 2
products = [{ type = "float64", label = "total", instance = "total" }]
[paths]
p = ["offload", "back"]
"""

REMOTE_TOML = """
[process]
name = "REMOTE"
[source]
type = "actors.distributed:FollowerSource"
link = "offload"
[modules.total]
type = "tests.distributed.mods:Sum"
src = "ChannelToken_source__*"
[modules.send]                     # on no path: never sends
type = "actors.distributed:Sender"
upstream = "source"
instance = 2
products = ["total"]
[modules.seen]
type = "tests.distributed.mods:Transitions"
name = "REMOTE-seen"
[paths]
p = ["seen"]
"""

TOPOLOGY = """
[run]
transport = "tcp"
[process.local]
config = "local.toml"
[process.remote]
config = "remote.toml"
[[link]]
name = "offload"
client = "local"
server = "remote"
"""


def test_launcher_gathers_every_process_report_on_a_stall(tmp_path: Path) -> None:
    """Reports come on a stall (--stall-report), on SIGUSR1 to the launcher, before --timeout."""
    (tmp_path / "local.toml").write_text(LOCAL_TOML)
    (tmp_path / "remote.toml").write_text(REMOTE_TOML)
    (tmp_path / "topology.toml").write_text(TOPOLOGY)
    log = tmp_path / "launcher.log"
    with log.open("w") as out:
        launcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "actors.launch",
                str(tmp_path / "topology.toml"),
                "--stall-report",
                "3",
                "--timeout",
                "20",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 15
            while "stall report: process" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            launcher.send_signal(signal.SIGUSR1)
            assert launcher.wait(60) == 124
        finally:
            launcher.kill()
            launcher.wait()
    text = log.read_text()
    assert "no event completed for" in text and "asked 2 process(es)" in text, text
    assert "SIGUSR1 to the launcher: asked 2 process(es)" in text, text
    assert "the --timeout is about to stop every process: asked 2" in text, text
    assert "stall report: process 'local'" in text, text
    assert "stall report: process 'remote'" in text, text
    assert "receiver 'back' waits for instance 2 of event 1:1:1 (key 1) on link 'offload'" in text
    assert "event 1:1:1 (stream 0): running ['back']" in text, text


def test_embedded_launcher_reports_a_stall_and_keeps_its_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """inproc links (every process in the launcher): the same watch, the jobs' own
    report on stderr, and ``--timeout`` cancels them (status 124)."""
    from actors.launch.cli import main as launch_main

    (tmp_path / "local.toml").write_text(LOCAL_TOML)
    (tmp_path / "remote.toml").write_text(REMOTE_TOML)
    (tmp_path / "topology.toml").write_text(TOPOLOGY.replace('"tcp"', '"inproc"'))
    start = time.monotonic()
    argv = [str(tmp_path / "topology.toml"), "--stall-report", "1", "--timeout", "6"]
    assert launch_main(argv) == 124
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "no event completed for 1 s: stall report of every process (embedded)" in err, err
    assert "the --timeout is about to stop every process" in err, err
    assert "receiver 'back' waits for instance 2 of event 1:1:1 (key 1) on link 'offload'" in err
    assert "timeout after 6.0 s: stopping every process" in err, err


def _fake_process(proc: Path, pid: int, group: int, argv: list[str], caught: int) -> None:
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "stat").write_text(f"{pid} (py thon) S 1 {group} {group} 0 -1 4194560\n")
    (entry / "status").write_text(f"Name:\tpython\nSigCgt:\t{caught:016x}\n")
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def test_launcher_signals_only_actors_run_processes_with_the_handler(tmp_path: Path) -> None:
    from actors.launch._stall import targets

    usr1 = 1 << (signal.SIGUSR1 - 1)
    run = ["/v/bin/python", "-m", "actors.run", "a.toml"]
    _fake_process(tmp_path, 10, 10, run, usr1)  # a plain subprocess, ready
    _fake_process(tmp_path, 20, 20, ["/v/bin/mpiexec", "-n", "1", *run], usr1)  # mpiexec
    _fake_process(tmp_path, 21, 20, run, usr1)  # its rank, ready
    _fake_process(tmp_path, 22, 20, run, 0)  # a rank still starting: SIGUSR1 would kill it
    _fake_process(tmp_path, 30, 30, run, usr1)  # another job's process
    (tmp_path / "self").mkdir()
    assert targets([10, 20], proc=tmp_path) == [10, 21]
