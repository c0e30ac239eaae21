"""Modules of the offload example: light ones run locally, the heavy one remotely.

- ``Calibrate`` (local): scales the raw ``hits`` by a gain -> ``calib``.
- ``Threshold`` (local filter): keeps events whose largest calibrated hit exceeds a cut.
- ``Spectrum`` (remote, the "heavy" numpy work): FFT power spectrum of ``calib``;
  puts the total power ``energy`` (float64) and the ``peaks`` (indices of the
  ``k`` strongest frequencies).
- ``Summary`` (local): checks each remote result against the local data
  (Parseval: spectrum power == N * sum of squares) and prints a summary at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actors.framework import Analyzer, Concurrency, Declarer, Event, Filter, Producer

Array = np.ndarray[Any, Any]


class Calibrate(Producer):
    concurrency = Concurrency.SHARED

    def __init__(self, *, src: str = "source", gain: float = 1.5) -> None:
        self.src = src
        self.gain = gain

    def declare(self, d: Declarer) -> None:
        self.hits = d.consumes(self.src, instance="hits")
        d.produces("numpy.ndarray")

    def produce(self, event: Event) -> None:
        event.put(np.asarray(event.get(self.hits), dtype="f8") * self.gain)


class Threshold(Filter):
    concurrency = Concurrency.SHARED

    def __init__(self, *, src: str = "calib", cut: float = 5.0) -> None:
        self.src = src
        self.cut = cut

    def declare(self, d: Declarer) -> None:
        self.calib = d.consumes(self.src, instance="")

    def filter(self, event: Event) -> bool:
        return bool(np.max(event.get(self.calib)) > self.cut)


class Spectrum(Producer):
    concurrency = Concurrency.SHARED

    def __init__(self, *, src: str = "calib", k: int = 8, repeat: int = 4) -> None:
        self.src = src
        self.k = k
        self.repeat = repeat  # makes the work heavier, as on an accelerator

    def declare(self, d: Declarer) -> None:
        self.calib = d.consumes(self.src, instance="")  # not the receiver's token
        d.produces("float64", "energy")
        d.produces("numpy.ndarray", "peaks")

    def produce(self, event: Event) -> None:
        x: Array = event.get(self.calib)
        for _ in range(self.repeat):
            power = np.abs(np.fft.fft(x)) ** 2
        event.put(np.float64(power.sum()), "energy")
        event.put(np.argsort(power[: len(power) // 2])[-self.k:][::-1].copy(), "peaks")


class Summary(Analyzer):
    concurrency = Concurrency.LEGACY

    def __init__(self, *, calib: str = "calib", results: str = "spectrum") -> None:
        self.calib_label = calib
        self.results = results
        self.events = 0
        self.energies: list[float] = []

    def declare(self, d: Declarer) -> None:
        self.calib = d.consumes(self.calib_label, instance="")
        self.energy = d.consumes(self.results, instance="energy")
        self.peaks = d.consumes(self.results, instance="peaks")

    def analyze(self, event: Event) -> None:
        x: Array = event.get(self.calib)
        energy = float(event.get(self.energy))
        expected = float(len(x) * np.sum(x * x))
        if not np.isclose(energy, expected, rtol=1e-9):
            raise ValueError(f"event {event.id}: remote energy {energy} != local {expected}")
        if len(event.get(self.peaks)) == 0:
            raise ValueError(f"event {event.id}: no peaks")
        self.events += 1
        self.energies.append(energy)

    def end_job(self) -> None:
        if self.events:
            e = np.array(self.energies)
            print(f"offload summary: {self.events} events checked; spectrum power "
                  f"mean {e.mean():.4g}, min {e.min():.4g}, max {e.max():.4g}")
