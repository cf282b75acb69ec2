r"""Random rotations by a fixed angle in uniformly random 2-planes of :math:`\mathbb R^d`.

Used for the rotation stability of Petrini, Cagnetta, Vanden-Eijnden, Wyart, "Learning sparse features can lead to
overfitting in neural networks" (NeurIPS 2022):  :math:`S = \langle |f(x) - f(R_\theta x)|^2\rangle_{x,\theta}`
for inputs on the sphere :math:`S^{d-1}` (see :func:`numerics.stability.rotation_stability`).

Construction. Draw :math:`g_1, g_2 \sim \mathcal N(0, I_d)` and orthonormalise them (Gram-Schmidt):
:math:`u = g_1/|g_1|`, :math:`v = (g_2 - (u\cdot g_2)u)/|\cdot|`. The plane :math:`\mathrm{span}(u, v)` is then
uniform on the Grassmannian :math:`G(2, d)` (the law of two Gaussian vectors is O(d)-invariant). The rotation
turns :math:`u` towards :math:`v` by the angle :math:`\theta` and fixes the orthogonal complement:

.. math::  R_\theta = I + (\cos\theta - 1)(uu^\top + vv^\top) + \sin\theta\,(vu^\top - uv^\top).

Applied to a vector with in-plane coordinates :math:`p_u = u\cdot x,\ p_v = v\cdot x`:

.. math::  R_\theta x = x + (\cos\theta - 1)(p_u u + p_v v) + \sin\theta\,(p_u v - p_v u),

which costs :math:`O(d)` per sample (no :math:`d\times d` matrix). Facts used by the tests:
:math:`R_\theta^\top R_\theta = I`, :math:`\det R_\theta = 1`, :math:`\mathrm{tr} R_\theta = d - 2 + 2\cos\theta`,
:math:`|R_\theta x - x| = 2\sin(\theta/2)\,|\Pi x|` with :math:`\Pi = uu^\top + vv^\top` the projector on the
plane (so :math:`|R_\theta x - x| \le 2\sin(\theta/2)|x|`), :math:`\mathbb E[\Pi] = (2/d) I`, and for a fixed
unit x, :math:`|\Pi x|^2 \sim \mathrm{Beta}(1, (d-2)/2)` (the law of :math:`y_1^2 + y_2^2` for y uniform on
:math:`S^{d-1}`), so :math:`\mathbb E[\Pi_{kk}^2] = 8/(d(d+2))`.

Closed form for a linear map (derived here, checked against Monte Carlo in ``tests/test_rotations.py``): for
:math:`f(x) = Wx` and :math:`x` uniform on :math:`S^{d-1}` independent of the plane,
:math:`(R_\theta - I)(R_\theta - I)^\top = 2(1 - \cos\theta)\,\Pi` and :math:`\mathbb E[xx^\top] = I/d`, so

.. math::  S = \frac{2(1-\cos\theta)}{d}\,\mathbb E\,\mathrm{tr}(W\Pi W^\top)
             = \frac{4(1-\cos\theta)}{d^2}\,\|W\|_F^2 .
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from numerics.seeds import generator
from numerics.torch_optional import is_tensor, loaded_torch
from theory.arguments import ArgumentTypeError, check_memory

__all__ = [
    "random_planes",
    "rotate",
    "rotation_matrices",
    "random_rotations",
    "geodesic_rotate",
    "linear_rotation_sensitivity",
]


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return int(value)


ORTHONORMAL_TOL = 1e-8  # max ||u_i| - 1|, ||v_i| - 1|, |u_i . v_i| accepted by rotate / rotation_matrices


def _check_theta(theta: Any, n: int | None = None) -> np.ndarray | float:
    """θ must be finite and in [0, π]; one angle per sample (shape (n,)) or a scalar (the only form when
    n is None)."""
    t = loaded_torch()
    if is_tensor(theta):  # its values (also when it requires grad)
        theta = theta.detach().to("cpu", t.float64).numpy() if not theta.is_complex() else theta.detach().numpy()
    if np.iscomplexobj(theta) or isinstance(theta, (str, bytes)) or theta is None:
        raise ArgumentTypeError("theta", f"theta must be a real number in [0, pi], got {type(theta).__name__}")
    try:
        arr = np.asarray(theta, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"theta must be a real number in [0, pi], got {theta!r}") from None
    if arr.ndim > 1 or (arr.ndim == 1 and (n is None or arr.shape[0] != n)):
        want = "a scalar" if n is None else f"a scalar or have shape ({n},)"
        raise ValueError(f"theta must be {want}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > math.pi):
        raise ValueError(f"theta must be finite and in [0, pi], got {theta!r}")
    return float(arr) if arr.ndim == 0 else arr


def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")


def _check_planes(u: Any, v: Any) -> tuple[np.ndarray, np.ndarray]:
    """u, v: float64 arrays of equal shape (n, d), each row pair orthonormal to ``ORTHONORMAL_TOL``."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if u.ndim != 2 or v.shape != u.shape:
        raise ValueError(f"u and v must both have shape (n, d), got {u.shape} and {v.shape}")
    _check_finite(u, "u")
    _check_finite(v, "v")
    if u.size:
        err = max(np.max(np.abs(np.linalg.norm(u, axis=1) - 1)), np.max(np.abs(np.linalg.norm(v, axis=1) - 1)),
                  np.max(np.abs(np.sum(u * v, axis=1))))
        if not err <= ORTHONORMAL_TOL:
            raise ValueError(f"u and v must be orthonormal pairs (|u_i| = |v_i| = 1, u_i . v_i = 0): max deviation "
                             f"{err:.3g} > {ORTHONORMAL_TOL:g}")
    return u, v


