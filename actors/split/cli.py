"""``python -m actors.split``: split one process configuration into local + remote processes.

::

    python -m actors.split CONFIG.toml --offload LABEL[,LABEL...] [--duplicate LABEL[,...]]
                           [--transport SCHEME] [--link NAME] [--input FILE] -o DIR

reads ``CONFIG.toml``, follows the data dependencies of the offloaded modules
(with the framework's own resolution: the module classes are imported,
constructed and declared, nothing runs), and writes

* ``DIR/local.toml``: the original process without the offloaded modules, plus
  a Controller, a Sender for every label whose products the remote side needs,
  a Receiver (under the original label) for every label it needs back, and an
  EventDone on an end path;
* ``DIR/remote.toml``: a FollowerSource, the offloaded (and needed duplicated)
  modules, and the mirror-image Receivers and Senders;
* ``DIR/topology.toml``: both processes and the link, runnable with
  ``python -m actors.launch DIR/topology.toml``.

Paths are rewritten so that the local paths accept the same events as the
original ones; see ``docs/split.md`` for the rules and the limits. Every
refusal is a :class:`~actors.errors.ConfigError` naming the module, option or
branch involved (exit status 2 from the command line, in the one error style
of :mod:`actors._cli`).

From Python: :func:`split_process` returns a :class:`SplitResult` (the two
:class:`~actors.framework.Process` objects and what crosses), and
:meth:`SplitResult.write` writes the three files.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._cli import CliParser, check_input, run_main
from ..errors import ConfigError
from ..framework import Process
from ..tomlfile import dump_toml
from ._build import SplitNames, build_split
from ._marker import Decision
from ._plan import LOCAL, Analysis, Pair, analyse

__all__ = ["Decision", "SplitResult", "main", "split_process"]

_TRANSPORTS = ("inproc", "tcp", "shm", "mpi", "ucx")


@dataclass
class SplitResult:
    """The outcome of a split: both processes, the pairs, the inserted names."""

    original: Process
    local: Process
    remote: Process
    pairs: list[Pair]
    names: SplitNames
    transport: str = "tcp"

    def topology(self) -> dict[str, object]:
        """The topology as plain data (the ``topology.toml`` structure)."""
        opts = self.original.options
        return {
            "run": {"transport": self.transport},
            "process": {
                "local": {"config": "local.toml", "threads": opts.threads, "streams": opts.streams},
                "remote": {
                    "config": "remote.toml",
                    "threads": opts.threads,
                    "streams": opts.streams,
                },
            },
            "link": [{"name": self.names.link, "client": "local", "server": "remote"}],
        }

    def summary(self) -> list[str]:
        """One line per pair: direction, instance, products."""
        lines = []
        for pair in self.pairs:
            arrow = "local -> remote" if pair.origin == LOCAL else "remote -> local"
            what = (
                f"decision of filter {pair.producer!r}"
                if pair.decision
                else ", ".join(str(b) for b in pair.branches)
            )
            lines.append(
                f"{arrow}  instance {pair.instance}: {pair.sender} -> {pair.receiver}  ({what})"
            )
        return lines

    def write(self, directory: str | Path) -> list[Path]:
        """Write ``local.toml``, ``remote.toml``, ``topology.toml`` into ``directory``.

        Module files found next to the original configuration (types such as
        ``modules:DimuonMass``) are linked into ``directory`` (symbolic links)
        so that the written configurations find them. Raises ConfigError when
        such a link would replace a different existing file.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        _link_module_files(self.original, [self.local, self.remote], out)
        origin = self.original.file or "<python>"
        files = {
            "local.toml": _header(f"local side of {origin}", self.summary()) + self.local.to_toml(),
            "remote.toml": _header(f"remote side of {origin}", self.summary())
            + self.remote.to_toml(),
            "topology.toml": _header(
                f"split of {origin}; run: python -m actors.launch {out / 'topology.toml'}",
                [],
            )
            + dump_toml(self.topology()),
        }
        written = []
        for name, text in files.items():
            path = out / name
            path.write_text(text)
            written.append(path)
        return written


