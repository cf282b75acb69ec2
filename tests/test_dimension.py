"""Curse of dimensionality: theory.dimension (sympy) against numerics.nearest_neighbour (numba Monte Carlo)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.nearest_neighbour import (
    fit_power_law,
    learning_curve,
    nearest_neighbours,
    nn_distances,
    nn_regression_error,
    simulate_nn_distance,
    uniform_points,
)
from theory import dimension as th


def _num(expr) -> float:
    return float(sp.N(expr, 30))


# ------------------------------------------------------------------------------------------------------------
# symbolic laws
# ------------------------------------------------------------------------------------------------------------
def test_spacing_law_and_its_inverse():
    P, d = th.P, th.d
    assert th.spacing() == P ** (-1 / d)
    assert sp.simplify(th.points_for_spacing(th.spacing(P, d), d) - P) == 0
    assert th.spacing(1000, 3) == sp.Rational(1, 10)
    assert th.points_for_spacing(sp.Rational(1, 10), 10) == 10**10  # the curse: 1e10 points for l = 0.1
    assert th.nn_regression_exponent(d) == 1 / d
    assert th.nn_regression_exponent(4, "squared") == sp.Rational(1, 2)
    assert th.nn_regression_error_scaling(P, 2) == P ** sp.Rational(-1, 2)


@settings(max_examples=12)
@given(P=st.integers(2, 9), d=st.integers(1, 4), k=st.integers(1, 2))
def test_exact_moment_equals_direct_integration_of_the_survival_function(P, d, k):
    """Second derivation: sympy integrates the polynomial survival function exactly; the Beta/Gamma closed form
    must agree to 30 digits."""
    der = th.derive_expected_nn_distance(P, d, k)
    assert der["integral"].is_Rational
    assert _num(der["integral"] - der["gamma_form"]) == pytest.approx(0.0, abs=1e-25)
    assert _num(der["beta_form"] - der["gamma_form"]) == pytest.approx(0.0, abs=1e-25)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("metric", ["chebyshev", "euclidean"])
def test_asymptotic_law(d, metric):
    ratio = th.expected_nn_distance(th.P, d, metric) / th.expected_nn_distance_asymptotic(th.P, d, metric)
    if metric == "chebyshev" and d in (2, 3):  # sympy's limit takes ~2 s each: two cases suffice
        assert sp.limit(ratio.rewrite(sp.gamma), th.P, sp.oo) == 1
    # and the finite-P correction is O(1/P): at P = 1e4 the ratio is 1 - (1/d)(1/d - 1)/(2P) + O(P^-2)
    a = 1 / d
    assert _num(ratio.subs(th.P, 10**4)) == pytest.approx(1 - a * (a - 1) / 2e4, abs=1e-7)


def test_closed_forms_for_d1():
    # d = 1, L∞ = L2: E[r] = Γ(2)Γ(P)/(2Γ(P+1)) = 1/(2P)
    for P in (2, 3, 17):
        assert sp.simplify(th.expected_nn_distance(P, 1).rewrite(sp.gamma)) == sp.Rational(1, 2 * P)
        assert sp.simplify(th.expected_nn_distance(P, 1, "euclidean").rewrite(sp.gamma)) == sp.Rational(1, 2 * P)
    assert th.ball_volume(2, "euclidean") == sp.pi and th.ball_volume(3) == 8


# ------------------------------------------------------------------------------------------------------------
# exact theory vs numba Monte Carlo
# ------------------------------------------------------------------------------------------------------------
@given(P=st.integers(2, 250), d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_expected_nn_distance_matches_monte_carlo_torus(P, d, seed):
    """L∞ torus: the formula is exact, so the Monte-Carlo mean over independent configurations must lie within
    4 standard errors (a false failure has probability 6e-5 per example)."""
    n_configs = max(40, 60_000 // P)
    mc = simulate_nn_distance(P, d, n_configs=n_configs, seed=seed)
    exact = _num(th.expected_nn_distance(P, d))
    assert abs(mc.mean - exact) < 4 * mc.se
    assert mc.se < 0.05 * exact  # the test is sharp


@pytest.mark.parametrize("P, d", [(3, 2), (40, 3), (150, 4)])
def test_second_moment_and_variance(P, d):
    mc2 = simulate_nn_distance(P, d, n_configs=max(200, 100_000 // P), moment=2, seed=1)
    assert abs(mc2.mean - _num(th.nn_distance_moment(P, d, 2))) < 4 * mc2.se
    pts = uniform_points(P, d, seed=0)
    r = nn_distances(pts)
    assert r.shape == (P,) and np.all(r > 0) and np.all(r <= 0.5)
    assert _num(th.nn_distance_variance(P, d)) > 0


@pytest.mark.parametrize("P, d", [(30, 1), (60, 2), (200, 3)])
def test_euclidean_formula_within_wrap_bound(P, d):
    bound = _num(th.euclidean_wrap_error_bound(P, d))
    exact = _num(th.expected_nn_distance(P, d, "euclidean"))
    assert bound < 1e-3 * exact
    mc = simulate_nn_distance(P, d, n_configs=max(100, 60_000 // P), metric="euclidean", seed=2)
    assert abs(mc.mean - exact) < 4 * mc.se + bound


def test_cube_has_larger_gaps_than_torus():
    """Without periodic images, points near the faces have fewer neighbours: E[r_NN] is larger in the cube."""
    torus = simulate_nn_distance(100, 3, n_configs=400, seed=3)
    cube = simulate_nn_distance(100, 3, n_configs=400, periodic=False, seed=3)
    assert cube.mean - torus.mean > 4 * math.hypot(cube.se, torus.se)


@given(n=st.integers(1, 30), m=st.integers(1, 30), d=st.integers(1, 4), seed=st.integers(0, 1000),
       metric=st.sampled_from(["chebyshev", "euclidean"]), periodic=st.booleans())
def test_nearest_neighbours_brute_force(n, m, d, seed, metric, periodic):
    rng = np.random.default_rng(seed)
    tr, qu = rng.random((n, d)), rng.random((m, d))
    idx, dist = nearest_neighbours(tr, qu, metric=metric, periodic=periodic)
    z = np.abs(qu[:, None, :] - tr[None, :, :])
    if periodic:
        z = np.minimum(z, 1 - z)
    D = z.max(-1) if metric == "chebyshev" else np.sqrt((z**2).sum(-1))
    np.testing.assert_allclose(dist, D.min(axis=1), rtol=1e-12)
    np.testing.assert_allclose(D[np.arange(m), idx], D.min(axis=1), rtol=1e-12)


# ------------------------------------------------------------------------------------------------------------
# learning curves: exponent 1/d
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "d, P_values, loss",
    [
        (1, [128 * 2**i for i in range(6)], "abs"),
        (2, [64 * 2**i for i in range(7)], "abs"),
        (3, [512 * 2**i for i in range(6)], "abs"),
        (2, [64 * 2**i for i in range(7)], "squared"),
    ],
)
def test_nn_regression_exponent_matches_one_over_d(d, P_values, loss):
    """Fitted β of the NN test error of the smooth periodic target Σ sin(2πx_k)/2π must contain 1/d (2/d for
    the squared loss) in its 99 % interval. Finite-P corrections are kept below ~0.3 s.e. by the P ranges:
    Γ(P+1)/Γ(P+1+1/d) deviates from P^(-1/d) by O(1/P), and the curvature of the target by O((2π r_NN)^2),
    which is why d = 3 starts at P = 512."""
    ests, fit = learning_curve(d, P_values, loss=loss, seed=0, n_test=400, n_configs=8)
    beta = _num(th.nn_regression_exponent(d, loss))
    lo, hi = fit.interval(0.99)
    assert lo < beta < hi, (fit, beta)
    assert fit.se < 0.05 * beta  # sharp enough to tell 1/d from 1/(d±1)
    assert all(a.mean > b.mean for a, b in zip(ests, ests[1:]))


def test_fit_power_law_recovers_exact_power():
    P = np.array([10, 20, 40, 80.0])
    fit = fit_power_law(P, 3 * P**-0.4, 0.01 * 3 * P**-0.4)
    assert fit.beta == pytest.approx(0.4, abs=1e-12) and fit.prefactor == pytest.approx(3.0)
    assert fit.chi2 == pytest.approx(0.0, abs=1e-18)


# ------------------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: th.spacing(10, 0), "d must be an integer >= 1"),
        (lambda: th.spacing(10, 2.5), "d must be an integer"),
        (lambda: th.spacing(0, 2), "P must be an integer >= 1"),
        (lambda: th.expected_nn_distance(1, 2), "P must be an integer >= 2"),
        (lambda: th.expected_nn_distance(10.0, 2), "P must be an integer"),
        (lambda: th.expected_nn_distance(sp.Rational(5, 2), 2), "P must be an integer"),
        (lambda: th.expected_nn_distance(10, True), "d must be an integer"),
        (lambda: th.expected_nn_distance(10, 2, "manhattan"), "metric must be one of"),
        (lambda: th.nn_regression_exponent(2, "hinge"), "loss must be one of"),
        (lambda: th.points_for_spacing(2, 2), "l must be in"),
        (lambda: th.nn_distance_moment(10, 2, -1), "k must be > 0"),
        (lambda: simulate_nn_distance(1, 2), "P must be an integer >= 2"),
        (lambda: simulate_nn_distance(10, 0), "d must be an integer >= 1"),
        (lambda: simulate_nn_distance(10.5, 2), "P must be an integer"),
        (lambda: simulate_nn_distance(10, 2, metric="l1"), "metric must be one of"),
        (lambda: simulate_nn_distance(10, 2, n_configs=1), "n_configs"),
        (lambda: nn_regression_error(10, 2, loss="hinge"), "loss must be one of"),
        (lambda: nn_regression_error(10, 2, target=lambda x: x), "target must map"),
        (lambda: nn_distances(np.ones((1, 2)) * 0.5), "P >= 2"),
        (lambda: nn_distances(np.ones((3, 2)) * 2), r"\[0, 1\]"),
        (lambda: nearest_neighbours(np.ones((3, 2)) * 0.5, np.ones((3, 3)) * 0.5), "same dimension"),
        (lambda: fit_power_law([1, 2], [1, 2], [1, 1]), "length >= 3"),
        (lambda: fit_power_law([1, 2, 3], [1, -2, 3], [1, 1, 1]), "positive"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
