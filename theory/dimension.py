r"""The curse of dimensionality: spacing of P random points in :math:`[0,1]^d` and what it costs to learn.

Petrini, Favero, Geiger, Wyart, "Relative stability toward diffeomorphisms indicates performance in deep
nets" (NeurIPS 2021), introduction and talk: P points in :math:`[0,1]^d` leave gaps of size

.. math::  l(P, d) = P^{-1/d}, \qquad\text{so a spacing } l \text{ needs } P = l^{-d} \text{ points.}

Consequence for a Lipschitz target :math:`f^*` learnt by nearest-neighbour regression
(:math:`\hat f(x) = f^*(x_{NN(x)})`): the error at x is :math:`|f^*(x) - f^*(x_{NN})| \le L\,r_{NN}(x)`, and
for a target with a non-vanishing gradient it is of that order, so

.. math::  \varepsilon = \langle|\hat f - f^*|\rangle \sim l \sim P^{-\beta},\quad \beta = 1/d,\qquad
           \langle|\hat f - f^*|^2\rangle \sim P^{-2/d}

(Luxburg & Bousquet 2004; the data-science statement "β = O(1/d)"; observed β ≈ 0.3 on ImageNet,
Hestness et al. 2017). The exponent vanishes as d grows: that is the curse.

Exact nearest-neighbour distance (derived here). Put P i.i.d. uniform points on the flat torus
:math:`[0,1)^d` (no boundary), and measure distances with the **L∞ (Chebyshev) metric**
:math:`|z|_\infty = \max_k \min(|z_k|, 1 - |z_k|)`. The ball of radius r is a cube of side 2r and volume
:math:`(2r)^d`, and it never overlaps its periodic images for :math:`r \le 1/2`, which is also the largest
possible distance. Hence, for the distance from one point to the nearest of the P-1 others,

.. math::  \Pr(r_{NN} > r) = \bigl(1 - (2r)^d\bigr)^{P-1}\quad\text{exactly for } 0\le r\le\tfrac12,

and with :math:`t = 2r`, :math:`s = t^d`:

.. math::  \mathbb E[r_{NN}^k] = \int_0^{1/2} k r^{k-1}\Pr(r_{NN}>r)\,dr
           = \frac{k}{2^k d}\,B\!\left(\frac kd, P\right)
           = \frac{1}{2^k}\,\frac{\Gamma(1+k/d)\,\Gamma(P)}{\Gamma(P + k/d)}.

For k = 1: :math:`\mathbb E[r_{NN}] = \Gamma(1+1/d)\Gamma(P)/(2\Gamma(P+1/d)) \simeq
\frac{\Gamma(1+1/d)}{2} P^{-1/d}(1 + O(1/P))` -- the law :math:`l = P^{-1/d}` with its exact prefactor and
finite-P correction. We choose L∞ because the formula is then exact for every P (the L2 ball of radius r
wraps around the torus for r > 1/2). For the **Euclidean metric** the same computation with the ball volume
:math:`V_d r^d`, :math:`V_d = \pi^{d/2}/\Gamma(d/2+1)`, gives

.. math::  \mathbb E[r_{NN}^k] \approx V_d^{-k/d}\,\frac{\Gamma(1+k/d)\,\Gamma(P)}{\Gamma(P+k/d)},

exact up to the wrap-around region r > 1/2, whose contribution is bounded by
:func:`euclidean_wrap_error_bound` :math:`= (R^k - 2^{-k})\,(1 - V_d 2^{-d})^{P-1}`,
:math:`R = \max(\sqrt d/2, V_d^{-1/d})` (exponentially small in P).

All functions return sympy expressions; pass integers for exact values or sympy symbols for formulas.
The Monte-Carlo counterparts are in :mod:`numerics.nearest_neighbour`, compared in ``tests/test_dimension.py``.
"""
from __future__ import annotations

import argparse
import json
import numbers
from typing import Any

import sympy as sp

__all__ = [
    "P", "d", "l", "r", "k",
    "spacing",
    "points_for_spacing",
    "nn_regression_exponent",
    "nn_regression_error_scaling",
    "ball_volume",
    "nn_survival",
    "expected_nn_distance",
    "nn_distance_moment",
    "nn_distance_variance",
    "expected_nn_distance_asymptotic",
    "euclidean_wrap_error_bound",
    "derive_expected_nn_distance",
]

