"""Every command line reports bad input in one style: first line and exit status.

A table of bad inputs per CLI (``actors.run``, ``actors.launch``,
``actors.split``, ``benchmarks``), each called in this process through its
``main``; the first line of stderr must match and the status must be 2 (usage
or configuration) or 1 (the job failed). A launcher that refuses a topology
leaves no run directory behind.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors._cli import error_lines, report_error, setup_logging
from actors.errors import BackendUnavailable, ConfigError, ModuleError, PeerLost
from actors.framework.cli import main as run_main
from actors.launch.cli import DEFAULT_STALL_REPORT_S
from actors.launch.cli import main as launch_main
from actors.split.cli import main as split_main
from benchmarks.cli import main as bench_main

REPO = Path(__file__).resolve().parents[1]
OFFLOAD = REPO / "examples" / "offload"
DIMUON = REPO / "examples" / "dimuon" / "dimuon.toml"
NANO = REPO.parent / "shared" / "data" / "cms2010_zmumu_nano.root"

Main = Callable[[list[str]], int]

FAILING_MODULE = """
from actors.framework import Producer


class Boom(Producer):
    def __init__(self, *, at=3):
        self.at = at

    def declare(self, d):
        d.produces("int")

    def produce(self, event):
        if event.id.event == self.at:
            raise RuntimeError(f"boom at {self.at}")
        event.put(0)
"""

FAILING_CONFIG = """
[process]
name = "FAIL"

[source]
type = "actors.framework.sources.synthetic:SyntheticSource"
lumis_per_run = 0
events_per_lumi = 100
products = [{ instance = "hits", dtype = "float32", size = 4 }]

[modules.boom]
type = "failmods:Boom"
at = 3

