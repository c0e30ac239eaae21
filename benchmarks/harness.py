"""Driver-side plumbing: launch workers in fresh subprocesses, collect one JSON line.

Every measured series runs in fresh processes (a server and a client, or one
``mpiexec`` job, or one local process), each in its own session (process
group). Whatever happens - success, error, timeout, Ctrl-C - every group is
killed afterwards (SIGTERM, then SIGKILL), so no ``mpiexec``, hydra proxy or
echo server is ever left behind.

Workers report by printing JSON objects on stdout, one per line; other output
(UCX warnings go to stdout) is ignored. A server's first object is
``{"ready": address}``; a client's last is ``{"series": [...]}`` or
``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "REPO",
    "Launch",
    "Outcome",
    "mpiexec",
    "python",
    "run_command",
    "run_launch",
]

REPO = Path(__file__).resolve().parent.parent
_JSON_TAIL = 12


def python() -> str:
    """The interpreter running the suite (workers use the same venv)."""
    return sys.executable


def mpiexec() -> str | None:
    """``mpiexec`` next to the interpreter (the mpich wheel's), else on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


@dataclass
class Launch:
    """How to run one series.

    ``client`` runs to completion and prints the result; ``server`` (optional)
    is started first and must print ``{"ready": address}``, which is appended
    to the client's argv. ``timeout`` bounds the whole launch.
    """

    client: list[str]
    server: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 120.0


@dataclass
class Outcome:
    """What came back: ``series`` on success, else ``reason``; ``wall_s`` always."""

    series: list[dict[str, Any]] | None
    reason: str | None
    wall_s: float


class _Proc:
    """A worker in its own process group, with its stdout parsed on a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in kill_group)
        self.objects: queue.Queue[dict[str, Any]] = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("{"):
                try:
                    self.objects.put(json.loads(line))
                except json.JSONDecodeError:
                    continue

    def next_object(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON object; None at the deadline or once stdout is closed and drained."""
        while True:
            try:
                return self.objects.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if not self.reader.is_alive() and self.objects.empty():
                    return None
                if time.monotonic() >= deadline:
                    return None

    def stderr_tail(self) -> str:
        """The most telling stderr lines: the last ones naming an error, else the last 3."""
        self.stderr.seek(0)
        lines = [ln.strip() for ln in self.stderr.read().decode(errors="replace").splitlines()]
        errors = [ln for ln in lines if "error" in ln.lower() or "exception" in ln.lower()]
        return " | ".join((errors or [ln for ln in lines if ln])[-3:])

    def kill_group(self) -> None:
        """SIGTERM the process group, SIGKILL what is left after 2 s; reap."""
        for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            if sig is signal.SIGTERM:
                _killpg_quietly(self.proc.pid)  # children that outlived the leader
            break
        self.reader.join(timeout=2)
        self.stderr.close()


def _killpg_quietly(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _failure(proc: _Proc, obj: dict[str, Any] | None, what: str) -> str:
    if obj is not None and "error" in obj:
        return f"{what}: {obj['error']}"
    code = proc.proc.poll()
    if code is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = proc.proc.wait(timeout=1)  # stdout closed: the exit is imminent
    status = "timed out" if code is None else f"exited with status {code}"
    tail = proc.stderr_tail()
    return f"{what} {status}" + (f": {tail}" if tail else "")


def _last_result(proc: _Proc, deadline: float) -> dict[str, Any] | None:
    last = None
    while True:
        obj = proc.next_object(deadline)
        if obj is None:
            return last
        if "series" in obj or "error" in obj:
            return obj
        last = obj


def run_launch(launch: Launch) -> Outcome:
    """Run one series; never raises for worker failures, never leaves processes."""
    start = time.monotonic()
    deadline = start + launch.timeout
    env = _env(launch.env)
    procs: list[_Proc] = []
    try:
        client_argv = list(launch.client)
        if launch.server is not None:
            server = _Proc(launch.server, env)
            procs.append(server)
            ready = server.next_object(min(deadline, time.monotonic() + 60))
            if ready is None or "ready" not in ready:
                return Outcome(None, _failure(server, ready, "server"), time.monotonic() - start)
            client_argv.append(str(ready["ready"]))
        client = _Proc(client_argv, env)
        procs.append(client)
        result = _last_result(client, deadline)
        if result is None or "series" not in result:
            return Outcome(None, _failure(client, result, "client"), time.monotonic() - start)
        with contextlib.suppress(subprocess.TimeoutExpired):
            client.proc.wait(timeout=max(0.1, min(10.0, deadline - time.monotonic())))
        return Outcome(result["series"], None, time.monotonic() - start)
    finally:
        for proc in reversed(procs):
            if proc.proc.poll() is None and proc is not procs[-1]:
                # give a server the chance to exit on its own (peer closed)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.proc.wait(timeout=3)
            proc.kill_group()


def run_command(
    argv: list[str], timeout: float, tail_lines: int = _JSON_TAIL, env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    """Run ``argv`` in its own process group; ``(exit status or None on timeout, output tail)``.

    ``env`` adds to this process's environment. The group is killed afterwards in every case.
    """
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        env=_env(env or {}),
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        code, out = None, b""
    finally:
        _killpg_quietly(proc.pid)
        if proc.poll() is None:
            proc.wait()
    tail = "\n".join(out.decode(errors="replace").strip().splitlines()[-tail_lines:])
    return code, tail
