"""The ``overload`` part: a controller feeding a follower ten times slower than itself.

One ``python -m actors.launch`` over ``tcp``: the controller's events cost
``FAST_S`` (a sleeping module), the follower's ``10 x FAST_S``, one stream
each, so without flow control the controller would queue events ten times
faster than they are processed. The run lasts ``SECONDS`` (60 s; ``--quick``
6 s). Every 0.5 s the resident set of each process of the job is sampled
(psutil, from outside). Reported: events/s against the follower's ideal
(``1 / SLOW_S``), peak RSS per process, and the RSS at the first and last
quarter of the run: bounded memory means the last quarter is no larger than
the first, whatever the number of events.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from actors.tomlfile import dump_toml

from .harness import python
from .parts import Context, PartResult, register

__all__ = ["FAST_S", "SLOW_S", "run", "write_topology"]

FAST_S = 0.001
SLOW_S = 10 * FAST_S
SECONDS = 60.0
_SOURCE = "actors.framework.sources.synthetic:SyntheticSource"
_D = "actors.distributed"
_M = "benchmarks.bench_modules"


def write_topology(events: int, workdir: Path) -> Path:
    """The controller (fast) and follower (ten times slower) configurations and topology."""
    controller = {
        "process": {"name": "FAST"},
        "source": {
            "type": _SOURCE,
            "runs": 1,
            "lumis_per_run": 0,
            "events_per_lumi": 1000,
            "products": [{"instance": "hits", "dtype": "float32", "size": 4096}],
        },
        "modules": {
            "work": {"type": f"{_M}:HltModule", "time": FAST_S},
            "offload": {"type": f"{_D}:Controller", "link": "slow"},
            "tosend": {
                "type": f"{_D}:Sender",
                "upstream": "offload",
                "instance": 1,
                "products": ["source"],
            },
        },
        "paths": {"p": ["work", "offload", "tosend"]},
    }
    follower = {
        "process": {"name": "SLOW"},
        "source": {"type": f"{_D}:FollowerSource", "link": "slow"},
        "modules": {
            "hits": {
                "type": f"{_D}:Receiver",
                "upstream": "source",
                "instance": 1,
                "products": [{"type": "numpy.ndarray", "label": "source", "instance": "hits"}],
            },
            "work": {"type": f"{_M}:HltModule", "time": SLOW_S},
            "seen": {"type": f"{_D}:EventDone", "upstream": "source"},
        },
        "paths": {"p": ["hits", "work"]},
        "end_paths": {"e": ["seen"]},
    }
    (workdir / "fast.toml").write_text(dump_toml(controller))
    (workdir / "slow.toml").write_text(dump_toml(follower))
    topology = {
        "run": {"events": events, "transport": "tcp"},
        "process": {
            "fast": {"config": "fast.toml", "args": ["--quiet"]},
            "slow": {"config": "slow.toml", "args": ["--quiet"]},
        },
        "link": [{"name": "slow", "client": "fast", "server": "slow"}],
    }
    path = workdir / "topology.toml"
    path.write_text(dump_toml(topology))
    return path


def _job_processes(launcher: Any) -> dict[str, Any]:
    """The job's ``actors.run`` processes under the launcher, by configuration name."""
    found = {}
    with contextlib.suppress(Exception):
        for child in launcher.children(recursive=True):
            with contextlib.suppress(Exception):
                cmd = " ".join(child.cmdline())
                for name in ("fast", "slow"):
                    if "actors.run" in cmd and f"{name}.toml" in cmd:
                        found[name] = child
    return found


def _sample(proc: subprocess.Popen[bytes], seconds: float) -> tuple[dict[str, list[float]], float]:
    import psutil

    launcher = psutil.Process(proc.pid)
    rss: dict[str, list[float]] = {"fast": [], "slow": []}
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < seconds + 120:
        for name, p in _job_processes(launcher).items():
            with contextlib.suppress(Exception):
                rss[name].append(p.memory_info().rss / 2**20)
        time.sleep(0.5)
    return rss, time.monotonic() - start


def _measure(seconds: float, ctx: Context) -> dict[str, Any]:
    events = int(seconds / SLOW_S)
    with tempfile.TemporaryDirectory(prefix="hep-bench-overload-") as tmp:
        topology = write_topology(events, Path(tmp))
        proc = subprocess.Popen(
            [python(), "-m", "actors.launch", str(topology), "--timeout", str(seconds + 120)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            rss, wall = _sample(proc, seconds)
            code = proc.wait(30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if code != 0:
        return {"error": f"launcher exited with {code}: {err.strip().splitlines()[-1:]}"}
    out: dict[str, Any] = {
        "events": events,
        "wall_s": wall,
        "events_per_s": events / wall,
        "ideal_per_s": 1 / SLOW_S,
    }
    for name, series in rss.items():
        quarter = max(1, len(series) // 4)
        out[name] = {
            "samples": len(series),
            "peak_MiB": max(series, default=0.0),
            "first_quarter_MiB": max(series[:quarter], default=0.0),
            "last_quarter_MiB": max(series[-quarter:], default=0.0),
        }
    return out


@register("overload")
def run(ctx: Context) -> PartResult:
    seconds = 6.0 if ctx.quick else SECONDS
    ctx.log(
        f"overload: {seconds:.0f} s, follower {SLOW_S * 1e3:.0f} ms/event, "
        f"controller {FAST_S * 1e3:.0f} ms/event"
    )
    rec = _measure(seconds, ctx)
    if "error" in rec:
        return PartResult("failed", reason=rec["error"], data=rec)
    rows = [
        [
            name,
            f"{r['peak_MiB']:.0f}",
            f"{r['first_quarter_MiB']:.0f}",
            f"{r['last_quarter_MiB']:.0f}",
            str(r["samples"]),
        ]
        for name, r in ((n, rec[n]) for n in ("fast", "slow"))
    ]
    title = (
        f"overload: {rec['events']} events in {rec['wall_s']:.0f} s, "
        f"{rec['events_per_s']:.0f} events/s (follower ideal {rec['ideal_per_s']:.0f})"
    )
    return PartResult(
        "ok",
        data=rec,
        tables=[
            (title, ["process", "peak RSS MiB", "first quarter", "last quarter", "samples"], rows)
        ],
    )
