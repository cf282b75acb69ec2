r"""Torch data-augmentation wrapper around :func:`numerics.diffeo.deform`.

``RandomDiffeo`` deforms every image of a batch by its own maximum-entropy diffeomorphism (Petrini et al.
2021). With fixed ``T`` and ``c`` it is a plain perturbation; with ``c_range`` / ``T_range`` it reproduces the
reference augmentation sampler (``transform.Diffeo``): a cut-off ``c = floor(c_min + B_c (c_max + 1 - c_min))``
and a temperature ``T = T_min + B_T (T_max - T_min)`` inside the window of that cut-off, with
:math:`B \sim \mathrm{Beta}(\alpha, \beta)`, :math:`\alpha = s r/(r+1)`, :math:`\beta = s/(r+1)` ("peakedness"
s and "bias towards the maximum" r).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from numerics.diffeo import deform, temperature_range


def _beta_params(s: float, r: float, name: str) -> tuple[float, float]:
    if not (math.isfinite(s) and s > 0 and math.isfinite(r) and r > 0):
        raise ValueError(f"{name} Beta parameters must be finite and > 0, got s={s!r}, r={r!r}")
    return s * r / (r + 1), s / (r + 1)


class RandomDiffeo(torch.nn.Module):
    """Random maximum-entropy diffeomorphism of each image of a (B, [C...,] H, W) batch.

    Either give ``T`` and ``c`` (fixed), or ``c_range=(c_min, c_max)`` with Beta laws ``(s_c, r_c)`` for c and
    ``(s_T, r_T)`` for the position of T inside ``temperature_range(n, c)`` (one (c, T) drawn per call).
    """

    def __init__(
        self,
        T: float | None = None,
        c: float | None = None,
        *,
        c_range: tuple[int, int] | None = None,
        beta_c: tuple[float, float] = (2.0, 1.0),
        beta_T: tuple[float, float] = (2.0, 1.0),
        cutoff: str = "code",
        interp: str = "linear",
        window: str = "paper",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if (c_range is None) == (c is None):
            raise ValueError("give exactly one of c (fixed cut-off) or c_range=(c_min, c_max)")
        if c_range is None and T is None:
            raise ValueError("T must be given with a fixed c")
        if c_range is not None:
            lo, hi = c_range
            if not (isinstance(lo, int) and isinstance(hi, int) and 2 <= lo <= hi):
                raise ValueError(f"c_range must be integers 2 <= c_min <= c_max, got {c_range!r}")
        self.T, self.c, self.c_range = T, c, c_range
        self._ac, self._bc = _beta_params(*beta_c, "beta_c")
        self._aT, self._bT = _beta_params(*beta_T, "beta_T")
        self.cutoff, self.interp, self.window = cutoff, interp, window
        self._rng = np.random.default_rng(seed)

    def draw_parameters(self, n: int) -> tuple[float, float]:
        """(T, c) for one call on images of side n (the larger side)."""
        if self.c_range is None:
            return float(self.T), float(self.c)
        lo, hi = self.c_range
        c = min(int(lo + self._rng.beta(self._ac, self._bc) * (hi + 1 - lo)), hi)
        t_min, t_max = temperature_range(n, c, cutoff=self.cutoff, method=self.window)
        return t_min + self._rng.beta(self._aT, self._bT) * (t_max - t_min), float(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, c = self.draw_parameters(max(x.shape[-2:]))
        seed = int(self._rng.integers(2**63 - 1))
        return deform(x, T, c, cutoff=self.cutoff, interp=self.interp, seed=seed)
