"""Process configuration: TOML round trip, error messages (file, line, key), build-time checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from actors.errors import ConfigError
from actors.framework import Process, run
from tests.framework.mods import LOG, M

TOML = f'''
[process]
name = "HLT"

[options]
streams = 3
threads = 2
max_concurrent_lumis = 1
events = 7

[source]
type = "{M}:CountingSource"
lumis = 2
events = 4

[modules.a]
type = "{M}:Add"
add = 5
inputs = ["source"]

[modules.sel]
type = "{M}:Even"
odd = true

[modules.col]
type = "{M}:Collect"
input = "a"

[modules.out]
type = "{M}:Memory"
select_events = ["p1"]
output_commands = ["drop *", "keep *_a_*_*"]

[paths]
p1 = ["sel", "a", "col"]

[end_paths]
e = ["out"]
'''


def test_toml_round_trip_keeps_meaning(tmp_path: Path) -> None:
    path = tmp_path / "hlt.toml"
    path.write_text(TOML)
    first = Process.from_toml(path)
    text = first.to_toml()
    second = Process.from_toml_string(text)
    assert second.to_dict() == first.to_dict()
    assert tomllib.loads(text) == first.to_dict()
    assert second.config_hash() == first.config_hash()
    assert second.options.streams == 3 and second.options.events == 7
    assert [p.name for p in second.end_paths] == ["e"]
    assert second.modules["out"].params["output_commands"] == ["drop *", "keep *_a_*_*"]
    # and it runs the same
    report_a, report_b = run(first), run(second)
    assert report_a.to_dict()["trigger_report"] == report_b.to_dict()["trigger_report"]
    assert report_a.events == 7


def test_python_built_equals_toml() -> None:
    p = Process("HLT")
    p.set_source(f"{M}:CountingSource", lumis=2, events=4)
    p.add_module("a", f"{M}:Add", add=5, inputs=["source"])
    p.add_path("p1", ["a"])
    again = Process.from_toml_string(p.to_toml())
    assert again.to_dict() == p.to_dict()
    assert again.config_hash() == p.config_hash()
    p.modules["a"].params["add"] = 6
    assert again.config_hash() != p.config_hash()


def _error_for(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Process.from_toml(path)
    return info.value


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


ERROR_CASES = [
    # (replace, with, key in message, line containing)
    ("streams = 3", "streams = 0", "options.streams", "streams = 0"),
    ("events = 7", "evnts = 7", "options.evnts", "evnts = 7"),
    ('p1 = ["sel", "a", "col"]', 'p1 = ["sel", "b"]', "paths.p1", "p1 = "),
    ('type = "tests.framework.mods:Add"', 'typ = "x:Y"', "modules.a.type", "[modules.a]"),
    ('name = "HLT"', 'name = "H_LT"', "process.name", 'name = "H_LT"'),
    ('name = "HLT"', "name = 3", "process.name", "name = 3"),
    ("[end_paths]", "[end_path]", "end_path", "[end_path]"),
]


@pytest.mark.parametrize(("old", "new", "key", "line_text"), ERROR_CASES)
def test_config_errors_name_file_line_key(
    tmp_path: Path, old: str, new: str, key: str, line_text: str
) -> None:
    assert old in TOML
    text = TOML.replace(old, new, 1)
    err = _error_for(tmp_path, text)
    assert err.file is not None and err.file.endswith("bad.toml")
    assert err.key == key
    assert err.line == _line_of(text, line_text)
    assert f"bad.toml:{err.line}: {key}:" in str(err)


def test_invalid_toml_names_line(tmp_path: Path) -> None:
    text = TOML.replace("threads = 2", "threads = = 2")
    err = _error_for(tmp_path, text)
    assert err.line == _line_of(text, "threads = = 2")


BUILD_ERRORS = [
    # (module type/params change, message part, key)
    (("a", "nosuch.module:X", {}), "cannot import 'nosuch.module'", "modules.a.type"),
    (("a", f"{M}:NoClass", {}), "no attribute 'NoClass'", "modules.a.type"),
    (("a", f"{M}:CountingSource", {}), "not a subclass of Module", "modules.a.type"),
    (("a", f"{M}:Add", {"bogus": 1}), "bogus", "modules.a"),
    (("a", f"{M}:Add", {"inputs": ["nothing"]}), "consumes 'nothing'", "modules.a"),
]


@pytest.mark.parametrize(("change", "message", "key"), BUILD_ERRORS)
def test_build_errors_before_any_event(
    tmp_path: Path, change: tuple[str, str, dict[str, object]], message: str, key: str
) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text(TOML)
    process = Process.from_toml(path)
    label, type_, params = change
    process.modules[label].type = type_
    process.modules[label].params = params
    LOG.clear()
    with pytest.raises(ConfigError) as info:
        run(process)
    assert message in str(info.value)
    assert info.value.key == key
    table_line = _line_of(TOML, f"[modules.{label}]")
    assert info.value.line == table_line + (1 if key.endswith(".type") else 0)
    assert LOG == []  # no event (and no module) ran


def test_missing_product_names_module_and_branch() -> None:
    p = Process("T")
    p.set_source(f"{M}:CountingSource")
    p.add_module("x", f"{M}:Add", inputs=["float64_muons_*_*"])
    p.add_path("p", ["x"])
    with pytest.raises(ConfigError, match=r"module 'x' consumes 'float64_muons_\*_\*'"):
        run(p)


def test_select_events_must_name_a_trigger_path() -> None:
    p = Process("T")
    p.set_source(f"{M}:CountingSource")
    p.add_module("out", f"{M}:Memory", select_events=["nope"])
    p.add_end_path("e", ["out"])
    with pytest.raises(ConfigError, match="select_events names 'nope'"):
        run(p)


def test_output_on_trigger_path_is_an_error() -> None:
    p = Process("T")
    p.set_source(f"{M}:CountingSource")
    p.add_module("out", f"{M}:Memory")
    p.add_path("p", ["out"])
    with pytest.raises(ConfigError, match="must be on an end path"):
        run(p)


def test_dependency_cycle_is_an_error() -> None:
    p = Process("T")
    p.set_source(f"{M}:CountingSource")
    p.add_module("a", f"{M}:Add", inputs=["b"])
    p.add_module("b", f"{M}:Add", inputs=["a"])
    p.add_path("p", ["a"])
    with pytest.raises(ConfigError, match="dependency cycle"):
        run(p)


def test_module_type_resolved_relative_to_config_dir(tmp_path: Path) -> None:
    (tmp_path / "localmods.py").write_text(
        "from actors.framework import Producer\n"
        "class Twice(Producer):\n"
        "    def declare(self, d):\n"
        "        self.n = d.consumes('source')\n"
        "        d.produces('int')\n"
        "    def produce(self, event):\n"
        "        event.put(2 * event.get(self.n))\n"
    )
    path = tmp_path / "cfg.toml"
    path.write_text(
        f'[process]\nname = "T"\n[source]\ntype = "{M}:CountingSource"\n'
        '[modules.twice]\ntype = "localmods:Twice"\n'
        f'[modules.col]\ntype = "{M}:Collect"\ninput = "twice"\n'
        '[paths]\np = ["col"]\n'
    )
    from tests.framework.mods import Collect

    run(Process.from_toml(path))
    assert Collect.seen["col"] == [(n, 2 * n) for n in range(1, 11)]


def test_duplicate_labels_and_bad_types() -> None:
    p = Process("T")
    p.add_module("a", f"{M}:Add")
    with pytest.raises(ConfigError, match="used twice"):
        p.add_module("a", f"{M}:Add")
    with pytest.raises(ConfigError, match=r"package\.module:Class"):
        p.add_module("b", "no_colon")
    with pytest.raises(ConfigError, match="label"):
        p.add_module("has_underscore", f"{M}:Add")


def test_rejected_parameter_value_is_a_config_error() -> None:
    p = Process("T")
    p.set_source(f"{M}:CountingSource")
    p.add_module("a", f"{M}:Picky", level=-1)
    p.add_path("p", ["a"])
    with pytest.raises(ConfigError, match="level must be >= 0") as info:
        run(p)
    assert info.value.key == "modules.a"
