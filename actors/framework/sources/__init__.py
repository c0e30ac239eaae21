"""Event sources that need no file: the synthetic source (the default).

ROOT file input lives in :mod:`actors.framework.io`.
"""

from __future__ import annotations

from .synthetic import ProductSpec, SyntheticSource

__all__ = ["ProductSpec", "SyntheticSource"]
