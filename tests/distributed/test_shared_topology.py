"""Topologies in which several clients share one server link (launcher side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.errors import ConfigError
from actors.launch import build_plan
from actors.launch.topology import load_topology

OFFLOAD = Path(__file__).resolve().parents[2] / "examples" / "offload"


def write(tmp: Path, links: str, transport: str = "tcp") -> Path:
    text = f'[run]\ntransport = "{transport}"\n'
    for name, config in (("cpu1", "local"), ("cpu2", "local"), ("gpu", "remote")):
        text += f'[process.{name}]\nconfig = "{OFFLOAD / config}.toml"\n'
    path = tmp / "topology.toml"
    path.write_text(text + links)
    return path


def link(client: str, server: str = "gpu", extra: str = "") -> str:
    return f'[[link]]\nname = "offload"\nclient = "{client}"\nserver = "{server}"\n{extra}'


@pytest.mark.parametrize("transport", ["tcp", "shm", "inproc"])
def test_two_clients_share_one_server_endpoint(tmp_path: Path, transport: str) -> None:
    topology = load_topology(write(tmp_path, link("cpu1") + link("cpu2"), transport))
    plan = build_plan(topology, rundir=tmp_path)
    tables = {p.name: p.links.endpoints["offload"] for p in plan.processes}
    server = tables["gpu"]
    assert (server.role, server.clients, server.peer) == ("server", 2, "cpu1,cpu2")
    for cpu in ("cpu1", "cpu2"):
        assert tables[cpu].role == "client" and tables[cpu].peer == "gpu"
        assert tables[cpu].secret == server.secret  # one listener, one secret
    if transport != "tcp":
        assert tables["cpu1"].url == tables["cpu2"].url == server.url


@pytest.mark.parametrize(
    ("second", "words"),
    [
        (link("cpu2", server="cpu1"), "a name repeats only to link another client"),
        (link("cpu1"), "duplicate link 'offload' from 'cpu1' to 'gpu'"),
        (link("cpu2", extra='transport = "shm"\n'), "needs the same 'transport'"),
    ],
)
def test_shared_name_errors(tmp_path: Path, second: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_topology(write(tmp_path, link("cpu1") + second))
