"""Topologies for the ``events`` part, generated into a scratch folder.

A *chain* is a controller process (``local``: synthetic source, the
``actors.distributed:Controller``, optionally a :class:`~benchmarks.bench_modules.Payload`
and a Sender) and ``followers`` follower processes (``f0``, ``f1``...:
``FollowerSource``, optionally a Receiver, ``EventDone`` and a
:class:`~benchmarks.bench_modules.Stamp` on the end path). Products go one
way, controller -> follower; nothing comes back. With ``payload = 0`` it is
the empty chain of ``examples/offload/empty.toml`` (same modules), spread
over ``followers`` links.

:func:`write_offload_example` copies ``examples/offload`` (its two
configurations, unchanged but for a Stamp on a new end path of the local
process: there events end after the results came back) with the requested
streams.

Every process also gets ``--report-json`` so that its framework report can be
read back (the embedded ``inproc`` engine ignores per-process arguments; its
reports are then absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.framework import Process
from actors.tomlfile import dump_toml

from .harness import REPO

__all__ = ["Chain", "Written", "write_chain", "write_offload_example"]

_SOURCE = "actors.framework.sources.synthetic:SyntheticSource"
_D = "actors.distributed"
_M = "benchmarks.bench_modules"


#: the events part's control (``--control``): tcp:// run a second time in every round,
#: judged against tcp:// like every transport (how often tcp:// misses itself)
CONTROL = "tcp-again"


def scheme(transport: str) -> str:
    """The URL scheme a series' transport runs on (the control runs tcp://)."""
    return "tcp" if transport == CONTROL else transport


@dataclass(frozen=True)
class Chain:
    """One events series: who, how many, how big, over what."""

    transport: str
    followers: int
    payload: int  # bytes per event sent controller -> follower; 0 = empty events
    streams: int
    events: int
    example: bool = False  # examples/offload instead of a generated chain

    @property
    def scenario(self) -> str:
        if self.example:
            return "offload example"
        return "empty" if not self.payload else f"{self.payload / (1 << 20):g} MiB one way"

    @property
    def label(self) -> str:
        """``<transport> <scenario> f<followers> s<streams>``, e.g. ``tcp empty f1 s4``."""
        return f"{self.transport} {self.scenario} f{self.followers} s{self.streams}"

    def write(self, workdir: Path) -> Written:
        """Write this series' files into ``workdir``."""
        if self.example:
            return write_offload_example(self.transport, self.streams, self.events, workdir)
        return write_chain(self, workdir)


@dataclass
class Written:
    """A generated topology and where its processes leave stamps and reports."""

    topology: Path
    stamps: list[Path]  # one Stamp file per process that records completions
    reports: dict[str, Path]  # process name -> --report-json file


def _local(chain: Chain) -> dict[str, Any]:
    links = [f"f{i}" for i in range(chain.followers)]
    modules: dict[str, Any] = {"offload": {"type": f"{_D}:Controller", "links": links}}
    path = ["offload"]
    if chain.payload:
        modules["payload"] = {"type": f"{_M}:Payload", "nbytes": chain.payload}
        modules["tosend"] = {
            "type": f"{_D}:Sender",
            "upstream": "offload",
            "instance": 1,
            "products": ["payload"],
        }
        path += ["payload", "tosend"]
    return {
        "process": {"name": "BENCHLOCAL"},
        "source": {"type": _SOURCE, "runs": 1, "lumis_per_run": 0, "events_per_lumi": 1000},
        "modules": modules,
        "paths": {"p": path},
    }


def _follower(chain: Chain, stamp: Path) -> dict[str, Any]:
    modules: dict[str, Any] = {}
    if chain.payload:
        modules["payload"] = {
            "type": f"{_D}:Receiver",
            "upstream": "source",
            "instance": 1,
            "products": [{"type": "numpy.ndarray", "label": "payload"}],
        }
    modules["seen"] = {"type": f"{_D}:EventDone", "upstream": "source"}
    modules["stamp"] = {"type": f"{_M}:Stamp", "file": str(stamp)}
    doc: dict[str, Any] = {
        "process": {"name": "BENCHREMOTE"},
        # a deep window lets empty events stream; with payloads it is kept small so that
        # the follower cannot queue most of the run ahead of its processing (its steady
        # rate would then measure draining that queue, not the link)
        "source": {
            "type": f"{_D}:FollowerSource",
            "window": 16 * chain.streams if chain.payload else 1024,
        },
        "modules": modules,
        "end_paths": {"e": ["seen", "stamp"]},
    }
    doc["source"]["link"] = "LINK"  # replaced per follower
    if chain.payload:
        doc["paths"] = {"p": ["payload"]}
    return doc


def _process_entry(config: str, streams: int, threads: int, report: Path) -> dict[str, Any]:
    return {
        "config": config,
        "threads": threads,
        "streams": streams,
        "args": ["--quiet", "--report-json", str(report)],
    }


def write_chain(chain: Chain, workdir: Path) -> Written:
    """Write ``local.toml``, ``f<i>.toml`` and ``topology.toml`` into ``workdir``."""
    (workdir / "local.toml").write_text(dump_toml(_local(chain)))
    reports = {"local": workdir / "report-local.json"}
    processes = {"local": _process_entry("local.toml", chain.streams, 1, reports["local"])}
    links, stamps = [], []
    for i in range(chain.followers):
        name = f"f{i}"
        stamps.append(workdir / f"stamps-{name}.json")
        doc = _follower(chain, stamps[-1])
        doc["source"]["link"] = name
        (workdir / f"{name}.toml").write_text(dump_toml(doc))
        reports[name] = workdir / f"report-{name}.json"
        processes[name] = _process_entry(f"{name}.toml", chain.streams, 1, reports[name])
        links.append({"name": name, "client": "local", "server": name})
    topology = {
        "run": {"events": chain.events, "transport": scheme(chain.transport)},
        "process": processes,
        "link": links,
    }
    path = workdir / "topology.toml"
    path.write_text(dump_toml(topology))
    return Written(path, stamps, reports)


def write_offload_example(transport: str, streams: int, events: int, workdir: Path) -> Written:
    """``examples/offload`` with ``streams`` on both sides and a Stamp on the local side."""
    example = REPO / "examples" / "offload"
    (workdir / "modules.py").symlink_to(example / "modules.py")
    local = Process.from_toml(example / "local.toml")
    stamp = workdir / "stamps-local.json"
    local.add_module("benchstamp", f"{_M}:Stamp", file=str(stamp))
    local.add_end_path("benchstamp", ["benchstamp"])
    (workdir / "local.toml").write_text(local.to_toml())
    (workdir / "remote.toml").write_text((example / "remote.toml").read_text())
    reports = {name: workdir / f"report-{name}.json" for name in ("local", "remote")}
    topology = {
        "run": {"events": events, "transport": scheme(transport)},
        "process": {
            "local": _process_entry("local.toml", streams, 1, reports["local"]),
            "remote": _process_entry("remote.toml", streams, 2, reports["remote"]),
        },
        "link": [{"name": "offload", "client": "local", "server": "remote"}],
    }
    path = workdir / "topology.toml"
    path.write_text(dump_toml(topology))
    return Written(path, [stamp], reports)