[paths]
p = ["boom"]
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLIs configure the ``actors`` logger; leave it as it was."""
    logger = logging.getLogger("actors")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The offload example in tmp_path, plus broken variants; temp dirs go to tmp_path/tmp."""
    for name in ("local.toml", "remote.toml", "topology.toml", "modules.py"):
        shutil.copy(OFFLOAD / name, tmp_path / name)
    local = (tmp_path / "local.toml").read_text()
    topo = (tmp_path / "topology.toml").read_text()
    variants = {
        "badclass": local.replace("modules:Calibrate", "modules:NoSuchClass"),
        "badmod": local.replace("modules:Calibrate", "nosuchpkg.sub:Calibrate"),
        "badparam": local.replace("gain = 1.5", "gain = 1.5\nnosuchparam = 1"),
        "badthreads": local.replace("threads = 1", "threads = -1"),
    }
    for name, text in variants.items():
        (tmp_path / f"local_{name}.toml").write_text(text)
        for transport in ("tcp", "inproc"):
            (tmp_path / f"topo_{name}_{transport}.toml").write_text(
                topo.replace('"local.toml"', f'"local_{name}.toml"').replace(
                    '"inproc"', f'"{transport}"'
                )
            )
    for transport in ("tcp", "mpi", "ucx"):
        (tmp_path / f"topo_{transport}.toml").write_text(topo.replace('"inproc"', f'"{transport}"'))
    (tmp_path / "topo_badkey.toml").write_text(topo.replace("[run]\n", "[run]\nfoo = 1\n"))
    (tmp_path / "failmods.py").write_text(FAILING_MODULE)
    (tmp_path / "local_fails.toml").write_text(FAILING_CONFIG)
    (tmp_path / "topo_fails_inproc.toml").write_text(
        '[run]\ntransport = "inproc"\n[process.local]\nconfig = "local_fails.toml"\n'
    )
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _call(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``main(argv)``; SystemExit (argparse) counts as a status."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    return status, capsys.readouterr().err


# (argv, first line of stderr as a regular expression, status); {d} is the files folder.
RUN_CASES = [
    (["{d}/nothere.toml"], r"error: {d}/nothere.toml: cannot read configuration: No such file", 2),
    (
        ["{d}/local_badclass.toml"],
        r"error: {d}/local_badclass.toml:\d+: modules.calib.type: 'modules' .* no attribute "
        r"'NoSuchClass'",
        2,
    ),
    (
        ["{d}/local_badmod.toml"],
        r"error: {d}/local_badmod.toml:\d+: modules.calib.type: cannot import 'nosuchpkg.sub'",
        2,
    ),
    (
        ["{d}/local_badparam.toml", "--events", "5"],
        r"error: {d}/local_badparam.toml:\d+: modules.calib: cannot construct modules:Calibrate "
        r"with parameters \['gain', 'nosuchparam'\]",
        2,
    ),
    (["{d}/local_badthreads.toml"], r"error: {d}/local_badthreads.toml:\d+: options.threads: ", 2),
    (["{d}/local.toml", "--events", "-5"], r"error: --events: must be >= 0, got -5$", 2),
    (["{d}/local.toml", "--events", "abc"], r"error: --events: expected an integer, got 'abc'$", 2),
    (["{d}/local.toml", "--threads", "-1"], r"error: --threads: must be >= 0, got -1$", 2),
    (
        ["{d}/local.toml", "--input", "{d}/nope.root"],
        r"error: --input: file not found: {d}/nope.root$",
        2,
    ),
    (
        ["{d}/local.toml", "--output", "o.root"],
        r"error: {d}/local.toml: --output needs exactly one output module",
        2,
    ),
    (["{d}/local.toml", "--frobnicate"], r"error: unrecognized arguments: --frobnicate$", 2),
    (
        ["{d}/local.toml", "--report-json", "{d}/no/r.json"],
        r"error: --report-json: folder not found: {d}/no$",
        2,
    ),
    (
        ["{d}/local_fails.toml", "--events", "10", "--quiet"],
        r"error: module 'boom' failed in event 1:1:3: RuntimeError\('boom at 3'\)$",
        1,
    ),
]

LAUNCH_CASES = [
    (["{d}/nothere.toml"], r"error: {d}/nothere.toml: cannot read configuration", 2),
    (
        ["{d}/topo_badclass_tcp.toml"],
        r"error: {d}/local_badclass.toml:\d+: modules.calib.type: 'modules' .* no attribute "
        r"'NoSuchClass'",
        2,
    ),
    (
        ["{d}/topo_badmod_tcp.toml"],
        r"error: {d}/local_badmod.toml:\d+: modules.calib.type: cannot import 'nosuchpkg.sub'",
        2,
    ),
    (
        ["{d}/topo_badclass_inproc.toml"],
        r"error: {d}/local_badclass.toml:\d+: modules.calib.type",
        2,
    ),
    (["{d}/topo_badkey.toml"], r"error: {d}/topo_badkey.toml:\d+: run.foo: unknown key 'foo'", 2),
    (["{d}/topology.toml", "--events", "-5"], r"error: --events: must be >= 0, got -5$", 2),
    (
        ["{d}/topology.toml", "--input", "{d}/nope.root"],
        r"error: --input: file not found: {d}/nope.root$",
        2,
    ),
    (
        ["{d}/topology.toml", "--transport", "carrier"],
        r"error: --transport: unknown transport 'carrier'; one of inproc, tcp, shm, mpi, ucx$",
        2,
    ),
    (["{d}/topology.toml", "--timeout", "0"], r"error: --timeout: must be > 0, got 0$", 2),
    (
        ["{d}/topology.toml", "--stall-report", "soon"],
        r"error: --stall-report: expected a number of seconds, got 'soon' \(or 'off'\)$",
        2,
    ),
    (
        ["{d}/topology.toml", "--output", "{d}/no/o.root"],
        r"error: --output: folder not found: {d}/no$",
        2,
    ),
    (
        ["{d}/topology.toml", "--report-json", "{d}/no/r.json"],
        r"error: --report-json: folder not found: {d}/no$",
        2,
    ),
    (
        ["{d}/topo_badparam_inproc.toml", "--events", "5"],
        r"error: {d}/local_badparam.toml:\d+: modules.calib: cannot construct",
        2,
    ),
    (
        ["{d}/topo_fails_inproc.toml", "--events", "10"],
        r"error: module 'boom' failed in event 1:1:3: RuntimeError\('boom at 3'\)$",
        1,
    ),
]

SPLIT_CASES = [
    (
        ["{d}/nothere.toml", "--offload", "x", "-o", "out"],
        r"error: {d}/nothere.toml: cannot read configuration",
        2,
    ),
    (
        ["{d}/local.toml", "-o", "out"],
        r"error: the following arguments are required: --offload$",
        2,
    ),
    (
        ["{d}/local.toml", "--offload", "nosuch", "-o", "out"],
        r"error: --offload names unknown module 'nosuch'",
        2,
    ),
    (
        ["{d}/local.toml", "--offload", "calib", "--transport", "carrier", "-o", "out"],
        r"error: --transport: unknown transport 'carrier'",
        2,
    ),
    (
        ["{d}/local.toml", "--offload", "calib", "--input", "{d}/nope.root", "-o", "out"],
        r"error: --input: file not found: {d}/nope.root$",
        2,
    ),
    (
        ["{d}/local_badclass.toml", "--offload", "threshold", "-o", "out"],
        r"error: {d}/local_badclass.toml:\d+: modules.calib.type: ",
        2,
    ),
]

BENCH_CASES = [
    (
        ["--transports", "tcp,foo"],
        r"error: --transports: unknown foo; choose from tcp,shm,mpi,ucx$",
        2,
    ),
    (["--repeat", "0"], r"error: --repeat: must be >= 1, got 0$", 2),
    (["--select", "("], r"error: --select: not a regular expression: ", 2),
    (["nosuch"], r"error: part: invalid choice: 'nosuch'", 2),
    (["sizing", "--load", "2"], r"error: --load: only the events part uses it, not 'sizing'$", 2),
    (["all", "--load", "1"], r"error: --load: only the events part uses it, not 'all'$", 2),
    (["all", "--control"], r"error: --control: only the events part uses it, not 'all'$", 2),
    (["events", "--control", "--quick"], r"error: --control: a --quick run has no verdicts", 2),
    (
        ["events", "--control", "--transports", "mpi"],
        r"error: --control runs tcp:// again: --transports must include tcp$",
        2,
    ),
    (
        ["peers", "--select", "tcp"],
        r"error: --select: only the cpu, events, hlt, scale and sizing parts \(and all\) use it, "
        r"not 'peers'$",
        2,
    ),
    (
        ["peers", "--transports", "mpi"],
        r"error: --transports: only the transports, products, actors, cpu, events and hlt parts "
        r"\(and all\) use it, not 'peers'$",
        2,
    ),
    (
        ["peers", "--repeat", "3"],
        r"error: --repeat: only the transports, cpu, events, hlt and sizing parts \(and all\) use "
        r"it, not 'peers'$",
        2,
    ),
    (
        ["events", "--device", "gpu"],
        r"error: --device: only the transports and products parts \(and all\) use it, "
        r"not 'events'$",
        2,
    ),
]


_LOG_RECORD = re.compile(r"(\[\S+\] )?(DEBUG|INFO|WARNING|ERROR|CRITICAL) actors[.\w]*: ")


def _check(
    main: Main, case: tuple[list[str], str, int], d: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    argv, pattern, expected = case
    status, err = _call(main, [a.format(d=d) for a in argv], capsys)
    # Log records of the library (another channel, e.g. a job stopped while it started) aside.
    report = [line for line in err.splitlines() if not _LOG_RECORD.match(line)]
    first = report[0] if report else ""
    assert re.match(pattern.format(d=re.escape(str(d))), first), err[-3000:]
    assert status == expected, err[-3000:]
    return err


@pytest.mark.parametrize("case", RUN_CASES, ids=lambda c: " ".join(c[0])[:40])
def test_run_bad_inputs(
    case: tuple[list[str], str, int], files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _check(run_main, case, files, capsys)
    if case[2] == 1:  # an error in user code: its traceback follows
        assert "Traceback" in err and "RuntimeError: boom at 3" in err
    else:
        assert "Traceback" not in err


@pytest.mark.parametrize("case", LAUNCH_CASES, ids=lambda c: " ".join(c[0])[:40])
def test_launch_bad_inputs(
    case: tuple[list[str], str, int], files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _check(launch_main, case, files, capsys)
    assert not list((files / "tmp").iterdir())  # no run directory left behind


@pytest.mark.parametrize("case", SPLIT_CASES, ids=lambda c: " ".join(c[0])[:40])
def test_split_bad_inputs(
    case: tuple[list[str], str, int], files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _check(split_main, case, files, capsys)
    assert not (files / "out").exists()


@pytest.mark.parametrize("case", BENCH_CASES, ids=lambda c: " ".join(c[0])[:40])
def test_benchmarks_bad_inputs(
    case: tuple[list[str], str, int], files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _check(bench_main, case, files, capsys)
    assert not (files / "benchmark-results").exists()


def test_launch_missing_mpiexec_is_one_error_and_a_hint(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    status, err = _call(launch_main, [str(files / "topo_mpi.toml")], capsys)
    assert status == 2
    assert err.splitlines() == [
        f"error: mpiexec is not available (not on PATH nor next to {sys.executable}; the mpi "
        "transport and processes on several hosts need it)",
        "hint: install it with: pip install 'hep-actors[mpi]'",
    ]
    assert not list((files / "tmp").iterdir())


def test_launch_missing_ucxx_is_one_error_and_a_hint(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ucxx" else real(name, *a)
    )
    status, err = _call(launch_main, [str(files / "topo_ucx.toml")], capsys)
    assert status == 2
    assert err.splitlines() == [
        "error: ucxx is not available (needed by the ucx links of this topology)",
        "hint: install it with: pip install 'hep-actors[ucx]'",
    ]


def test_missing_ucxx_inside_a_process_is_short(files: Path) -> None:
    """ucxx that fails to import in the processes: each says so in two lines, exit 2."""
    fake = files / "noucxx" / "ucxx"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("ucxx hidden by the test")\n')
    env = {**os.environ, "PYTHONPATH": f"{files / 'noucxx'}{os.pathsep}{REPO}"}
    run = subprocess.run(
        [sys.executable, "-m", "actors.launch", str(files / "topo_ucx.toml"), "--events", "5"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=files,
        check=False,
    )
    err = run.stderr
    assert run.returncode == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "[remote] error: ucxx is not available (ucxx hidden by the test)" in err, err[-3000:]
    assert "[remote] hint: install it with: pip install 'hep-actors[ucx]'" in err


@pytest.mark.parametrize(
    ("transport", "engine"),
    [("tcp", "subprocess"), pytest.param("mpi", "mpiexec", marks=pytest.mark.mpi)],
)
def test_report_json_has_every_process(
    transport: str, engine: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = files / "run.json"
    status, err = _call(
        launch_main,
        [str(files / f"topo_{transport}.toml"), "--events", "40", "--report-json", str(out)],
        capsys,
    )
    assert status == 0, err[-3000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == "hep-actors-launch-report/1" and doc["exit_status"] == 0
    assert doc["engine"] == engine and doc["transports"] == [transport]
    rows = {row["name"]: row for row in doc["processes"]}
    assert set(rows) == {"local", "remote"}
    for row in rows.values():
        assert row["exit_status"] == 0 and row["events"] == 40 and row["events_per_s"] > 0
        assert row["report"]["events"] == 40
        assert row["report"]["trigger_report"] and row["report"]["timing_report"]
    assert doc["summary"]["succeeded"] == 2 and doc["summary"]["failed"] == []
    assert doc["summary"]["events"] == 40
    assert not list((files / "tmp").iterdir())


def test_report_json_of_a_failed_embedded_run(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = files / "run.json"
    status, _ = _call(
        launch_main,
        [str(files / "topo_fails_inproc.toml"), "--events", "10", "--report-json", str(out)],
        capsys,
    )
    doc = json.loads(out.read_text())
    assert status == doc["exit_status"] == 1
    assert [row["report"] for row in doc["processes"]] == [None]
    assert doc["summary"]["succeeded"] == 0


def test_help_has_examples_exit_codes_and_docs(capsys: pytest.CaptureFixture[str]) -> None:
    for main in (run_main, launch_main, split_main, bench_main):
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        text = capsys.readouterr().out
        assert info.value.code == 0
        assert "examples:\n  python -m " in text
        assert "exit status:\n  0 " in text and "\n  2 " in text and "\n  130 " in text
        assert "documentation: docs/" in text
        assert "--log-level" in text and "--debug" in text
        assert "::" not in text and "``" not in text  # no raw reStructuredText


# --- the formatter itself --------------------------------------------------------------


def _module_error(cause: BaseException, tb: str = "Traceback: user code\n") -> ModuleError:
    return ModuleError("calib", "event 1:1:3", cause, tb)


def test_missing_extra_inside_a_module_is_configuration() -> None:
    cause = BackendUnavailable("ucxx", "ucx", "No module named 'ucxx'")
    lines, status = error_lines(_module_error(cause))
    assert status == 2
    assert lines == [
        "error: ucxx is not available (No module named 'ucxx')",
        "  in module 'calib' (event 1:1:3)",
        "hint: install it with: pip install 'hep-actors[ucx]'",
    ]


def test_library_error_in_a_module_has_no_traceback_user_error_has() -> None:
    lines, status = error_lines(_module_error(PeerLost("link 'offload': peer 'remote' died")))
    assert status == 1 and len(lines) == 1
    assert lines[0] == (
        "error: module 'calib' failed in event 1:1:3: link 'offload': peer 'remote' died"
    )
    lines, status = error_lines(_module_error(ValueError("bad")))
    assert status == 1 and lines == [
        "error: module 'calib' failed in event 1:1:3: ValueError('bad')",
        "Traceback: user code",
    ]


def test_internal_error_traceback_only_with_debug() -> None:
    try:
        raise KeyError("x")
    except KeyError as exc:
        plain, status = error_lines(exc)
        debug, _ = error_lines(exc, debug=True)
    assert status == 1 and plain == [
        "error: internal error: KeyError: 'x'",
        "hint: run again with --debug to see the traceback",
    ]
    assert debug[0] == plain[0] and "Traceback (most recent call last)" in debug[-1]


def test_notes_and_interrupt() -> None:
    exc = ConfigError("must be >= 1", file="a.toml", line=3, key="options.threads")
    exc.add_note("in process 'local' (a.toml)")
    assert error_lines(exc) == (
        ["error: a.toml:3: options.threads: must be >= 1", "  in process 'local' (a.toml)"],
        2,
    )
    assert error_lines(KeyboardInterrupt()) == (["interrupted"], 130)


def test_brackets_are_printed_as_they_are(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich markup must not eat ``[plots]`` / ``[hep]`` in install hints."""
    from rich.console import Console

    from benchmarks import cli

    assert report_error(BackendUnavailable("uproot", "hep")) == 2
    assert "pip install 'hep-actors[hep]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "benchmarks.plots", None)  # import fails
    console = Console(width=200)
    cli._plots(console, Path("."), {"transports": {"measurements": [{"x": 1}]}}, "host")
    assert "pip install 'hep-actors[plots]'" in capsys.readouterr().out


def test_log_level_and_debug_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("actors.test_cli")
    assert setup_logging(argparse.Namespace(verbose=0, log_level="info", debug=False)) == "info"
    log.debug("hidden")
    try:
        raise OSError("disk")
    except OSError:
        log.exception("saving failed")
    err = capsys.readouterr().err
    assert err == (
        "ERROR actors.test_cli: saving failed (OSError: disk; --debug shows the traceback)\n"
    )
    setup_logging(argparse.Namespace(verbose=2, log_level=None, debug=False))
    log.debug("shown")
    assert capsys.readouterr().err == "DEBUG actors.test_cli: shown\n"


def test_bad_log_level_variable_is_a_configuration_error(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTORS_LOG_LEVEL", "loud")
    status, err = _call(run_main, [str(files / "local.toml")], capsys)
    assert status == 2
    assert err.splitlines()[0] == (
        "error: environment variable ACTORS_LOG_LEVEL='loud': "
        "expected one of debug|info|warning|error, got 'loud'"
    )


def test_launcher_passes_the_log_level_to_every_process(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTORS_LOG_LEVEL", raising=False)
    assert launch_main([str(files / "topo_tcp.toml"), "-v", "--dry-run"]) == 0
    described = capsys.readouterr().out
    assert described.count("ACTORS_LOG_LEVEL=info") == 2, described
    assert not list((files / "tmp").iterdir())


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ([], DEFAULT_STALL_REPORT_S),
        (["--stall-report", "off"], None),
        (["--stall-report", "7"], 7.0),
    ],
)
def test_launcher_asks_for_stall_reports_by_default(
    files: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: float | None
) -> None:
    """A hang is never silent: without ``--stall-report`` the watch still runs."""
    seen: dict[str, object] = {}

    def fake_run_plan(*args: object, stall_report: float | None = None, **kwargs: object) -> int:
        seen["stall_report"] = stall_report
        return 0

    monkeypatch.setattr("actors.launch._process.run_plan", fake_run_plan)
    assert launch_main([str(files / "topo_tcp.toml"), *flag]) == 0
    assert seen == {"stall_report": expected}
    assert not list((files / "tmp").iterdir())


def test_ctrl_c_exits_130(files: Path) -> None:
    """SIGINT while events flow: the job stops, ``interrupted`` on stderr, status 130,
    announced on the last stdout line under the launcher."""
    endless = FAILING_CONFIG.replace("at = 3", "at = -1")  # never fails, no event limit
    (files / "endless.toml").write_text(endless)
    env = {**os.environ, "PYTHONPATH": str(REPO), "ACTORS_PROGRESS_LINES": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors.run", str(files / "endless.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=files,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the first progress line: events are flowing
            if line.startswith("@@actors-progress "):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert err.splitlines()[-1] == "interrupted", err[-3000:]
    # the launcher's word of the end (one mpiexec for all shows no exit per process)
    assert out.splitlines()[-1] == '@@actors-exit {"code": 130}', out[-3000:]
    assert "Traceback" not in err, err[-3000:]


@pytest.mark.parametrize("flag", ["--debug", "-vv"])
def test_debug_shows_the_traceback_after_the_error_line(
    flag: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _call(run_main, [str(files / "local_badclass.toml"), flag], capsys)
    report = [line for line in err.splitlines() if not _LOG_RECORD.match(line)]
    assert status == 2 and report[0].startswith(f"error: {files}/local_badclass.toml:")
    assert "Traceback (most recent call last)" in err
