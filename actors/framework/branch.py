"""Branches (product keys) and the one implementation of branch selection.

A product in an event is keyed by a :class:`Branch` ``(type, label, instance,
process)``, written ``Type_label_instance_PROCESS`` as in CMSSW, e.g.
``recoMuons_muons__HLT`` or ``float64_dimuon_mass_RECO``.

Naming rules (checked by :func:`check_name`):

* ``type`` is a stable type name string chosen by the producer (see
  ``docs/framework.md``): ``"float64"``, ``"numpy.ndarray"``, ``"recoMuons"``,
  ``"awkward.Array"``... Letters, digits, ``.``, ``:``, ``<``, ``>``, ``,``, no ``_``.
* ``label`` (module label) and ``process`` (process name): letters and digits,
  no ``_``.
* ``instance``: may be empty, and may contain ``_`` (NanoAOD-style names such as
  ``Muon_pt``). Because the three other fields have no ``_``, the written form
  is unambiguous: split off the first two and the last field.

Selection statements (:class:`Selection`) use ``?`` (one character) and ``*``
(any run of characters, also empty) in each field: ``"*_muons_*_*"``,
``"recoMuons_*_*_HLT"``. A statement without ``_`` is a bare module label
(itself a pattern): ``"muons"`` selects everything module ``muons`` produces.
:class:`OutputCommands` applies ``keep``/``drop`` statement lists: the last
statement that matches a branch decides; a branch no statement matches is
dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

from ..errors import ConfigError

__all__ = ["Branch", "OutputCommands", "Selection", "check_name"]

_NAME_RULES = {
    "type": re.compile(r"[A-Za-z0-9.:<>,]+"),
    "label": re.compile(r"[A-Za-z0-9]+"),
    "instance": re.compile(r"[A-Za-z0-9_.]*"),
    "process": re.compile(r"[A-Za-z0-9]+"),
}


def check_name(field: str, value: str) -> str:
    """Return ``value`` if it is a valid branch ``field``; raise ConfigError otherwise.

    ``field`` is one of ``"type"``, ``"label"``, ``"instance"``, ``"process"``.
    """
    if not isinstance(value, str) or not _NAME_RULES[field].fullmatch(value):
        allowed = "letters, digits" + (", '_', '.'" if field == "instance" else "")
        if field == "type":
            allowed = "letters, digits, '.', ':', '<', '>', ','"
        raise ConfigError(f"invalid {field} name {value!r} in a branch (allowed: {allowed})")
    return value


class Branch(NamedTuple):
    """Key of one product: ``(type, label, instance, process)``.

    ``str(branch)`` is ``Type_label_instance_PROCESS``; :meth:`parse` reverses it.
    """

    type: str
    label: str
    instance: str
    process: str

    def __str__(self) -> str:
        return f"{self.type}_{self.label}_{self.instance}_{self.process}"

    @classmethod
    def parse(cls, text: str) -> Branch:
        """Parse ``Type_label_instance_PROCESS``; raises ConfigError if malformed."""
        fields = _split_fields(text)
        if fields is None:
            raise ConfigError(
                f"malformed branch name {text!r} (expected Type_label_instance_PROCESS)"
            )
        branch = cls(*fields)
        for name, value in zip(cls._fields, branch, strict=True):
            check_name(name, value)
        return branch


def _split_fields(text: str) -> tuple[str, str, str, str] | None:
    head = text.split("_", 2)
    if len(head) != 3 or "_" not in head[2]:
        return None
    instance, process = head[2].rsplit("_", 1)
    return head[0], head[1], instance, process


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


class Selection:
    """One branch selection statement with ``?``/``*`` wildcards per field.

    ``Selection("muons")`` (bare label), ``Selection("*_muons_*_*")`` and
    ``Selection("recoMuons_muons__HLT")`` are the accepted forms; anything
    with one, two or three fields is a ConfigError. Selections are immutable
    and hashable; :meth:`matches` is pure.
    """

    __slots__ = ("_fields", "text")

    def __init__(self, text: str) -> None:
        text = text.strip()
        if not text:
            raise ConfigError("empty branch selection")
        if "_" not in text:
            fields: tuple[str, str, str, str] | None = ("*", text, "*", "*")
        else:
            fields = _split_fields(text)
        if fields is None:
            raise ConfigError(
                f"malformed branch selection {text!r}: expected a module label or "
                "Type_label_instance_PROCESS (wildcards ? and * allowed in each field)"
            )
        self.text = text
        self._fields = tuple(_compile(f) for f in fields)

    def matches(self, branch: Branch) -> bool:
        """True if every field of ``branch`` matches this statement's pattern."""
        t, lab, inst, proc = self._fields
        return bool(
            t.fullmatch(branch.type)
            and lab.fullmatch(branch.label)
            and inst.fullmatch(branch.instance)
            and proc.fullmatch(branch.process)
        )

    def select(self, branches: Iterable[Branch]) -> list[Branch]:
        """The branches that match, in the order given."""
        return [b for b in branches if self.matches(b)]

    def __repr__(self) -> str:
        return f"Selection({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selection) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class OutputCommands:
    """A ``keep``/``drop`` statement list, like an output module's outputCommands.

    Each statement is ``"keep SELECTION"`` or ``"drop SELECTION"``; the last one
    that matches a branch decides, and a branch that no statement matches is
    dropped. ``OutputCommands(["keep *", "drop *_*_*_HLT"])`` keeps everything
    except what process HLT made. Raises ConfigError naming the statement.
    """

    __slots__ = ("_rules", "statements")

    def __init__(self, statements: Sequence[str]) -> None:
        if isinstance(statements, str):
            statements = [statements]
        rules: list[tuple[bool, Selection]] = []
        for statement in statements:
            verb, _, rest = str(statement).strip().partition(" ")
            if verb not in ("keep", "drop") or not rest.strip():
                raise ConfigError(
                    f"bad output command {statement!r}: expected 'keep SELECTION' or "
                    "'drop SELECTION'"
                )
            rules.append((verb == "keep", Selection(rest)))
        self.statements = tuple(str(s).strip() for s in statements)
        self._rules = tuple(reversed(rules))

    def keeps(self, branch: Branch) -> bool:
        """True if the statement list keeps ``branch``."""
        for keep, selection in self._rules:
            if selection.matches(branch):
                return keep
        return False

    def select(self, branches: Iterable[Branch]) -> list[Branch]:
        """The kept branches, in the order given."""
        return [b for b in branches if self.keeps(b)]

    def __repr__(self) -> str:
        return f"OutputCommands({list(self.statements)!r})"
