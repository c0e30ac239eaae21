"""``python -m benchmarks``: run parts, print tables, write results.json and plots.

::

    python -m benchmarks [all|transports|products|events|scheduling|overhead|hlt] [--quick]
                         [--out DIR] [--transports tcp,shm,mpi,ucx] [--device host|gpu]

Exit status 0 unless a requested part failed (1; skipped parts are not
failures), 2 for a usage error, 130 on Ctrl-C; errors follow the style of every
command line (:mod:`actors._cli`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from actors._cli import CliParser, non_negative_int, positive_int, run_main

from . import (  # noqa: F401  (register the parts)
    actor_level,
    cpu,
    events,
    hlt,
    overhead,
    overload,
    peers,
    products,
    scale,
    scheduling,
    sizing_validate,
    transports,
)
from .harness import mpiexec
from .machine import compile_bytecode, describe_machine, versions
from .parts import BY_NAME_ONLY, ORDER, PARTS, Context, PartResult

__all__ = ["main"]

SCHEMA = "hep-actors-benchmarks/1"
TRANSPORTS = ["tcp", "shm", "mpi", "ucx"]


_DESCRIPTION = """\
Measure the transports and the framework against raw baselines on this machine:
print the tables, write DIR/results.json and, with the plots extra, the plots.

parts (default: all, in this order):
  transports  round-trip latency and bandwidth, 8 B .. 64 MiB, ours vs raw (~5 min)
  products    encode -> send -> recv -> decode round trips with realistic products
  actors      remote ask/tell across two processes, 8 B and 64 MiB
  events      events/s through a controller and 1, 2, 4 followers; dimuon offload ratio
  scheduling  sleep-model efficiency, measured / theoretical, threads x streams
  hlt         HLT-like menu of 300 modules, local only vs offloaded

run by name only:
  cpu         CPU per event through each transport, start-up and waiting apart (~3 min)
  overload    a controller feeding a follower 10x slower for 60 s: events/s, RSS over time
  peers       the same actor workloads through Ray, Dask, xoscar, Thespian (~5 min;
              pip install 'hep-actors[peers]')
  scale       1 controller x 16 followers and 16 x 1: start-up, memory, events/s vs ideal
  sizing      real offload/HLT runs vs the farm-sizing model's predictions (~2 min)"""


def _parser() -> argparse.ArgumentParser:
    ap = CliParser(
        "python -m benchmarks",
        _DESCRIPTION,
        examples=[
            "python -m benchmarks --quick                 # every part briefly (CI smoke test)",
            "python -m benchmarks transports --transports tcp,shm --repeat 3",
            "python -m benchmarks events --select 'tcp empty f2' --out /tmp/bench",
        ],
        exit_codes=(
            "exit status:\n"
            "  0    every requested part ran or was skipped (a missing backend)\n"
            "  1    a requested part failed\n"
            "  2    usage error\n"
            "  130  interrupted (Ctrl-C; every worker process is stopped)"
        ),
        docs="docs/benchmarks.md",
    )
    ap.add_argument(
        "part",
        nargs="?",
        default="all",
        choices=["all", *ORDER, *BY_NAME_ONLY],
        help="which part to run (default: all)",
    )
    ap.add_argument("--quick", action="store_true", help="every part briefly (CI smoke test)")
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("benchmark-results"),
        metavar="DIR",
        help="folder for results.json and the plots",
    )
    ap.add_argument(
        "--transports",
        type=_transports,
        default=None,
        metavar="LIST",
        help="comma-separated subset of tcp,shm,mpi,ucx (default: all)",
    )
    ap.add_argument(
        "--device",
        choices=["host", "gpu"],
        default="host",
        help="buffers in host memory or in GPU memory (cupy)",
    )
    ap.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="N",
        help="transports, cpu, events, hlt, sizing: rounds over the series; the best round "
        "per size is kept (use 2-3 on a shared, noisy machine)",
    )
    ap.add_argument(
        "--select",
        metavar="REGEX",
        type=_regex,
        help="cpu, events, hlt, scale, sizing: run only the series whose label matches, e.g. "
        "'empty f1 s[14]|offload example' (labels: 'tcp empty f2 s4', "
        "'shm 1 MiB one way f1 s1', 'offloaded, 1 remote (mpi)')",
    )
    ap.add_argument(
        "--load",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="events: N busy processes beside every series (every core busy)",
    )
    ap.add_argument(
        "--control",
        action="store_true",
        help="events: run tcp:// twice in every round ('tcp-again'), judged against tcp:// "
        "like every transport: how often tcp:// misses itself (the verdicts' noise floor)",
    )
    return ap


def _transports(text: str) -> list[str]:
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(chosen) - set(TRANSPORTS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown {', '.join(unknown) or 'empty list'}; choose from {','.join(TRANSPORTS)}"
        )
    return chosen


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression: {exc}") from None
    return text


#: under the title of every table of a ``--quick`` run
QUICK_NOTE = "--quick: a smoke run with few repetitions; its verdicts do not judge the targets"


