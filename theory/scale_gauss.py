"""Exact Gaussian moments of rectified (ReLU) units, with and without a mean.

These are the building blocks of the rectified-noise terms of the scale-detection theory
(`theory.scale_detection`): a first-layer unit sees ``a + g`` with a deterministic signal
``a >= 0`` and a centred Gaussian ``g``; neighbouring units share input pixels, so their
Gaussians are correlated.

Formulas (X, Y standard normal with correlation rho, s = sqrt(1 - rho^2), phi/Phi the
standard normal pdf/cdf, h = -alpha, k = -beta, L = P(X > h, Y > k)):

* E[(alpha + X)_+]       = alpha Phi(alpha) + phi(alpha)
* E[(alpha + X)_+^2]     = (alpha^2 + 1) Phi(alpha) + alpha phi(alpha)
* E[(alpha + X)_+ (beta + Y)_+] = alpha beta L + alpha E[Y 1] + beta E[X 1] + E[X Y 1], with
  E[X 1]   = phi(h) Phi((rho h - k)/s) + rho phi(k) Phi((rho k - h)/s),
  E[X Y 1] = rho L + rho h phi(h) Phi((rho h - k)/s) + rho k phi(k) Phi((rho k - h)/s)
             + s phi(h) phi((k - rho h)/s)
  (moments of the truncated bivariate normal, Rosenbaum 1961).  At alpha = beta = 0 this is
  the arc-cosine kernel of Cho & Saul (2009): (sin t + (pi - t) cos t)/(2 pi), cos t = rho.
* L = Phi2(-h, -k; rho) from Sheppard's integral
  Phi2(x, y; rho) = Phi(x) Phi(y) + 1/(2 pi) int_0^rho exp(-(x^2 - 2 r x y + y^2)/(2 (1 - r^2)))
  / sqrt(1 - r^2) dr, evaluated with 64-point Gauss-Legendre quadrature (smooth integrand
  for |rho| <= 0.95, the accepted range: error < 1e-15 against adaptive quadrature in the tests).
  `relu_product_moment_mp` is an independent arbitrary-precision check (mpmath double integral) used by the
  tests.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

__all__ = ["relu_mean", "relu_second_moment", "bvn_cdf", "relu_product_moment", "relu_product_moment_mp",
           "relu_correlation_moment"]

_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _phi(x):
    return _INV_SQRT_2PI * np.exp(-0.5 * np.asarray(x, dtype=np.float64) ** 2)


def _finite(v, name: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be finite real numbers, got {v!r}") from None
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite real numbers, got {v!r}")
    return a


def _args(names: str, *vals) -> list[np.ndarray]:
    arrs = [_finite(v, n) for n, v in zip(names.split(), vals)]
    try:
        return np.broadcast_arrays(*arrs)
    except ValueError:
        raise ValueError(f"{', '.join(names.split())} must broadcast to one shape, got "
                         f"{[a.shape for a in arrs]}") from None


def relu_mean(alpha):
    """E[(alpha + X)_+] for X ~ N(0, 1): alpha Phi(alpha) + phi(alpha)."""
    alpha = _finite(alpha, "alpha")
    return alpha * ndtr(alpha) + _phi(alpha)


def relu_second_moment(alpha):
    """E[(alpha + X)_+^2] for X ~ N(0, 1): (alpha^2 + 1) Phi(alpha) + alpha phi(alpha)."""
    alpha = _finite(alpha, "alpha")
    return (alpha**2 + 1.0) * ndtr(alpha) + alpha * _phi(alpha)


def bvn_cdf(x, y, rho):
    """Phi2(x, y; rho) = P(X <= x, Y <= y) for standard normals with correlation rho, |rho| <= 0.95."""
    x, y, rho = _args("x y rho", x, y, rho)
    if np.any(np.abs(rho) > 0.95):
        raise ValueError(f"rho must satisfy |rho| <= 0.95 (quadrature accuracy), got max |rho| = {np.abs(rho).max()}")
    r = 0.5 * rho[..., None] * (_GL_X + 1.0)  # nodes on [0, rho]
    one_m = 1.0 - r * r
    integrand = np.exp(-(x[..., None] ** 2 - 2.0 * r * x[..., None] * y[..., None] + y[..., None] ** 2)
                       / (2.0 * one_m)) / np.sqrt(one_m)
    integral = 0.5 * rho * (integrand @ _GL_W)
    return ndtr(x) * ndtr(y) + integral / (2.0 * math.pi)


def relu_product_moment(alpha, beta, rho):
    """E[(alpha + X)_+ (beta + Y)_+] for standard normals X, Y with correlation rho.

    rho = 1 falls back to `relu_second_moment` (requires alpha = beta); otherwise (|rho| <= 0.95) the
    truncated-bivariate-normal formula of the module docstring, which at rho = 0 reduces to the product of
    `relu_mean`."""
    alpha, beta, rho = _args("alpha beta rho", alpha, beta, rho)
    out = np.empty(alpha.shape, dtype=np.float64)
    one = np.isclose(rho, 1.0, rtol=0, atol=1e-15)
    if np.any(one & ~np.isclose(alpha, beta)):
        raise ValueError("alpha must equal beta where rho = 1 (then X = Y)")
    out[one] = relu_second_moment(alpha[one])
    m = ~one
    if np.any(np.abs(rho[m]) > 0.95):
        raise ValueError(f"rho must satisfy |rho| <= 0.95 (quadrature accuracy) or rho = 1, got "
                         f"{rho[m][np.abs(rho[m]) > 0.95][0]}")
    a, b, r = alpha[m], beta[m], rho[m]
    h, k = -a, -b
    s = np.sqrt(1.0 - r * r)
    L = bvn_cdf(a, b, r)  # P(X > -a, Y > -b) = Phi2(a, b; rho) by symmetry
    t1 = ndtr((r * h - k) / s)
    t2 = ndtr((r * k - h) / s)
    ex = _phi(h) * t1 + r * _phi(k) * t2
    ey = _phi(k) * t2 + r * _phi(h) * t1
    exy = r * L + r * h * _phi(h) * t1 + r * k * _phi(k) * t2 + s * _phi(h) * _phi((k - r * h) / s)
    out[m] = a * b * L + a * ey + b * ex + exy
    return out


def relu_product_moment_mp(alpha: float, beta: float, rho: float, dps: int = 30) -> float:
    """Independent check of `relu_product_moment`: direct 2D integral with mpmath.

    Writes Y = rho X + s Z and integrates (alpha + x)_+ E_Z[(beta + rho x + s Z)_+] phi(x) dx,
    the inner expectation in closed form (`relu_mean`), the outer by mpmath.quad.
    """
    import mpmath as mp

    alpha, beta, rho = (float(v) for v in _args("alpha beta rho", alpha, beta, rho))
    if not abs(rho) < 1:
        raise ValueError(f"rho must lie in (-1, 1), got {rho}")
    with mp.workdps(dps):
        a, b, r = mp.mpf(alpha), mp.mpf(beta), mp.mpf(rho)
        s = mp.sqrt(1 - r * r)

        def inner(x):
            c = (b + r * x) / s
            return s * (c * mp.ncdf(c) + mp.npdf(c))

        f = lambda x: (a + x) * inner(x) * mp.npdf(x)  # noqa: E731
        return float(mp.quad(f, [-a, -a + 5, mp.inf]))


def relu_correlation_moment(rho):
    """E[X_+ Y_+] = (sin t + (pi - t) cos t)/(2 pi), cos t = rho, for standard normals X, Y with correlation rho;
    |rho| <= 1 (+ 1e-12 round-off). It is the degree-1 arc-cosine kernel of Cho & Saul (2009) as a numpy function
    of the correlation; :func:`theory.spherical.arccos_kernel` derives the kernel of any degree n symbolically as a
    function of the angle t."""
    rho = _finite(rho, "rho")
    if np.any(np.abs(rho) > 1 + 1e-12):
        raise ValueError(f"rho must lie in [-1, 1], got max |rho| = {np.abs(rho).max()}")
    t = np.arccos(np.clip(rho, -1.0, 1.0))
    return (np.sin(t) + (np.pi - t) * rho) / (2.0 * np.pi)
