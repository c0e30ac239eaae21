"""The one table of environment knobs: parsing, errors, and the documentation kept equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import settings
from actors.errors import ConfigError


def test_every_setting_has_the_prefix_and_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    assert settings.table() in doc, "docs/settings.md is out of date: paste settings.table()"
    for s in settings.SETTINGS:
        assert s.name.startswith("ACTORS_")


def test_a_setting_is_read_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTORS_STREAM_SPIN_US", raising=False)
    assert settings.STREAM_SPIN_US.get() == 100.0
    monkeypatch.setenv("ACTORS_STREAM_SPIN_US", "250")
    assert settings.STREAM_SPIN_US.get() == 250.0


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORS_MPI_HEARTBEAT_S", "soon")
    with pytest.raises(ConfigError, match="ACTORS_MPI_HEARTBEAT_S='soon'"):
        settings.MPI_HEARTBEAT_S.get()
    monkeypatch.setenv("ACTORS_ALLOW_PICKLE", "perhaps")
    with pytest.raises(ConfigError, match="ACTORS_ALLOW_PICKLE"):
        settings.ALLOW_PICKLE.get()


@pytest.mark.parametrize(("text", "value"), [("1", True), ("yes", True), ("", False), ("0", False)])
def test_booleans(text: str, value: bool) -> None:
    assert settings.parse_bool(text) is value


def test_pickle_opt_in_follows_the_setting_until_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.codecs import _registry

    monkeypatch.setattr(_registry, "_pickle_choice", None)
    monkeypatch.setenv("ACTORS_ALLOW_PICKLE", "1")
    assert _registry.pickle_allowed()
    monkeypatch.setenv("ACTORS_ALLOW_PICKLE", "0")
    assert not _registry.pickle_allowed()
