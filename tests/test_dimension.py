"""Curse of dimensionality: theory.dimension (sympy) against numerics.nearest_neighbour (numba Monte Carlo)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from numerics.fitting import fit_power_law
from numerics.nearest_neighbour import (
    learning_curve,
    nearest_neighbours,
    nn_distances,
    nn_regression_error,
    simulate_nn_distance,
    uniform_points,
)
from theory import dimension as th
from numerics.testing import assert_mc_close


def _num(expr) -> float:
    return float(sp.N(expr, 30))


def _log_slope(expr) -> float:
    """-d log(expr)/d log P: the exponent β of a law expr ∝ P^(-β), read off the sympy expression itself."""
    return _num(sp.simplify(-th.P * sp.diff(sp.log(expr), th.P)))


@lru_cache(maxsize=None)
def _nn_sample(P: int, d: int, metric: str, n_configs: int) -> np.ndarray:
    """r_NN of every point of ``n_configs`` independent configurations of P uniform points on the torus
    (numerics.nearest_neighbour.nn_distances), shape (n_configs, P); shared by the survival and variance tests."""
    rng = np.random.default_rng(1000 * P + 10 * d + len(metric))
    return np.array([nn_distances(rng.random((P, d)), metric=metric) for _ in range(n_configs)])


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


@pytest.mark.parametrize("d", [2, 3])
def test_spacing_law_matches_simulated_nn_distances(d):
    """Independent check of l = P^(-1/d): the mean nearest-neighbour distance simulated at P = 64 .. 1024 (L∞
    torus, 2e4 distances per P) scales as a power of P whose fitted exponent must contain the exponent of
    :func:`spacing` (-d log l/d log P of its expression) in its 99 % interval. points_for_spacing is its
    inverse (test above), so it is covered too. Finite-P bias: E[r] ∝ Γ(P)/Γ(P+1/d) has local exponent
    1/d + (1/d)(1 - 1/d)/(2P) <= 1/d + 0.002 at P = 64, i.e. < 1 s.e. (measured: β = 0.5008 ± 0.0016 at d = 2,
    0.3329 ± 0.0020 at d = 3); se < 0.02/d makes the test sharp (1/d and 1/(d+1) differ by > 40 s.e.)."""
    Ps = [64 * 2**i for i in range(5)]
    rng = np.random.default_rng(d)
    ests = [simulate_nn_distance(P, d, n_configs=20_000 // P, seed=rng) for P in Ps]
    fit = fit_power_law(Ps, [e.mean for e in ests], [e.se for e in ests], interval="z")
    beta = _log_slope(th.spacing(th.P, d))
    lo, hi = fit.interval(0.99)
    assert lo < beta < hi, (fit, beta)
    assert fit.se < 0.02 / d


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
    assert_mc_close(mc.mean, mc.se, exact)
    assert mc.se < 0.05 * exact  # the test is sharp


@pytest.mark.parametrize("P, d", [(3, 2), (40, 3), (150, 4)])
def test_second_moment_and_variance(P, d):
    mc2 = simulate_nn_distance(P, d, n_configs=max(200, 100_000 // P), moment=2, seed=1)
    assert_mc_close(mc2.mean, mc2.se, _num(th.nn_distance_moment(P, d, 2)))
    pts = uniform_points(P, d, seed=0)
    r = nn_distances(pts)
    assert r.shape == (P,) and np.all(r > 0) and np.all(r <= 0.5)
    assert _num(th.nn_distance_variance(P, d)) > 0


# (P, d, metric, configurations, radii with 0.13 <= S(r) <= 0.94; L2 radii <= 1/2, where the formula is claimed)
SURVIVAL_CASES = [
    (3, 2, "chebyshev", 3000, [0.1, 0.2, 0.3, 0.4]),
    (3, 3, "euclidean", 3000, [0.2, 0.3, 0.4, 0.5]),
    (50, 3, "chebyshev", 400, [0.06, 0.08, 0.1, 0.15]),
    (50, 2, "euclidean", 400, [0.02, 0.04, 0.06, 0.08, 0.1]),
]


@pytest.mark.parametrize("P, d, metric, n, radii", SURVIVAL_CASES)
def test_survival_matches_empirical_survival_function(P, d, metric, n, radii):
    """nn_survival against the empirical survival function of simulated r_NN, pooled over the P points of n
    independent configurations. The points of one configuration are correlated (nearest neighbours are often
    mutual), so the s.e. is the s.d. across configurations of the per-configuration fraction / sqrt(n); measured
    1.05-1.40 times the binomial sqrt(S(1-S)/(nP)) and <= 0.007. Tolerance 4 s.e. at each radius (measured
    |deviations| <= 2.14 s.e. over the 17 radii)."""
    r = _nn_sample(P, d, metric, n)
    frac = (r[:, :, None] > np.asarray(radii)).mean(axis=1)  # (n, radii)
    emp, se = frac.mean(axis=0), frac.std(axis=0, ddof=1) / math.sqrt(n)
    exact = np.array([_num(th.nn_survival(x, P, d, metric)) for x in radii])
    assert_mc_close(emp, se, exact)
    assert np.all(se < 0.01)
    if metric == "chebyshev":  # 1/2 is the largest L∞ distance on the torus
        assert r.max() <= 0.5 and th.nn_survival(0.6, P, d) == 0
    else:  # beyond 1/2 the L2 ball wraps around: no number is returned there
        assert th.nn_survival(th.r, P, d, metric).subs(th.r, 0.7) is sp.nan


@pytest.mark.parametrize("P, d, metric, n", [(3, 2, "chebyshev", 3000), (50, 3, "chebyshev", 400),
                                             (50, 2, "euclidean", 400)])
def test_variance_matches_monte_carlo_variance(P, d, metric, n):
    """nn_distance_variance against the variance of simulated r_NN, V = <r^2> - <r>^2 pooled over n
    configurations. s.e. by the delta method over independent configurations: influence (a_c - a) - 2 b (b_c - b)
    with a_c, b_c the per-configuration means of r^2 and r; measured 1.1-1.6 % of V, deviations -1.81, -0.17,
    -2.28 s.e. for the three cases. Tolerance 4 s.e., plus for L2 the wrap-around allowance
    |ΔVar| <= B_2 + B_1 (2 E[r] + B_1) from euclidean_wrap_error_bound (4e-34 at P = 50: tested as exact)."""
    r = _nn_sample(P, d, metric, n)
    a, b = (r**2).mean(axis=1), r.mean(axis=1)
    var = a.mean() - b.mean() ** 2
    psi = (a - a.mean()) - 2 * b.mean() * (b - b.mean())
    se = psi.std(ddof=1) / math.sqrt(n)
    exact = _num(th.nn_distance_variance(P, d, metric))
    allow = 0.0
    if metric == "euclidean":
        b1, b2 = _num(th.euclidean_wrap_error_bound(P, d, 1)), _num(th.euclidean_wrap_error_bound(P, d, 2))
        allow = b2 + b1 * (2 * _num(th.expected_nn_distance(P, d, metric)) + b1)
    assert_mc_close(var, se, exact, atol=allow)
    assert se < 0.03 * exact and allow < 0.01 * se


def _disk_in_square(rho: float) -> float:
    """Area of {|z| <= rho} ∩ [-1/2, 1/2]^2: the disk minus the four circular segments beyond the edges."""
    if rho <= 0.5:
        return math.pi * rho**2
    if rho >= math.sqrt(0.5):
        return 1.0
    return math.pi * rho**2 - 4 * (rho**2 * math.acos(0.5 / rho) - 0.5 * math.sqrt(rho**2 - 0.25))


def _torus_ball_volume(r: float, d: int) -> float:
    """Volume of the L2 ball of radius r on the unit torus, i.e. of {|z| <= r} ∩ [-1/2, 1/2]^d (d = 2, 3)."""
    if d == 2:
        return _disk_in_square(r)
    h = min(r, 0.5)  # d = 3: slices z_3 = t are disks of radius sqrt(r^2 - t^2) in the square
    return 2 * quad(lambda t: _disk_in_square(math.sqrt(max(r * r - t * t, 0.0))), 0, h, epsabs=1e-13,
                    limit=200)[0]


def _true_euclidean_moment(P: int, d: int, k: int) -> float:
    """E[r_NN^k] on the L2 torus without approximation: one of the P-1 others is within r with probability
    V_torus(r), so S(r) = (1 - V_torus(r))^(P-1) exactly, integrated up to the largest distance sqrt(d)/2."""
    kinks = [x for x in (0.5, math.sqrt(0.5)) if x < math.sqrt(d) / 2]
    return quad(lambda x: k * x ** (k - 1) * (1 - _torus_ball_volume(x, d)) ** (P - 1), 0, math.sqrt(d) / 2,
                points=kinks, epsabs=1e-13, limit=200)[0]


@pytest.mark.parametrize("P, d, k", [(2, 2, 1), (3, 3, 1), (3, 3, 2), (5, 3, 1)])
def test_euclidean_wrap_error_bound_bounds_the_true_error(P, d, k):
    """At small P the wrap-around error is not negligible, so the bound is really tested: the exact torus
    moment (second derivation: numerical integration of the exact survival function with the ball-cube
    intersection volume) differs from the formula by 0.0065, 0.0030, 0.0036, 0.00025 and the bound is 7-76
    times larger (measured |error|/bound = 0.146, 0.036, 0.032, 0.013). quad's error (< 1e-10) is negligible."""
    assert _torus_ball_volume(0.4, 3) == pytest.approx(4 / 3 * math.pi * 0.4**3, rel=1e-10)  # no wrap yet
    assert _torus_ball_volume(math.sqrt(3) / 2, 3) == pytest.approx(1.0, rel=1e-10)  # the whole cube
    true = _true_euclidean_moment(P, d, k)
    formula = _num(th.nn_distance_moment(P, d, k, "euclidean"))
    bound = _num(th.euclidean_wrap_error_bound(P, d, k))
    assert 0 < abs(true - formula) <= bound
    assert abs(true - formula) > 1e-6  # a real discrepancy, far above quad's error


