r"""Feature-regime limit and sparsification of a one-hidden-layer ReLU network (Petrini et al. 2022).

* :func:`min_l1_interpolant`: the ``lambda -> 0+`` limit of L1-regularised training (the paper's feature-regime
  proxy), i.e. the minimum-variation-norm interpolant over a dictionary of neuron directions ``theta_j``:

  .. math:: \min_c \sum_j |c_j| \quad\text{s.t.}\quad \sum_j c_j\, \sigma(\theta_j\cdot u_\mu) = y_\mu,\ \mu=1..P,

  solved as a linear programme by a dense primal-dual (Mehrotra predictor-corrector) interior-point method whose
  normal equations ``Phi diag(d) Phi^T`` are formed with BLAS, followed by a crossover to a vertex (a basic
  solution has at most ``P`` non-zero atoms).
* :func:`count_atoms`: atoms = groups of neurons with the same ReLU sign pattern on the training set (the paper's
  ``counting_atoms``), or, without data, single-linkage clusters of directions within an angle; the atom weight is
  ``|sum_{i in atom} c_i|``; atoms lighter than ``rel_tol`` times the heaviest are not counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_factor, cho_solve, LinAlgError

from numerics.seeds import generator
from numerics.torch_optional import is_tensor, loaded_torch
from theory.arguments import ArgumentTypeError

__all__ = ["L1Solution", "min_l1_interpolant", "AtomCount", "count_atoms", "relu_features"]


def _real(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))


def _array(v, name: str, ndim: int) -> np.ndarray:
    """``v`` as a finite float array with ``ndim`` dimensions, else an error naming ``name`` (a TypeError, also a
    ValueError, for something that is not a real array). A torch tensor is detached and copied to the host (one that
    requires grad used to fail inside ``numpy()``)."""
    t = loaded_torch()
    if is_tensor(v):
        if v.is_complex() or not (v.is_floating_point() or v.dtype in (t.int8, t.int16, t.int32, t.int64, t.uint8)):
            raise ArgumentTypeError(name, f"{name} must be a real {ndim}-d array, got a tensor of dtype {v.dtype}")
        v = v.detach().to("cpu", t.float64).numpy()
    if isinstance(v, (str, bytes, dict, set)) or v is None:
        raise ArgumentTypeError(name, f"{name} must be a finite {ndim}-d array, got {type(v).__name__}")
    if np.iscomplexobj(v):
        raise ArgumentTypeError(name, f"{name} must be a real {ndim}-d array, got a complex array")
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentTypeError(name, f"{name} must be a finite {ndim}-d array, got {type(v).__name__}") from None
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a finite {ndim}-d array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def relu_features(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``Phi[mu, j] = sigma(theta_j . x_mu)`` for ``x`` (P, d) and ``directions`` (M, d)."""
    x, directions = _array(x, "x", 2), _array(directions, "directions", 2)
    if directions.shape[1] != x.shape[1]:
        raise ValueError(f"directions must be (M, {x.shape[1]}) like x, got {directions.shape}")
    return np.maximum(x @ directions.T, 0.0)


@dataclass(frozen=True)
class L1Solution:
    coef: np.ndarray = field(repr=False)        # (M,) weights of the dictionary directions
    directions: np.ndarray = field(repr=False)  # (M, D)
    l1: float                                   # sum |coef|
    residual: float                             # max |Phi c - y|
    iterations: int
    vertex: bool                                # True when the crossover produced a basic solution
    gap: float                                  # relative primal-dual gap at the end of the IPM

    @property
    def support(self) -> np.ndarray:
        return np.flatnonzero(self.coef)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        s = self.support
        return relu_features(x, self.directions[s]) @ self.coef[s]


