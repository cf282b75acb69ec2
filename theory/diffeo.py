r"""Exact and asymptotic statistics of the maximum-entropy sine diffeomorphism.

Petrini, Favero, Geiger, Wyart, "Relative stability toward diffeomorphisms indicates performance in deep
nets", NeurIPS 2021 (arXiv 2105.02468), and the authors' code ``pcsl-epfl/diffeomorphism``.

Model. On the domain :math:`[0,a]\times[0,b]` (the unit square for square images) each component of the
displacement field is an independent sine series

.. math::  \tau(u,v) = \sum_{(i,j)\in\mathcal K(c)} C_{ij}\,\sin(i\pi u/a)\,\sin(j\pi v/b),
           \qquad C_{ij}\sim\mathcal N\!\left(0, \frac{T}{k_{ij}^2}\right),\quad k_{ij}^2=(i/a)^2+(j/b)^2,

and the field in pixels is :math:`n\,\tau` for an :math:`n\times n` image (``n`` = the larger side in
general). The kept modes :math:`\mathcal K(c)` follow one of two cut-off rules:

* ``"code"`` (the reference implementation):  :math:`k_{ij} < c + 1/2`;
* ``"paper"`` (the paper's equation):          :math:`k_{ij}^2 \le c^2`.

Everything here is exact (finite lattice sums with rational terms) unless its name says ``asymptotic`` or
``paper``. Nothing is sampled: the Monte-Carlo counterparts live in :mod:`numerics.diffeo` and the two are
compared in ``tests/test_diffeo_theory.py``.

Main results (derived below and in :func:`derivation`):

* typical displacement at the image centre,  :math:`\delta^2 = \mathbb E|n\tau(\text{centre})|^2
  = 2 T n^2 S_{\rm odd}(c)`, with :math:`S_{\rm odd}(c) = \sum_{(i,j)\in\mathcal K(c),\ i,j\ \rm odd} k_{ij}^{-2}`;
* its large-c law :math:`S_{\rm odd}(c) = \frac{\pi}{8}\ln c + \frac{K}{16} + o(1)`, :math:`K` Sierpinski's
  constant, so :math:`\delta^2 \simeq \frac{\pi n^2 T}{4}\,(\ln c + K/(2\pi))`; the paper's
  :math:`\delta = \frac n2\sqrt{\pi T\ln c}` drops the constant :math:`K/(2\pi)\approx 0.411`;
* equipartition :math:`\langle\|\nabla\tau\|^2\rangle = \frac{\pi^2 T}{2} N(c)` (mean over the domain), with
  :math:`N(c)=|\mathcal K(c)|`; the paper's :math:`\pi^3 T c^2/8` is its large-c limit :math:`N\simeq\pi c^2/4`;
* the temperature window :math:`T_{\min}=1/(\pi n^2\ln c)` (δ = ½ pixel) and
  :math:`T_{\max}=4/(\pi^3 c^2\ln c)` (no overhang heuristic: :math:`2\ln c\,\langle|\nabla\tau|^2\rangle = 1`),
  non-empty iff :math:`c < 2n/\pi`; their exact-lattice counterparts replace the asymptotic sums.
"""
from __future__ import annotations

import math
import numbers
from fractions import Fraction
from functools import lru_cache

import sympy as sp

CUTOFF_RULES = ("code", "paper")

__all__ = [
    "CUTOFF_RULES",
    "SIERPINSKI_K",
    "kept_modes",
    "mode_count",
    "mode_variance",
    "odd_lattice_sum",
    "typical_displacement_sq",
    "typical_displacement",
    "temperature_for_displacement",
    "typical_displacement_paper",
    "typical_displacement_asymptotic",
    "odd_lattice_sum_asymptotic",
    "mean_gradient_energy",
    "mean_gradient_energy_paper",
    "temperature_range_paper",
    "temperature_range_exact",
    "window_condition_paper",
    "derivation",
]

#: Sierpinski's constant, :math:`\sum_{0<|z|\le R} |z|^{-2} = 2\pi\ln R + K + o(1)` over Gaussian integers.
SIERPINSKI_K = sp.pi * (2 * sp.EulerGamma + 2 * sp.log(2) + 3 * sp.log(sp.pi) - 4 * sp.log(sp.gamma(sp.Rational(1, 4))))


# ----------------------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------------------
def _check_cutoff(cutoff: str) -> None:
    if cutoff not in CUTOFF_RULES:
        raise ValueError(f"cutoff must be one of {CUTOFF_RULES}, got {cutoff!r}")


