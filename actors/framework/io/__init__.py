"""ROOT input and output through uproot (extra ``hep``).

``RootSource`` reads TTrees and RNTuples in chunks; ``RootOutput`` writes
selected products of accepted events to a TTree in input order. Importing this
package does not import uproot or awkward: they load when a file is opened,
and a missing one raises :class:`~actors.errors.BackendUnavailable`.
"""

from __future__ import annotations

from .root_output import RootOutput
from .root_source import RootSource
from .soa import SoA

__all__ = ["RootOutput", "RootSource", "SoA"]