P = sp.Symbol("P", positive=True, integer=True)
d = sp.Symbol("d", positive=True, integer=True)
l = sp.Symbol("l", positive=True)  # noqa: E741  (the spacing)
r = sp.Symbol("r", nonnegative=True)
k = sp.Symbol("k", positive=True)

METRICS = ("chebyshev", "euclidean")
LOSSES = ("abs", "squared")


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
def _int_or_symbol(value: Any, name: str, low: int) -> sp.Expr:
    """An integer >= low (python/numpy/sympy Integer), or a sympy expression that is not a number."""
    if isinstance(value, sp.Basic) and not value.is_number:
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(value, sp.Basic):
        if not value.is_Integer:
            raise ValueError(f"{name} must be an integer >= {low}, got {value}")
        value = int(value)
    elif hasattr(value, "__index__"):
        value = int(value.__index__())
    else:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r} (non-integers are not allowed)")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return sp.Integer(value)


def _real_or_symbol(value: Any, name: str, allowed: str, ok) -> sp.Expr:
    """A finite real number (python/numpy/sympy) with ``ok(value)`` true, or a sympy expression that is not a
    number (a formula). Strings, bools, NaN, infinities and complex numbers are rejected."""
    if isinstance(value, sp.Basic) and not value.is_number:
        return value
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, sp.Basic)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    v = sp.sympify(value)
    if not (v.is_extended_real and v.is_finite and ok(v)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return v


def _check_k(value: Any) -> sp.Expr:
    return _real_or_symbol(value, "k", "> 0 (a finite real number) or a sympy expression", lambda v: v > 0)


def _check_choice(value: Any, allowed: tuple, name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


# ----------------------------------------------------------------------------------------------------------
# the law l = P^(-1/d) and its consequences
# ----------------------------------------------------------------------------------------------------------
def spacing(P_: Any = P, d_: Any = d) -> sp.Expr:
    r"""Typical gap between P points in :math:`[0,1]^d`: :math:`l = P^{-1/d}` (one point per cell of volume 1/P)."""
    Pv, dv = _int_or_symbol(P_, "P", 1), _int_or_symbol(d_, "d", 1)
    return Pv ** (-1 / dv)


def points_for_spacing(l_: Any = l, d_: Any = d) -> sp.Expr:
    r"""Points needed for a spacing l: :math:`P = l^{-d}` (inverse of :func:`spacing`; exponential in d)."""
    dv = _int_or_symbol(d_, "d", 1)
    lv = _real_or_symbol(l_, "l", "in (0, 1] or a sympy expression", lambda v: (v > 0) & (v <= 1))
    return lv ** (-dv)


def nn_regression_exponent(d_: Any = d, loss: str = "abs") -> sp.Expr:
    r"""Learning-curve exponent β of nearest-neighbour regression of a Lipschitz target,
    :math:`\varepsilon \sim P^{-\beta}`: β = 1/d for the mean absolute error, 2/d for the mean squared error."""
    _check_choice(loss, LOSSES, "loss")
    dv = _int_or_symbol(d_, "d", 1)
    return (1 if loss == "abs" else 2) / dv


def nn_regression_error_scaling(P_: Any = P, d_: Any = d, loss: str = "abs") -> sp.Expr:
    r""":math:`P^{-\beta}` with β from :func:`nn_regression_exponent` (the law up to a constant factor)."""
    Pv = _int_or_symbol(P_, "P", 1)
    return Pv ** (-nn_regression_exponent(d_, loss))


# ----------------------------------------------------------------------------------------------------------
# exact nearest-neighbour distances on the torus
# ----------------------------------------------------------------------------------------------------------
def ball_volume(d_: Any = d, metric: str = "chebyshev") -> sp.Expr:
    r"""Volume of the unit ball: :math:`2^d` (L∞, a cube of side 2) or :math:`\pi^{d/2}/\Gamma(d/2+1)` (L2)."""
    _check_choice(metric, METRICS, "metric")
    dv = _int_or_symbol(d_, "d", 1)
    return 2**dv if metric == "chebyshev" else sp.pi ** (dv / 2) / sp.gamma(dv / 2 + 1)


def nn_survival(r_: Any = r, P_: Any = P, d_: Any = d, metric: str = "chebyshev") -> sp.Expr:
    r""":math:`\Pr(r_{NN} > r) = (1 - V r^d)^{P-1}` on the torus (V from :func:`ball_volume`), exact for
    :math:`0 \le r \le 1/2`. L∞: that is the whole range (0 beyond r = 1/2, the largest distance). L2: the
    ball wraps around the torus beyond 1/2, so a number r > 1/2 raises ValueError and a symbolic r gives
    ``nan`` there (``Piecewise``)."""
    Pv, dv = _int_or_symbol(P_, "P", 2), _int_or_symbol(d_, "d", 1)
    _check_choice(metric, METRICS, "metric")
    half = sp.Rational(1, 2)
    if metric == "chebyshev":
        rv = _real_or_symbol(r_, "r", ">= 0 (a finite real number) or a sympy expression", lambda v: v >= 0)
    else:
        rv = _real_or_symbol(r_, "r", "in [0, 1/2] for metric='euclidean' (beyond 1/2 the ball wraps around "
                             "the torus) or a sympy expression", lambda v: (v >= 0) & (v <= half))
    surv = (1 - ball_volume(dv, metric) * rv**dv) ** (Pv - 1)
    return sp.Piecewise((surv, rv <= half), (0 if metric == "chebyshev" else sp.nan, True))


def _gamma_ratio(Pv: sp.Expr, a: sp.Expr) -> sp.Expr:
    r""":math:`\Gamma(P)/\Gamma(P+a) = 1/(P)_a` (rising factorial: avoids expanding Γ(P) = (P-1)! for large P)."""
    return 1 / sp.rf(Pv, a)


def nn_distance_moment(P_: Any = P, d_: Any = d, k_: Any = 1, metric: str = "chebyshev") -> sp.Expr:
    r""":math:`\mathbb E[r_{NN}^k]` on the torus: :math:`V^{-k/d}\,\Gamma(1+k/d)\,\Gamma(P)/\Gamma(P+k/d)` with
    :math:`V = 2^d` (L∞: exact) or :math:`V_d` (L2: exact up to :func:`euclidean_wrap_error_bound`)."""
    Pv, dv, kv = _int_or_symbol(P_, "P", 2), _int_or_symbol(d_, "d", 1), _check_k(k_)
    _check_choice(metric, METRICS, "metric")
    a = kv / dv
    pref = 2**-kv if metric == "chebyshev" else ball_volume(dv, metric) ** (-a)
    return pref * sp.gamma(1 + a) * _gamma_ratio(Pv, a)


def expected_nn_distance(P_: Any = P, d_: Any = d, metric: str = "chebyshev") -> sp.Expr:
    r""":math:`\mathbb E[r_{NN}] = \frac{\Gamma(1+1/d)\,\Gamma(P)}{2\,\Gamma(P+1/d)}` (L∞ torus, exact)
    or :math:`V_d^{-1/d}\Gamma(1+1/d)\Gamma(P)/\Gamma(P+1/d)` (L2 torus, up to an exponentially small term)."""
    return nn_distance_moment(P_, d_, 1, metric)


def nn_distance_variance(P_: Any = P, d_: Any = d, metric: str = "chebyshev") -> sp.Expr:
    r""":math:`\mathrm{Var}[r_{NN}] = \mathbb E[r^2] - \mathbb E[r]^2` for one point (moments as above)."""
    return nn_distance_moment(P_, d_, 2, metric) - nn_distance_moment(P_, d_, 1, metric) ** 2


def expected_nn_distance_asymptotic(P_: Any = P, d_: Any = d, metric: str = "chebyshev") -> sp.Expr:
    r"""Large-P law :math:`\mathbb E[r_{NN}] \simeq V^{-1/d}\Gamma(1+1/d)\,P^{-1/d}` (from
    :math:`\Gamma(P)/\Gamma(P+a) = P^{-a}(1 + O(1/P))`): the spacing :math:`l = P^{-1/d}` with its prefactor."""
    Pv, dv = _int_or_symbol(P_, "P", 2), _int_or_symbol(d_, "d", 1)
    pref = sp.Rational(1, 2) if metric == "chebyshev" else ball_volume(dv, metric) ** (-1 / dv)
    _check_choice(metric, METRICS, "metric")
    return pref * sp.gamma(1 + 1 / dv) * Pv ** (-1 / dv)


def euclidean_wrap_error_bound(P_: Any, d_: Any, k_: Any = 1) -> sp.Expr:
    r"""Bound on :math:`|\mathbb E[r^k]_{\rm true} - \mathbb E[r^k]_{\rm formula}|` for the L2 metric on the
    torus: the survival functions agree for r <= 1/2 and both are <= :math:`q = (1 - V_d 2^{-d})^{P-1}` and
    vanish beyond :math:`R = \max(\sqrt d/2, V_d^{-1/d})`, so the difference is <= :math:`(R^k - 2^{-k})\,q`."""
    Pv, dv, kv = _int_or_symbol(P_, "P", 2), _int_or_symbol(d_, "d", 1), _check_k(k_)
    Vd = ball_volume(dv, "euclidean")
    R = sp.Max(sp.sqrt(dv) / 2, Vd ** (-1 / dv))
    return (R**kv - 2**-kv) * (1 - Vd / 2**dv) ** (Pv - 1)


def derive_expected_nn_distance(P_: Any = P, d_: Any = d, k_: Any = 1) -> dict[str, sp.Expr]:
    r"""The derivation, step by step, for the L∞ torus (reads like the module docstring):

    ``survival`` :math:`S(r) = (1-(2r)^d)^{P-1}`; ``integral`` :math:`\int_0^{1/2} k r^{k-1} S(r)\,dr` (done
    by sympy: a polynomial for integer P, d, k, so this is an independent check of the Beta-function
    result); ``beta_form`` :math:`\frac{k}{2^k d} B(k/d, P)`; ``gamma_form`` (= :func:`nn_distance_moment`).
    """
    Pv, dv, kv = _int_or_symbol(P_, "P", 2), _int_or_symbol(d_, "d", 1), _check_k(k_)
    surv = (1 - (2 * r) ** dv) ** (Pv - 1)
    integral = sp.integrate(kv * r ** (kv - 1) * surv, (r, 0, sp.Rational(1, 2)))
    beta_form = kv / (2**kv * dv) * sp.beta(kv / dv, Pv)
    gamma_form = nn_distance_moment(Pv, dv, kv, "chebyshev")
    return {"survival": surv, "integral": integral, "beta_form": beta_form, "gamma_form": gamma_form}


# ----------------------------------------------------------------------------------------------------------
# command line: python -m theory.dimension --P 1000 --d 3 --json
# ----------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    """Print the spacing law, the NN exponent and the exact E[r_NN] for given P and d."""
    ap = argparse.ArgumentParser(prog="python -m theory.dimension", description=main.__doc__)
    ap.add_argument("--P", type=int, required=True, help="number of points (>= 2)")
    ap.add_argument("--d", type=int, required=True, help="dimension of the unit cube [0, 1]^d (>= 1)")
    ap.add_argument("--metric", choices=METRICS, default="chebyshev",
                    help="distance of the nearest-neighbour law (default chebyshev: exact on the torus)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    out = {
        "P": a.P, "d": a.d, "metric": a.metric,
        "spacing": float(spacing(a.P, a.d)),
        "beta_abs": float(nn_regression_exponent(a.d, "abs")),
        "beta_squared": float(nn_regression_exponent(a.d, "squared")),
        "expected_nn_distance": float(sp.N(expected_nn_distance(a.P, a.d, a.metric), 17)),
        "expected_nn_distance_asymptotic": float(sp.N(expected_nn_distance_asymptotic(a.P, a.d, a.metric), 17)),
        "points_for_spacing_0.1": float(points_for_spacing(sp.Rational(1, 10), a.d)),
    }
    if a.metric == "euclidean":
        out["wrap_error_bound"] = float(sp.N(euclidean_wrap_error_bound(a.P, a.d)))
    print(json.dumps(out) if a.json else "\n".join(f"{k_}: {v}" for k_, v in out.items()))
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