@pytest.mark.parametrize("P, d", [(2, 2), (3, 3)])
def test_true_euclidean_moment_against_monte_carlo(P, d):
    """The numerical integration used above agrees with the Monte-Carlo mean (5e4 configurations, 4 s.e.), and
    the Monte Carlo resolves the formula's wrap-around error (measured: MC - integral = -0.44 and -0.90 s.e.,
    MC - formula = 9.7 and 6.6 s.e.), so the discrepancy tested against the bound is real."""
    mc = simulate_nn_distance(P, d, n_configs=50_000, metric="euclidean", seed=P + d)
    assert_mc_close(mc.mean, mc.se, _true_euclidean_moment(P, d, 1))
    assert abs(mc.mean - _num(th.expected_nn_distance(P, d, "euclidean"))) > 4 * mc.se


@pytest.mark.parametrize("P, d", [(30, 1), (60, 2), (200, 3)])
def test_euclidean_formula_within_wrap_bound(P, d):
    bound = _num(th.euclidean_wrap_error_bound(P, d))
    exact = _num(th.expected_nn_distance(P, d, "euclidean"))
    assert bound < 1e-3 * exact
    mc = simulate_nn_distance(P, d, n_configs=max(100, 60_000 // P), metric="euclidean", seed=2)
    assert_mc_close(mc.mean, mc.se, exact, atol=bound)


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
    # the law nn_regression_error_scaling ∝ P^(-β): its own log-slope is tested against the simulation too
    assert lo < _log_slope(th.nn_regression_error_scaling(th.P, d, loss)) < hi
    assert fit.se < 0.05 * beta  # sharp enough to tell 1/d from 1/(d±1)
    assert all(a.mean > b.mean for a, b in zip(ests, ests[1:]))


def test_fit_power_law_recovers_exact_power():
    P = np.array([10, 20, 40, 80.0])
    fit = fit_power_law(P, 3 * P**-0.4, 0.01 * 3 * P**-0.4, interval="z")
    assert fit.exponent == pytest.approx(0.4, abs=1e-12) and fit.prefactor == pytest.approx(3.0)
    assert fit.chi2 == pytest.approx(0.0, abs=1e-18)


# ------------------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------------------
FIT = fit_power_law([10, 20, 40], [1.0, 0.7, 0.5], [0.01, 0.01, 0.01], interval="z")


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
        (lambda: fit_power_law([1, 2], [1, 2], [1, 1]), "at least 3 values"),
        (lambda: fit_power_law([1, 2, 3], [1, -2, 3], [1, 1, 1]), "err must be finite and > 0"),
        (lambda: fit_power_law([1, 2, 3], [1, np.inf, 3], [1, 1, 1]), "err must be finite and > 0"),
        (lambda: fit_power_law([1, 2, 3], [1, 2, 3], [1, np.nan, 1]), "se must be finite and > 0"),
        (lambda: fit_power_law([0, 2, 3], [1, 2, 3], [1, 1, 1]), "P must be a 1-d array of finite values > 0"),
        (lambda: FIT.interval(2.0), r"level must be > 0.0 and < 1.0"),
        (lambda: FIT.interval(0.0), r"level must be > 0.0 and < 1.0"),
        (lambda: FIT.interval(float("nan")), r"level must be finite"),
        (lambda: th.nn_survival(0.7, 5, 2, "euclidean"), r"r must be in \[0, 1/2\] for metric='euclidean'"),
        (lambda: th.nn_survival(5, 5, 2, "euclidean"), r"r must be in \[0, 1/2\]"),
        (lambda: th.nn_survival(float("nan"), 5, 2), "r must be >= 0"),
        (lambda: th.nn_survival(-0.1, 5, 2), "r must be >= 0"),
        (lambda: th.nn_survival(0.1, 5, 2, "l1"), "metric must be one of"),
        (lambda: th.euclidean_wrap_error_bound(5, 2, -1), "k must be > 0"),
        (lambda: th.euclidean_wrap_error_bound(5, 2, float("nan")), "k must be > 0"),
        (lambda: th.nn_distance_moment(10, 2, "a"), "k must be > 0"),
        (lambda: th.nn_distance_moment(10, 2, float("inf")), "k must be > 0"),
        (lambda: th.points_for_spacing("x", 2), "l must be in"),
        (lambda: th.points_for_spacing(float("nan"), 2), "l must be in"),
        (lambda: nearest_neighbours(np.empty((0, 2)), np.full((3, 2), 0.5)), "train must hold at least 1"),
        (lambda: nearest_neighbours(np.full((3, 2), 0.5), np.full((3, 2), 0.5), periodic="no"), "periodic"),
        (lambda: nn_regression_error(10, 2, target=lambda x: np.full(len(x), np.nan)), "target returned non-finite"),
        (lambda: nn_regression_error(10, 2, target=lambda x: np.full(len(x), np.inf)), "target returned non-finite"),
        (lambda: simulate_nn_distance(10, 2, periodic="no"), "periodic must be True or False"),
        (lambda: simulate_nn_distance(10, 2, block=0), "block must be an integer >= 1"),
        (lambda: simulate_nn_distance(10, 2, seed="a"), "seed must be None, an int"),
        (lambda: simulate_nn_distance(10, 2, seed=-1), "seed must be None, an int"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
