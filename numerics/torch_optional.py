"""torch as an optional dependency of :mod:`numerics`: type tests that never import torch, and its import on use.

numpy callers never load torch; a torch object can only exist once the caller has imported torch, so the tests
look it up in ``sys.modules``.
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["import_torch", "loaded_torch", "is_tensor", "is_torch_generator", "is_module"]


def import_torch():
    """``import torch`` (for the code paths that are only reached with torch objects or on request)."""
    import torch

    return torch


def loaded_torch():
    """The torch module if the process has imported it, else None (torch is not imported)."""
    return sys.modules.get("torch")


def is_tensor(x: Any) -> bool:
    """True for a ``torch.Tensor`` (or a subclass)."""
    t = loaded_torch()
    return t is not None and isinstance(x, t.Tensor)


def is_torch_generator(x: Any) -> bool:
    """True for a ``torch.Generator``."""
    t = loaded_torch()
    return t is not None and isinstance(x, t.Generator)


def is_module(x: Any) -> bool:
    """True for a ``torch.nn.Module``."""
    t = loaded_torch()
    return t is not None and isinstance(x, t.nn.Module)
