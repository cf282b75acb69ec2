r"""Data for the spherical model (Petrini et al. 2022): inputs on / in the sphere and targets of controlled smoothness.

* inputs: uniform on S^{d-1} (``"sphere"``), isotropic Gaussian ``N(0, I_d)`` (``"gaussian"``), uniform in the unit
  ball (``"ball"``);
* targets: the constant target ``y = 1``, the norm target ``y = |x|`` (equal to 1 on the sphere, and learnable on
  Gaussian / ball inputs by a bias-free, 1-homogeneous ReLU network), and centred Gaussian random fields (GRF) of
  smoothness ``nu_t`` made by a wide random teacher

  .. math:: f^*(x) = \frac{1}{\sqrt{H_T\, m_a}} \sum_{j=1}^{H_T} s_j\, \sigma(\theta_j\cdot x)^a,\quad
            a = \nu_t - 1/2,

  ``theta_j`` uniform on S^{d-1}, ``s_j = +-1``; ``m_a = E[sigma(theta.x)^{2a}]`` on the unit sphere, so the field
  has unit variance there (:func:`theory.spherical.teacher_smoothness` gives ``nu_t = a + 1/2``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln

from numerics.seeds import generator
from theory.arguments import check_choice, check_int, check_memory

__all__ = ["sample_sphere", "qmc_sphere", "sample_gaussian", "sample_ball", "sample_inputs", "RandomTeacher", "make_teacher",
           "SphericalData", "make_dataset", "harmonic_power_s2", "DISTRIBUTIONS", "TARGETS"]

DISTRIBUTIONS = ("sphere", "gaussian", "ball")
TARGETS = ("constant", "norm", "grf")


def _check_P(P, name: str = "P") -> int:
    if isinstance(P, bool) or not isinstance(P, (int, np.integer)) or P < 1:
        raise ValueError(f"{name} must be a positive integer, got {P!r}")
    return int(P)


def _check_d(d) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(f"d must be an integer >= 2, got {d!r}")
    return int(d)


def _check_points(P, d) -> tuple[int, int]:
    """P and d checked, and the (P, d) float64 array they make checked against the memory (the P x d draws and the
    result: 2 P d 8 bytes)."""
    P, d = _check_P(P), _check_d(d)
    check_memory(16.0 * P * d, "P", f"{P} points in dimension {d}")
    return P, d


def sample_sphere(P: int, d: int, *, seed=None) -> np.ndarray:
    """``P`` points uniform on S^{d-1}: ``g/|g|`` with ``g ~ N(0, I_d)`` (rotation invariance of the Gaussian)."""
    P, d = _check_points(P, d)
    g = generator(seed).standard_normal((P, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def sample_gaussian(P: int, d: int, *, seed=None) -> np.ndarray:
    """``P`` points from ``N(0, I_d)``."""
    P, d = _check_points(P, d)
    return generator(seed).standard_normal((P, d))


def sample_ball(P: int, d: int, *, seed=None) -> np.ndarray:
    """``P`` points uniform in the unit ball: direction uniform, radius ``U^{1/d}`` (``P(r < s) = s^d``)."""
    P, d = _check_points(P, d)
    rng = generator(seed)
    x = sample_sphere(P, d, seed=rng)
    return x * rng.random((P, 1)) ** (1.0 / d)


def sample_inputs(P: int, d: int, distribution: str = "sphere", *, seed=None) -> np.ndarray:
    """Dispatch to :func:`sample_sphere`, :func:`sample_gaussian` or :func:`sample_ball`."""
    fn = {"sphere": sample_sphere, "gaussian": sample_gaussian, "ball": sample_ball}.get(distribution)
    if fn is None:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    return fn(P, d, seed=seed)


def _ridge_second_moment(d: int, a: float) -> float:
    r"""``E_theta[sigma(theta_1)^{2a}] = (1/2) E|theta_1|^{2a}`` for theta uniform on S^{d-1}:
    ``E|theta_1|^{2a} = Gamma(d/2) Gamma(a + 1/2) / (sqrt(pi) Gamma(a + d/2))`` (theta_1^2 ~ Beta(1/2, (d-1)/2))."""
    return 0.5 * math.exp(gammaln(d / 2) + gammaln(a + 0.5) - 0.5 * math.log(math.pi) - gammaln(a + d / 2))


@dataclass(frozen=True)
class RandomTeacher:
    """A stored wide random teacher (re-evaluable, unlike a teacher re-sampled on every call)."""
    theta: np.ndarray = field(repr=False)   # (H_T, d) unit directions
    signs: np.ndarray = field(repr=False)   # (H_T,) +-1
    a: float
    smoothness: float

    @property
    def d(self) -> int:
        return self.theta.shape[1]

    @property
    def width(self) -> int:
        return self.theta.shape[0]

    def __call__(self, x: np.ndarray, *, batch: int = 4096) -> np.ndarray:
        """``f*(x) = (H_T m_a)^{-1/2} sum_j s_j sigma(theta_j.x)^a`` (evaluated in batches of teacher neurons)."""
        batch = _check_P(batch, "batch")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"x must have shape (P, {self.d}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x must be finite")
        out = np.zeros(x.shape[0])
        for s in range(0, self.width, batch):
            z = np.maximum(x @ self.theta[s:s + batch].T, 0.0)
            z = (z > 0).astype(np.float64) if self.a == 0 else z ** self.a
            out += z @ self.signs[s:s + batch]
        return out / math.sqrt(self.width * _ridge_second_moment(self.d, self.a))


def make_teacher(d: int, smoothness: float, *, width: int = 100_000, seed=None) -> RandomTeacher:
    """Teacher whose field on S^{d-1} has smoothness ``nu_t = smoothness`` (ridge power ``a = nu_t - 1/2 >= 0``).

    The field is Gaussian by the central limit theorem in ``width`` (finite-width corrections ~ 1/sqrt(width)).
    """
    d = _check_d(d)
    if not (isinstance(smoothness, (int, float, np.floating, np.integer)) and not isinstance(smoothness, bool)
            and math.isfinite(smoothness) and smoothness >= 0.5):
        raise ValueError(f"smoothness (nu_t) must be a finite number >= 0.5, got {smoothness!r}")
    width = _check_P(width, "width")
    rng = generator(seed)
    theta = sample_sphere(width, d, seed=rng)
    signs = rng.choice(np.array([-1.0, 1.0]), size=width)
    return RandomTeacher(theta=theta, signs=signs, a=float(smoothness) - 0.5, smoothness=float(smoothness))


@dataclass(frozen=True)
class SphericalData:
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    d: int
    target: str
    distribution: str
    smoothness: float   # nu_t (inf for constant / norm)
    teacher: RandomTeacher | None = field(default=None, repr=False)


def make_dataset(P: int, d: int, *, target: str = "constant", smoothness: float | None = None,
                 distribution: str = "sphere", P_test: int = 2048, teacher_width: int = 100_000,
                 seed=None) -> SphericalData:
    """Train/test sets for the spherical model.

    ``target``: ``"constant"`` (y = 1), ``"norm"`` (y = |x|) or ``"grf"`` (needs ``smoothness`` = nu_t >= 0.5).
    Train and test inputs are independent draws from ``distribution``; for ``"grf"`` the same stored teacher labels
    both.
    """
    P, d = _check_P(P), _check_d(d)
    P_test = _check_P(P_test, "P_test")
    check_choice(target, "target", TARGETS)
    check_choice(distribution, "distribution", DISTRIBUTIONS)
    if target == "grf":
        _check_P(teacher_width, "teacher_width")
    rng = generator(seed)
    x = sample_inputs(P, d, distribution, seed=rng)
    xt = sample_inputs(P_test, d, distribution, seed=rng)
    teacher = None
    if target == "grf":
        if smoothness is None:
            raise ValueError("smoothness (nu_t >= 0.5) is required for target='grf'")
        teacher = make_teacher(d, smoothness, width=teacher_width, seed=rng)
        y, yt, nu = teacher(x), teacher(xt), float(smoothness)
    else:
        if smoothness is not None and smoothness != math.inf:
            raise ValueError(f"smoothness must be None/inf for target={target!r}, got {smoothness!r}")
        if target == "constant":
            y, yt = np.ones(P), np.ones(P_test)
        else:
            y, yt = np.linalg.norm(x, axis=1), np.linalg.norm(xt, axis=1)
        nu = math.inf
    return SphericalData(x=x, y=y, x_test=xt, y_test=yt, d=d, target=target, distribution=distribution,
                         smoothness=nu, teacher=teacher)


def harmonic_power_s2(f, kmax: int, *, oversample: int = 2, batch: int = 65536) -> np.ndarray:
    r"""Power of a function on the unit sphere S^2 in each harmonic degree: ``p_k = sum_m |<f, Y_km>|^2 / (4 pi)``
    for ``k = 0 .. kmax``, so that ``sum_k p_k`` is the mean square ``E_x f(x)^2`` (x uniform) of a function
    band-limited to ``kmax`` (Parseval); for the error ``f - y`` of a predictor, ``p_k`` tells which harmonic degrees
    carry the test error.

    Quadrature: Gauss-Legendre in ``cos theta`` (``Nt = oversample (kmax + 1)`` nodes) times ``Np = 2 Nt`` uniform
    angles in ``phi`` (an FFT): the projections are exact for ``f`` band-limited to degree ``L <= (2 oversample - 1)
    (kmax + 1)`` (the integrand is a polynomial of degree ``L + kmax <= 2 Nt - 1`` in ``cos theta``, and the orders
    ``|m'| <= L`` do not alias onto ``m <= kmax`` modulo ``Np``); the power of a non-smooth ``f`` above that degree
    aliases onto the ``p_k`` (relative error ``~(k / L)^2`` for a ReLU kink).
    ``f`` maps an (M, 3) array of unit vectors to (M,) values.
    """
    from scipy.special import roots_legendre, sph_harm_y

    if isinstance(kmax, bool) or not isinstance(kmax, (int, np.integer)) or kmax < 0:
        raise ValueError(f"kmax must be an integer >= 0, got {kmax!r}")
    if isinstance(oversample, bool) or not isinstance(oversample, (int, np.integer)) or oversample < 1:
        raise ValueError(f"oversample must be an integer >= 1, got {oversample!r}")
    batch = _check_P(batch, "batch")
    if not callable(f):
        raise ValueError(f"f must be a callable mapping (M, 3) unit vectors to M values, got {type(f).__name__}")
    kmax = int(kmax)
    nt = int(oversample) * (kmax + 1)
    npp = 2 * nt
    ct, wt = roots_legendre(nt)
    theta = np.arccos(ct)
    phi = np.arange(npp) * (2 * np.pi / npp)
    st = np.sqrt(1.0 - ct * ct)
    grid = np.stack([np.outer(st, np.cos(phi)), np.outer(st, np.sin(phi)), np.repeat(ct[:, None], npp, 1)], -1)
    grid = grid.reshape(-1, 3)
    vals = np.concatenate([np.asarray(f(grid[i:i + batch]), dtype=np.float64).reshape(-1)
                           for i in range(0, len(grid), batch)])
    if vals.shape != (len(grid),) or not np.all(np.isfinite(vals)):
        raise ValueError("f must map an (M, 3) array of unit vectors to M finite values")
    fm = np.fft.rfft(vals.reshape(nt, npp), axis=1)[:, : kmax + 1] * (2 * np.pi / npp)   # int f e^{-i m phi} dphi
    p = np.zeros(kmax + 1)
    ks = np.arange(kmax + 1)
    for m in range(kmax + 1):
        Y = sph_harm_y(ks[m:, None], m, theta[None, :], 0.0).real                        # Y_km(theta, 0), real
        a = Y @ (wt * fm[:, m])                                                          # <f, Y_km>, k = m..kmax
        p[m:] += (1.0 if m == 0 else 2.0) * np.abs(a) ** 2                               # +-m (f real)
    return p / (4 * np.pi)


def qmc_sphere(n: int, D: int, *, seed=None) -> np.ndarray:
    """``n`` quasi-uniform points on S^{D-1} (an (n, D) array): scrambled Sobol points mapped through the Gaussian quantile, normalised,
    then a Haar-random rotation -- the distribution is rotation invariant, the empirical measure has lower
    discrepancy than i.i.d. points (randomised quasi-Monte Carlo)."""
    import warnings

    from scipy.stats import norm, qmc, special_ortho_group

    n = check_int(n, "n", 1)
    D = check_int(D, "D", 2)
    rng = generator(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Sobol balance warning for n not a power of 2
        u = qmc.Sobol(D, scramble=True, seed=rng).random(n)
    g = norm.ppf(np.clip(u, 1e-15, 1 - 1e-15))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g @ special_ortho_group.rvs(D, random_state=rng).T
