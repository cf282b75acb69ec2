"""Argument checks shared by ``theory`` and ``numerics`` (``numerics`` may import ``theory``, not the reverse)."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_flag"]


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool if it is ``True``/``False`` (Python or numpy), else ValueError naming ``name``; 0, 1,
    None and strings are refused (a flag given a number is a wrong call, not a truth value)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)
