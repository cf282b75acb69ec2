r"""Graph Laplacian of the n×n pixel grid and its exact eigenbasis (sympy).

Tomasini, Petrini, Cagnetta & Wyart (2022), "How deep convolutional neural networks lose spatial information
with training" (arXiv 2210.01506), measure how much of a 3×3 convolution filter is *low-pass* by projecting it on
the eigenvectors Ψ_λ of the graph Laplacian of the 3×3 grid (4-neighbour graph, free boundary):

    L = Deg - A,    L_ii = number of neighbours of pixel i,    L_ij = -1 if i, j are neighbours.

The grid graph is the Cartesian product of two path graphs P_n, so L = L_P ⊗ I + I ⊗ L_P and its eigenvectors are
outer products of path eigenvectors:

    path P_n:  u_a(i) = cos(π a (i + 1/2) / n) / norm,   μ_a = 2 - 2 cos(π a / n),   a = 0 … n-1,
    grid:      Ψ_{a,b} = u_a ⊗ u_b,                       λ_{a,b} = μ_a + μ_b.

For n = 3:  u_0 = (1,1,1)/√3 (μ = 0),  u_1 = (1,0,-1)/√2 (μ = 1),  u_2 = (1,-2,1)/√6 (μ = 3), so the grid eigenvalues
are 0, 1, 1, 2, 3, 3, 4, 4, 6.  Ψ_0 is the constant filter 1/3 (pure spatial pooling); λ = 1 are the two gradient
filters, λ = 2 the saddle, λ = 3 the two second derivatives, λ = 4 the mixed ones, λ = 6 the checkerboard-like
(1,-2,1)⊗(1,-2,1)/6.  Inside a degenerate eigenspace the basis is arbitrary, so projections are reported summed over
each eigenspace (:func:`eigenspace_projectors`, :func:`filter_spectrum`).

Filter statistic (paper, Sec. on spatial pooling; talk slide "weights become low-pass"):

    c_{t,λ} = < (w_{ch,t} · Ψ_λ)^2 >_ch ,

the mean over all (output, input) channel pairs ch of one layer at training time t, summed over the eigenspace of
λ.  Because {Ψ} is orthonormal, Σ_λ c_{t,λ} = <|w_{ch,t}|²>_ch (Parseval).

Everything returned as sympy is exact; :func:`eigenbasis_array` and :func:`filter_spectrum` give float64 numpy
versions for measurements.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from theory.arguments import check_flag

__all__ = [
    "LaplacianMode",
    "path_laplacian",
    "path_eigenbasis",
    "grid_laplacian",
    "grid_eigenbasis",
    "grid_eigenvalues",
    "eigenspace_projectors",
    "eigenbasis_array",
    "filter_spectrum",
    "check_eigenbasis",
    "path_filter_spectrum",
]


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (side of the grid), got {n!r}")
    return int(n)


def _check_filter_values(w: np.ndarray) -> int:
    """The filter size n of an array of filters (last axis), after checking it is non-empty and finite."""
    n = _check_n(w.shape[-1])
    if w.size == 0:
        raise ValueError("filters must contain at least one filter, got an empty array")
    if not np.all(np.isfinite(w)):
        raise ValueError("filters must be finite (found NaN or inf)")
    return n


def _real_filters(filters) -> np.ndarray:
    """float64 array of the filters (torch tensors via ``.detach().cpu()``); complex filters are rejected (the cast
    would drop their imaginary part)."""
    if hasattr(filters, "detach"):
        filters = filters.detach().cpu().numpy()
    if np.iscomplexobj(filters):
        raise ValueError("filters must be real, got a complex array")
    return np.asarray(filters, dtype=np.float64)


def path_laplacian(n: int = 3) -> sp.Matrix:
    """Laplacian L_P = Deg - A of the path graph with n vertices (free boundary).

    diag (1, 2, …, 2, 1), -1 off-diagonal.
    """
    n = _check_n(n)
    L = sp.zeros(n, n)
    for i in range(n - 1):
        L[i, i + 1] = L[i + 1, i] = -1
        L[i, i] += 1
        L[i + 1, i + 1] += 1
    return L


@lru_cache(maxsize=None)
def path_eigenbasis(n: int = 3) -> tuple[tuple[sp.Expr, sp.Matrix], ...]:
    """Exact orthonormal eigenpairs (μ_a, u_a), a = 0 … n-1, of :func:`path_laplacian`.

    u_a(i) = cos(π a (2i + 1) / (2n)) / sqrt(n / (2 - [a = 0])),   μ_a = 2 - 2 cos(π a / n)   (the DCT-II basis).
    For n = 3 this is (0, (1,1,1)/√3), (1, (1,0,-1)/√2), (3, (1,-2,1)/√6).
    """
    n = _check_n(n)
    pairs = []
    for a in range(n):
        norm = sp.sqrt(sp.Integer(n)) if a == 0 else sp.sqrt(sp.Rational(n, 2))
        u = sp.Matrix([sp.nsimplify(sp.cos(sp.pi * a * (2 * i + 1) / (2 * n))) for i in range(n)]) / norm
        u = u.applyfunc(lambda e: sp.radsimp(sp.simplify(e)))
        mu = sp.simplify(2 - 2 * sp.cos(sp.pi * a / n))
        pairs.append((mu, u))
    return tuple(pairs)


def grid_laplacian(n: int = 3) -> sp.Matrix:
    """Laplacian of the n×n grid graph (4 neighbours, free boundary), pixels flattened row-major (index r·n + c).

    Built from the definition (degree minus adjacency), not from the Kronecker structure.
    """
    n = _check_n(n)
    N = n * n
    L = sp.zeros(N, N)
    for r in range(n):
        for c in range(n):
            i = r * n + c
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                rr, cc = r + dr, c + dc
                if 0 <= rr < n and 0 <= cc < n:
                    L[i, rr * n + cc] = -1
                    L[i, i] += 1
    return L


@dataclass(frozen=True)
class LaplacianMode:
    """One eigenvector Ψ_{a,b} = u_a ⊗ u_b of the grid Laplacian: exact eigenvalue and n×n filter."""

    eigenvalue: sp.Expr
    vector: sp.Matrix  # n×n, Ψ[r, c] = u_a[r] u_b[c]
    index: tuple[int, int]  # (a, b): path modes along rows and columns

    def flat(self) -> sp.Matrix:
        """The mode flattened row-major to an n²-vector (matches :func:`grid_laplacian`)."""
        return self.vector.reshape(self.vector.rows * self.vector.cols, 1)


@lru_cache(maxsize=None)
def grid_eigenbasis(n: int = 3) -> tuple[LaplacianMode, ...]:
    """All n² eigenmodes Ψ_{a,b} = u_a ⊗ u_b with λ_{a,b} = μ_a + μ_b, sorted by (λ, a, b).

    For n = 3 the eigenvalues are 0, 1, 1, 2, 3, 3, 4, 4, 6 and Ψ_{0,0} is the constant filter 1/3.
    """
    path = path_eigenbasis(n)
    modes = []
    for a, (mu_a, u_a) in enumerate(path):
        for b, (mu_b, u_b) in enumerate(path):
            lam = sp.nsimplify(sp.simplify(mu_a + mu_b))
            psi = (u_a * u_b.T).applyfunc(sp.simplify)
            modes.append(LaplacianMode(lam, psi, (a, b)))
    modes.sort(key=lambda m: (float(m.eigenvalue), m.index))
    return tuple(modes)


def grid_eigenvalues(n: int = 3) -> list[tuple[sp.Expr, int]]:
    """Distinct eigenvalues of the n×n grid Laplacian with their multiplicities, ascending.

    n = 3: [(0, 1), (1, 2), (2, 1), (3, 2), (4, 2), (6, 1)].
    """
    out: list[tuple[sp.Expr, int]] = []
    for m in grid_eigenbasis(n):
        if out and sp.simplify(out[-1][0] - m.eigenvalue) == 0:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((m.eigenvalue, 1))
    return out


def eigenspace_projectors(n: int = 3) -> list[tuple[sp.Expr, sp.Matrix]]:
    """Exact orthogonal projector P_λ = Σ_{λ_{a,b} = λ} Ψ_{a,b} Ψ_{a,b}^T (n²×n²) onto each eigenspace.

    Unlike individual eigenvectors inside a degenerate eigenspace, P_λ is basis independent.
    """
    projectors: list[tuple[sp.Expr, sp.Matrix]] = []
    for lam, _ in grid_eigenvalues(n):
        P = sp.zeros(n * n, n * n)
        for m in grid_eigenbasis(n):
            if abs(float(m.eigenvalue - lam)) < 1e-9 and sp.simplify(m.eigenvalue - lam) == 0:
                v = m.flat()
                P += v * v.T
        projectors.append((lam, P.applyfunc(lambda e: sp.radsimp(sp.expand(e)))))
    return projectors


@lru_cache(maxsize=None)
def _eigenbasis_float(n: int) -> tuple[np.ndarray, np.ndarray]:
    modes = grid_eigenbasis(n)
    lam = np.array([float(m.eigenvalue) for m in modes], dtype=np.float64)
    psi = np.array([np.array(m.vector.evalf(17).tolist(), dtype=np.float64) for m in modes])
    lam.setflags(write=False)
    psi.setflags(write=False)
    return lam, psi


def eigenbasis_array(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Float64 version of :func:`grid_eigenbasis`: (λ of shape (n²,), Ψ of shape (n², n, n)), sorted by λ."""
    lam, psi = _eigenbasis_float(_check_n(n))
    return lam.copy(), psi.copy()