def _print_tables(console: Console, result: PartResult, quick: bool = False) -> None:
    """Print a part's tables; in a ``quick`` run each says that its verdicts are
    not judgements (few repetitions, no warm-up to speak of) and none is red."""
    for title, columns, rows in result.tables:
        if not rows:
            continue
        table = Table(title=title, title_justify="left", caption=QUICK_NOTE if quick else None)
        for i, col in enumerate(columns):
            table.add_column(col, justify="left" if i < 2 else "right")
        for row in rows:
            missed = "MISSED" in row and not quick
            style = "red" if missed else ("dim" if "skipped" in row or quick else None)
            table.add_row(*row, style=style)
        console.print(table)


def _plots(console: Console, out: Path, parts: dict[str, Any], device: str) -> list[str]:
    records = parts.get("transports", {}).get("measurements") or []
    event_series = parts.get("events", {}).get("series") or []
    if not records and not event_series:
        return []
    try:
        from .plots import plot_events, plot_transports

        paths = plot_transports(records, out, device) if records else []
        paths += plot_events(event_series, out) if event_series else []
        return [p.name for p in paths]
    except ImportError as exc:
        console.print(
            f"plots skipped: {exc}\nhint: install them with: pip install 'hep-actors[plots]'",
            markup=False,
            highlight=False,
        )
        return []


def run_parts(names: list[str], ctx: Context, console: Console) -> dict[str, Any]:
    """Run the named parts in order; returns their results.json entries."""
    results: dict[str, Any] = {}
    for name in names:
        console.rule(f"[bold]{name}")
        start = time.monotonic()
        try:
            result = PARTS[name](ctx)
        except Exception as exc:  # a broken part must not lose the other parts' results
            result = PartResult("failed", f"{type(exc).__name__}: {exc}")
        if result.status == "skipped":
            console.print(f"{name}: not available yet: {result.reason}", markup=False)
        elif result.status == "failed":
            console.print(Text(f"{name}: FAILED: {result.reason}", style="red"))
        _print_tables(console, result, ctx.quick)
        results[name] = result.to_json() | {"wall_s": round(time.monotonic() - start, 2)}
    return results


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_launch, which kills the workers


def main(argv: list[str] | None = None) -> int:
    """Run the command line; SIGTERM and Ctrl-C still kill every worker process group."""
    parser = _parser()
    args = parser.parse_args(argv)
    _check_part_options(parser, args)
    return run_main(lambda: _main(args, argv), args)


#: options that only some parts use, and those parts ("all" runs them too); an option
#: counts as given when its value is not the parser's default
_PART_OPTIONS: dict[str, tuple[str, ...]] = {
    "load": ("events",),
    "control": ("events",),
    "select": ("cpu", "events", "hlt", "scale", "sizing"),
    "transports": ("transports", "products", "actors", "cpu", "events", "hlt"),
    "repeat": ("transports", "cpu", "events", "hlt", "sizing"),
    "device": ("transports", "products"),
}
#: what "all" does not take: it would apply to one part and be recorded for every part
_NOT_FOR_ALL = {"load", "control"}


def _check_part_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error for an option that the chosen part would ignore:
    results.json would record it as if it had applied (``sizing --load 2`` is not
    a loaded run)."""
    for option, parts in _PART_OPTIONS.items():
        takes = parts if option in _NOT_FOR_ALL else (*parts, "all")
        given = getattr(args, option) != parser.get_default(option)
        if given and args.part not in takes:
            parser.error(f"--{option}: only {_who_uses(option, parts)} it, not {args.part!r}")
    if args.control and args.quick:
        parser.error("--control: a --quick run has no verdicts to calibrate")
    if args.control and args.transports is not None and "tcp" not in args.transports:
        parser.error("--control runs tcp:// again: --transports must include tcp")


def _who_uses(option: str, parts: tuple[str, ...]) -> str:
    """``the events part uses`` / ``the a, b and c parts (and all) use``."""
    if len(parts) == 1:
        return f"the {parts[0]} part uses"
    also = "" if option in _NOT_FOR_ALL else " (and all)"
    return f"the {', '.join(parts[:-1])} and {parts[-1]} parts{also} use"


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    console = Console() if sys.stdout.isatty() else Console(width=150)

    def log(text: str) -> None:  # parts' progress lines are plain text, not rich markup
        console.print(text, markup=False, highlight=False)

    ctx = Context(
        quick=args.quick,
        out=args.out,
        transports=args.transports or list(TRANSPORTS),
        device=args.device,
        repeat=args.repeat,
        log=log,
        select=args.select,
        load=args.load,
        control=args.control,
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    names = ORDER if args.part == "all" else [args.part]
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "started": started,
        "command": ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)],
        "quick": ctx.quick,
        "device": ctx.device,
        "transports": ctx.transports,
        "repeat": ctx.repeat,
        "select": ctx.select,
        "load": ctx.load,
        "control": ctx.control,
        "machine": describe_machine(),
        "versions": versions(mpiexec()),
        "bytecode": compile_bytecode(),
    }
    doc["parts"] = run_parts(names, ctx, console)
    doc["plots"] = _plots(console, ctx.out, doc["parts"], ctx.device)
    path = ctx.out / "results.json"
    path.write_text(json.dumps(doc, indent=1))
    console.print(f"wrote {path}" + (f" and {', '.join(doc['plots'])}" if doc["plots"] else ""))
    return 1 if any(p["status"] == "failed" for p in doc["parts"].values()) else 0
