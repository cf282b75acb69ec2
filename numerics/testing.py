r"""Test helpers for users' and the package's own statistical tests.

:func:`assert_mc_close` is the one "Monte Carlo estimate within n standard errors of the exact value" check, with a
message that states all the numbers; :func:`assert_layers_mc_close` applies it layer by layer. The rule is

.. math:: |\hat\mu - \mu| \le n_{se}\,\widehat{se} + \text{atol} + \text{rtol}\,|\mu| ,

a two-sided test at level :math:`2\,(1 - \Phi(n_{se}))` for a normal estimate (6.3e-5 for the default
``n_se = 4``), so a correct formula fails about once in 16 000 independent checks, and ``atol`` / ``rtol`` absorb a
known deterministic error (a truncated series, float rounding). :func:`torch_devices` lists the torch devices
available here (``"cpu"``, and ``"cuda"`` when torch sees a GPU) for numpy/torch parity tests parametrised over
every backend (see ``tests/conftest.py``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from theory.arguments import check_real

__all__ = ["assert_mc_close", "assert_layers_mc_close", "mc_estimate", "torch_devices"]


def mc_estimate(samples: Any) -> tuple[Any, Any]:
    """Mean and standard error :math:`s/\\sqrt{K}` (``ddof=1``) of ``K >= 2`` i.i.d. draws along axis 0 (floats
    for 1-d ``samples``, arrays over the remaining axes otherwise)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.ndim < 1 or a.shape[0] < 2:
        raise ValueError(f"samples must hold K >= 2 draws along axis 0, got shape {a.shape}")
    mean, se = a.mean(axis=0), a.std(axis=0, ddof=1) / math.sqrt(a.shape[0])
    return (float(mean), float(se)) if a.ndim == 1 else (mean, se)


def assert_mc_close(estimate: Any, se: Any, exact: Any, n_se: float = 4.0, *, atol: float = 0.0, rtol: float = 0.0,
                    what: str = "estimate") -> None:
    """Assert that ``estimate`` lies within ``n_se`` standard errors ``se`` (plus ``atol + rtol |exact|``) of
    ``exact``; arrays are compared elementwise (broadcast). The estimate, the exact value, the distance in units
    of se and the allowance are in the message.

    Raises
    ------
    AssertionError
        when the check fails or when the estimate or its s.e. is not finite (a NaN never passes).
    ValueError
        for a negative ``se``, ``n_se <= 0`` or a negative tolerance.
    """
    check_real(n_se, "n_se", 0.0, low_inclusive=False)
    check_real(atol, "atol", 0.0)
    check_real(rtol, "rtol", 0.0)
    est, s, ex = (np.asarray(v, dtype=np.float64) for v in (estimate, se, exact))
    if np.any(s < 0):
        raise ValueError(f"se must be >= 0, got {se!r}")
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(s)) and np.all(np.isfinite(ex))):
        raise AssertionError(f"{what}: not finite (estimate {estimate!r}, se {se!r}, exact {exact!r})")
    allow = n_se * s + atol + rtol * np.abs(ex)
    dist = np.abs(est - ex)
    bad = dist > allow
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(np.where(bad, dist - allow, -np.inf))), np.broadcast(est, s, ex).shape) \
            if np.broadcast(est, s, ex).shape else ()
        e, sv, x, d, a = (np.broadcast_to(v, np.broadcast(est, s, ex).shape)[i] for v in (est, s, ex, dist, allow))
        z = d / sv if sv > 0 else math.inf
        where = f" at index {tuple(int(k) for k in i)}" if i else ""
        raise AssertionError(f"{what}{where}: {e:.6g} vs exact {x:.6g}: |diff| = {d:.3g} = {z:.2f} se "
                             f"(se = {sv:.3g}) > allowed {a:.3g} ({n_se:g} se + atol {atol:g} + rtol {rtol:g})")


def assert_layers_mc_close(estimates: Sequence, ses: Sequence, exact: Sequence, n_se: float = 4.0, *,
                           atol: float = 0.0, rtol: float = 0.0, what: str = "layer") -> None:
    """:func:`assert_mc_close` at every layer k (the sequences must have equal lengths); the message names the
    layer. ``None`` in ``exact`` skips that layer (e.g. a layer the theory does not cover)."""
    if not (len(estimates) == len(ses) == len(exact)):
        raise ValueError(f"estimates, ses and exact must have equal lengths, got {len(estimates)}, {len(ses)}, "
                         f"{len(exact)}")
    for k, (e, s, x) in enumerate(zip(estimates, ses, exact)):
        if x is not None:
            assert_mc_close(e, s, x, n_se, atol=atol, rtol=rtol, what=f"{what} {k}")


def torch_devices() -> list[str]:
    """The torch devices available here: ``["cpu"]``, plus ``"cuda"`` when torch sees a GPU (``[]`` without
    torch)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return []
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