def _as_rational(value, name: str) -> sp.Rational:
    """Exact rational from an int, Fraction, sympy number or float (floats are taken at face value)."""
    if isinstance(value, (bool, str)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        if isinstance(value, sp.Basic):
            r = sp.nsimplify(value) if not value.is_Rational else value
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
            r = sp.Rational(Fraction(value))
        else:
            r = sp.Rational(value)
    except (TypeError, ValueError, sp.SympifyError) as exc:
        raise ValueError(f"{name} must be a finite real number, got {value!r}") from exc
    if not r.is_Rational:
        raise ValueError(f"{name} must be rational or a float, got {value!r}")
    return r


def _check_c(c, name: str = "c") -> sp.Rational:
    r = _as_rational(c, name)
    if r < 1:
        raise ValueError(f"{name} (the cut-off) must be >= 1, got {c!r}")
    return r


def _check_positive_length(x, name: str) -> sp.Rational:
    r = _as_rational(x, name)
    if r <= 0:
        raise ValueError(f"{name} must be > 0, got {x!r}")
    return r


# ----------------------------------------------------------------------------------------------------------
# the lattice of kept modes
# ----------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def _kept_modes_cached(c: sp.Rational, cutoff: str, a: sp.Rational, b: sp.Rational) -> tuple[tuple[int, int], ...]:
    # code:  k² < (c + 1/2)²    paper:  k² <= c²       with k² = (i/a)² + (j/b)², all exact rationals
    bound = (c + sp.Rational(1, 2)) ** 2 if cutoff == "code" else c**2
    imax = int(sp.floor((c + 1) * a)) + 1
    jmax = int(sp.floor((c + 1) * b)) + 1
    kept = []
    for i in range(1, imax + 1):
        for j in range(1, jmax + 1):
            k2 = (sp.Integer(i) / a) ** 2 + (sp.Integer(j) / b) ** 2
            if (k2 < bound) if cutoff == "code" else (k2 <= bound):
                kept.append((i, j))
    return tuple(kept)


def kept_modes(c, cutoff: str = "code", a=1, b=1) -> list[tuple[int, int]]:
    r"""The kept modes :math:`\mathcal K(c)`, pairs ``(i, j)`` with i the vertical, j the horizontal index.

    ``a``, ``b`` are the side lengths of the domain in units of the longer side's span (1, 1 for a square
    image; ``(H-1)/(N-1)``, ``(W-1)/(N-1)`` for an H×W image with N = max(H, W)), so that the cut-off acts on
    the physical wavenumber and rectangular images are treated isotropically.
    """
    _check_cutoff(cutoff)
    return list(
        _kept_modes_cached(_check_c(c), cutoff, _check_positive_length(a, "a"), _check_positive_length(b, "b"))
    )


def mode_count(c, cutoff: str = "code", a=1, b=1) -> int:
    r""":math:`N(c) = |\mathcal K(c)|`, the number of kept modes per displacement component."""
    return len(kept_modes(c, cutoff, a, b))


def mode_variance(i: int, j: int, T=sp.Symbol("T", positive=True), a=1, b=1) -> sp.Expr:
    r"""Variance of the coefficient :math:`C_{ij}`: :math:`T/((i/a)^2+(j/b)^2)` (maximum entropy at fixed
    mean gradient energy, Petrini et al. 2021), for mode indices i, j >= 1, T >= 0 (or a symbol), a, b > 0."""
    for name, k in (("i", i), ("j", j)):
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"{name} (mode index) must be an integer >= 1, got {k!r}")
    a_r, b_r = _check_positive_length(a, "a"), _check_positive_length(b, "b")
    return _check_T(T) / ((sp.Integer(int(i)) / a_r) ** 2 + (sp.Integer(int(j)) / b_r) ** 2)


def odd_lattice_sum(c, cutoff: str = "code", a=1, b=1) -> sp.Rational:
    r""":math:`S_{\rm odd}(c) = \sum_{(i,j)\in\mathcal K(c),\,i,j\text{ odd}} 1/k_{ij}^2`, exactly (a rational).

    At the centre of the domain :math:`\sin^2(i\pi/2) = 1` for odd i and 0 for even i, so only odd-odd modes
    contribute to the centre displacement.
    """
    a_r, b_r = _check_positive_length(a, "a"), _check_positive_length(b, "b")
    total = sp.Integer(0)
    for i, j in kept_modes(c, cutoff, a_r, b_r):
        if i % 2 == 1 and j % 2 == 1:
            total += 1 / ((sp.Integer(i) / a_r) ** 2 + (sp.Integer(j) / b_r) ** 2)
    return sp.nsimplify(total)


def _check_nonnegative(value, name: str):
    """A finite real >= 0 as a sympy number (floats at 30 digits), or a symbolic expression not known negative."""
    if isinstance(value, sp.Basic) and value.free_symbols:
        if value.is_nonnegative is False:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, sp.Basic)):
        raise ValueError(f"{name} must be a real number >= 0, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number >= 0, got {value!r}") from exc
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return sp.Float(value, 30) if isinstance(value, float) else sp.nsimplify(value)


