"""Law of sums of independent rectified Gaussians (`theory.rectified_sums`) against independent computations.

* M = 1: the closed-form Gaussian moments of `theory.scale_gauss` (E (c - theta + g)_+^p): the lattice projection
  keeps the mean exactly and its O(h^2) error is removed by the extrapolation; tolerance 1e-9 relative, far
  above the round-off (~1e-14) and far below any effect of a wrong bin rule (O(h) = 1e-3).
* M = 2 (a unit with signal c in {0, 1} and a zero-mean unit): a second derivation by conditioning on the
  zero-mean unit t (see `_two_units_by_conditioning`), a one-dimensional adaptive quadrature of closed-form
  Gaussian moments (error < 1e-12); tolerance 1e-9.
* the lattice law itself: total mass 1 and exact mean E ReLU(c + g) (mean-preserving projection), to 1e-12.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm

from theory.rectified_sums import biased_relu_moments, rectified_sum_law, relu_gaussian_lattice_law
from theory.scale_gauss import relu_mean, relu_second_moment

sds = st.floats(0.05, 1.0)


@given(st.sampled_from([0.0, 1.0, 2.0]), sds, st.sampled_from([0.0, 1.0, 2.0]))
def test_single_unit_matches_closed_form(c, sd, theta):
    m1, m2, err = biased_relu_moments([c] if c else [], 0 if c else 1, sd, theta)
    a = (c - theta) / sd          # z = ReLU(ReLU(c + g) - theta) = ReLU(c - theta + g) for theta >= 0
    assert m1 == pytest.approx(sd * float(relu_mean(a)), rel=1e-9, abs=1e-14)
    assert m2 == pytest.approx(sd * sd * float(relu_second_moment(a)), rel=1e-9, abs=1e-14)
    assert err < 1e-6


def _two_units_by_conditioning(c: float, sd: float) -> float:
    """E ReLU(ReLU(c + g1) + ReLU(g2) - 1), 0 <= c <= 1, by conditioning on t = ReLU(g2).

    t = 0 (prob 1/2): E ReLU(ReLU(c + g1) - 1) = sd m((c - 1)/sd), m(a) = a Phi(a) + phi(a) (c <= 1 so the
    inner ReLU does not matter).  0 < t < 1: ReLU(c + g1) + t - 1 > 0 iff c + g1 > 1 - t > 0, so the value is
    E(c + t - 1 + g1)_+ = sd m((c + t - 1)/sd).  t >= 1: always positive: E ReLU(c + g1) + t - 1."""
    m = lambda a: a * norm.cdf(a) + norm.pdf(a)  # noqa: E731
    p = lambda t: norm.pdf(t, scale=sd)  # noqa: E731
    v0 = 0.5 * sd * m((c - 1) / sd)
    v1 = integrate.quad(lambda t: sd * m((c + t - 1) / sd) * p(t), 0, 1, epsabs=1e-14, epsrel=1e-13)[0]
    v2 = integrate.quad(lambda t: (sd * m(c / sd) + t - 1) * p(t), 1, 1 + 40 * sd, epsabs=1e-14, epsrel=1e-13)[0]
    return v0 + v1 + v2


@given(st.sampled_from([0.0, 1.0]), sds)
def test_two_units_match_conditioning_derivation(c, sd):
    cs = [c] if c else []
    m1, _, _ = biased_relu_moments(cs, 2 - len(cs), sd, 1.0)
    assert m1 == pytest.approx(_two_units_by_conditioning(c, sd), rel=1e-9, abs=1e-13)


@given(st.sampled_from([0.0, 0.5, 1.0, 2.0]), sds)
def test_lattice_law_is_mean_preserving(c, sd):
    h = sd / 50
    p = relu_gaussian_lattice_law(c, sd, h)
    assert p.min() >= 0
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p @ (np.arange(p.size) * h) == pytest.approx(sd * float(relu_mean(c / sd)), rel=1e-12, abs=1e-15)


def test_sum_law_mean_and_variance_are_additive():
    """Convolution: mean exact, variance inflated by at most M h^2/4 (the projection's spread)."""
    sd, h = 0.3, 0.01
    law = rectified_sum_law([1.0, 2.0], 5, sd, h)
    s = np.arange(law.size) * h
    mean = 2 * 0 + sd * float(relu_mean(1 / sd) + relu_mean(2 / sd) + 5 * relu_mean(0.0))
    var1 = [sd * sd * float(relu_second_moment(a)) - (sd * float(relu_mean(a))) ** 2 for a in (1 / sd, 2 / sd, 0.0)]
    var = var1[0] + var1[1] + 5 * var1[2]
    assert law @ s == pytest.approx(mean, rel=1e-12)
    v = law @ (s - mean) ** 2
    assert var - 1e-12 <= v <= var + 7 * h * h / 4


@pytest.mark.parametrize("kwargs, name", [
    (dict(cs=[-1.0], m0=0, sd=0.3), "c"), (dict(cs=[], m0=1, sd=0.0), "sd"), (dict(cs=[], m0=1, sd=math.nan), "sd"),
    (dict(cs=[], m0=-1, sd=0.3), "m0"), (dict(cs=[1.0], m0=1, sd=0.3, theta=0.5), "theta"),
])
def test_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        biased_relu_moments(**kwargs)
