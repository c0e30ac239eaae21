"""The event-processing framework: CMSSW-like modules, paths and a data-flow scheduler.

See ``docs/framework.md`` for the guide and ``docs/config-toml.md`` for the
configuration format. Everything a module author or a job runner needs is
exported here::

    from actors.framework import Process, Producer, Event, run_process
"""

from __future__ import annotations

from .branch import Branch, OutputCommands, Selection
from .event import (
    Event,
    EventID,
    Lumi,
    LumiID,
    OutputEvent,
    ProcessEntry,
    Product,
    Provenance,
    Ref,
    RefVector,
    Run,
)
from .job import run, run_process
from .module import (
    Analyzer,
    Concurrency,
    Declarer,
    Filter,
    Module,
    OutputModule,
    Producer,
    Token,
)
from .process import ModuleConfig, Options, Path, Process
from .report import JobReport, ModuleTiming, PathReport
from .source import BeginLumi, BeginRun, EndLumi, EndRun, EventTransition, Source, Transition

__all__ = [
    "Analyzer",
    "BeginLumi",
    "BeginRun",
    "Branch",
    "Concurrency",
    "Declarer",
    "EndLumi",
    "EndRun",
    "Event",
    "EventID",
    "EventTransition",
    "Filter",
    "JobReport",
    "Lumi",
    "LumiID",
    "Module",
    "ModuleConfig",
    "ModuleTiming",
    "Options",
    "OutputCommands",
    "OutputEvent",
    "OutputModule",
    "Path",
    "PathReport",
    "Process",
    "ProcessEntry",
    "Producer",
    "Product",
    "Provenance",
    "Ref",
    "RefVector",
    "Run",
    "Selection",
    "Source",
    "Token",
    "Transition",
    "run",
    "run_process",
]
