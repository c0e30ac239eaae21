"""hep-actors benchmark suite: ``python -m benchmarks --help``; see docs/benchmarks.md.

Layout: :mod:`.cli` (command line, tables, results.json), :mod:`.parts` (the
part registry), :mod:`.transports` / :mod:`.candidates` / :mod:`.figures`
(transport ping-pong beside raw baselines), :mod:`.products`,
:mod:`.scheduling`, :mod:`.events` (controller -> followers events/s;
topologies from :mod:`.chains`, run by :mod:`.launched`, modules in
:mod:`.bench_modules`), :mod:`.hlt` (HLT-like demonstrator, menu in
:mod:`.hlt_config`), :mod:`.harness` (subprocess launching), :mod:`.pingpong` (timing loops),
:mod:`.workers` (what runs in the measured processes), :mod:`.plots`.
"""
