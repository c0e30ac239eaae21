"""Device products from a peer to a process without cupy (no GPU needed).

The Receiver moved every buffer the sending side flagged as device memory to
the device with ``host_to_device``; in a process without cupy that raised
BackendUnavailable (an error meant for local misuse) for a flag the peer set,
and the job failed without saying why. It now does what the transports do
(``actors.transports._base``, docs/gpu.md): such products stay in host memory,
logged once per link naming the peer and the product, and only a decode that
needs cupy (a cupy array) raises CodecError, naming the product and the peer.

The sending side's device arrays are stand-ins (host memory behind a
``__cuda_array_interface__``) with codecs of their own; tcp:// stages them
through host memory as it does device arrays. cupy is made unavailable by
monkeypatching, so these run everywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from actors.codecs import register_codec
from actors.errors import CodecError, ModuleError
from actors.framework import Concurrency, Declarer, Event, Producer
from tests.fake_device import FakeDevice, hide_cupy, staged

from .helpers import run_all
from .mods import RECORDS, M
from .test_device import tables
from .test_inproc import offload_pair, ok

HERE = "tests.distributed.test_device_without_cupy"


@pytest.fixture(autouse=True)
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process has no cupy (whether or not it is installed); tcp:// stages
    the stand-in device arrays as it stages cupy arrays."""

    hide_cupy(monkeypatch)
    monkeypatch.setattr("actors.transports.stream._link.device_to_host", staged)
    RECORDS.clear()


class DeviceFloats(FakeDevice):
    """A device array whose codec decodes into host memory (numpy)."""


class DeviceCupy(FakeDevice):
    """A device array whose codec needs cupy to decode, as cupy's does."""


class _FloatsCodec:
    def encode(self, obj: DeviceFloats) -> tuple[Any, list[Any]]:
        return [obj.array.dtype.str, list(obj.array.shape)], [obj]

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        return np.frombuffer(buffers[0], dtype=meta[0]).reshape(meta[1])


class _CupyCodec(_FloatsCodec):
    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        from actors.codecs._arrays import CupyCodec

        return CupyCodec().decode(meta, buffers)


register_codec(DeviceFloats, _FloatsCodec(), "tests.DeviceFloats")
register_codec(DeviceCupy, _CupyCodec(), "tests.DeviceCupy")


class DeviceHits(Producer):
    """Puts ``hits`` as a stand-in device array (float64, size from the event)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, kind: str = "DeviceFloats") -> None:
        self.kind = kind

    def declare(self, d: Declarer) -> None:
        d.produces(self.kind, "hits")

    def produce(self, event: Event) -> None:
        n = event.id.event
        cls = DeviceFloats if self.kind == "DeviceFloats" else DeviceCupy
        event.put(cls(np.arange(n % 7 + 1, dtype="f8") * n), "hits")


def _device_pair(kind: str) -> tuple[Any, Any]:
    local, remote = offload_pair(streams=2)
    local.modules["arrays"].type = f"{HERE}:DeviceHits"
    local.modules["arrays"].params.clear()
    local.modules["arrays"].params["kind"] = kind
    recv = remote.modules["arrays"].params
    recv["products"] = [{"type": kind, "label": "arrays", "instance": "hits"}]
    remote.add_module("hitsseen", f"{M}:Collect", name="remote", what=["*_arrays_hits_*"])
    remote.paths["p"].modules.append("hitsseen")
    local.modules["got"].params["what"] = ["*_back_total_*"]
    return local, remote


def _warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == logger and "device" in r.getMessage() and r.levelno == logging.WARNING
    ]


async def test_a_device_product_arrives_in_host_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local, remote = _device_pair("DeviceFloats")
    t = tables("tcp", tmp_path)
    with caplog.at_level(logging.WARNING):
        results = await run_all(
            {"local": (local, t["local"], {}), "remote": (remote, t["remote"], {})}
        )
    assert ok(results["remote"]).events == 30
    assert ok(results["local"]).events == 30
    received = RECORDS["remote"]
    assert len(received) == 30
    for (_, _, n), values in received:
        hits = values["*_arrays_hits_*"].value
        assert type(hits) is np.ndarray  # host memory
        np.testing.assert_array_equal(hits, np.arange(n % 7 + 1, dtype="f8") * n)
    for (_, _, n), values in RECORDS["local"]:
        want = float((np.arange(n % 7 + 1, dtype="f8") * n).sum())
        assert values["*_back_total_*"].value == pytest.approx(want)
    warned = _warnings(caplog, "actors.distributed")
    assert len(warned) == 1, warned  # once per link, not per event or product
    assert "link 'offload'" in warned[0] and "DeviceFloats_arrays_hits_LOCAL" in warned[0]
    assert "BackendUnavailable" not in caplog.text


async def test_a_product_that_needs_cupy_is_a_codec_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local, remote = _device_pair("DeviceCupy")
    t = tables("tcp", tmp_path)
    results = await run_all({"local": (local, t["local"], {}), "remote": (remote, t["remote"], {})})
    failure = results["remote"]
    error = failure.__cause__ if isinstance(failure, ModuleError) else failure
    assert isinstance(error, CodecError), repr(failure)
    text = str(error)
    assert "cannot accept device arrays" in text and "cupy" in text
    assert "DeviceCupy_arrays_hits_LOCAL" in text and "link 'offload'" in text
    assert isinstance(results["local"], BaseException)  # the controller's job ends too
