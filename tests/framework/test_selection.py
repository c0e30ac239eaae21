"""Branch names, selection statements and keep/drop lists: one table of cases."""

from __future__ import annotations

import pytest

from actors.errors import ConfigError
from actors.framework import Branch, OutputCommands, Selection

MUONS = Branch("recoMuons", "muons", "", "HLT")
MASS = Branch("float64", "dimuon", "mass", "RECO")
NANO = Branch("numpy.ndarray", "source", "Muon_pt", "READ")
ALL = [MUONS, MASS, NANO]

SELECTION_CASES = [
    # statement, branches it selects
    ("*", ALL),
    ("muons", [MUONS]),
    ("mu*", [MUONS]),
    ("dimuon", [MASS]),
    ("*_*_*_*", ALL),
    ("*_*_*_HLT", [MUONS]),
    ("recoMuons_muons__HLT", [MUONS]),
    ("recoMuons_muons_*_*", [MUONS]),
    ("recoMuons_muons_?_*", []),
    ("float??_*_*_*", [MASS]),
    ("float64_dimuon_mass_RECO", [MASS]),
    ("float64_dimuon_mas_RECO", []),
    ("*_source_Muon_pt_*", [NANO]),
    ("*_source_Muon_*_READ", [NANO]),
    ("*_*_Muon_??_*", [NANO]),
    ("numpy.ndarray_*_*_*", [NANO]),
    ("numpy?ndarray_*_*_*", [NANO]),
    ("*_*_*_RE*", [MASS, NANO]),
    ("*_*__*", [MUONS]),
    ("?????_*_*_*", []),
]


@pytest.mark.parametrize(("statement", "expected"), SELECTION_CASES)
def test_selection_table(statement: str, expected: list[Branch]) -> None:
    assert Selection(statement).select(ALL) == expected


OUTPUT_CASES = [
    (["keep *"], ALL),
    (["drop *"], []),
    ([], []),
    (["keep *", "drop *_*_*_HLT"], [MASS, NANO]),
    (["drop *", "keep recoMuons_muons_*_*"], [MUONS]),
    (["keep recoMuons_muons_*_*", "drop *"], []),
    (["keep *", "drop muons", "keep *_*_*_HLT"], ALL),
    (["drop *", "keep dimuon", "keep source"], [MASS, NANO]),
    (["keep *_*_*_READ", "drop *_source_Muon_pt_*"], []),
]


@pytest.mark.parametrize(("statements", "expected"), OUTPUT_CASES)
def test_output_commands_table(statements: list[str], expected: list[Branch]) -> None:
    assert OutputCommands(statements).select(ALL) == expected


@pytest.mark.parametrize("branch", ALL)
def test_branch_round_trip(branch: Branch) -> None:
    assert Branch.parse(str(branch)) == branch


def test_branch_written_form() -> None:
    assert str(MUONS) == "recoMuons_muons__HLT"
    assert str(NANO) == "numpy.ndarray_source_Muon_pt_READ"


@pytest.mark.parametrize(
    "bad", ["", "a_b", "a_b_c", "x y", "_muons__HLT", "float64_dimuon_mass_RE_CO_"]
)
def test_malformed_names_raise(bad: str) -> None:
    with pytest.raises(ConfigError):
        Branch.parse(bad)


@pytest.mark.parametrize("bad", ["", "a_b", "a_b_c"])
def test_malformed_selection_raises(bad: str) -> None:
    with pytest.raises(ConfigError, match="selection"):
        Selection(bad)


@pytest.mark.parametrize("bad", ["keep", "save *", "keep  ", "*"])
def test_malformed_output_command_raises(bad: str) -> None:
    with pytest.raises(ConfigError, match="output command"):
        OutputCommands([bad])
