"""Load TOML files with error messages that name the file, line and key.

``tomllib`` parses but forgets where keys were; :class:`TomlDocument` keeps the
text and finds the line of a dotted key path with a small scan of table
headers and ``key =`` lines, so configuration errors can point at it::

    doc = TomlDocument.load("topology.toml")
    raise doc.error("unknown process 'gpu'", "link", 0, "to")
    # ConfigError: topology.toml:12: link[0].to: unknown process 'gpu'

This is the one place where configuration files are read; the framework's
process configuration and the launcher's topology both use it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["TomlDocument", "dump_toml"]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\-"' ]+?)\s*=""")

KeyPath = tuple[str | int, ...]


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.]+)\s*(?:\.|$)""", text)
    return [p.strip().strip("\"'") for p in parts if p.strip()]


@dataclass
class TomlDocument:
    """A parsed TOML file that remembers the line of each key it can find."""

    path: str
    data: dict[str, Any]
    lines: dict[KeyPath, int]

    @classmethod
    def load(cls, path: str | Path) -> TomlDocument:
        """Read and parse ``path``; raises ConfigError naming file and line."""
        name = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration: {exc.strerror}", file=name) from exc
        return cls.parse(text, name)

    @classmethod
    def parse(cls, text: str, name: str = "<string>") -> TomlDocument:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # Python < 3.14 has no lineno attribute: the position is in the message
            found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
            line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
            msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            raise ConfigError(f"invalid TOML: {msg}", file=name, line=line) from exc
        return cls(name, data, _scan_lines(text))

    def line_of(self, *key: str | int) -> int | None:
        """Line of the deepest prefix of ``key`` that was found (1-based)."""
        for end in range(len(key), 0, -1):
            line = self.lines.get(tuple(key[:end]))
            if line is not None:
                return line
        return None

    def error(self, message: str, *key: str | int) -> ConfigError:
        """A ConfigError for ``key`` (a path like ``("process", "local", "threads")``)."""
        return ConfigError(message, file=self.path, line=self.line_of(*key), key=format_key(key))


def format_key(key: KeyPath) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _scan_lines(text: str) -> dict[KeyPath, int]:
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    array_counts: dict[KeyPath, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(raw)
        if header and not _KEY.match(raw):
            names = tuple(_split_dotted(header.group(2)))
            if header.group(1) == "[[":
                index = array_counts.get(names, 0)
                array_counts[names] = index + 1
                table = (*names, index)
                lines.setdefault(names, number)
            else:
                table = names
            lines[table] = number
            continue
        key = _KEY.match(raw)
        if key:
            path = (*table, *_split_dotted(key.group(1)))
            lines.setdefault(path, number)
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {type(value).__name__} value {value!r} to TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else _toml_value(key)


def dump_toml(data: dict[str, Any]) -> str:
    """Write nested dicts (tables) and lists of dicts (arrays of tables) as TOML.

    Scalars and inline arrays come first in each table, sub-tables after, so
    ``tomllib.loads(dump_toml(d)) == d`` for data made of TOML types.
    """
    out: list[str] = []
    _dump_table(data, (), out)
    return "\n".join(out).lstrip("\n") + "\n"


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _dump_table(table: dict[str, Any], prefix: tuple[str, ...], out: list[str]) -> None:
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in table.items():
        path = (*prefix, key)
        dotted = ".".join(_toml_key(k) for k in path)
        if isinstance(value, dict):
            out.append(f"\n[{dotted}]")
            _dump_table(value, path, out)
        elif _is_table_array(value):
            for item in value:
                out.append(f"\n[[{dotted}]]")
                _dump_table(item, path, out)
