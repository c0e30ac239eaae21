"""Package-level contracts: cheap imports, public names, optional backends named by extra."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import actors
from actors import errors
from tests.snippets import last_line

HEAVY = ("mpi4py", "ucxx", "cupy", "uproot", "awkward", "matplotlib")


def test_importing_every_layer_loads_no_optional_backend() -> None:
    code = (
        "import sys, json\n"
        "import actors, actors.codecs, actors.transports, actors.framework, actors.distributed\n"
        "import actors.launch, actors.split, actors.run\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    assert json.loads(last_line(code)) == []


def test_a_remote_ask_of_plain_data_loads_no_numpy() -> None:
    """Start-up of a process that serves or calls actors pays no numpy import (~60 ms),
    and a link without a secret no OpenSSL (hashlib/hmac, ~1 ms)."""
    code = (
        "import asyncio, sys\n"
        "from actors import Actor, ActorSystem\n"
        "class Echo(Actor):\n"
        "    async def receive(self, message):\n"
        "        return message\n"
        "async def main():\n"
        "    async with ActorSystem('server') as server, ActorSystem('client') as client:\n"
        "        server.spawn(Echo, name='echo')\n"
        "        for url in ('tcp://127.0.0.1:0', 'shm://'):\n"
        "            ref = await client.remote(await server.serve(url), 'echo', timeout=30)\n"
        "            assert await ref.ask({'run': 1, 'hits': [1.5, 2]}, timeout=30) == "
        "{'run': 1, 'hits': [1.5, 2]}\n"
        "asyncio.run(main())\n"
        "print([m for m in ('numpy', 'hashlib', 'hmac') if m in sys.modules])\n"
    )
    assert last_line(code) == "[]"


_SERVE_AND_ASK = (
    "import asyncio, json, sys\n"
    "import actors\n"
    "from actors import Actor, ActorSystem\n"
    "class Echo(Actor):\n"
    "    async def receive(self, message):\n"
    "        return message\n"
    "{preload}"
    "before = set(sys.modules)\n"
    "async def main():\n"
    "    async with ActorSystem('server') as server, ActorSystem('client') as client:\n"
    "        server.spawn(Echo, name='echo')\n"
    "        ref = await client.remote(await server.serve('{url}'), 'echo', timeout=30)\n"
    "        assert await ref.ask(7, timeout=30) == 7\n"
    "asyncio.run(main())\n"
    "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith('actors'))))\n"
)


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:0", "shm://"])
def test_preload_imports_what_serving_and_asking_need(url: str) -> None:
    """After ``actors.preload(scheme)`` (before forking servers), serving an actor
    and asking it over that scheme imports none of our modules."""
    scheme = url.partition(":")[0]
    without = json.loads(last_line(_SERVE_AND_ASK.format(preload="", url=url)))
    assert f"actors.transports.stream.{scheme}" in without and "actors.core.remote" in without
    preloaded = _SERVE_AND_ASK.format(preload=f"actors.preload({scheme!r})\n", url=url)
    assert json.loads(last_line(preloaded)) == []


def test_preload_of_an_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(actors.ConfigError, match="unknown transport scheme 'carrier'; known: "):
        actors.preload("tcp", "carrier")


def test_every_error_is_exported_and_derives_from_actors_error() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, actors.ActorsError)
        assert getattr(actors, name) is cls, f"actors.{name} is not re-exported"


def test_missing_backend_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.transports import _registry

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    monkeypatch.setattr(_registry, "_instances", {})
    with pytest.raises(actors.BackendUnavailable, match=r"hep-actors\[mpi\]"):
        _registry.get_backend("mpi")


def test_unknown_scheme_lists_known_ones() -> None:
    from actors.transports import get_backend

    with pytest.raises(actors.ConfigError, match=r"unknown transport scheme 'carrier'.*tcp"):
        get_backend("carrier")


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert actors.__version__ == version("hep-actors")


def test_wheel_holds_only_the_actors_package(tmp_path: Path) -> None:
    """``pip install hep-actors`` must not install a top-level ``benchmarks`` (or ``tests``)."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (wheel,) = tmp_path.glob("hep_actors-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"actors"}
    entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        scripts = archive.read(entry_points).decode()
    for script in ("actors-run", "actors-launch", "actors-split"):
        assert script in scripts
