"""``python -m benchmarks.sizing``: the farm-sizing model's command line.

::

    python -m benchmarks.sizing predict  --one R1.json --many R4.json --links results.json
                                         [--offload REGEX] [--clients N] [--servers M]
                                         [--streams S] [--threads T] [--transport tcp] ...
    python -m benchmarks.sizing split    --one R1.json --many R4.json --links results.json
                                         --candidates REGEX [--speedup X] ...
    python -m benchmarks.sizing validate RESULTS.json   # the sizing part's runs, re-predicted
    python -m benchmarks.sizing farm     [--rate HZ] [--cpu-ms MS] [--fraction F] [--plot DIR]

The model (:mod:`benchmarks.sizing_model`), its inputs (:mod:`benchmarks.sizing_inputs`),
the farm projection (:mod:`benchmarks.sizing_farm`) and the validation
(:mod:`benchmarks.sizing_validate`) are documented in ``docs/sizing.md``.
Exit status 0, 2 for a usage error or a bad input file (one ``error:`` line).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from actors._cli import CliParser, check_input, positive_int, run_main
from actors.errors import ConfigError

from .sizing_evaluate import COLUMNS, evaluate, links_line, table_rows, verdict
from .sizing_farm import SPEEDUPS, Farm, describe, plot_farm, project
from .sizing_inputs import Profile, calibrate, link_costs, load_reports
from .sizing_model import Crossing, LinkCost, Offload, Prediction, Stage, predict

__all__ = ["main"]

_DESCRIPTION = """\
Predict events/s and latency of N clients x M servers from JSON timing reports
and measured link costs, find the best CPU/GPU split of modules, check the model
against the runs of 'python -m benchmarks sizing', project the CMS filter farm.

