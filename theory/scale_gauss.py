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
  for |rho| <= 0.9, double precision).  `relu_product_moment_mp` is an independent
  arbitrary-precision check (mpmath double integral) used by the tests.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _phi(x):
    return _INV_SQRT_2PI * np.exp(-0.5 * np.asarray(x, dtype=np.float64) ** 2)


def relu_mean(alpha):
    """E[(alpha + X)_+] for X ~ N(0, 1): alpha Phi(alpha) + phi(alpha)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return alpha * ndtr(alpha) + _phi(alpha)


def relu_second_moment(alpha):
    """E[(alpha + X)_+^2] for X ~ N(0, 1): (alpha^2 + 1) Phi(alpha) + alpha phi(alpha)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return (alpha**2 + 1.0) * ndtr(alpha) + alpha * _phi(alpha)


def bvn_cdf(x, y, rho):
    """Phi2(x, y; rho) = P(X <= x, Y <= y) for standard normals with correlation rho (|rho| < 1)."""
    x, y, rho = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, y, rho)))
    r = 0.5 * rho[..., None] * (_GL_X + 1.0)  # nodes on [0, rho]
    one_m = 1.0 - r * r
    integrand = np.exp(-(x[..., None] ** 2 - 2.0 * r * x[..., None] * y[..., None] + y[..., None] ** 2)
                       / (2.0 * one_m)) / np.sqrt(one_m)
    integral = 0.5 * rho * (integrand @ _GL_W)
    return ndtr(x) * ndtr(y) + integral / (2.0 * math.pi)


def relu_product_moment(alpha, beta, rho):
    """E[(alpha + X)_+ (beta + Y)_+] for standard normals X, Y with correlation rho.

    rho = 1 falls back to `relu_second_moment` (requires alpha = beta), rho = 0 to the product
    of `relu_mean`; otherwise the truncated-bivariate-normal formula of the module docstring.
    """
    alpha, beta, rho = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (alpha, beta, rho)))
    out = np.empty(alpha.shape, dtype=np.float64)
    one = np.isclose(rho, 1.0, rtol=0, atol=1e-15)
    if np.any(one & ~np.isclose(alpha, beta)):
        raise ValueError("rho = 1 requires alpha == beta")
    out[one] = relu_second_moment(alpha[one])
    m = ~one
    if np.any(np.abs(rho[m]) > 0.95):
        raise ValueError("|rho| must be <= 0.95 (quadrature accuracy) or exactly 1")
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

    mp.mp.dps = dps
    a, b, r = mp.mpf(alpha), mp.mpf(beta), mp.mpf(rho)
    s = mp.sqrt(1 - r * r)

    def inner(x):
        c = (b + r * x) / s
        return s * (c * mp.ncdf(c) + mp.npdf(c))

    f = lambda x: (a + x) * inner(x) * mp.npdf(x)
    return float(mp.quad(f, [-a, -a + 5, mp.inf]))


def arccos_kernel(rho):
    """E[X_+ Y_+] = (sin t + (pi - t) cos t)/(2 pi), cos t = rho (Cho & Saul 2009)."""
    rho = np.asarray(rho, dtype=np.float64)
    t = np.arccos(np.clip(rho, -1.0, 1.0))
    return (np.sin(t) + (np.pi - t) * rho) / (2.0 * np.pi)
