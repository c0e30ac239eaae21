"""What every command line of hep-actors shares: one error style, exit codes, logging.

``python -m actors.run``, ``actors.launch``, ``actors.split`` and ``benchmarks``
build their parser with :class:`CliParser` and wrap their work in
:func:`run_main`, so that they all

* report a bad input in one line on stderr, ``error: FILE:LINE: KEY: what is
  wrong`` (a :class:`~actors.errors.ConfigError`) or ``error: --flag: ...`` (a
  bad option), the install hint of a missing extra on its own ``hint:`` line;
* show a traceback only for an error raised by user code (a module, a
  source) or when ``--debug`` is given;
* exit with :data:`EXIT_USAGE` (2) for a usage or configuration error,
  :data:`EXIT_FAILED` (1) when the job failed, :data:`EXIT_INTERRUPTED` (130)
  on Ctrl-C;
* accept ``--log-level LEVEL`` and ``-v``/``-vv`` and log through the standard
  :mod:`logging` module (loggers under ``actors``), on stderr; a process started
  by the launcher inherits the level through ``ACTORS_LOG_LEVEL``.

Library code never calls :func:`sys.exit`: it raises the errors of
:mod:`actors.errors` and the entry point formats them with :func:`report_error`.
"""

from __future__ import annotations

import argparse
import contextvars
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from .errors import ActorsError, BackendUnavailable, ConfigError, ModuleError
from .settings import CPUS, LOG_LEVEL

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOG_LEVEL_ENV",
    "PROCESS_NAME",
    "CliParser",
    "check_input",
    "check_output",
    "error_lines",
    "log_level",
    "non_negative_int",
    "positive_int",
    "print_marker",
    "report_error",
    "run_main",
    "setup_logging",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Environment variable holding the log level (set by the launcher for its processes).
LOG_LEVEL_ENV = LOG_LEVEL.name
#: Name of the logical process running in the current context (embedded engine):
#: log records then start with ``[NAME]`` like the launcher's prefixed output.
PROCESS_NAME: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "actors_process_name", default=None
)

