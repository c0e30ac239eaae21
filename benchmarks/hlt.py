"""The ``hlt`` part: an HLT-like menu run in one process, then with its GPU-like modules offloaded.

The menu (:mod:`benchmarks.hlt_config`): a few hundred modules in a random
DAG, log-normal per-module times (tens of microseconds, a tail to
milliseconds), the heaviest 5% flagged GPU-like. Modules *sleep* for their
time (``time.sleep`` releases the GIL): like the sleep model, this measures
what the framework and the offload machinery achieve, not the CPU - a module
standing for a GPU kernel frees its thread while it waits.

Configurations, each run fresh (``--repeat N`` interleaved rounds; the median
throughput is kept):

- ``local only``: ``python -m actors.run`` on the whole menu;
- ``offloaded 1 remote (T)``: split by :func:`actors.split.split_process`,
  GPU-like modules in one remote process, for every available transport
  (``tcp``, ``shm``, ``mpi``, ``ucx`` among ``--transports``);
- ``offloaded 2 remotes (tcp)``: the GPU-like modules dealt over two remote
  processes (the menu split twice).

Reported: throughput (steady rate of completions, see
:mod:`benchmarks.launched`), per-event latency (from the event's first module
to the end path: median, p90, p99), and the timing table of every process
grouped as GPU-like modules / other modules / distributed modules
(controller, senders, receivers) / bookkeeping, plus the local-only per-module
table of the heaviest modules (time per event and fraction), as in the CMS HLT
offload study. ``--quick``: 30 modules, 40 events, local only and tcp.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from .chains import Written
from .events import transport_unavailable
from .harness import python, run_command
from .hlt_config import Menu, make_menu, make_process, write_offloaded
from .launched import latency_summary, run_written, steady_rate
from .parts import Context, PartResult, register

__all__ = ["run"]


def _settings(ctx: Context) -> dict[str, int]:
    if ctx.quick:
        return {"modules": 30, "events": 40, "threads": 2, "streams": 2}
    return {"modules": 300, "events": 400, "threads": 4, "streams": 4}


def _run_local(menu: Menu, s: dict[str, int], ctx: Context) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hep-bench-hlt-") as tmp:
        work = Path(tmp)
        stamp, report = work / "stamps.json", work / "report.json"
        (work / "hlt.toml").write_text(make_process(menu, stamp).to_toml())
        argv = [
            python(),
            "-m",
            "actors.run",
            str(work / "hlt.toml"),
            "--quiet",
            "--threads",
            str(s["threads"]),
            "--streams",
            str(s["streams"]),
            "--events",
            str(s["events"]),
            "--report-json",
            str(report),
        ]
        code, tail = run_command(argv, timeout=ctx.timeout)
        if code != 0 or not stamp.exists():
            last = " | ".join(tail.splitlines()[-3:])
            return {"error": f"actors.run exited with {code}: {last}"}
        stamps = json.loads(stamp.read_text())
        rep = json.loads(report.read_text())
    rate, window = steady_rate(stamps["done"], s["streams"])
    return {
        "events": len(stamps["done"]),
        "window": window,
        "events_per_s": rate,
        "latency": latency_summary(stamps["latency"]),
        "timing_report": {"local": rep["timing_report"]},
        "reports": {
            "local": {
                k: rep[k]
                for k in ("events", "event_loop_time", "wall_time", "throughput", "overhead")
            }
        },
    }


def _run_offloaded(
    menu: Menu, remotes: int, transport: str, s: dict[str, int], ctx: Context
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hep-bench-hlt-") as tmp:
        work = Path(tmp)
        stamp = work / "stamps.json"
        topology, reports = write_offloaded(
            make_process(menu, stamp),
            menu.gpu_labels,
            remotes,
            transport,
            s["threads"],
            s["streams"],
            s["events"],
            work,
        )
        return run_written(Written(topology, [stamp], reports), ctx.timeout, s["streams"])


def _configurations(ctx: Context) -> list[tuple[str, int, str]]:
    """(name, remotes, transport); remotes 0 = local only."""
    chosen = ["tcp"] if ctx.quick else ctx.transports
    configs = [("local only", 0, "-")]
    for t in chosen:
        why = transport_unavailable(t)
        if why:
            ctx.log(f"  hlt offload over {t}: skipped: {why}")
            continue
        configs.append((f"offloaded, 1 remote ({t})", 1, t))
    if not ctx.quick and "tcp" in chosen:
        configs.append(("offloaded, 2 remotes (tcp)", 2, "tcp"))
    return configs


def _category(label: str, type_: str, menu: Menu) -> str:
    if type_.startswith("actors.distributed"):
        return "distributed (controller/senders/receivers)"
    if label in menu.gpu_labels:
        return "GPU-like modules"
    if type_.endswith(":HltModule"):
        return "other modules"
    return "bookkeeping (t0, stamp)"


def timing_groups(rec: dict[str, Any], menu: Menu) -> list[dict[str, Any]]:
    """Per process and category: module ms per event and share of the module time."""
    out = []
    for proc, table in rec.get("timing_report", {}).items():
        events = rec["reports"][proc]["events"] or 1
        total = sum(m["total"] for m in table) or 1.0
        groups: dict[str, float] = {}
        for m in table:
            cat = _category(m["label"], m["type"], menu)
            groups[cat] = groups.get(cat, 0.0) + m["total"]
        for cat, t in sorted(groups.items(), key=lambda kv: -kv[1]):
            out.append(
                {
                    "process": proc,
                    "category": cat,
                    "ms_per_event": t / events * 1e3,
                    "fraction": t / total,
                }
            )
    return out


def _heaviest(rec: dict[str, Any], menu: Menu, n: int = 12) -> list[list[str]]:
    table = rec.get("timing_report", {}).get("local", [])
    events = rec["reports"]["local"]["events"] or 1
    total = sum(m["total"] for m in table) or 1.0
    nominal = dict(zip(menu.labels, menu.times, strict=True))
    rows = []
    for m in sorted(table, key=lambda m: -m["total"])[:n]:
        rows.append(
            [
                m["label"],
                "GPU-like" if m["label"] in menu.gpu_labels else "",
                f"{nominal.get(m['label'], 0.0) * 1e3:.3f}",
                f"{m['total'] / events * 1e3:.3f}",
                f"{m['total'] / total:.1%}",
            ]
        )
    return rows


def _summary_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    base = next(
        (e["events_per_s"] for e in entries if e["remotes"] == 0 and e["status"] == "ok"), None
    )
    rows = []
    for e in entries:
        if e["status"] != "ok":
            rows.append([e["name"], e["status"], "-", "-", "-", "-", e["reason"][:60]])
            continue
        lat = e.get("latency", {})
        rows.append(
            [
                e["name"],
                f"{e['events_per_s']:.1f}",
                f"{e['events_per_s'] / base:.2f}x" if base else "-",
                *(f"{lat[k]:.1f}" if k in lat else "-" for k in ("median_ms", "p90_ms", "p99_ms")),
                "",
            ]
        )
    return rows


def _entry(
    name: str, remotes: int, transport: str, recs: list[dict[str, Any]], menu: Menu
) -> dict[str, Any]:
    ok = [r for r in recs if "events_per_s" in r]
    entry: dict[str, Any] = {
        "name": name,
        "remotes": remotes,
        "transport": transport,
        "rounds": len(recs),
    }
    if not ok:
        return entry | {"status": "failed", "reason": recs[-1].get("error", "no result")}
    rates = [r["events_per_s"] for r in ok]
    mid = sorted(ok, key=lambda r: r["events_per_s"])[len(ok) // 2]
    return entry | {
        "status": "ok",
        "reason": None,
        "events_per_s": statistics.median(rates),
        "samples_events_per_s": rates,
        "latency": mid.get("latency", {}),
        "reports": mid.get("reports"),
        "timing_groups": timing_groups(mid, menu),
        "timing_report": mid.get("timing_report"),
    }


@register("hlt")
def run(ctx: Context) -> PartResult:
    """Local only vs offloaded over every available transport; see the module docstring."""
    s = _settings(ctx)
    menu = make_menu(s["modules"])
    configs = [c for c in _configurations(ctx) if ctx.selects(c[0])]
    if not configs:
        return PartResult.skipped(f"--select {ctx.select!r} matched no hlt configuration")
    recs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in configs}
    for round_no in range(ctx.repeat):
        if ctx.repeat > 1:
            ctx.log(f" round {round_no + 1} of {ctx.repeat}")
        for name, remotes, transport in configs:
            rec = (
                _run_local(menu, s, ctx)
                if remotes == 0
                else _run_offloaded(menu, remotes, transport, s, ctx)
            )
            recs[name].append(rec)
            shown = (
                f"{rec['events_per_s']:.1f} events/s"
                if "events_per_s" in rec
                else f"FAILED: {rec['error']}"
            )
            ctx.log(f"  hlt {name}: {shown}")
    entries = [_entry(n, r, t, recs[n], menu) for n, r, t in configs]
    ok = any(e["status"] == "ok" for e in entries)
    local = next((e for e in entries if e["remotes"] == 0 and e["status"] == "ok"), None)
    first_off = next((e for e in entries if e["remotes"] and e["status"] == "ok"), None)
    tables = [
        (
            f"hlt: {menu.describe()['modules']} modules ({len(menu.gpu)} GPU-like), "
            f"{s['threads']} threads x {s['streams']} streams per process, {s['events']} events",
            [
                "configuration",
                "events/s",
                "vs local",
                "latency median ms",
                "p90 ms",
                "p99 ms",
                "note",
            ],
            _summary_rows(entries),
        )
    ]
    for title, e in (("local only", local), ("offloaded", first_off)):
        if e is not None:
            tables.append(
                (
                    f"hlt timing, {title}: {e['name']} (module time per event, "
                    "share of the process's module time)",
                    ["process", "category", "ms/event", "fraction"],
                    [
                        [
                            g["process"],
                            g["category"],
                            f"{g['ms_per_event']:.2f}",
                            f"{g['fraction']:.1%}",
                        ]
                        for g in e["timing_groups"]
                    ],
                )
            )
    if local is not None:
        tables.append(
            (
                "hlt: heaviest modules, local only",
                ["module", "", "nominal ms", "measured ms/event", "fraction"],
                _heaviest(local, menu),
            )
        )
    return PartResult(
        "ok" if ok else "failed",
        None if ok else "no hlt configuration could run",
        data={
            "menu": menu.describe(),
            "settings": s,
            "rounds": ctx.repeat,
            "configurations": entries,
        },
        tables=tables,
    )
