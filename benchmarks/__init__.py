"""hep-actors benchmark suite: ``python -m benchmarks --help``; see docs/benchmarks.md.

Layout: :mod:`.cli` (command line, tables, results.json), :mod:`.parts` (the
part registry), :mod:`.transports` / :mod:`.candidates` / :mod:`.figures`
(transport ping-pong beside raw baselines), :mod:`.products`,
:mod:`.scheduling`, :mod:`.pending` (parts not available yet),
:mod:`.harness` (subprocess launching), :mod:`.pingpong` (timing loops),
:mod:`.workers` (what runs in the measured processes), :mod:`.plots`.
"""