def _ipm(Phi: np.ndarray, b: np.ndarray, tol: float, maxit: int):
    """Mehrotra predictor-corrector for min 1.(x1 + x2) s.t. Phi (x1 - x2) = b, x >= 0 (dual: max b.y,
    |Phi^T y| <= 1).  Returns (c, y, iterations, relative gap)."""
    n, M = Phi.shape
    x1 = np.ones(M); x2 = np.ones(M); z1 = np.ones(M); z2 = np.ones(M); y = np.zeros(n)
    bn = 1.0 + np.linalg.norm(b)
    best = (None, None, math.inf)
    it = 0
    for it in range(1, maxit + 1):
        rp = b - Phi @ (x1 - x2)
        aty = Phi.T @ y
        rd1 = 1.0 - aty - z1
        rd2 = 1.0 + aty - z2
        mu = (x1 @ z1 + x2 @ z2) / (2 * M)
        pobj = x1.sum() + x2.sum()
        gap = abs(pobj - b @ y) / (1.0 + abs(pobj))
        err = max(np.linalg.norm(rp) / bn, np.abs(rd1).max(), np.abs(rd2).max(), gap)
        if err < best[2]:
            best = (x1 - x2, y.copy(), err)
        if err < tol:
            break
        d1 = x1 / z1
        d2 = x2 / z2
        N = (Phi * (d1 + d2)) @ Phi.T
        N[np.diag_indices(n)] += 1e-14 * np.trace(N) / n
        try:
            L = cho_factor(N, lower=True, check_finite=False)
        except LinAlgError:
            break

        def newton(rc1, rc2):
            v = (rc1 / z1 - d1 * rd1) - (rc2 / z2 - d2 * rd2)
            dy = cho_solve(L, rp - Phi @ v, check_finite=False)
            at = Phi.T @ dy
            dz1 = rd1 - at
            dz2 = rd2 + at
            return (rc1 - x1 * dz1) / z1, (rc2 - x2 * dz2) / z2, dy, dz1, dz2

        def maxstep(v, dv):
            m = dv < 0
            return min(1.0, float(np.min(-v[m] / dv[m]))) if m.any() else 1.0

        a = newton(-x1 * z1, -x2 * z2)
        ap = min(maxstep(x1, a[0]), maxstep(x2, a[1]))
        ad = min(maxstep(z1, a[3]), maxstep(z2, a[4]))
        mu_aff = ((x1 + ap * a[0]) @ (z1 + ad * a[3]) + (x2 + ap * a[1]) @ (z2 + ad * a[4])) / (2 * M)
        sig = (mu_aff / mu) ** 3
        c = newton(sig * mu - x1 * z1 - a[0] * a[3], sig * mu - x2 * z2 - a[1] * a[4])
        ap = 0.995 * min(maxstep(x1, c[0]), maxstep(x2, c[1]))
        ad = 0.995 * min(maxstep(z1, c[3]), maxstep(z2, c[4]))
        x1 += ap * c[0]; x2 += ap * c[1]; y += ad * c[2]; z1 += ad * c[3]; z2 += ad * c[4]
    pobj = x1.sum() + x2.sum()
    gap = abs(pobj - b @ y) / (1.0 + abs(pobj))
    cvec, yv, _ = best
    return cvec, yv, it, gap


def _dual_oracle(x: np.ndarray, lam: np.ndarray, starts: np.ndarray, steps: int = 80, lr: float = 0.3):
    """Projected gradient ascent on S^{D-1} of ``|sum_mu lam_mu sigma(theta . x_mu)|`` (the dual constraint) from
    each start; returns the end points and their constraint values."""
    th = starts.copy()
    for _ in range(steps):
        z = x @ th.T
        v = np.maximum(z, 0.0).T @ lam
        g = ((z > 0) * lam[:, None]).T @ x * np.sign(v)[:, None]
        g -= np.sum(g * th, axis=1, keepdims=True) * th
        th = th + lr * g / (np.abs(v).max() + 1e-300)
        th /= np.linalg.norm(th, axis=1, keepdims=True)
    return th, np.abs(np.maximum(x @ th.T, 0.0).T @ lam)