def filter_spectrum(filters, *, group: bool = True) -> tuple[np.ndarray, np.ndarray]:
    r"""Laplacian spectrum of a set of square filters: c_λ = < (w_ch · Ψ_λ)^2 >_ch.

    Parameters
    ----------
    filters : real array-like of shape (..., n, n), finite, at least one filter, n >= 2
        Filters of one layer, e.g. a conv weight (C_out, C_in, n, n); the mean runs over all leading axes
        (all channel pairs ch).  A torch tensor is accepted (converted with ``.detach().cpu()``).
    group : bool (True or False)
        If True (default), sum over each degenerate eigenspace and return one value per distinct λ
        (basis independent).  If False, return one value per eigenvector of :func:`eigenbasis_array`.

    Returns
    -------
    (lambdas, c) : float64 arrays of equal length.  Σ c = <|w_ch|²>_ch (Parseval).
    """
    check_flag("group", group)
    w = _real_filters(filters)
    if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"filters must have shape (..., n, n) with square n×n filters, got shape {w.shape}")
    n = _check_filter_values(w)
    lam, psi = _eigenbasis_float(n)
    flat = w.reshape(-1, n * n)
    coeff = flat @ psi.reshape(len(lam), n * n).T  # (n_filters, n²)
    c = np.mean(coeff**2, axis=0)
    if not group:
        return lam.copy(), c
    distinct = np.unique(np.round(lam, 9))
    grouped = np.array([c[np.isclose(lam, d, atol=1e-9)].sum() for d in distinct])
    return distinct.astype(np.float64), grouped


