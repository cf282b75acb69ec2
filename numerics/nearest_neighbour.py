r"""Nearest-neighbour distances and nearest-neighbour regression of P uniform points in :math:`[0,1]^d` (numba).

Monte-Carlo side of the curse of dimensionality (:mod:`theory.dimension`; Petrini et al., NeurIPS 2021,
introduction): the gap between P random points is :math:`l = P^{-1/d}`, so nearest-neighbour regression of a
Lipschitz target has error :math:`\varepsilon \sim P^{-1/d}` (mean absolute) or :math:`P^{-2/d}` (mean squared).

* :func:`nn_distances` / :func:`nearest_neighbours`: brute-force nearest neighbours (``O(P Q d)``, numba,
  parallel over query points), on the flat torus (``periodic=True``: coordinate differences wrapped to
  :math:`\min(|z|, 1-|z|)`) or in the cube, with the L∞ (``"chebyshev"``) or L2 (``"euclidean"``) metric;
* :func:`simulate_nn_distance`: :math:`\mathbb E[r_{NN}^k]` over independent configurations of P points,
  with its standard error (the P distances of one configuration are correlated, so the s.e. is taken across
  configurations);
* :func:`nn_regression_error`: test error of :math:`\hat f(x) = f^*(x_{NN(x)})`;
* :func:`learning_curve`: the error at each P and its exponent, fitted by :func:`numerics.fitting.fit_power_law`
  (weighted by the standard errors, normal interval).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from numba import njit, prange

from numerics.fitting import PowerLawFit, fit_power_law
from numerics.seeds import generator
from theory.arguments import check_flag, check_int

__all__ = [
    "MCEstimate",
    "uniform_points",
    "nearest_neighbours",
    "nn_distances",
    "simulate_nn_distance",
    "sine_target",
    "nn_regression_error",
    "learning_curve",
]

METRICS = {"chebyshev": 0, "euclidean": 1}
LOSSES = ("abs", "squared")


@dataclass(frozen=True)
class MCEstimate:
    """Monte-Carlo mean with its standard error over ``n`` independent replicates."""

    mean: float
    se: float
    n: int


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
def _metric(metric: str) -> int:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {tuple(METRICS)}, got {metric!r}")
    return METRICS[metric]


def _check_points(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with d >= 1, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    if np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"{name} must lie in [0, 1]^d")
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _dist(a, b, periodic, metric):  # pragma: no cover - compiled
    """L∞ distance or squared L2 distance between rows a, b (wrapped on the torus if periodic)."""
    acc = 0.0
    for k in range(a.shape[0]):
        z = abs(a[k] - b[k])
        if periodic and z > 0.5:
            z = 1.0 - z
        if metric == 0:
            if z > acc:
                acc = z
        else:
            acc += z * z
    return acc


@njit(cache=True, parallel=True)
def _nn_query(train, query, periodic, metric, exclude_self):  # pragma: no cover - compiled
    Q = query.shape[0]
    idx = np.empty(Q, dtype=np.int64)
    dist = np.empty(Q, dtype=np.float64)
    for q in prange(Q):
        best = np.inf
        bi = -1
        for i in range(train.shape[0]):
            if exclude_self and i == q:
                continue
            v = _dist(query[q], train[i], periodic, metric)
            if v < best:
                best = v
                bi = i
        idx[q] = bi
        dist[q] = best if metric == 0 else math.sqrt(best)
    return idx, dist


@njit(cache=True, parallel=True)
def _config_moments(pts, k, periodic, metric):  # pragma: no cover - compiled
    """pts: (n_configs, P, d). Mean over the P points of r_NN^k, per configuration."""
    n, P = pts.shape[0], pts.shape[1]
    out = np.empty(n, dtype=np.float64)
    for c in prange(n):
        s = 0.0
        for q in range(P):
            best = np.inf
            for i in range(P):
                if i != q:
                    v = _dist(pts[c, q], pts[c, i], periodic, metric)
                    if v < best:
                        best = v
            r = best if metric == 0 else math.sqrt(best)
            s += r**k
        out[c] = s / P
    return out


# ----------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------
def uniform_points(n: int, d: int, seed: Any = None) -> np.ndarray:
    """``n`` i.i.d. uniform points in :math:`[0,1)^d`, shape (n, d)."""
    n, d = check_int(n, "n", 1), check_int(d, "d", 1)
    return generator(seed).random((n, d))


def nearest_neighbours(train: Any, query: Any, *, metric: str = "euclidean",
                       periodic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Index in ``train`` (n >= 1 points) and distance of the nearest training point of every query point
    (brute force)."""
    tr, qu = _check_points(train, "train"), _check_points(query, "query")
    if tr.shape[0] < 1:
        raise ValueError(f"train must hold at least 1 point, got shape {tr.shape}")
    if tr.shape[1] != qu.shape[1]:
        raise ValueError(f"train and query must have the same dimension d, got {tr.shape[1]} and {qu.shape[1]}")
    return _nn_query(tr, qu, check_flag("periodic", periodic), _metric(metric), False)