subcommands:
  predict   one shape: --offload REGEX modules in M servers, N clients, S streams
  split     best prefix of --candidates (heaviest first) to offload at --speedup
  validate  predicted vs measured for the runs in a results.json of the sizing part
  farm      nodes and link bandwidth per node for the HLT farm, with and without GPUs"""


def _table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _read_json(path: str, flag: str) -> Any:
    check_input(path, flag)
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})", key=flag) from exc


def _report(path: str, flag: str) -> dict[str, Any]:
    check_input(path, flag)
    try:
        reports = load_reports(Path(path))
    except ValueError as exc:
        raise ConfigError(str(exc), key=flag) from exc
    if len(reports) != 1:
        raise ConfigError(f"{path}: {len(reports)} processes; give a one-process report", key=flag)
    return next(iter(reports.values()))


def _profile(args: argparse.Namespace) -> Profile:
    one, many = _report(args.one, "--one"), _report(args.many, "--many")
    per_call = None if args.per_call_us is None else args.per_call_us * 1e-6
    return calibrate(
        one,
        many,
        one["throughput"],
        many["throughput"],
        args.base_us * 1e-6,
        per_call,
        cpu_one=None if args.cpu_one_us is None else args.cpu_one_us * 1e-6,
        cpu_many=None if args.cpu_many_us is None else args.cpu_many_us * 1e-6,
    )


def _link(args: argparse.Namespace) -> LinkCost:
    try:
        links = link_costs(_read_json(args.links, "--links"))
    except ValueError as exc:
        raise ConfigError(f"{args.links}: {exc}", key="--links") from exc
    if args.transport not in links:
        raise ConfigError(
            f"no {args.transport} measurement in {args.links} (has: {', '.join(sorted(links))})",
            key="--transport",
        )
    return links[args.transport]


def _shape(
    profile: Profile,
    offloaded: list[str],
    args: argparse.Namespace,
    link: LinkCost | None,
    speedup: float = 1.0,
) -> Prediction:
    local = [lb for lb in profile.calls if lb not in offloaded]
    client = profile.stage(
        "client",
        local,
        extra_calls=2 if offloaded else 0,
        threads=args.threads,
        streams=args.streams,
    )
    if not offloaded or link is None:
        return predict(client, clients=args.clients, streams=args.streams, cores=args.cores)
    server = profile.stage(
        "server",
        offloaded,
        extra_calls=2,
        threads=args.threads,
        serial=args.serial_server,
        streams=args.streams,
        server=True,
    )
    server = Stage(
        server.name,
        server.gil_s,
        wait_s=server.wait_s / speedup,
        threads=server.threads,
        busy_s=server.busy_s / speedup,
    )
    crossing = Crossing(link, products_out=[args.bytes_out], products_back=[args.bytes_back])
    return predict(
        client,
        clients=args.clients,
        streams=args.streams,
        offloads=[Offload(server, crossing, args.servers)],
        cores=args.cores,
    )


def _matching(profile: Profile, pattern: str | None) -> list[str]:
    if not pattern:
        return []
    rx = re.compile(pattern)
    return [lb for lb in profile.calls if rx.search(lb)]


def _show(p: Prediction) -> str:
    return (
        f"{p.events_per_s:.2f} events/s, latency {p.latency_s * 1e3:.2f} ms, "
        f"bottleneck {p.bottleneck}"
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    profile = _profile(args)
    offloaded = _matching(profile, args.offload)
    link = _link(args) if offloaded else None
    p = _shape(profile, offloaded, args, link, args.speedup)
    print(
        f"{args.clients} client(s) x {args.servers if offloaded else 0} server(s), "
        f"{args.streams} streams, {args.threads} threads, {len(offloaded)} module(s) "
        f"offloaded: {_show(p)}"
    )
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    profile = _profile(args)
    link = _link(args)
    cands = profile.heaviest_first(_matching(profile, args.candidates))
    if not cands:
        raise ConfigError(f"no module label matches {args.candidates!r}", key="--candidates")
    preds = [_shape(profile, cands[:k], args, link, args.speedup) for k in range(len(cands) + 1)]
    best = max(range(len(preds)), key=lambda k: (preds[k].events_per_s, -k))
    step = max(1, len(preds) // 20)  # about 20 rows, and the best one
    shown = sorted({*range(0, len(preds), step), len(preds) - 1, best})
    rows = [
        [
            str(k),
            cands[k - 1] if k else "-",
            f"{preds[k].events_per_s:.2f}",
            f"{preds[k].latency_s * 1e3:.2f}",
            preds[k].bottleneck,
            "best" if k == best else "",
        ]
        for k in shown
    ]
    print(_table(["offloaded", "last added", "events/s", "latency ms", "bottleneck", ""], rows))
    names = ", ".join(cands[:best][:12]) + (", ..." if best > 12 else "")
    print(
        f"best split at speed-up {args.speedup:g}: offload the {best} heaviest "
        f"candidate(s){': ' + names if best else ''}"
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    doc = _read_json(args.results, "results")
    part = doc.get("parts", {}).get("sizing", doc)
    if "runs" not in part or "link_records" not in part:
        raise ConfigError(
            f"{args.results}: no runs of the sizing part (python -m benchmarks sizing)",
            key="results",
        )
    try:
        links = link_costs(part["link_records"])
        rows = evaluate(part["runs"], links, args.cores or part.get("cores", 1.0))
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{args.results}: {exc}", key="results") from exc
    print(_table(COLUMNS, table_rows(rows)))
    print(verdict(rows))
    print(links_line(links))
    return 0


def _cmd_farm(args: argparse.Namespace) -> int:
    farm = Farm(
        rate=args.rate,
        event_mb=args.event_mb,
        cpu_s=args.cpu_ms * 1e-3,
        cores=args.node_cores,
        fraction=args.fraction,
        gpus=args.gpus,
    )
    rows = project(farm, args.speedups)
    cols = [
        "scenario",
        "speed-up",
        "node ev/s",
        "latency ms",
        "CPU nodes",
        "GPU servers",
        "GPUs",
        "Gb/s per CPU node",
        "Gb/s per GPU server",
    ]
    print(
        _table(
            cols,
            [
                [
                    r["scenario"],
                    "-" if r["speedup"] is None else f"{r['speedup']:g}x",
                    f"{r['node_events_per_s']:.0f}",
                    f"{r['latency_ms']:.0f}",
                    str(r["cpu_nodes"]),
                    str(r["gpu_servers"]),
                    str(r["gpus_total"]),
                    f"{r['cpu_node_gbps']:.2f}",
                    f"{r['gpu_server_gbps']:.2f}",
                ]
                for r in rows
            ],
        )
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"farm": describe(farm), "rows": rows}, indent=1))
    if args.plot:
        print(f"plot: {plot_farm(rows, Path(args.plot), farm)}")
    return 0


def _shape_options(p: argparse.ArgumentParser, calibrated: bool) -> None:
    if calibrated:
        p.add_argument(
            "--one",
            required=True,
            metavar="REPORT",
            help="--report-json of the whole job in one process, 1 stream",
        )
        p.add_argument(
            "--many",
            required=True,
            metavar="REPORT",
            help="the same with several streams (the GIL-bound rate)",
        )
        p.add_argument(
            "--links",
            required=True,
            metavar="RESULTS",
            help="results.json of 'python -m benchmarks transports'",
        )
        p.add_argument(
            "--base-us",
            type=float,
            default=250.0,
            help="framework base per event, us (1e6 / events/s of the empty chain; default 250)",
        )
        p.add_argument(
            "--per-call-us",
            type=float,
            default=None,
            help="framework cost per module call, us, measured on another "
            "workload (then the base is fitted instead)",
        )
        p.add_argument(
            "--cpu-one-us",
            type=float,
            default=None,
            help="CPU us per event of the --one run (user + system; then the GIL time "
            "is this measurement instead of a fit)",
        )
        p.add_argument(
            "--cpu-many-us",
            type=float,
            default=None,
            help="CPU us per event of the --many run (scales the GIL time with the streams)",
        )
        p.add_argument(
            "--serial-server",
            action="store_true",
            help="a server runs its modules one after the other (their whole measured "
            "time) instead of overlapping them as the --one run did",
        )
    p.add_argument("--transport", default="tcp")
    p.add_argument("--clients", type=positive_int, default=1)
    p.add_argument("--servers", type=positive_int, default=1)
    p.add_argument("--streams", type=positive_int, default=4)
    p.add_argument("--threads", type=positive_int, default=4)
    p.add_argument("--cores", type=float, default=None, help="host cores (default: no limit)")
    p.add_argument(
        "--speedup",
        type=float,
        default=1.0,
        help="GPU speed-up of the offloaded modules' GIL-free time",
    )
    p.add_argument("--bytes-out", type=int, default=1024, help="bytes per event to the server")
    p.add_argument("--bytes-back", type=int, default=1024, help="bytes per event back")


class _SubParser(argparse.ArgumentParser):
    """A subcommand's parser: usage errors in the shared style (``error: --flag: ...``)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
        self.exit(2, f"error: {message}\n{self.format_usage()}")


