"""Law of a sum of independent rectified Gaussians, and the moments of a biased ReLU of it.

In the strided hand-constructed network (`theory.scale_detection`, block sums with filter = stride = s) the
first-layer units see disjoint input blocks, so with i.i.d. input noise they are *independent*:

    u_b = ReLU(c_b + g_b),   g_b ~ N(0, sd^2) i.i.d.,   c_b in {0, 1, 2} (active pixels in the block),

and a threshold unit at layer k~ + 1 computes z = ReLU(S - theta), S = sum_{b in its xi-block} u_b, a sum of
M = s^(dim (k~-1)) such units.  Its moments E z, E z^2 have no closed form for M >= 2 (the law of a sum of
half-normals is not elementary), but they are one-dimensional integrals against a convolution of explicit laws,
which this module evaluates deterministically (no sampling):

* each u_b is projected on the lattice h Z by the *mean-preserving* two-point rule: the probability mass of the
  bin [j h, (j+1) h] (exact, from Phi) is split between its end points so that the bin's mass and first moment
  (exact, c Delta Phi + sd Delta phi) are kept; the atom P(u_b = 0) = Phi(-c_b/sd) sits on the lattice point 0;
* the projected laws are convolved exactly (FFT), and E F(S) is a finite sum for F(s) = (s - theta)_+^p with the
  kink theta on the lattice (h = 1/K, theta integer multiple of h);
* the projection keeps E S exactly and inflates Var S by at most M h^2 / 4, so E F(S) has an O(h^2) error with a
  smooth expansion in h^2; the result is Richardson-extrapolated from h and h/2, and the size of the
  extrapolation is returned as an error estimate (below 1e-10 at the default resolution in the cases we use).

:func:`weighted_rectified_moments` serves the networks fed with *rectified* noise (``rectify="noise"`` of
`theory.scale_detection`: x + ReLU(eta), the authors' 1D convention): a threshold unit is then
z = ReLU(S - theta) with S = sum_p w_p ReLU(sd g_p), a weighted sum of independent half-normal-type terms
(w_p the pooling weights, integers).  Only the law of S below theta is needed, through the identities
(a)_+ = a + (-a)_+ and (a)_+^2 = a^2 - (-a)_+^2 with a = S - theta:
E z = E S - theta + E (theta - S)_+,  E z^2 = Var S + (E S - theta)^2 - E (theta - S)_+^2,
E S = sd sum w / sqrt(2 pi), Var S = sd^2 (1/2 - 1/(2 pi)) sum w^2 exactly; the two lower moments are lattice sums
over [0, theta] only (all terms are >= 0, so the entries of a convolution below theta need only the factors'
entries below theta), with the same mean-preserving projection and Richardson step as above.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import fftconvolve
from scipy.special import ndtr

__all__ = ["relu_gaussian_lattice_law", "rectified_sum_law", "biased_relu_moments", "weighted_rectified_moments"]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _is_num(v) -> bool:
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating))


def _number(v, name: str, *, positive: bool) -> float:
    """``v`` as a float, checked to be a finite real number ``> 0`` (``positive``) or ``>= 0``."""
    if not (_is_num(v) and math.isfinite(v) and (v > 0 if positive else v >= 0)):
        raise ValueError(f"{name} must be a finite number {'>' if positive else '>='} 0, got {v!r}")
    return float(v)


def _check(c: float, sd: float) -> tuple[float, float]:
    return _number(c, "c", positive=False), _number(sd, "sd", positive=True)


MAX_LATTICE = 10 ** 7   # bins of one lattice law (80 MB of float64): a smaller h is refused, not run out of memory


def relu_gaussian_lattice_law(c: float, sd: float, h: float, tail: float = 14.0) -> np.ndarray:
    """Mean-preserving lattice projection of u = ReLU(c + sd Z), Z ~ N(0, 1): p[j] = mass at j h.

    Bin [a, b] = [j h, (j+1) h], a_ = (a - c)/sd, b_ = (b - c)/sd: mass m = Phi(b_) - Phi(a_), first moment
    c m + sd (phi(a_) - phi(b_)); the mass at b is (first moment - a m)/h, the rest at a.  Bins up to
    c + tail * sd (neglected mass Phi(-tail) < 1e-44 at the default)."""
    c, sd = _check(c, sd)
    h, tail = _number(h, "h", positive=True), _number(tail, "tail", positive=True)
    nb = int(math.ceil((c + tail * sd) / h))
    if nb > MAX_LATTICE:
        raise ValueError(f"h must be >= (c + tail*sd)/{MAX_LATTICE:.0e} = {(c + tail * sd) / MAX_LATTICE:.3g} "
                         f"(the lattice would have {nb} bins), got {h!r}")
    edges = np.arange(nb + 1) * h
    z = (edges - c) / sd
    Phi = ndtr(z)
    phi = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    m = np.diff(Phi)
    # (first moment - a m)/h = ((c - a) m + sd (phi_a - phi_b))/h
    up = ((c - edges[:-1]) * m + sd * (phi[:-1] - phi[1:])) / h
    up = np.clip(up, 0.0, m)          # round-off guard: 0 <= up <= m holds exactly
    p = np.zeros(nb + 1)
    p[:-1] += m - up
    p[1:] += up
    p[0] += ndtr(-c / sd)             # the atom at 0
    return p


def _conv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.size * b.size < 4096:
        return np.convolve(a, b)
    out = fftconvolve(a, b)
    return np.maximum(out, 0.0)       # FFT round-off (~1e-18) only; the exact law is non-negative


def rectified_sum_law(cs, m0: int, sd: float, h: float) -> np.ndarray:
    """Lattice law of S = sum_{c in cs} ReLU(c + g) + sum_{j=1}^{m0} ReLU(g_j), all g i.i.d. N(0, sd^2):
    the exact convolution of the mean-preserving projections (:func:`relu_gaussian_lattice_law`)."""
    if isinstance(m0, (bool, np.bool_)) or not isinstance(m0, (int, np.integer)) or m0 < 0:
        raise ValueError(f"m0 must be an integer >= 0, got {m0!r}")
    if isinstance(cs, (str, bytes)) or not np.iterable(cs):
        raise ValueError(f"cs must be a sequence of signals c >= 0, got {cs!r}")
    m0 = int(m0)
    _number(sd, "sd", positive=True)
    _number(h, "h", positive=True)
    law = np.ones(1)
    for c in cs:
        law = _conv(law, relu_gaussian_lattice_law(c, sd, h))
    if m0:
        base, e = relu_gaussian_lattice_law(0.0, sd, h), m0
        while e:                       # binary powering of the zero-mean unit's law
            if e & 1:
                law = _conv(law, base)
            e >>= 1
            if e:
                base = _conv(base, base)
    return law


def biased_relu_moments(cs, m0: int, sd: float, theta: float = 1.0, *, K: int | None = None) -> tuple:
    """E z and E z^2 for z = ReLU(S - theta), S as in :func:`rectified_sum_law`; returns (E z, E z^2, err).

    Lattice h = 1/K (K chosen so that h <= sd/400 unless given; theta must then be a multiple of h: theta is
    an integer, as in the network), Richardson extrapolation (4 E_{h/2} - E_h)/3, err = |E_{h/2} - E_h|/3
    (the size of the leading O(h^2) term, an upper estimate of the remaining error)."""
    if not (_is_num(theta) and math.isfinite(theta) and theta >= 0 and float(theta).is_integer()):
        raise ValueError(f"theta must be a non-negative integer, got {theta!r}")
    _check(0.0, sd)
    if K is None:
        K = max(64, int(math.ceil(400.0 / min(sd, 1.0))))
    elif isinstance(K, (bool, np.bool_)) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K must be None or an integer >= 1 (lattice h = 1/K), got {K!r}")
    res = []
    for KK in (K, 2 * K):
        h = 1.0 / KK
        law = rectified_sum_law(cs, m0, sd, h)
        s = np.arange(law.size) * h
        e = np.maximum(s - theta, 0.0)
        res.append((float(law @ e), float(law @ (e * e))))
    (a1, a2), (b1, b2) = res
    m1, m2 = (4 * b1 - a1) / 3, (4 * b2 - a2) / 3
    return m1, m2, max(abs(b1 - a1), abs(b2 - a2)) / 3


def weighted_rectified_moments(weights, sd: float, theta: float = 1.0, *, K: int | None = None) -> tuple:
    r"""E z and E z^2 for :math:`z = \mathrm{ReLU}(S - \theta)`, :math:`S = \sum_p w_p\,\mathrm{ReLU}(sd\,g_p)`,
    :math:`g_p` i.i.d. N(0, 1); returns (E z, E z^2, err).

    ``weights``: a non-empty sequence of finite numbers >= 0 (zeros are dropped; equal weights are convolved by
    binary powering).  ``theta``: a finite number; for theta <= 0, z = S - theta and the moments are the closed forms
    of S (err = 0).  Otherwise the lower moments E (theta - S)_+^p (module docstring) are lattice sums on
    h = theta/K, K chosen so that h <= min_p(w_p sd)/400 and K >= 64 unless given, Richardson-extrapolated from h
    and h/2 (err as in :func:`biased_relu_moments`)."""
    if isinstance(weights, (str, bytes)) or not np.iterable(weights):
        raise ValueError(f"weights must be a non-empty sequence of numbers >= 0, got {weights!r}")
    w = [_number(v, "weights", positive=False) for v in weights]
    w = np.array([v for v in w if v > 0], dtype=np.float64)
    if w.size == 0:
        raise ValueError(f"weights must hold at least one number > 0, got {weights!r}")
    sd = _number(sd, "sd", positive=True)
    if not (_is_num(theta) and math.isfinite(theta)):
        raise ValueError(f"theta must be a finite number, got {theta!r}")
    theta = float(theta)
    mean = sd * _INV_SQRT_2PI * float(w.sum())
    var = sd * sd * (0.5 - 0.5 / math.pi) * float(w @ w)
    if theta <= 0.0:
        return mean - theta, var + (mean - theta) ** 2, 0.0
    if K is None:
        K = max(64, int(math.ceil(400.0 * theta / (sd * float(w.min())))))
    elif isinstance(K, (bool, np.bool_)) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K must be None or an integer >= 1 (lattice h = theta/K), got {K!r}")
    values, counts = np.unique(w, return_counts=True)
    res = []
    for KK in (int(K), 2 * int(K)):
        h = theta / KK
        law = np.ones(1)
        for v, m in zip(values, counts):
            base = relu_gaussian_lattice_law(0.0, v * sd, h, tail=theta / (v * sd))[: KK + 1]
            e = int(m)
            while e:                   # binary powering, truncated to [0, theta]
                if e & 1:
                    law = _conv(law, base)[: KK + 1]
                e >>= 1
                if e:
                    base = _conv(base, base)[: KK + 1]
        s_ = np.arange(law.size) * h
        low = np.maximum(theta - s_, 0.0)
        res.append((float(law @ low), float(law @ (low * low))))
    (a1, a2), (b1, b2) = res
    l1, l2 = (4 * b1 - a1) / 3, (4 * b2 - a2) / 3
    err = max(abs(b1 - a1), abs(b2 - a2)) / 3
    return mean - theta + l1, var + (mean - theta) ** 2 - l2, err