def _dedupe(new: np.ndarray, old: np.ndarray, cos_tol: float = 1e-7) -> np.ndarray:
    """Drop unit vectors of ``new`` within angle ~sqrt(2 cos_tol) of ``old`` or of an earlier row of ``new``
    (duplicate columns make the LP degenerate)."""
    out = []
    ref = old
    for v in new:
        if ref.shape[0] == 0 or np.max(ref @ v) < 1 - cos_tol:
            out.append(v)
            ref = np.vstack([ref, v[None]])
    return np.array(out).reshape(-1, new.shape[1])


def min_l1_interpolant(x: np.ndarray, y: np.ndarray, directions: np.ndarray, *, tol: float = 1e-9,
                       max_iter: int = 60, refine: int = 0, seed=None) -> L1Solution:
    """Minimum-L1 interpolant ``f(x) = sum_j c_j sigma(theta_j . x)`` over the dictionary ``directions`` (M, d).

    Interior point to relative accuracy ``tol`` (residuals and duality gap), then crossover: keep the ``P``
    heaviest atoms, solve the square system exactly and accept it if its L1 norm exceeds the IPM optimum by at most
    ``1e-6`` relative (it is then a basic optimal vertex).  Requires ``M >= P``.

    ``refine > 0``: up to ``refine`` rounds of column generation towards the *continuous* problem (directions
    anywhere on the sphere, as for an L1-trained network whose neurons move): the dual solution ``lam`` certifies
    optimality over all of S^{D-1} iff ``max_theta |sum_mu lam_mu sigma(theta.x_mu)| <= 1``; directions violating it
    (found by projected gradient ascent from the current atoms and ``P`` random points) are added and the LP
    re-solved.  Stops when the violation is below ``1e-4``.  Nearly coincident columns can make the refined LP
    degenerate, so the result may not be a vertex (``vertex=False``); count its atoms by sign pattern
    (:func:`count_atoms` with ``x``), which merges them.
    """
    x, y, directions = _array(x, "x", 2), _array(y, "y", 1), _array(directions, "directions", 2)
    if x.shape[0] < 1:
        raise ValueError(f"x must hold at least one point, got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape (P,) = ({x.shape[0]},), got {y.shape}")
    if directions.shape[1] != x.shape[1]:
        raise ValueError(f"directions must be (M, {x.shape[1]}), got {directions.shape}")
    P, M = x.shape[0], directions.shape[0]
    if M < P:
        raise ValueError(f"directions must hold at least P = {P} rows (the dictionary needs M >= P), got M = {M}")
    if not (_real(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    for name, v, lo in (("max_iter", max_iter, 1), ("refine", refine, 0)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    rng = generator(seed)  # validated up front, used by the refinement only
    Phi = relu_features(x, directions)
    c, lam, it, gap = _ipm(Phi, y, tol, max_iter)
    if refine:
        for _ in range(int(refine)):
            keep = np.abs(c) > 1e-8 * np.abs(c).max()
            g = rng.standard_normal((P, x.shape[1]))
            th, v = _dual_oracle(x, lam, np.vstack([directions[keep], g / np.linalg.norm(g, axis=1, keepdims=True)]))
            if v.max() < 1 + 1e-4:
                break
            new = _dedupe(th[v > 1 + 1e-4], directions[keep])
            g = rng.standard_normal((P, x.shape[1]))
            directions = np.vstack([directions[keep], new, g / np.linalg.norm(g, axis=1, keepdims=True)])
            M = directions.shape[0]
            Phi = relu_features(x, directions)
            c, lam, it2, gap = _ipm(Phi, y, tol, max_iter)
            it += it2
    l1_ipm = float(np.abs(c).sum())
    vertex = False
    B = np.argsort(-np.abs(c))[:P]
    try:
        cB = np.linalg.solve(Phi[:, B], y)
        if np.all(np.isfinite(cB)) and np.abs(cB).sum() <= l1_ipm * (1 + 1e-6) + 1e-12:
            c = np.zeros(M)
            c[B] = cB
            vertex = True
    except np.linalg.LinAlgError:
        pass
    if not vertex:  # drop numerically-zero weights of the interior solution
        c = np.where(np.abs(c) > 1e-9 * np.abs(c).max(), c, 0.0)
    res = float(np.abs(Phi @ c - y).max())
    scale = max(float(np.abs(y).max()), 1e-300)
    if not (np.all(np.isfinite(c)) and res <= 1e-6 * scale + 1e-12):
        raise ValueError(
            f"min_l1_interpolant: no interpolant exists (max residual {res:.3g} for labels of size {scale:.3g}): the "
            "labels contradict each other on repeated or ReLU-equivalent points, or the features relu(x . directions) "
            "vanish (e.g. an all-zero dictionary); deduplicate the points or use other directions")
    return L1Solution(coef=c, directions=directions, l1=float(np.abs(c).sum()), residual=res, iterations=it,
                      vertex=vertex, gap=float(gap))


@dataclass(frozen=True)
class AtomCount:
    n_atoms: int                                # atoms heavier than rel_tol * heaviest
    n_effective: float                          # participation ratio (sum m)^2 / sum m^2 of atom weights
    labels: np.ndarray = field(repr=False)      # (h,) atom index of each neuron
    weights: np.ndarray = field(repr=False)     # (n_groups,) |sum of neuron weights| per group
    method: str = "sign"

    def as_dict(self) -> dict:
        return {"n_atoms": self.n_atoms, "n_effective": self.n_effective, "method": self.method}


def count_atoms(directions: np.ndarray, weights: np.ndarray, *, x: np.ndarray | None = None,
                angle: float = 0.05, rel_tol: float = 1e-3) -> AtomCount:
    r"""Count the atoms of the neuron measure ``sum_i weights_i delta_{directions_i}``.

    ``directions``: (h, D) first-layer vectors (any norm); ``weights``: (h,) the neuron's output scale (for
    ``beta_i sigma(w_i.u)`` use ``beta_i |w_i|``, sigma being 1-homogeneous).  With ``x`` (P, D): neurons with the
    same sign pattern ``sign(w_i . x_mu)`` form one atom (Petrini et al. 2022).  Without ``x``: single-linkage
    clustering of the unit directions at angular distance ``< angle`` (radians).
    """
    W, c = _array(directions, "directions", 2), _array(weights, "weights", 1)
    if W.shape[0] < 1:
        raise ValueError(f"directions must have at least one row, got shape {W.shape}")
    if c.shape != (W.shape[0],):
        raise ValueError(f"weights must have shape (h,) = ({W.shape[0]},), got {c.shape}")
    if not (_real(rel_tol) and 0 < rel_tol < 1):
        raise ValueError(f"rel_tol must be in (0, 1), got {rel_tol!r}")
    if x is not None:
        x = _array(x, "x", 2)
        if x.shape[1] != W.shape[1]:
            raise ValueError(f"x must be (P, {W.shape[1]}), got {x.shape}")
        pat = np.packbits((W @ x.T) > 0, axis=1)
        _, labels = np.unique(pat, axis=0, return_inverse=True)
        method = "sign"
    else:
        if not (_real(angle) and 0 < angle < math.pi):
            raise ValueError(f"angle must be in (0, pi), got {angle!r}")
        from scipy.cluster.hierarchy import fcluster, linkage
        U = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-300)
        if U.shape[0] == 1:
            labels = np.zeros(1, dtype=int)
        else:
            Z = linkage(U, method="single", metric="euclidean")
            labels = fcluster(Z, t=2 * math.sin(angle / 2), criterion="distance") - 1
        method = "angle"
    labels = np.asarray(labels).ravel()
    m = np.abs(np.bincount(labels, weights=c))
    top = m.max() if m.size else 0.0
    n = int(np.sum(m > rel_tol * top)) if top > 0 else 0
    neff = float(m.sum() ** 2 / np.sum(m**2)) if top > 0 else 0.0
    return AtomCount(n_atoms=n, n_effective=neff, labels=labels, weights=m, method=method)
