r"""Torch data-augmentation wrapper around :func:`numerics.diffeo.deform`.

``RandomDiffeo`` deforms every image of a batch by its own maximum-entropy diffeomorphism (Petrini et al.
2021). With fixed ``T`` and ``c`` it is a plain perturbation; with ``c_range`` it reproduces the reference
augmentation sampler (``transform.Diffeo``): a cut-off ``c = floor(c_min + B_c (c_max + 1 - c_min))``
and a temperature ``T = T_min + B_T (T_max - T_min)`` inside the window of that cut-off, with
:math:`B \sim \mathrm{Beta}(\alpha, \beta)`, :math:`\alpha = s r/(r+1)`, :math:`\beta = s/(r+1)` ("peakedness"
s and "bias towards the maximum" r).
"""
from __future__ import annotations

import torch

from numerics import diffeo as nd
from numerics.seeds import generator


def _beta_params(pair, name: str) -> tuple[float, float]:
    """(alpha, beta) = (s r/(r+1), s/(r+1)) from ``pair = (s, r)``, both finite and > 0."""
    try:
        s, r = pair
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a pair (s, r) of Beta parameters, got {pair!r}") from exc
    s, r = (nd._check_real(v, f"{name} ({k})", 0.0, low_inclusive=False) for k, v in (("s", s), ("r", r)))
    return s * r / (r + 1), s / (r + 1)


class RandomDiffeo(torch.nn.Module):
    """Random maximum-entropy diffeomorphism of each image of a (B, [C...,] H, W) batch.

    Either give ``T`` and ``c`` (fixed: T >= 0, c >= 1), or ``c_range=(c_min, c_max)`` (integers,
    2 <= c_min <= c_max, no ``T``) with Beta laws ``(s_c, r_c)`` for c and ``(s_T, r_T)`` for the position of T
    inside ``temperature_range(n, c, method=window)`` (one (c, T) drawn per call). Every c of the range must
    have a non-empty window for the image side n (paper window: c_max < 2n/π); this is checked for the whole
    range the first time a side n is seen, so an over-large ``c_range`` raises ``ValueError`` on the first
    call, whatever c would have been drawn.
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
        if c_range is None:
            if c is None:
                raise ValueError("c or c_range must be given (exactly one of them)")
            if T is None:
                raise ValueError("T must be given with a fixed c")
            T, c = nd._check_real(T, "T", 0.0), float(nd._as_fraction(c))
        else:
            if c is not None:
                raise ValueError("c_range and c are exclusive: give a fixed c or a range, not both")
            if T is not None:
                raise ValueError("T must not be given with c_range: T is drawn inside the window of the drawn c")
            try:
                lo, hi = c_range
            except (TypeError, ValueError) as exc:
                raise ValueError(f"c_range must be a pair (c_min, c_max), got {c_range!r}") from exc
            if not (isinstance(lo, int) and isinstance(hi, int) and 2 <= lo <= hi):
                raise ValueError(f"c_range must be integers 2 <= c_min <= c_max, got {c_range!r}")
        self.T, self.c, self.c_range = T, c, c_range
        self._ac, self._bc = _beta_params(beta_c, "beta_c")
        self._aT, self._bT = _beta_params(beta_T, "beta_T")
        nd._check_cutoff(cutoff)
        nd._check_interp(interp)
        if window not in nd.METHODS:
            raise ValueError(f"window must be one of {nd.METHODS}, got {window!r}")
        self.cutoff, self.interp, self.window = cutoff, interp, window
        self._rng = generator(seed)
        self._windows: dict[int, dict[int, tuple[float, float]]] = {}

    def _windows_for(self, n: int) -> dict[int, tuple[float, float]]:
        """{c: (T_min, T_max)} for every c of the range on images of side n (computed once per n)."""
        if n not in self._windows:
            lo, hi = self.c_range
            windows = {}
            for c in range(lo, hi + 1):
                try:
                    windows[c] = nd.temperature_range(n, c, cutoff=self.cutoff, method=self.window)
                except ValueError as exc:
                    raise ValueError(f"c_range={self.c_range!r} is too large for images of side n={n}: {exc}") from exc
            self._windows[n] = windows
        return self._windows[n]

    def draw_parameters(self, n: int) -> tuple[float, float]:
        """(T, c) for one call on images of side n (the larger side)."""
        if self.c_range is None:
            return self.T, self.c
        windows = self._windows_for(n)
        lo, hi = self.c_range
        c = min(int(lo + self._rng.beta(self._ac, self._bc) * (hi + 1 - lo)), hi)
        t_min, t_max = windows[c]
        return t_min + self._rng.beta(self._aT, self._bT) * (t_max - t_min), float(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, c = self.draw_parameters(max(x.shape[-2:]))
        seed = int(self._rng.integers(2**63 - 1))
        return nd.deform(x, T, c, cutoff=self.cutoff, interp=self.interp, seed=seed)
