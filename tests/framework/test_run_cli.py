"""python -m actors.run on tiny configurations: success, --input/--output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LOCAL_MODULES = '''
from actors.framework import (BeginLumi, BeginRun, EndLumi, EndRun, EventID, EventTransition,
                              OutputModule, Source)


class FileSource(Source):
    """One event per line of `file` (the event number), one run, one lumi."""

    def __init__(self, *, file=""):
        self.file = file

    def declare(self, d):
        d.produces("int", "n")

    def transitions(self):
        numbers = [int(x) for x in open(self.file).read().split()]
        yield BeginRun(1)
        yield BeginLumi(1, 1)
        for n in numbers:
            yield EventTransition(EventID(1, 1, n), {"n": n})
        yield EndLumi(1, 1)
        yield EndRun(1)


class TextOutput(OutputModule):
    def __init__(self, *, file="", **kw):
        super().__init__(**kw)
        self.file = file

    def begin_job(self):
        self.out = open(self.file, "w")

    def write(self, event):
        self.out.write(f"{event.id.event}\\n")

    def end_job(self):
        self.out.close()
'''

CONFIG = """
[process]
name = "CLI"

[options]
streams = 2
threads = 2

[source]
type = "localmods:FileSource"
file = "missing.txt"

[modules.even]
type = "tests.framework.mods:Even"

[modules.{fail_label}]
type = "tests.framework.mods:Fail"
at = {fail_at}

[modules.out]
type = "localmods:TextOutput"
select_events = ["p"]
file = "not-used.txt"

[paths]
p = ["even", "{fail_label}"]

[end_paths]
e = ["out"]
"""


def _setup(tmp_path: Path, fail_at: int = 1000) -> Path:
    (tmp_path / "localmods.py").write_text(LOCAL_MODULES)
    (tmp_path / "events.txt").write_text("\n".join(str(n) for n in range(1, 21)))
    config = tmp_path / "job.toml"
    config.write_text(CONFIG.format(fail_label="fail", fail_at=fail_at))
    return config


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "actors.run", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_runs_with_input_output_and_json(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    out, report = tmp_path / "out.txt", tmp_path / "report.json"
    result = _run(
        config,
        "--input",
        tmp_path / "events.txt",
        "--output",
        out,
        "--events",
        "15",
        "--streams",
        "3",
        "--report-json",
        report,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().split() == [str(n) for n in range(2, 16, 2)]
    data = json.loads(report.read_text())
    assert data["events"] == 15 and data["streams"] == 3 and data["threads"] == 2
    assert "Trigger report" in result.stdout and "Timing report" in result.stdout


def test_cli_module_error_exit_status_and_message(tmp_path: Path) -> None:
    config = _setup(tmp_path, fail_at=6)
    result = _run(config, "--input", tmp_path / "events.txt", "--output", tmp_path / "o.txt")
    assert result.returncode == 1
    assert "module 'fail' failed in event 1:1:6" in result.stderr
    assert "RuntimeError: boom at 6" in result.stderr
    assert "Traceback" in result.stderr


def test_cli_config_error_exit_status(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    config.write_text(config.read_text().replace("threads = 2", "threads = -1"))
    result = _run(config)
    assert result.returncode == 2
    assert f"{config}:7: options.threads:" in result.stderr


def test_cli_missing_input_file_names_the_flag_and_path(tmp_path: Path) -> None:
    config = _setup(tmp_path)
    result = _run(config, "--input", tmp_path / "nope.txt", "--output", tmp_path / "o.txt")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --input: file not found: {tmp_path / 'nope.txt'}")