def nn_distances(points: Any, *, metric: str = "chebyshev", periodic: bool = True) -> np.ndarray:
    r"""Distance :math:`r_{NN}` of each point to the nearest *other* point, shape (P,)."""
    pts = _check_points(points, "points")
    if pts.shape[0] < 2:
        raise ValueError(f"points must hold P >= 2 points, got {pts.shape[0]}")
    return _nn_query(pts, pts, check_flag("periodic", periodic), _metric(metric), True)[1]


def simulate_nn_distance(P: int, d: int, *, n_configs: int = 1000, moment: float = 1.0,
                         metric: str = "chebyshev", periodic: bool = True, seed: Any = None,
                         block: int = 1 << 20) -> MCEstimate:
    r"""Monte-Carlo :math:`\mathbb E[r_{NN}^k]` (k = ``moment``) for P uniform points in :math:`[0,1]^d`:
    per configuration the mean over its P points, then mean and s.e. over ``n_configs`` independent
    configurations (generated in blocks of about ``block`` >= 1 numbers to bound memory)."""
    P, d = check_int(P, "P", 2), check_int(d, "d", 1)
    n_configs, block = check_int(n_configs, "n_configs", 2), check_int(block, "block", 1)
    if isinstance(moment, bool) or not (isinstance(moment, numbers.Real) and moment > 0 and math.isfinite(moment)):
        raise ValueError(f"moment must be a positive finite number, got {moment!r}")
    m, periodic = _metric(metric), check_flag("periodic", periodic)
    rng = generator(seed)
    per = max(1, block // (P * d))
    vals = []
    for start in range(0, n_configs, per):
        n = min(per, n_configs - start)
        vals.append(_config_moments(rng.random((n, P, d)), float(moment), periodic, m))
    v = np.concatenate(vals)
    return MCEstimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)), int(v.size))


def sine_target(x: np.ndarray) -> np.ndarray:
    r"""Smooth periodic 1-Lipschitz (per coordinate) target :math:`f^*(x) = \sum_k \sin(2\pi x_k)/(2\pi)`."""
    return np.sin(2 * np.pi * x).sum(axis=1) / (2 * np.pi)


def nn_regression_error(P: int, d: int, *, target: Callable[[np.ndarray], np.ndarray] = sine_target,
                        loss: str = "abs", n_test: int = 1000, n_configs: int = 10, metric: str = "euclidean",
                        periodic: bool = True, seed: Any = None) -> MCEstimate:
    r"""Test error of nearest-neighbour regression :math:`\hat f(x) = f^*(x_{NN(x)})` trained on P uniform
    points: :math:`\langle|\hat f - f^*|\rangle` (``loss="abs"``) or :math:`\langle|\hat f - f^*|^2\rangle`
    (``"squared"``) over ``n_test`` uniform test points, averaged over ``n_configs`` independent training
    sets (s.e. across them). ``target``: vectorised Lipschitz function (n, d) -> (n,) with finite values; it
    should be periodic when ``periodic=True``."""
    P, d = check_int(P, "P", 2), check_int(d, "d", 1)
    n_test, n_configs = check_int(n_test, "n_test", 1), check_int(n_configs, "n_configs", 2)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    m, periodic = _metric(metric), check_flag("periodic", periodic)
    rng = generator(seed)
    errs = np.empty(n_configs)
    for c in range(n_configs):
        tr, te = rng.random((P, d)), rng.random((n_test, d))
        idx, _ = _nn_query(tr, te, periodic, m, False)
        ytr, yte = np.asarray(target(tr), dtype=np.float64), np.asarray(target(te), dtype=np.float64)
        if ytr.shape != (P,) or yte.shape != (n_test,):
            raise ValueError(f"target must map (n, d) to (n,), got shapes {ytr.shape} and {yte.shape}")
        if not (np.all(np.isfinite(ytr)) and np.all(np.isfinite(yte))):
            raise ValueError("target returned non-finite values (nan or inf)")
        e = np.abs(ytr[idx] - yte)
        errs[c] = np.mean(e if loss == "abs" else e * e)
    return MCEstimate(float(errs.mean()), float(errs.std(ddof=1) / math.sqrt(n_configs)), n_configs)


def learning_curve(d: int, P_values: Sequence[int], *, loss: str = "abs", seed: Any = None,
                   **kwargs: Any) -> tuple[list[MCEstimate], PowerLawFit]:
    """:func:`nn_regression_error` at each P and the fitted exponent (compare with ``theory.dimension``'s
    :math:`\\beta = 1/d` or 2/d)."""
    rng = generator(seed)
    ests = [nn_regression_error(int(p), d, loss=loss, seed=rng, **kwargs) for p in P_values]
    return ests, fit_power_law(P_values, [e.mean for e in ests], [e.se for e in ests], interval="z")
