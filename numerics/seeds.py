"""One rule for the ``seed`` argument of every random function in ``numerics``."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["generator"]


def generator(seed: Any) -> np.random.Generator:
    """``numpy.random.default_rng(seed)`` for ``seed`` None (fresh entropy), an int >= 0, a numpy Generator (used
    as is), BitGenerator or SeedSequence; anything else (a negative int, a bool, a float, a string) raises
    ValueError naming ``seed``."""
    ok = (seed is None or isinstance(seed, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence))
          or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0))
    if not ok:
        raise ValueError(f"seed must be None, an integer >= 0 or a numpy Generator/SeedSequence, got {seed!r}")
    return np.random.default_rng(seed)
