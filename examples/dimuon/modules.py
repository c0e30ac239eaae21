"""Modules of the dimuon example: opposite-charge leading pair and its mass.

``OppositeChargePair`` (filter) keeps events whose two highest-pT muons have
opposite charge (events with fewer than two muons are rejected) and puts the
indices of those two muons as product ``pair``. ``DimuonMass`` (producer)
computes their invariant mass in float64 and puts it as ``dimuon_mass``.

Both read the NanoAOD-style branches ``<prefix>_pt``, ``_eta``, ``_phi``,
``_mass``, ``_charge`` that the ROOT source provides as products of module
``src`` (jagged values as awkward or numpy 1-D arrays: both work).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actors.framework import Concurrency, Declarer, Event, Filter, Producer

_KINEMATICS = ("pt", "eta", "phi", "mass")


def leading_pair(pt: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Indices of the two highest-pT entries (ties: the earlier first)."""
    return np.argsort(-pt, kind="stable")[:2]


def invariant_mass(
    pt: np.ndarray[Any, Any],
    eta: np.ndarray[Any, Any],
    phi: np.ndarray[Any, Any],
    mass: np.ndarray[Any, Any],
) -> float:
    """Invariant mass (float64) of the particles given by the four arrays."""
    pt, eta, phi, mass = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, mass))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    m2 = energy.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2
    return float(np.sqrt(max(m2, 0.0)))


class OppositeChargePair(Filter):
    """Passes events whose two leading-pT muons have opposite charge."""

    concurrency = Concurrency.SHARED

    def __init__(self, *, src: str = "source", prefix: str = "Muon") -> None:
        self.src = src
        self.prefix = prefix

    def declare(self, d: Declarer) -> None:
        self.pt = d.consumes(self.src, instance=f"{self.prefix}_pt")
        self.charge = d.consumes(self.src, instance=f"{self.prefix}_charge")
        d.produces("numpy.ndarray", "pair")

    def filter(self, event: Event) -> bool:
        pt = np.asarray(event.get(self.pt))
        if len(pt) < 2:
            return False
        pair = leading_pair(pt)
        charge = np.asarray(event.get(self.charge))[pair]
        if charge[0] * charge[1] >= 0:
            return False
        event.put(pair, "pair")
        return True


class DimuonMass(Producer):
    """Invariant mass (float64) of the muon pair chosen by the filter ``pair``."""

    concurrency = Concurrency.SHARED

    def __init__(
        self, *, src: str = "source", prefix: str = "Muon", pair: str = "opposite"
    ) -> None:
        self.src = src
        self.prefix = prefix
        self.pair_label = pair

    def declare(self, d: Declarer) -> None:
        self.pair = d.consumes(self.pair_label, instance="pair")
        self.kinematics = [d.consumes(self.src, instance=f"{self.prefix}_{k}") for k in _KINEMATICS]
        d.produces("float64", "dimuon_mass")

    def produce(self, event: Event) -> None:
        pair = event.get(self.pair)
        pt, eta, phi, mass = (np.asarray(event.get(t))[pair] for t in self.kinematics)
        event.put(np.float64(invariant_mass(pt, eta, phi, mass)), "dimuon_mass")