def split_process(
    process: Process,
    offload: Sequence[str],
    duplicate: Sequence[str] = (),
    *,
    transport: str = "tcp",
    link: str = "offload",
    remote_name: str | None = None,
) -> SplitResult:
    """Split ``process`` so that the ``offload`` modules run in a remote process.

    ``duplicate`` modules run on both sides when the remote side needs them
    (their products then do not cross). Imports and constructs the module
    classes (their ``declare`` runs; nothing else). Raises ConfigError for an
    unknown or misplaced label, an offloaded source or output module, a cycle
    across the split, or an unknown transport. Not async; no I/O but imports.
    """
    if transport not in _TRANSPORTS:
        raise ConfigError(f"unknown transport {transport!r}; one of {', '.join(_TRANSPORTS)}")
    analysis: Analysis = analyse(process, offload, duplicate)
    local, remote, names = build_split(analysis, link, remote_name)
    return SplitResult(process, local, remote, list(analysis.pairs.values()), names, transport)


def _header(title: str, lines: list[str]) -> str:
    text = f"# Generated by python -m actors.split: {title}\n"
    text += "".join(f"#   {line}\n" for line in lines)
    return text + "\n"


def _link_module_files(original: Process, processes: list[Process], out: Path) -> None:
    base = original.base_dir
    if base is None or base.resolve() == out.resolve():
        return
    tops = {
        config.type.partition(":")[0].split(".")[0]
        for p in processes
        for config in [*p.modules.values(), p.source]
        if config is not None
    }
    for top in sorted(tops):
        for candidate in (base / f"{top}.py", base / top):
            if not candidate.exists():
                continue
            target = out / candidate.name
            source = Path(os.path.relpath(candidate.resolve(), out.resolve()))
            if target.is_symlink() or target.exists():
                if target.resolve() == candidate.resolve():
                    break
                raise ConfigError(
                    f"{target} exists and is not {candidate}; the split configurations need "
                    f"module {top!r} from {base} (choose another output directory)"
                )
            target.symlink_to(source, target_is_directory=candidate.is_dir())
            break


def _labels(values: list[str] | None) -> list[str]:
    return [x.strip() for v in values or [] for x in v.split(",") if x.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = CliParser(
        "python -m actors.split",
        "Split a process configuration into a local and a remote process: writes\n"
        "DIR/local.toml, DIR/remote.toml and DIR/topology.toml (run it with\n"
        "python -m actors.launch DIR/topology.toml) and prints what crosses the link.",
        examples=[
            "python -m actors.split examples/dimuon/dimuon.toml --offload dimuon "
            "--input nano.root -o split/",
            "python -m actors.split job.toml --offload tracking,vertexing --duplicate "
            "unpacker --transport shm -o split/",
        ],
        exit_codes=(
            "exit status:\n"
            "  0    the files were written\n"
            "  2    usage or configuration error (unknown label, cycle across the split, ...)\n"
            "  130  interrupted (Ctrl-C)"
        ),
        docs="docs/split.md",
    )
    parser.add_argument("config", help="process configuration (TOML)")
    parser.add_argument(
        "--offload",
        action="append",
        required=True,
        metavar="LABELS",
        help="modules to run in the remote process (comma-separated, repeatable)",
    )
    parser.add_argument(
        "--duplicate",
        action="append",
        metavar="LABELS",
        help="modules to run on both sides (comma-separated, repeatable)",
    )
    parser.add_argument(
        "--transport",
        default="tcp",
        metavar="SCHEME",
        help="link transport: " + "|".join(_TRANSPORTS),
    )
    parser.add_argument("--link", default="offload", metavar="NAME", help="name of the link")
    parser.add_argument(
        "--input",
        metavar="FILE",
        help="set the source's 'file' (needed when the source declares its products from the file)",
    )
    parser.add_argument(
        "-o", "--output-dir", required=True, metavar="DIR", help="directory for the files"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0, 2 on ConfigError, 130)."""
    args = _parser().parse_args(argv)
    return run_main(lambda: _main(args), args)


def _main(args: argparse.Namespace) -> int:
    if args.transport not in _TRANSPORTS:
        raise ConfigError(
            f"unknown transport {args.transport!r}; one of {', '.join(_TRANSPORTS)}",
            key="--transport",
        )
    check_input(args.input, "--input")
    process = Process.from_toml(args.config)
    if args.input is not None and process.source is not None:
        process.source.params["file"] = args.input
    result = split_process(
        process,
        _labels(args.offload),
        _labels(args.duplicate),
        transport=args.transport,
        link=args.link,
    )
    written = result.write(args.output_dir)
    for line in result.summary():
        print(line)
    for path in written:
        print(f"wrote {path}")
    return 0
