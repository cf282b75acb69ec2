r"""One call for the perturbations of a stability curve: deformed and matched-noise batches over a set of (c, T).

The authors' ``diffeo_imgs(imgs, cuts, interp, Ta=2, Tb=2, nT=30, delta=1)`` (``leonardopetrini/diffeo-sota``,
``results/utils.py``) builds, for every cut-off ``c`` in ``cuts``, ``nT`` temperatures log-spaced over
:math:`[T_{\min}/T_a,\ T_{\max} T_b]` (their ``temperature_range(n, c)``, the paper's formulas), deforms every image
once per temperature, and draws for each deformed batch a fresh Gaussian noise of the same norm, image by image
(:math:`|\eta_i| = |\tau x_i - x_i|`); with ``nT = 1`` it uses instead the single temperature of typical
displacement ``delta`` at each cut-off, :math:`T = 4\delta^2/(\pi n^2\ln c)`.  :func:`temperature_sweep` does the
same with this package's pieces -- :func:`numerics.diffeo.deform`, :func:`numerics.diffeo.temperature_range`,
:func:`numerics.diffeo.temperature_for_displacement`, :func:`numerics.stability.matched_noise` -- seeded and
reproducible, and returns each point's (c, T, delta) with its batches.

Differences kept on purpose (docs/reference-conventions.md): the temperature formulas default to the paper's
(``method="paper"``, as the authors) but ``method="exact"`` uses the exact lattice sums; when the authors'
interpolation is not bilinear they also replace the clean images by their interpolated copy at T = 0 (a Gaussian
smoothing with ``interp="gaussian"``) before adding noise -- here the clean images are used as given (apply
:func:`numerics.diffeo.remap` with zero fields first to reproduce that).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from numerics.diffeo import deform, temperature_for_displacement, temperature_range, typical_displacement
from numerics.seeds import generator
from numerics.stability import matched_noise

__all__ = ["SweepPoint", "temperature_sweep"]


@dataclass(frozen=True)
class SweepPoint:
    r"""One point of :func:`temperature_sweep`: cut-off ``c``, temperature ``T``, the typical displacement ``delta``
    (pixels, rms at the image centre) by the sweep's ``method`` and ``delta_exact`` (exact lattice sum, what the
    fields do), the deformed batch ``x_diffeo`` and the noisy batch ``x_noise = x + eta`` with
    :math:`|\eta_i| = |\tau x_i - x_i|` (or the rms norm with ``noise="mean"``); arrays or tensors like ``x``."""

    c: float
    T: float
    delta: float
    delta_exact: float
    x_diffeo: Any
    x_noise: Any

    def as_dict(self) -> dict:
        """(c, T, delta, delta_exact) as a JSON-serialisable dict (the batches are left out)."""
        return {"c": self.c, "T": self.T, "delta": self.delta, "delta_exact": self.delta_exact}


def _positive(v: Any, name: str, low: float, strict: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) \
            or (v <= low if strict else v < low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {v!r}")
    return float(v)


def _sizes(x: Any) -> Any:
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    if len(shape) < 3:
        raise ValueError(f"x must have shape (B, [C...,] H, W), got {shape}")
    H, W = shape[-2], shape[-1]
    return H if H == W else (H, W)


def temperature_sweep(x: Any, cs: Sequence[float], *, n_T: int = 30, T_below: float = 2.0, T_above: float = 2.0,
                      temperatures: Sequence[float] | None = None, delta: float | None = None,
                      method: str = "paper", cutoff: str = "code", interp: str = "linear",
                      noise: str = "per_sample", seed: Any = None) -> list[SweepPoint]:
    r"""Deformed and matched-noise batches of ``x`` at every (c, T) of a sweep, in one call.

    Parameters
    ----------
    x : array or tensor (B, [C...,] H, W): the clean images (one independent diffeo per image and per point).
    cs : cut-offs c (each as accepted by :func:`numerics.diffeo.deform`; c > 1 for ``method="paper"``).
    n_T, T_below, T_above : the default temperature grid at each c, ``n_T`` values log-spaced from
        :math:`T_{\min}/T_{below}` to :math:`T_{\max}\,T_{above}` with :math:`(T_{\min}, T_{\max})` =
        ``temperature_range(n, c, cutoff=cutoff, method=method)`` (the authors' ``nT = 30, Ta = Tb = 2``).
    temperatures : explicit temperatures, the same at every c (instead of the grid).
    delta : one temperature per c, that of typical displacement ``delta`` pixels
        (``temperature_for_displacement(delta, c, n, method=method)``; the authors' ``nT = 1`` path, delta = 1).
    method : ``"paper"`` (the authors' formulas, default), ``"exact"`` or ``"asymptotic"`` (:mod:`numerics.diffeo`).
    cutoff, interp : passed to :func:`numerics.diffeo.deform` (``interp="gaussian"`` is the authors' Gaussian
        interpolation of issue 12, where available).
    noise : ``"per_sample"`` (:math:`|\eta_i| = |\tau x_i - x_i|`, the authors') or ``"mean"``
        (:func:`numerics.stability.matched_noise`).
    seed : None, an int >= 0 or a numpy Generator.  Two seeds are drawn from it per point, in sweep order (c
        major, then T): one for the fields, one for the noise; the same seed gives the same batches.

    Returns
    -------
    list of :class:`SweepPoint`, c-major, temperatures ascending within a c (as given for ``temperatures``).
    ``ValueError`` for contradictory or invalid options (naming the argument).
    """
    if temperatures is not None and delta is not None:
        raise ValueError("temperatures must be None when delta is given (one temperature per c at that delta)")
    if isinstance(cs, (str, bytes)) or not np.iterable(cs) or len(list(cs)) == 0:
        raise ValueError(f"cs must be a non-empty sequence of cut-offs, got {cs!r}")
    cs = list(cs)
    n = _sizes(x)
    if temperatures is None and delta is None:
        if isinstance(n_T, bool) or not isinstance(n_T, (int, np.integer)) or n_T < 1:
            raise ValueError(f"n_T must be an integer >= 1, got {n_T!r}")
        T_below = _positive(T_below, "T_below", 0.0)
        T_above = _positive(T_above, "T_above", 0.0)
        for name, v in (("T_below", T_below), ("T_above", T_above)):  # the grid ends must stay finite and > 0
            if not 1e-6 <= v <= 1e6:
                raise ValueError(f"{name} must be a factor in [1e-6, 1e6] (the grid spans T_min / T_below .. "
                                 f"T_max * T_above), got {v!r}")
    if delta is not None:
        delta = _positive(delta, "delta", 0.0)
    if temperatures is not None:
        if isinstance(temperatures, (str, bytes)) or not np.iterable(temperatures) or len(list(temperatures)) == 0:
            raise ValueError(f"temperatures must be a non-empty sequence of numbers > 0, got {temperatures!r}")
        temperatures = [_positive(T, "temperatures", 0.0) for T in temperatures]
    rng = generator(seed)
    points = []
    for c in cs:
        if delta is not None:
            Ts = [temperature_for_displacement(delta, c, n, cutoff=cutoff, method=method)]
        elif temperatures is not None:
            Ts = temperatures
        else:
            lo, hi = temperature_range(n, c, cutoff=cutoff, method=method)
            Ts = list(np.logspace(math.log10(lo / T_below), math.log10(hi * T_above), int(n_T)))
        for T in Ts:
            s_diffeo, s_noise = (int(v) for v in rng.integers(0, 2 ** 63 - 1, size=2))
            xd = deform(x, float(T), c, cutoff=cutoff, interp=interp, seed=s_diffeo)
            eta = matched_noise(x, xd, noise=noise, seed=s_noise)
            d = typical_displacement(float(T), c, n, cutoff=cutoff, method=method if isinstance(n, int) else "exact")
            d_ex = typical_displacement(float(T), c, n, cutoff=cutoff, method="exact")
            points.append(SweepPoint(c=float(c), T=float(T), delta=float(d), delta_exact=float(d_ex), x_diffeo=xd,
                                     x_noise=x + eta))
    return points
