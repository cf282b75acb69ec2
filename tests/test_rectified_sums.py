"""Law of sums of independent rectified Gaussians (`theory.rectified_sums`) against independent computations.

* M = 1: the closed-form Gaussian moments of `theory.scale_gauss` (E (c - theta + g)_+^p): the lattice projection
  keeps the mean exactly and its O(h^2) error is removed by the extrapolation; tolerance 1e-9 relative against a
  measured max 8e-11 (the Richardson remainder, over c, theta in {0, 1, 2}, sd in [0.05, 1]), far below any effect
  of a wrong bin rule (O(h) = 1e-3).
* M = 2 (a unit with signal c in {0, 1} and a zero-mean unit): a second derivation by conditioning on the
  zero-mean unit t (see `_two_units_by_conditioning`), a one-dimensional adaptive quadrature of closed-form
  Gaussian moments (error < 1e-12); tolerance 1e-9 against a measured max 6e-11.
* the lattice law itself: total mass 1 and exact mean E ReLU(c + g) (mean-preserving projection), to 1e-12.
* the closed forms used as references above (`theory.scale_gauss.relu_mean`, `relu_second_moment`) and the
  Sheppard-integral `bvn_cdf`, against adaptive quadrature.
* `weighted_rectified_moments` (weighted sums, only the law below theta): one term against the closed form
  (1e-9 relative, as above); equal weights against `biased_relu_moments` (the full-range lattice, a different
  code path: measured 3e-13, tolerance 1e-9); theta <= 0 against the exact moments of S; mixed weights against
  Monte Carlo (4 s.e. of 4e5 draws, the s.e. from the draws' own spread).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm

from theory.rectified_sums import (biased_relu_moments, rectified_sum_law, relu_gaussian_lattice_law,
                                   weighted_rectified_moments)
from theory.scale_gauss import bvn_cdf, relu_mean, relu_product_moment, relu_second_moment
from numerics.testing import assert_mc_close, mc_estimate

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
    assert var - 1e-12 <= v <= var + 7 * h * h / 4   # measured excess 7.5e-5 against the bound 1.75e-4


@pytest.mark.parametrize("kwargs, name", [
    (dict(cs=[-1.0], m0=0, sd=0.3), "c"), (dict(cs=[], m0=1, sd=0.0), "sd"), (dict(cs=[], m0=1, sd=math.nan), "sd"),
    (dict(cs=[], m0=-1, sd=0.3), "m0"), (dict(cs=[1.0], m0=1, sd=0.3, theta=0.5), "theta"),
    (dict(cs=[1.0], m0=2.5, sd=0.3), "m0"), (dict(cs=[1.0], m0=True, sd=0.3), "m0"),
    (dict(cs=[], m0="3", sd=0.3), "m0"),
    (dict(cs=1.0, m0=1, sd=0.3), "cs"), (dict(cs=["1"], m0=1, sd=0.3), "c"), (dict(cs=[True], m0=1, sd=0.3), "c"),
    (dict(cs=[], m0=0, sd=-1.0), "sd"), (dict(cs=[], m0=1, sd="a"), "sd"),
    (dict(cs=[1.0], m0=1, sd=0.3, theta=True), "theta"), (dict(cs=[1.0], m0=1, sd=0.3, theta=math.inf), "theta"),
    (dict(cs=[1.0], m0=1, sd=0.3, K=0), "K"), (dict(cs=[1.0], m0=1, sd=0.3, K=100.5), "K"),
])
def test_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        biased_relu_moments(**kwargs)


@pytest.mark.parametrize("call, name", [
    (lambda: relu_gaussian_lattice_law(0.0, 0.3, math.nan), "h"),
    (lambda: relu_gaussian_lattice_law(0.0, 0.3, 0.01, -1), "tail"),
    (lambda: relu_gaussian_lattice_law(0.0, 0.3, 0.01, math.nan), "tail"),
    (lambda: rectified_sum_law([], 0, 0.3, -1.0), "h"),      # checked even when there is nothing to convolve
    (lambda: relu_mean(math.nan), "alpha"), (lambda: relu_second_moment(-math.inf), "alpha"),
    (lambda: bvn_cdf(0.0, 0.0, 1.0), "rho"), (lambda: bvn_cdf(math.nan, 0.0, 0.5), "x"),
    (lambda: relu_product_moment(0.0, 0.0, math.nan), "rho"), (lambda: relu_product_moment(0.0, 0.0, -1.0), "rho"),
    (lambda: relu_product_moment(0.0, 1.0, 1.0), "alpha"),
    (lambda: relu_product_moment(np.zeros(2), np.zeros(3), 0.5), "alpha"),
])
def test_bad_input_of_the_building_blocks(call, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call()


@given(st.floats(-6.0, 6.0))
def test_gaussian_relu_moments_against_quadrature(alpha):
    """E (alpha + X)_+^p, p = 1, 2, by adaptive quadrature of (alpha + x)^p phi(x) over x > -alpha.  Measured max
    deviation 4e-16 (relative to max(1, value), 61 alphas on [-6, 6]); quad's own error estimate reaches 2.7e-12,
    hence the tolerance 1e-11, still below the smallest term of the closed forms (phi(alpha) >= 6e-9 here)."""
    for p, closed in ((1, relu_mean), (2, relu_second_moment)):
        ref = integrate.quad(lambda x: (alpha + x) ** p * norm.pdf(x), -alpha, np.inf, epsabs=1e-14, epsrel=1e-13)[0]
        assert float(closed(alpha)) == pytest.approx(ref, abs=1e-11, rel=1e-11)


@given(st.floats(-3.0, 3.0), st.floats(-3.0, 3.0), st.floats(-0.95, 0.95))
@example(0.0, 0.0, 0.95)
@example(0.25, -0.25, -0.95)   # where a coarser Gauss-Legendre rule errs most (12 nodes: 4e-7 here)
def test_bvn_cdf_and_product_moment_limits(x, y, rho):
    """Phi2(x, y; rho) = int_{-oo}^x phi(t) Phi((y - rho t)/sqrt(1 - rho^2)) dt (condition on X = t), by adaptive
    quadrature: measured max |difference| 5.6e-16 on a 13 x 13 x 7 grid of the range, |rho| = 0.95 (the bound the
    module accepts) included; tolerance 1e-13.  At rho = 0 the product moment is the product of the means, and at
    rho = 1 (a separate branch, not reached by the mpmath test in test_scale_detection) the second moment."""
    s = math.sqrt(1 - rho * rho)
    ref = integrate.quad(lambda t: norm.pdf(t) * norm.cdf((y - rho * t) / s), -np.inf, x, epsabs=1e-15,
                         epsrel=1e-13)[0]
    assert float(bvn_cdf(x, y, rho)) == pytest.approx(ref, abs=1e-13)
    assert float(relu_product_moment(x, y, 0.0)) == pytest.approx(float(relu_mean(x) * relu_mean(y)), rel=1e-13,
                                                                     abs=1e-15)
    assert float(relu_product_moment(x, x, 1.0)) == float(relu_second_moment(x))


def test_lattice_size_is_capped():
    from theory.rectified_sums import MAX_LATTICE
    with pytest.raises(ValueError, match="^h must be >="):
        relu_gaussian_lattice_law(1.0, 0.3, 1e-9)          # (1 + 14*0.3) / 1e-9 = 5.2e9 bins
    assert len(relu_gaussian_lattice_law(1.0, 0.3, 5.2 / (MAX_LATTICE // 1000))) <= MAX_LATTICE // 1000 + 2


# ---------------------------------------------------------------------------------------------------------------
# weighted sums of rectified Gaussians: z = ReLU(sum_p w_p ReLU(sd g_p) - theta)


@given(st.floats(0.5, 9.0), sds, st.sampled_from([0.5, 1.0, 2.0]))
def test_weighted_single_term_matches_closed_form(w, sd, theta):
    """ReLU(w ReLU(sd g) - theta) = ReLU(w sd g - theta) for theta > 0: Gaussian moments of a = -theta/(w sd)."""
    m1, m2, err = weighted_rectified_moments([w], sd, theta)
    s = w * sd
    assert m1 == pytest.approx(s * float(relu_mean(-theta / s)), rel=1e-9, abs=1e-14)
    assert m2 == pytest.approx(s * s * float(relu_second_moment(-theta / s)), rel=1e-9, abs=1e-14)
    assert err < 1e-6


@given(st.integers(1, 9), sds)
def test_equal_weights_match_the_full_lattice(m, sd):
    a = weighted_rectified_moments([1.0] * m, sd, 1.0)
    b = biased_relu_moments([], m, sd, 1.0)
    assert a[0] == pytest.approx(b[0], rel=1e-9, abs=1e-14)
    assert a[1] == pytest.approx(b[1], rel=1e-9, abs=1e-14)


@given(st.lists(st.floats(0.1, 5.0), min_size=1, max_size=6), sds, st.floats(-3.0, 0.0))
def test_nonpositive_theta_is_the_shifted_sum(w, sd, theta):
    """theta <= 0: z = S - theta exactly; E S = sd sum w / sqrt(2 pi), Var S = sd^2 (1/2 - 1/(2 pi)) sum w^2."""
    m1, m2, err = weighted_rectified_moments(w, sd, theta)
    w = np.asarray(w)
    mean = sd * w.sum() / math.sqrt(2 * math.pi) - theta
    var = sd * sd * (0.5 - 0.5 / math.pi) * (w @ w)
    assert m1 == pytest.approx(mean, rel=1e-12) and m2 == pytest.approx(var + mean * mean, rel=1e-12) and err == 0


@pytest.mark.parametrize("w, sd, theta", [([1, 3, 6, 7, 6, 3, 1], 0.2, 1.0), ([1, 2, 2, 4], 0.35, 1.0),
                                          ([0.5, 1.5, 0.0, 2.5], 0.5, 1.5)])
def test_weighted_moments_against_monte_carlo(w, sd, theta):
    """Mixed weights (the stride-1 threshold units of the rectified-noise theory have trinomial weights; a zero
    weight is dropped): 4e5 draws, |lattice - MC| < 4 s.e. with s.e. = sample sd / sqrt(N)."""
    m1, m2, _ = weighted_rectified_moments(w, sd, theta)
    rng = np.random.default_rng(7)
    N = 400_000
    z = np.maximum(np.maximum(sd * rng.standard_normal((N, len(w))), 0.0) @ np.asarray(w, float) - theta, 0.0)
    assert_mc_close(*mc_estimate(z), m1)
    assert_mc_close(*mc_estimate(z * z), m2)


@pytest.mark.parametrize("kwargs, name", [
    (dict(weights=[], sd=0.3), "weights"), (dict(weights=[0.0], sd=0.3), "weights"),
    (dict(weights=[-1.0], sd=0.3), "weights"), (dict(weights="12", sd=0.3), "weights"),
    (dict(weights=[math.nan], sd=0.3), "weights"), (dict(weights=[1.0], sd=0.0), "sd"),
    (dict(weights=[1.0], sd=0.3, theta=math.inf), "theta"), (dict(weights=[1.0], sd=0.3, theta=True), "theta"),
    (dict(weights=[1.0], sd=0.3, K=0), "K"),
])
def test_weighted_moments_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        weighted_rectified_moments(**kwargs)
