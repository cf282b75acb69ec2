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