def _check_T(T):
    return _check_nonnegative(T, "T (the temperature)")


def _check_n(n) -> sp.Integer:
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not math.isfinite(n) or int(n) != n or n < 2:
        raise ValueError(f"n (image side in pixels) must be an integer >= 2, got {n!r}")
    return sp.Integer(int(n))


# ----------------------------------------------------------------------------------------------------------
# typical displacement and its inverse
# ----------------------------------------------------------------------------------------------------------
def typical_displacement_sq(T, c, n, cutoff: str = "code", a=1, b=1) -> sp.Expr:
    r"""Exact :math:`\delta^2 = \mathbb E|n\tau(\text{centre})|^2 = 2\,T\,n^2\,S_{\rm odd}(c)` in pixels².

    Two independent components, each with variance :math:`n^2 \sum_{\mathcal K} T k_{ij}^{-2}
    \sin^2(i\pi/2)\sin^2(j\pi/2)`.
    """
    return 2 * _check_T(T) * _check_n(n) ** 2 * odd_lattice_sum(c, cutoff, a, b)


def typical_displacement(T, c, n, cutoff: str = "code", a=1, b=1) -> sp.Expr:
    r"""Exact rms length :math:`\delta` (pixels) of the displacement at the image centre,
    :math:`\delta = \sqrt{2Tn^2S_{\rm odd}(c)}`."""
    return sp.sqrt(typical_displacement_sq(T, c, n, cutoff, a, b))


def temperature_for_displacement(delta, c, n, cutoff: str = "code", a=1, b=1) -> sp.Expr:
    r"""Inverse of :func:`typical_displacement`: :math:`T = \delta^2 / (2 n^2 S_{\rm odd}(c))`."""
    d = _check_nonnegative(delta, "delta (typical displacement in pixels)")
    s = odd_lattice_sum(c, cutoff, a, b)
    if s == 0:
        raise ValueError(f"c={c!r} with cutoff={cutoff!r} keeps no odd-odd mode: the centre never moves")
    return d**2 / (2 * _check_n(n) ** 2 * s)


def _check_c_log(c) -> sp.Rational:
    r = _check_c(c)
    if r == 1:
        raise ValueError("c must be > 1 for the paper's asymptotic formulas (they contain 1/ln c, and ln 1 = 0)")
    return r


def typical_displacement_paper(T, c, n) -> sp.Expr:
    r"""The paper's / reference code's formula :math:`\delta = \frac n2\sqrt{\pi T\ln c}` (asymptotic, drops K)."""
    return _check_n(n) / 2 * sp.sqrt(sp.pi * _check_T(T) * sp.log(_check_c_log(c)))


def typical_displacement_asymptotic(T, c, n) -> sp.Expr:
    r"""Large-c law with the Sierpinski constant: :math:`\delta^2 = \frac{\pi n^2T}{4}(\ln c + \frac{K}{2\pi})`."""
    return sp.sqrt(sp.pi * _check_n(n) ** 2 * _check_T(T) / 4 * (sp.log(_check_c(c)) + SIERPINSKI_K / (2 * sp.pi)))


def odd_lattice_sum_asymptotic(c) -> sp.Expr:
    r""":math:`S_{\rm odd}(c) \simeq \frac{\pi}{8}\ln c + \frac{K}{16}` (square domain, either cut-off rule)."""
    return sp.pi / 8 * sp.log(_check_c(c)) + SIERPINSKI_K / 16


# ----------------------------------------------------------------------------------------------------------
# gradient energy and temperature window
# ----------------------------------------------------------------------------------------------------------
def mean_gradient_energy(T, c, cutoff: str = "code", a=1, b=1) -> sp.Expr:
    r"""Equipartition: the domain average of :math:`|\nabla\tau|^2` (both components) is
    :math:`\frac{\pi^2T}{2}N(c)`: each kept mode of each component carries :math:`\pi^2T/4` (mean over the
    domain of :math:`C^2 k^2\pi^2\,[\cos^2\sin^2 + \sin^2\cos^2]`-type terms)."""
    return sp.pi**2 * _check_T(T) / 2 * mode_count(c, cutoff, a, b)


def mean_gradient_energy_paper(T, c) -> sp.Expr:
    r"""The paper's large-c form :math:`\pi^3 T c^2 / 8` (uses :math:`N(c)\simeq\pi c^2/4`)."""
    return sp.pi**3 * _check_T(T) * _check_c(c) ** 2 / 8


