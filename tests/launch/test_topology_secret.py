"""Network listeners without a secret: refused unless the link says ``secret = false``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from actors import ConfigError
from actors.launch import build_plan
from actors.launch.topology import load_topology

from .test_topology import GOOD, write

NO_RUN_SECRET = GOOD.replace('transport = "tcp"', 'transport = "tcp"\nsecret = false')


def _with_link_keys(text: str, keys: str) -> str:
    return text.replace('server = "remote"', f'server = "remote"\n{keys}')


@pytest.mark.parametrize(
    ("topology", "reach"),
    [
        (_with_link_keys(NO_RUN_SECRET, 'bind = "0.0.0.0"'), "tcp:// bound to 0.0.0.0"),
        (NO_RUN_SECRET.replace('transport = "tcp"', 'transport = "ucx"'), "ucx://"),
        (NO_RUN_SECRET.replace('transport = "tcp"', 'transport = "mpi"'), "mpi://"),
    ],
    ids=["tcp-bind", "ucx", "mpi"],
)
def test_run_level_secret_false_does_not_open_a_network_listener(
    tmp_path: Path, topology: str, reach: str
) -> None:
    path = write(tmp_path, topology)
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    err = info.value
    assert err.file == str(path) and err.key == "link[0]"
    assert err.line == topology.splitlines().index("[[link]]") + 1
    assert reach in err.message and "secret = false" in err.message


def test_the_links_own_secret_false_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topology = _with_link_keys(GOOD, 'bind = "0.0.0.0"\nsecret = false')
    path = write(tmp_path, topology)
    with caplog.at_level(logging.WARNING, "actors.launch"):
        topo = load_topology(path)
    assert topo.links[0].secret is False
    line = topology.splitlines().index("secret = false") + 1
    assert f"{path}:{line}: link[0].secret:" in caplog.text
    assert "without a secret" in caplog.text
    plan = build_plan(topo, rundir=tmp_path)
    assert plan.processes[1].links.endpoints["offload"].secret is None


def test_loopback_links_may_drop_the_secret_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "actors.launch"):
        topo = load_topology(write(tmp_path, NO_RUN_SECRET))
    assert topo.network_listener(topo.links[0]) is None
    assert "secret" not in caplog.text


def test_transport_override_is_checked_too(tmp_path: Path) -> None:
    topo = load_topology(write(tmp_path, NO_RUN_SECRET))
    with pytest.raises(ConfigError) as info:
        topo.override(transport="ucx")
    assert info.value.key == "--transport"


def test_mpi_links_get_a_secret_for_their_side_channel(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py", reason="mpi4py not installed (extra [mpi])")
    topo = load_topology(write(tmp_path, GOOD.replace('transport = "tcp"', 'transport = "mpi"')))
    plan = build_plan(topo, rundir=tmp_path)
    server = plan.processes[1].links.endpoints["offload"]
    client = plan.processes[0].links.endpoints["offload"]
    assert server.secret and server.secret == client.secret
