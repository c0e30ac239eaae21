"""Device (cupy) products through Sender/Receiver over a real transport (marker gpu)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actors.distributed import LinkEndpoint, LinkTable

from .helpers import run_all
from .mods import RECORDS, M
from .test_inproc import offload_pair, ok

D = "actors.distributed"


@pytest.fixture(autouse=True)
def _clear() -> None:
    RECORDS.clear()


def tables(scheme: str, rendezvous: Path) -> dict[str, LinkTable]:
    server = LinkEndpoint("offload", "server", f"{scheme}://127.0.0.1:0", peer="local")
    client = LinkEndpoint("offload", "client", f"{scheme}://", peer="remote")
    return {
        "local": LinkTable({"offload": client}, rendezvous),
        "remote": LinkTable({"offload": server}, rendezvous),
    }


@pytest.mark.gpu
@pytest.mark.parametrize("scheme", ["tcp", pytest.param("ucx", marks=pytest.mark.ucx)])
async def test_device_products_cross_the_link(scheme: str, tmp_path: Path) -> None:
    cupy = pytest.importorskip("cupy")
    if scheme == "ucx":
        pytest.importorskip("ucxx")
    if cupy.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device")
    local, remote = offload_pair(streams=2)
    local.modules["arrays"].type = f"{M}:DeviceArrays"
    local.modules["arrays"].params.clear()
    recv = remote.modules["arrays"].params
    recv["products"] = [{"type": "cupy.ndarray", "label": "arrays", "instance": "hits"}]
    remote.modules["total"].type = f"{M}:DeviceSum"
    remote.modules["total"].params["src"] = "arrays"
    local.modules["got"].params["what"] = ["*_back_total_*"]
    t = tables(scheme, tmp_path)
    results = await run_all({"local": (local, t["local"], {}), "remote": (remote, t["remote"], {})})
    assert ok(results["local"]).events == 30
    for (_, _, n), values in RECORDS["local"]:
        want = float((np.arange(n % 7 + 1, dtype="f8") * n).sum())
        assert values["*_back_total_*"].value == pytest.approx(want)
