"""numerics.fitting.fit_power_law, the one power-law fit: weighted path and interval rules against numpy's polyfit
(an independent least-squares implementation); the unweighted path is checked in test_spherical_numerics."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from numerics.fitting import fit_power_law


@settings(max_examples=40, deadline=None)
@given(st.floats(-3.0, 3.0), st.floats(0.01, 0.3), st.integers(0, 2**32 - 1), st.booleans(),
       st.sampled_from(["t", "z"]))
def test_weighted_fit_matches_polyfit(b, rel, seed, decay, rule):
    rng = np.random.default_rng(seed)
    x = np.array([1.0, 2, 3, 5, 8, 13])
    se = rel * (1 + rng.random(x.size))              # relative errors differ point to point
    y = 2.0 * x**b * np.exp(se * rng.standard_normal(x.size))
    f = fit_power_law(x, y, se * y, interval=rule, decay=decay)
    coef, cov = np.polyfit(np.log(x), np.log(y), 1, w=1 / se, cov="unscaled")
    chi2 = float(np.sum(((np.log(y) - np.polyval(coef, np.log(x))) / se) ** 2))
    sd = math.sqrt(cov[0, 0] * max(1.0, chi2 / (x.size - 2)))
    assert f.exponent == pytest.approx(-coef[0] if decay else coef[0], rel=1e-9, abs=1e-12)
    assert f.prefactor == pytest.approx(math.exp(coef[1]), rel=1e-9)
    assert f.se == pytest.approx(sd, rel=1e-7) and f.chi2 == pytest.approx(chi2, rel=1e-7) and f.dof == 4
    q = stats.t.ppf(0.975, 4) if rule == "t" else stats.norm.ppf(0.975)
    assert f.ci == pytest.approx((f.exponent - q * f.se, f.exponent + q * f.se), abs=1e-12)
    assert f.interval(0.95) == pytest.approx(f.ci, abs=1e-12)


def test_growth_and_decay_conventions_are_opposite_signs():
    k = np.arange(1, 9.0)
    assert fit_power_law(k, 3 * k**-1.5, decay=False).exponent == pytest.approx(-1.5, abs=1e-12)
    assert fit_power_law(k, 3 * k**-1.5).exponent == pytest.approx(1.5, abs=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: fit_power_law([1, 2, 3], [1, 2, 3], interval="normal"), r"^interval must be one of"),
    (lambda: fit_power_law([1, 2, 3], [1, 2, 3], level=1.0), r"^level must be > 0.0 and < 1.0"),
    (lambda: fit_power_law([1, 2, 3], [1, 2, 3], decay=1), r"^decay must be True or False"),
    (lambda: fit_power_law([1, 2, 3], [1, 2, 3], [1, 1]), r"^se must have the shape of err"),
    (lambda: fit_power_law([1, 2, 3], ["a", "b", "c"]), r"^P, err and se must be numeric arrays"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- finite_size_ftests -------------------------------------------------------------------------------------------
from scipy.optimize import least_squares  # noqa: E402

from numerics.fitting import finite_size_ftests  # noqa: E402

_SIZES = np.repeat([64.0, 128, 256, 512, 1024, 2048, 4096], 4)


def _brute_rss(P, err, beta=None):
    """RSS of log err = a - beta log P + log(1 - b P^-1/2) by scipy's nonlinear least squares over (a, b[, beta])
    from several starts: an independent minimiser for the profiled search of the fitting module."""
    y, x, z = np.log(err), np.log(P), P ** -0.5
    best = np.inf
    for b0 in (-3.0, -0.5, 0.0, 0.5, 0.9 / z.max()):
        def res(p):
            bb = p[1]
            beta_ = p[2] if beta is None else beta
            return y - p[0] + beta_ * x - np.log1p(-np.minimum(bb * z, 1 - 1e-12))
        p0 = [np.mean(y), b0] + ([2.0] if beta is None else [])
        r = least_squares(res, p0, bounds=([-np.inf, -np.inf] + ([-np.inf] if beta is None else []),
                                           [np.inf, (1 - 1e-9) / z.max()] + ([np.inf] if beta is None else [])))
        best = min(best, float(np.sum(r.fun ** 2)))
    return best


@settings(max_examples=15, deadline=None)
@given(st.floats(1.0, 3.0), st.floats(-3.0, 5.0), st.floats(0.02, 0.3), st.integers(0, 2**32 - 1))
def test_ftests_match_brute_force_least_squares(beta, b, noise, seed):
    rng = np.random.default_rng(seed)
    err = _SIZES ** -beta * (1 - b * _SIZES ** -0.5) * np.exp(noise * rng.standard_normal(_SIZES.size))
    t = finite_size_ftests(_SIZES, err, beta)
    n = _SIZES.size
    # the same F statistics from RSS minimised independently (polyfit for the linear models)
    y, x = np.log(err), np.log(_SIZES)
    rss1 = float(np.sum((y - np.polyval(np.polyfit(x, y, 1), x)) ** 2))
    rss0 = float(np.sum((y + beta * x - np.mean(y + beta * x)) ** 2))
    assert t["n"] == n
    assert t["pure"]["F"] == pytest.approx((rss0 - rss1) / (rss1 / (n - 2)), rel=1e-6, abs=1e-9)
    assert t["free_exponent"] == pytest.approx(-np.polyfit(x, y, 1)[0], rel=1e-9)

    def rss_at(beta_, b_):  # RSS of the corrected law at (beta, b), log A by its mean
        r = y + beta_ * x - np.log1p(-b_ * _SIZES ** -0.5)
        return float(np.sum((r - r.mean()) ** 2))
    c = t["corrected"]
    rssc = rss_at(beta, c["b"])
    rss3 = min(rss_at(c["exponent"], c["b_free"]), rssc, rss1)
    # the returned parameters give the F statistic, and they fit at least as well as an independent minimiser
    assert c["F"] == pytest.approx((rssc - rss3) / (rss3 / (n - 3)), rel=1e-6, abs=1e-9)
    assert rssc <= _brute_rss(_SIZES, err, beta) * (1 + 1e-6)
    assert rss3 <= min(_brute_rss(_SIZES, err), rss1) * (1 + 1e-6)
    assert 0 <= t["pure"]["p"] <= 1 and 0 <= t["corrected"]["p"] <= 1


def test_ftest_p_values_are_calibrated_under_their_nulls():
    # pure law with lognormal noise: the pure test's p is uniform, P(p < 0.05) = 0.05; over 400 draws the count
    # is Binomial(400, 0.05): mean 20, sd 4.36; accept 6..36 (beyond 3.2 sd, false alarm < 0.2%). The same for the
    # corrected test when the data follow the corrected law (b = 2); it is exact for the pure test (linear model,
    # Gaussian errors) and asymptotic for the corrected one (nonlinear in b), hence the same wide band.
    rng = np.random.default_rng(7)
    for b, key in ((0.0, "pure"), (2.0, "corrected")):
        ps = []
        for _ in range(400):
            err = _SIZES ** -2.5 * (1 - b * _SIZES ** -0.5) * np.exp(0.2 * rng.standard_normal(_SIZES.size))
            ps.append(finite_size_ftests(_SIZES, err, 2.5)[key]["p"])
        k = int(np.sum(np.array(ps) < 0.05))
        assert 6 <= k <= 36, (key, k)


def test_ftests_reject_a_wrong_exponent_and_detect_the_correction():
    rng = np.random.default_rng(3)
    err = _SIZES ** -2.5 * (1 - 3.0 * _SIZES ** -0.5) * np.exp(0.02 * rng.standard_normal(_SIZES.size))
    t = finite_size_ftests(_SIZES, err, 2.5)
    assert t["pure"]["p"] < 1e-6          # the correction bends the line: the pure law at 5/2 is rejected
    assert t["corrected"]["p"] > 0.01     # the corrected law at 5/2 is not
    assert t["corrected"]["b"] == pytest.approx(3.0, abs=0.5)
    assert t["corrected"]["exponent"] == pytest.approx(2.5, abs=0.05)
    assert finite_size_ftests(_SIZES, err, 2.0)["corrected"]["p"] < 1e-6


@pytest.mark.parametrize("P, err, beta, name", [
    (_SIZES[:4], np.ones(4), 2.0, "P"), (_SIZES, np.ones(3), 2.0, "P"), (_SIZES, -np.ones(_SIZES.size), 2.0, "err"),
    (np.full(_SIZES.size, np.nan), np.ones(_SIZES.size), 2.0, "P"), (_SIZES, np.ones(_SIZES.size), "2", "beta"),
    (_SIZES, np.ones(_SIZES.size), float("nan"), "beta")])
def test_ftests_bad_arguments(P, err, beta, name):
    from theory.arguments import ArgumentError
    with pytest.raises((TypeError, ValueError)) as e:
        finite_size_ftests(P, err, beta)
    assert isinstance(e.value, ArgumentError) and e.value.argument == name