def check_eigenbasis(n: int = 3) -> bool:
    """Exact self-test: L Ψ_{a,b} = λ_{a,b} Ψ_{a,b} for every mode and Ψ^T Ψ = I, with L from :func:`grid_laplacian`.

    Uses sympy arithmetic only (no floating point); returns True or raises AssertionError naming the failing mode.
    """
    L = grid_laplacian(n)
    modes = grid_eigenbasis(n)
    V = sp.Matrix.hstack(*[m.flat() for m in modes])
    for m in modes:
        residual = (L * m.flat() - m.eigenvalue * m.flat()).applyfunc(sp.simplify)
        assert residual == sp.zeros(n * n, 1), f"mode {m.index} is not an eigenvector with eigenvalue {m.eigenvalue}"
    gram = (V.T * V).applyfunc(sp.simplify)
    assert gram == sp.eye(n * n), "eigenbasis is not orthonormal"
    return True


def path_filter_spectrum(filters) -> tuple[np.ndarray, np.ndarray]:
    """1D analogue of :func:`filter_spectrum` for size-n filters of shape (..., n): projection on the path-graph
    eigenvectors u_a (:func:`path_eigenbasis`, non-degenerate), c_μ = < (w_ch · u_μ)^2 >_ch.

    For n = 3: μ = 0 (pooling (1,1,1)/√3), 1 (gradient (1,0,-1)/√2), 3 (curvature (1,-2,1)/√6).
    """
    w = _real_filters(filters)
    if w.ndim < 1:
        raise ValueError(f"filters must have shape (..., n), got shape {w.shape}")
    n = _check_filter_values(w)
    pairs = path_eigenbasis(n)
    mu = np.array([float(m) for m, _ in pairs])
    U = np.array([np.array(u.evalf(17), dtype=np.float64).ravel() for _, u in pairs])
    c = np.mean((w.reshape(-1, n) @ U.T) ** 2, axis=0)
    return mu, c