def _parser() -> argparse.ArgumentParser:
    ap = CliParser(
        "python -m benchmarks.sizing",
        _DESCRIPTION,
        docs="docs/sizing.md",
        examples=[
            "python -m benchmarks.sizing farm --plot docs/img",
            "python -m benchmarks.sizing validate benchmark-results/results.json",
            "python -m benchmarks.sizing predict --one r1.json --many r4.json "
            "--links results.json --offload '^gpu' --servers 2",
        ],
    )
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_SubParser)
    p = sub.add_parser("predict", help="events/s and latency of one shape")
    _shape_options(p, True)
    p.add_argument("--offload", metavar="REGEX", help="labels of the modules in the servers")
    p = sub.add_parser("split", help="best CPU/GPU split of modules")
    _shape_options(p, True)
    p.add_argument(
        "--candidates",
        required=True,
        metavar="REGEX",
        help="labels of the modules that may be offloaded",
    )
    p = sub.add_parser("validate", help="predicted vs measured, from the sizing part")
    p.add_argument("results", help="results.json of 'python -m benchmarks sizing'")
    p.add_argument("--cores", type=float, default=None)
    p = sub.add_parser("farm", help="the CMS filter-farm projection")
    p.add_argument("--rate", type=float, default=100e3, help="input events/s (100 kHz)")
    p.add_argument("--event-mb", type=float, default=1.0, help="MB per event (1)")
    p.add_argument("--cpu-ms", type=float, default=260.0, help="CPU ms per event, one core")
    p.add_argument("--node-cores", type=positive_int, default=128, help="cores per node (128)")
    p.add_argument("--fraction", type=float, default=0.40, help="offloadable fraction (0.4)")
    p.add_argument("--gpus", type=positive_int, default=2, help="GPUs per node (2)")
    p.add_argument(
        "--speedups",
        type=lambda s: [float(x) for x in s.split(",")],
        default=SPEEDUPS,
        help="GPU speed-ups, comma-separated",
    )
    p.add_argument("--plot", metavar="DIR", help="write DIR/sizing-farm.png")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns the exit status."""
    args = _parser().parse_args(argv)
    commands = {
        "predict": _cmd_predict,
        "split": _cmd_split,
        "validate": _cmd_validate,
        "farm": _cmd_farm,
    }
    return run_main(lambda: commands[args.command](args), args)


if __name__ == "__main__":
    sys.exit(main())