_LEVELS = ("debug", "info", "warning", "error")
_EXIT_CODES = (
    "exit status:\n"
    "  0    success\n"
    "  1    the job failed (a module raised, a peer was lost; details on stderr)\n"
    "  2    usage or configuration error (bad option, file, key; missing extra)\n"
    "  130  interrupted (Ctrl-C)"
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout; appends ``(default: X)`` to options that have one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if shown and "(default" not in text and action.nargs != 0:
            text += " (default: %(default)s)"
        return text


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser with the shared options, help layout and error style.

    ``examples`` (command lines), the exit statuses and ``docs`` (a page of the
    documentation) make up the epilog of ``--help``; ``exit_codes`` replaces
    the standard exit-status text. Adds ``--log-level``, ``-v``/``--verbose``
    and ``--debug``. A usage error prints ``error: --flag: ...`` first, then
    the usage, and exits with status 2.
    """

    def __init__(
        self,
        prog: str,
        description: str,
        *,
        examples: Sequence[str] = (),
        docs: str | None = None,
        exit_codes: str = _EXIT_CODES,
    ) -> None:
        parts = []
        if examples:
            parts.append("examples:\n" + "\n".join(f"  {line}" for line in examples))
        parts.append(exit_codes)
        if docs:
            parts.append(f"documentation: {docs} in the hep-actors repository")
        super().__init__(
            prog=prog,
            description=description,
            epilog="\n\n".join(parts),
            formatter_class=_Formatter,
        )
        self._common_added = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if not self._common_added:  # last, so that the usage starts with the command's own
            self._common_added = True
            self._add_common()
        return super().parse_known_args(args, namespace)

    def _add_common(self) -> None:
        group = self.add_argument_group("logging and errors")
        group.add_argument(
            "--log-level",
            choices=_LEVELS,
            type=str.lower,
            default=None,
            help=f"messages of the library shown on stderr (default: ${LOG_LEVEL_ENV} or warning)",
        )
        group.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            help="-v: info, -vv: debug (overrides --log-level)",
        )
        group.add_argument(
            "--debug",
            action="store_true",
            help="show the traceback of every error (so does the debug log level)",
        )

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
        self.exit(EXIT_USAGE, f"error: {message}\n{self.format_usage()}")


def check_input(path: str | None, flag: str) -> None:
    """ConfigError naming ``flag`` when the local file ``path`` does not exist (URLs pass)."""
    if path is not None and "://" not in path and not Path(path).exists():
        raise ConfigError(f"file not found: {path}", key=flag)


def check_output(path: str | None, flag: str) -> None:
    """ConfigError naming ``flag`` when the folder of the file ``path`` does not exist."""
    if path is not None and "://" not in path and not Path(path).parent.is_dir():
        raise ConfigError(f"folder not found: {Path(path).parent}", key=flag)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def log_level(args: argparse.Namespace) -> str:
    """The level chosen by ``-v``, ``--log-level``, ``$ACTORS_LOG_LEVEL`` (in that order).

    Raises ConfigError naming the variable when ``$ACTORS_LOG_LEVEL`` is not a level.
    """
    if getattr(args, "verbose", 0):
        return "debug" if args.verbose > 1 else "info"
    return getattr(args, "log_level", None) or LOG_LEVEL.get()


class _ProcessPrefix(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        name = PROCESS_NAME.get()
        record.process_prefix = f"[{name}] " if name else ""
        return True


class _LogFormatter(logging.Formatter):
    """A traceback attached to a record becomes one line unless tracebacks are asked for."""

    def __init__(self, fmt: str, *, tracebacks: bool) -> None:
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not record.exc_info:
            return super().format(record)
        exc = record.exc_info[1]
        text = super().format(
            logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        )
        return f"{text} ({type(exc).__name__}: {exc}; --debug shows the traceback)"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def setup_logging(args: argparse.Namespace) -> str:
    """Send the ``actors`` loggers to stderr at the chosen level; returns the level name.

    Records look like ``WARNING actors.transports: message``, prefixed with
    ``[NAME]`` inside an embedded process (see :data:`PROCESS_NAME`); a
    traceback attached to a record is shown only with ``--debug`` or at the
    debug level. Calling it again replaces the handler it installed before.
    """
    level = log_level(args)
    logger = logging.getLogger("actors")
    for handler in list(logger.handlers):
        if getattr(handler, "_actors_cli", False):
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler._actors_cli = True  # type: ignore[attr-defined]
    handler.addFilter(_ProcessPrefix())
    handler.setFormatter(
        _LogFormatter(
            "%(process_prefix)s%(levelname)s %(name)s: %(message)s",
            tracebacks=bool(getattr(args, "debug", False)) or level == "debug",
        )
    )
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    return level


def error_lines(exc: BaseException, *, debug: bool = False) -> tuple[list[str], int]:
    """The lines that report ``exc`` and the exit status that goes with it.

    The first line is ``error: ...``; a missing extra adds a ``hint:`` line;
    notes (``add_note``) follow indented; a traceback follows only for an error
    raised by user code (a :class:`ModuleError` whose cause is not one of ours)
    or when ``debug`` is true.
    """
    if isinstance(exc, KeyboardInterrupt):
        return ["interrupted"], EXIT_INTERRUPTED
    cause = exc.__cause__ if isinstance(exc, ModuleError) else None
    if isinstance(exc, ModuleError) and isinstance(cause, ConfigError | BackendUnavailable):
        lines, status = error_lines(cause)
        lines.insert(1, f"  in module {exc.label!r} ({exc.transition})")
    elif isinstance(exc, ModuleError):
        what = cause if isinstance(cause, ActorsError) or cause is None else repr(cause)
        lines = [f"error: module {exc.label!r} failed in {exc.transition}: {what}"]
        lines[0] = lines[0] if cause is not None else f"error: {exc}"
        status = EXIT_FAILED
        if not isinstance(cause, ActorsError) and exc.module_traceback:
            lines.append(exc.module_traceback.rstrip("\n"))
            debug = False  # the user's traceback is already there
    elif isinstance(exc, BackendUnavailable):
        lines = [f"error: {_backend_text(exc)}", f"hint: install it with: {exc.hint}"]
        status = EXIT_USAGE
    elif isinstance(exc, ConfigError):
        lines, status = [f"error: {exc}"], EXIT_USAGE
    elif isinstance(exc, ActorsError):
        first, _, rest = str(exc).partition("\n")
        lines, status = [f"error: {first}", *filter(None, [rest.rstrip("\n")])], EXIT_FAILED
    else:
        lines = [f"error: internal error: {type(exc).__name__}: {exc}"]
        status = EXIT_FAILED
        if not debug:
            lines.append("hint: run again with --debug to see the traceback")
    lines += [f"  {note}" for note in getattr(exc, "__notes__", ())]
    if debug:
        lines.append("".join(traceback.format_exception(exc)).rstrip("\n"))
    return lines, status


def _backend_text(exc: BackendUnavailable) -> str:
    return f"{exc.module} is not available" + (f" ({exc.detail})" if exc.detail else "")


def print_marker(mark: str, text: str) -> None:
    """Write one marker line (``mark``, ``text``, newline) for the launcher to stdout
    in a single write: with ``PYTHONUNBUFFERED`` (which the launcher sets) ``print``
    writes the newline apart, and ``mpiexec -prepend-rank`` then glues the lines of
    two processes together. Lines up to ``PIPE_BUF`` (4 KiB) stay whole."""
    sys.stdout.write(f"{mark}{text}\n")
    sys.stdout.flush()


def report_error(exc: BaseException, *, debug: bool = False, file: IO[str] | None = None) -> int:
    """Print the report of ``exc`` (see :func:`error_lines`) on stderr; returns the exit status.

    One write with its newline: under ``PYTHONUNBUFFERED`` a ``print`` would send the
    newline apart, and ``mpiexec`` may forward another line between the two."""
    lines, status = error_lines(exc, debug=debug)
    out = file or sys.stderr
    out.write("\n".join(lines) + "\n")
    out.flush()
    return status


def bind_cpus() -> frozenset[int]:
    """Confine this process to the CPUs of ``ACTORS_CPUS`` (nothing when it is empty).

    Call it before starting threads: they inherit the binding. Returns the CPUs
    bound to (empty: none). Raises ConfigError naming the variable when it does
    not parse, names a CPU this process may not use (the allowed ones are
    listed) or the platform cannot bind.
    """
    cpus = CPUS.get()
    if not cpus:
        return cpus
    if not hasattr(os, "sched_setaffinity"):
        raise ConfigError(f"{CPUS.name}: this platform cannot bind a process to CPUs")
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        raise ConfigError(
            f"{CPUS.name}={os.environ.get(CPUS.name)!r}: CPU(s) {_cpu_text(cpus - allowed)} "
            f"not available to this process (allowed: {_cpu_text(allowed)})"
        )
    os.sched_setaffinity(0, cpus)
    return cpus


def _cpu_text(cpus: set[int] | frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def run_main(body: Callable[[], int], args: argparse.Namespace | Any) -> int:
    """Set up logging (:func:`setup_logging`), run ``body`` (the work of one command
    line) and turn its exceptions into a status.

    ``SystemExit`` and ``CancelledError`` pass through; every other exception,
    ``KeyboardInterrupt`` included, is reported (with its traceback when
    ``args.debug`` is set or the log level is ``debug``: ``-vv`` on the launcher
    reaches its processes) with :func:`report_error` (``args.debug`` asks for
    tracebacks).
    """
    debug = bool(getattr(args, "debug", False))
    try:
        debug = setup_logging(args) == "debug" or debug
        bind_cpus()
        return body()
    except (Exception, KeyboardInterrupt) as exc:  # the one place that formats every error
        return report_error(exc, debug=debug)
