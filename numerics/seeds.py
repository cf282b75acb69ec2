"""One rule for the ``seed`` argument of every random function in ``numerics``."""
from __future__ import annotations

from typing import Any

import numpy as np

from theory.arguments import ArgumentTypeError, ArgumentValueError

__all__ = ["generator"]


def generator(seed: Any) -> np.random.Generator:
    """``numpy.random.default_rng(seed)`` for ``seed`` None (fresh entropy), an int >= 0, a numpy Generator (used
    as is), BitGenerator or SeedSequence. A negative int raises :class:`~theory.arguments.ArgumentValueError`, any
    other type (a bool, a float, a string) :class:`~theory.arguments.ArgumentTypeError` (a TypeError and a
    ValueError), both naming ``seed``."""
    msg = f"seed must be None, an integer >= 0 or a numpy Generator/SeedSequence, got {seed!r}"
    if seed is None or isinstance(seed, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ArgumentTypeError("seed", msg)
    if seed < 0:
        raise ArgumentValueError("seed", msg)
    return np.random.default_rng(seed)