def random_planes(d: int, n: int, seed: Any = None) -> tuple[np.ndarray, np.ndarray]:
    r"""``n`` orthonormal pairs ``(u, v)``, each of shape ``(n, d)``, spanning uniformly random 2-planes.

    Gram-Schmidt on two standard Gaussian vectors (see the module docstring); the plane is uniform on
    :math:`G(2,d)`. ``seed``: int, ``numpy.random.Generator`` or None.
    """
    d = _check_int(d, "d", 2)
    n = _check_int(n, "n", 1)
    rng = generator(seed)
    g = rng.standard_normal((n, 2, d))
    u = g[:, 0] / np.linalg.norm(g[:, 0], axis=1, keepdims=True)
    w = g[:, 1] - np.sum(u * g[:, 1], axis=1, keepdims=True) * u
    nw = np.linalg.norm(w, axis=1)
    # |w| = 0 has probability zero (|w|^2 ~ chi^2_{d-1}); redraw the float-degenerate case anyway.
    bad = nw < 1e-10
    while np.any(bad):
        g2 = rng.standard_normal((int(bad.sum()), d))
        w[bad] = g2 - np.sum(u[bad] * g2, axis=1, keepdims=True) * u[bad]
        nw[bad] = np.linalg.norm(w[bad], axis=1)
        bad = nw < 1e-10
    v = w / nw[:, None]
    # one more projection removes the O(eps) residual overlap
    v = v - np.sum(u * v, axis=1, keepdims=True) * u
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return u, v