def temperature_range_paper(n, c) -> tuple[sp.Expr, sp.Expr]:
    r"""Reference bounds :math:`T_{\min} = 1/(\pi n^2\ln c)` (δ = ½ pixel by the paper's δ formula) and
    :math:`T_{\max} = 4/(\pi^3c^2\ln c)` (largest T without overhangs, heuristic). Raises if the window is
    empty, i.e. unless :math:`c < 2n/\pi`."""
    n_, c_ = _check_n(n), _check_c_log(c)
    t_min = 1 / (sp.pi * n_**2 * sp.log(c_))
    t_max = 4 / (sp.pi**3 * c_**2 * sp.log(c_))
    if not t_min < t_max:
        raise ValueError(
            f"empty temperature window for n={n}, c={c}: T_min >= T_max; "
            f"the paper's window needs c < 2n/pi = {float(2 * n_ / sp.pi):.3f}"
        )
    return t_min, t_max


def temperature_range_exact(n, c, cutoff: str = "code", a=1, b=1) -> tuple[sp.Expr, sp.Expr]:
    r"""The same two criteria evaluated with the exact lattice sums instead of their asymptotics:

    * :math:`T_{\min}`: exact typical displacement of ½ pixel, :math:`T_{\min} = 1/(8n^2S_{\rm odd}(c))`;
    * :math:`T_{\max}`: :math:`2\ln c\,\langle|\nabla\tau|^2\rangle = 1` with the exact equipartition value,
      :math:`T_{\max} = 1/(\pi^2 N(c)\ln c)` (reduces to the paper's value when :math:`N \to \pi c^2/4`).

    Raises ``ValueError`` if :math:`T_{\min} \ge T_{\max}`.
    """
    n_, c_ = _check_n(n), _check_c_log(c)
    t_min = temperature_for_displacement(sp.Rational(1, 2), c_, n_, cutoff, a, b)
    t_max = 1 / (sp.pi**2 * mode_count(c_, cutoff, a, b) * sp.log(c_))
    if not t_min < t_max:
        raise ValueError(
            f"empty temperature window for n={n}, c={c} (cutoff={cutoff!r}): "
            f"T_min={float(t_min):.4g} >= T_max={float(t_max):.4g}; lower c"
        )
    return t_min, t_max


def window_condition_paper(n) -> sp.Expr:
    r"""Largest cut-off with a non-empty paper window: :math:`T_{\min} < T_{\max} \iff c < 2n/\pi`."""
    return 2 * _check_n(n) / sp.pi


# ----------------------------------------------------------------------------------------------------------
# a derivation that reads like math
# ----------------------------------------------------------------------------------------------------------
def derivation() -> dict[str, sp.Expr]:
    r"""Symbolic statements of the main identities, each returned as a sympy object that simplifies as
    claimed (used by the notebook and the tests):

    * ``gradient_energy_per_mode``: :math:`\int_0^1\!\int_0^1 |\nabla (C\sin i\pi u\,\sin j\pi v)|^2
      = \frac{\pi^2}{4}(i^2+j^2)C^2`;
    * ``mean_energy_per_mode``: with :math:`\mathbb E C^2 = T/(i^2+j^2)` this is :math:`\pi^2T/4`, independent
      of (i, j) (equipartition);
    * ``centre_weight``: :math:`\sin^2(i\pi/2)` equals 1 for odd i and 0 for even i;
    * ``sierpinski``: the numerical value of K;
    * ``paper_vs_corrected``: :math:`\delta^2_{\rm corrected}/\delta^2_{\rm paper} = 1 + K/(2\pi\ln c)`.
    """
    u, v, C, T, c = sp.symbols("u v C T c", positive=True)
    i, j = sp.symbols("i j", positive=True, integer=True)
    phi = C * sp.sin(i * sp.pi * u) * sp.sin(j * sp.pi * v)
    energy = sp.integrate(sp.diff(phi, u) ** 2 + sp.diff(phi, v) ** 2, (u, 0, 1), (v, 0, 1))
    energy = sp.simplify(energy)
    mean_energy = sp.simplify(energy.subs(C**2, T / (i**2 + j**2)))
    k = sp.Symbol("k", integer=True, nonnegative=True)
    return {
        "gradient_energy_per_mode": energy,
        "mean_energy_per_mode": mean_energy,
        "centre_weight_odd": sp.simplify(sp.sin((2 * k + 1) * sp.pi / 2) ** 2),
        "centre_weight_even": sp.simplify(sp.sin((2 * k) * sp.pi / 2) ** 2),
        "sierpinski": SIERPINSKI_K,
        "paper_vs_corrected": sp.simplify((sp.log(c) + SIERPINSKI_K / (2 * sp.pi)) / sp.log(c)),
    }