def rotate(x: Any, u: np.ndarray, v: np.ndarray, theta: Any) -> np.ndarray:
    r"""Apply :math:`R_\theta` of the plane ``(u_i, v_i)`` to each row ``x_i``, in :math:`O(nd)`.

    :math:`R_\theta x = x + (\cos\theta-1)(p_u u + p_v v) + \sin\theta\,(p_u v - p_v u)`,
    :math:`p_u = u\cdot x`, :math:`p_v = v\cdot x`. ``x`` (finite), ``u``, ``v`` (orthonormal pairs, to
    ``ORTHONORMAL_TOL``): shape ``(n, d)``; ``theta``: scalar or shape ``(n,)`` in :math:`[0, \pi]`.
    Returns float64 of shape ``(n, d)``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d), got shape {x.shape}")
    if np.shape(u) != x.shape or np.shape(v) != x.shape:
        raise ValueError(f"u and v must have the shape of x {x.shape}, got {np.shape(u)} and {np.shape(v)}")
    _check_finite(x, "x")
    u, v = _check_planes(u, v)
    th = _check_theta(theta, x.shape[0])
    c = np.cos(th) - 1.0
    s = np.sin(th)
    if np.ndim(th):
        c = c[:, None]
        s = s[:, None]
    pu = np.sum(u * x, axis=1, keepdims=True)
    pv = np.sum(v * x, axis=1, keepdims=True)
    return x + c * (pu * u + pv * v) + s * (pu * v - pv * u)


def rotation_matrices(u: np.ndarray, v: np.ndarray, theta: Any) -> np.ndarray:
    r"""Dense matrices :math:`R_\theta = I + (\cos\theta-1)(uu^\top+vv^\top) + \sin\theta(vu^\top - uv^\top)`,
    shape ``(n, d, d)``; ``u``, ``v`` orthonormal pairs as in :func:`rotate`. Use :func:`rotate` instead when
    only :math:`R_\theta x` is needed."""
    u, v = _check_planes(u, v)
    n, d = u.shape
    th = _check_theta(theta, n)
    c = np.broadcast_to(np.cos(th) - 1.0, (n,))[:, None, None]
    s = np.broadcast_to(np.sin(th), (n,))[:, None, None]
    uu = u[:, :, None] * u[:, None, :]
    vv = v[:, :, None] * v[:, None, :]
    vu = v[:, :, None] * u[:, None, :]
    return np.eye(d)[None] + c * (uu + vv) + s * (vu - np.swapaxes(vu, 1, 2))


def random_rotations(d: int, theta: Any, n: int, seed: Any = None) -> np.ndarray:
    r"""``n`` random rotations of :math:`\mathbb R^d` by the angle ``theta`` in uniformly random 2-planes,
    shape ``(n, d, d)``. Same planes (same seed) as :func:`random_planes`, so
    ``random_rotations(d, θ, n, s) @ x_i == rotate(x, *random_planes(d, n, s), θ)``."""
    d = _check_int(d, "d", 2)
    n = _check_int(n, "n", 1)
    check_memory(5 * 8.0 * n * d * d, "n", f"{n} rotation matrices of size {d}x{d} (and their 4 intermediates)")
    th = _check_theta(theta, n)
    u, v = random_planes(d, n, seed)
    return rotation_matrices(u, v, th)


def geodesic_rotate(x: Any, theta: Any, seed: Any = None) -> np.ndarray:
    r"""The authors' variant (``pcsl-epfl/regressionsphere``, ``stability.py``): rotate each :math:`x_i` by
    ``theta`` in the plane spanned by :math:`x_i` and a random isotropic direction, i.e. move it along a great
    circle by the geodesic angle θ:  :math:`x' = |x|(\cos\theta\,\hat x + \sin\theta\,\hat w_\perp)`,
    :math:`\hat w_\perp` the normalised part of :math:`w\sim\mathcal N(0,I_d)` orthogonal to :math:`x`.
    So :math:`|x' - x| = 2\sin(\theta/2)|x|` exactly (the maximum that :func:`rotate` attains)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"x must have shape (n, d) with d >= 2, got shape {x.shape}")
    _check_finite(x, "x")
    r = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(r == 0):
        raise ValueError("x must have non-zero rows (the plane through x is undefined at 0)")
    xh = x / r
    rng = generator(seed)
    g = rng.standard_normal(x.shape)
    w = g - np.sum(xh * g, axis=1, keepdims=True) * xh
    nw = np.linalg.norm(w, axis=1)
    bad = nw < 1e-10  # g parallel to x: probability zero, redraw
    while np.any(bad):
        g2 = rng.standard_normal((int(bad.sum()), x.shape[1]))
        w[bad] = g2 - np.sum(xh[bad] * g2, axis=1, keepdims=True) * xh[bad]
        nw[bad] = np.linalg.norm(w[bad], axis=1)
        bad = nw < 1e-10
    w /= nw[:, None]
    w -= np.sum(xh * w, axis=1, keepdims=True) * xh
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return rotate(x, xh, w, theta)


def linear_rotation_sensitivity(weight: Any, theta: float) -> float:
    r"""Exact :math:`S = \mathbb E|W(R_\theta x - x)|^2 = 4(1-\cos\theta)\|W\|_F^2/d^2` for :math:`x` uniform on
    :math:`S^{d-1}` and a uniformly random plane (derivation in the module docstring). ``weight``: finite, shape
    ``(m, d)`` or ``(d,)`` with m >= 1, d >= 2; ``theta``: a scalar in :math:`[0, \pi]`."""
    w = np.atleast_2d(np.asarray(weight, dtype=np.float64))
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 2:
        raise ValueError(f"weight must have shape (m, d) or (d,) with m >= 1, d >= 2, got {np.shape(weight)}")
    _check_finite(w, "weight")
    th = _check_theta(theta)
    d = w.shape[1]
    return float(4.0 * (1.0 - math.cos(th)) * np.sum(w * w) / d**2)
