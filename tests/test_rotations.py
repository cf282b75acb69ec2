"""Tests of numerics.rotations and numerics.stability.rotation_stability (Petrini et al., NeurIPS 2022)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from numerics.rotations import (
    geodesic_rotate,
    linear_rotation_sensitivity,
    random_planes,
    random_rotations,
    rotate,
    rotation_matrices,
)
from numerics.stability import rotation_stability

seeds = st.integers(0, 2**31 - 1)
thetas = st.floats(0.0, math.pi)


def _sphere(P, d, seed):
    g = np.random.default_rng(seed).standard_normal((P, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


@given(d=st.integers(2, 9), theta=thetas, n=st.integers(1, 5), seed=seeds)
def test_rotation_matrices_are_rotations_by_theta(d, theta, n, seed):
    R = random_rotations(d, theta, n, seed)
    assert R.shape == (n, d, d)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(d), R.shape), atol=1e-13)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    # one plane rotated by theta, d - 2 directions fixed: tr R = d - 2 + 2 cos(theta)
    np.testing.assert_allclose(np.trace(R, axis1=1, axis2=2), d - 2 + 2 * math.cos(theta), atol=1e-12)
    # eigen-angles: the eigenvalues are 1 (d-2 times) and exp(±i theta)
    ev = np.linalg.eigvals(R[0])
    assert np.sort(np.abs(np.angle(ev)))[-1] == pytest.approx(theta, abs=1e-6)


@given(d=st.integers(2, 12), theta=thetas, n=st.integers(1, 6), seed=seeds)
def test_rotate_matches_matrices_and_chord_length(d, theta, n, seed):
    x = np.random.default_rng(seed + 1).standard_normal((n, d))
    u, v = random_planes(d, n, seed)
    np.testing.assert_allclose(np.sum(u * v, axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-14)
    y = rotate(x, u, v, theta)
    R = random_rotations(d, theta, n, seed)
    np.testing.assert_allclose(y, np.einsum("nij,nj->ni", R, x), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-12)
    # |R x - x| = 2 sin(theta/2) |Pi x|, Pi the projector on the plane
    proj = np.sqrt(np.sum(u * x, axis=1) ** 2 + np.sum(v * x, axis=1) ** 2)
    np.testing.assert_allclose(np.linalg.norm(y - x, axis=1), 2 * math.sin(theta / 2) * proj, atol=1e-12)
    # per-sample angles
    th = np.full(n, theta)
    np.testing.assert_allclose(rotate(x, u, v, th), y, atol=1e-15)


def test_planes_are_uniform():
    """E[uu^T + vv^T] = (2/d) I for a uniform plane; entries are means of 20000 terms bounded by 1 (s.d. <=
    1/sqrt(20000) = 0.007), tolerance 0.03 is > 4 s.d."""
    d, n = 5, 20000
    u, v = random_planes(d, n, 0)
    proj = (u.T @ u + v.T @ v) / n
    np.testing.assert_allclose(proj, 2 / d * np.eye(d), atol=0.03)


def _coordinate_planes(d, n, seed):
    """A wrong sampler that passes the first-moment test: (±e_i, ±e_j) for a random pair i != j."""
    rng = np.random.default_rng(seed)
    ij = np.argsort(rng.random((n, d)), axis=1)[:, :2]
    u, v = np.zeros((n, d)), np.zeros((n, d))
    u[np.arange(n), ij[:, 0]] = rng.choice([-1.0, 1.0], n)
    v[np.arange(n), ij[:, 1]] = rng.choice([-1.0, 1.0], n)
    return u, v


def _law_checks(u, v, d):
    r"""The law of the plane beyond E[Π]: for a fixed unit x, |Πx|² has the law of y_1² + y_2² for y uniform on
    S^{d-1} (rotate the plane to span(e_1, e_2)), i.e. Beta(1, (d-2)/2); so E[Π_kk²] = E[X²] = 8/(d(d+2))
    (0.22857 at d = 5). Returns (z of the per-plane mean over k of Π_kk², with its s.e. across the n independent
    planes; Kolmogorov-Smirnov statistic of |Πx|² against Beta(1, (d-2)/2) times sqrt(n))."""
    q = ((u**2 + v**2) ** 2).mean(axis=1)
    z = (q.mean() - 8 / (d * (d + 2))) / (q.std(ddof=1) / math.sqrt(len(q)))
    x = np.random.default_rng(99).standard_normal(d)
    x /= np.linalg.norm(x)
    ks = stats.kstest((u @ x) ** 2 + (v @ x) ** 2, stats.beta(1, (d - 2) / 2).cdf).statistic
    return z, ks * math.sqrt(len(q))


def test_planes_have_the_uniform_second_moment_and_law():
    """Tolerances: |z| < 4 (s.e. measured 2.5e-4, i.e. 0.1 % of 8/35; measured z = -1.20) and sqrt(n) KS < 1.95,
    the asymptotic Kolmogorov 0.1 % critical value (measured 0.99). Random coordinate planes pass the E[Π] test
    above (max deviation 0.003 < 0.03) but fail both: every such plane has mean_k Π_kk² = 2/d = 0.4 (s.e. 0, so
    |z| is astronomically large) and sqrt(n) KS = 48.6."""
    d, n = 5, 20000
    z, ks = _law_checks(*random_planes(d, n, 0), d)
    assert abs(z) < 4 and ks < 1.95
    u, v = _coordinate_planes(d, n, 0)
    np.testing.assert_allclose((u.T @ u + v.T @ v) / n, 2 / d * np.eye(d), atol=0.03)  # the weak test passes
    z, ks = _law_checks(u, v, d)
    assert abs(z) > 4 and ks > 1.95


@given(d=st.integers(2, 8), theta=thetas, seed=seeds)
def test_geodesic_rotation_moves_by_the_full_chord(d, theta, seed):
    x = 3.0 * _sphere(4, d, seed)
    y = geodesic_rotate(x, theta, seed)
    np.testing.assert_allclose(np.linalg.norm(y - x, axis=1), 2 * math.sin(theta / 2) * 3.0, atol=1e-12)
    np.testing.assert_allclose(np.sum(x * y, axis=1), 9.0 * math.cos(theta), atol=1e-12)


@given(d=st.integers(2, 8), seed=seeds, estimator=st.sampled_from(["mean", "median"]))
def test_theta_zero_and_invariant_function_give_zero(d, seed, estimator):
    x = _sphere(20, d, seed)
    W = np.random.default_rng(seed).standard_normal((3, d))
    s0 = rotation_stability(lambda z: z @ W.T, x, 0.0, seed=seed, estimator=estimator, n_boot=20)
    assert s0.value == 0.0 and s0.se == 0.0
    s1 = rotation_stability(lambda z: np.linalg.norm(z, axis=1), x, 1.0, seed=seed, estimator=estimator,
                            n_rotations=2, n_boot=20)
    assert s1.value <= 1e-28  # |R x| = |x| up to rounding (~1e-16 per coordinate)


@given(d=st.integers(2, 10), theta=st.floats(0.05, math.pi), m=st.integers(1, 3), seed=seeds)
def test_linear_closed_form_against_monte_carlo(d, theta, m, seed):
    r"""S = 4(1 - cos θ)|W|_F²/d² (see numerics.rotations). The Monte-Carlo mean over P = 1500 points must lie
    within 4 of its standard errors of the closed form (the estimate is a plain mean of P i.i.d. per-point
    values, so its s.e. is exact up to its own sampling error).

    Sharpness: (R - I)x/(2 sin(θ/2)) has a law independent of θ, so se/S depends on d and W only; it is
    largest for rank-one W (measured with 4e5 points: 0.0147 at d = 2 up to 0.0325 at d = 10, vs <= 0.023 for
    m = 3 Gaussian W). The s.e. estimate itself fluctuates by sqrt((κ-1)/4P) <= 4.6 % (per-point kurtosis
    κ <= 13.4), so se < 0.04 S holds with > 4 s.d. of margin (max over 100 random examples: 0.0344 at d = 9,
    m = 1; max |value - S| = 1.9 s.e.)."""
    W = np.random.default_rng(seed).standard_normal((m, d))
    x = _sphere(1500, d, seed + 1)
    est = rotation_stability(lambda z: z @ W.T, x, theta, seed=seed, errors="se", n_rotations=2)
    exact = linear_rotation_sensitivity(W, theta)
    assert est.se < 0.04 * exact
    assert abs(est.value - exact) < 4 * est.se


def test_linear_closed_form_tight_and_bootstrap():
    d, theta = 6, 0.7
    W = np.random.default_rng(0).standard_normal((2, d))
    x = _sphere(4000, d, 1)
    est = rotation_stability(lambda z: z @ W.T, x, theta, seed=3, n_boot=300, n_rotations=4)
    est_se = rotation_stability(lambda z: z @ W.T, x, theta, seed=3, errors="se", n_rotations=4)
    exact = linear_rotation_sensitivity(W, theta)
    assert est.value == est_se.value
    assert abs(est.value - exact) < 4 * est.se
    assert est.se == pytest.approx(est_se.se, rel=0.2)  # bootstrap s.d. ~ 1/sqrt(600) = 4 % noisy
    assert est.ci[0] < est.value < est.ci[1]


def test_numpy_and_torch_agree_and_median():
    d = 7
    x = _sphere(50, d, 2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(d, 10), torch.nn.Tanh(), torch.nn.Linear(10, 2)).double()

    def f_np(z):
        with torch.no_grad():
            return model(torch.from_numpy(z)).numpy()

    for est in ("mean", "median"):
        a = rotation_stability(f_np, x, 0.4, seed=1, estimator=est, n_rotations=3, n_boot=40)
        b = rotation_stability(model, x, 0.4, seed=1, estimator=est, n_rotations=3, n_boot=40)
        c = rotation_stability(model, torch.from_numpy(x), 0.4, seed=1, estimator=est, n_rotations=3, n_boot=40)
        assert b.value == pytest.approx(a.value, rel=1e-12) and c == b
        assert b.se == pytest.approx(a.se, rel=1e-10)
    # median against brute force
    rng = np.random.default_rng(1)
    u, v = random_planes(d, 150, rng)
    xr = rotate(np.repeat(x, 3, axis=0), u, v, 0.4)
    sq = (f_np(xr) - np.repeat(f_np(x), 3, axis=0)) ** 2
    med = rotation_stability(f_np, x, 0.4, seed=1, estimator="median", n_rotations=3, errors=None)
    assert med.value == pytest.approx(np.sum(np.median(sq, axis=0)), rel=1e-12)
    mean = rotation_stability(f_np, x, 0.4, seed=1, n_rotations=3, errors=None)
    assert mean.value == pytest.approx(np.mean(np.sum(sq, axis=1)), rel=1e-12)
    # float32 model
    m32 = model.float()
    s32 = rotation_stability(m32, x, 0.4, seed=1, n_rotations=3, errors=None)
    assert s32.value == pytest.approx(mean.value, rel=1e-4)


X = _sphere(10, 3, 0)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((2 * X, 0.3), {}, "unit sphere"),
        ((X, -0.1), {}, r"theta must be in \[0, pi\]"),
        ((X, 3.5), {}, r"theta must be in \[0, pi\]"),
        ((X, float("nan")), {}, r"theta must be in \[0, pi\]"),
        ((X, "a"), {}, "theta must be a real number"),
        ((X[:1], 0.3), {}, "P >= 2"),
        ((X[:, :1] / np.abs(X[:, :1]), 0.3), {}, "d >= 2"),
        ((X[0], 0.3), {}, "shape"),
        ((np.where(np.arange(30).reshape(10, 3) == 2, np.nan, X), 0.3), {}, "non-finite"),
        ((X, 0.3), {"n_rotations": 0}, "n_rotations"),
        ((X, 0.3), {"n_boot": 1}, "n_boot"),
        ((X, 0.3), {"estimator": "max"}, "estimator"),
        ((X, 0.3), {"errors": "jack"}, "errors"),
        ((X, 0.3), {"estimator": "median", "errors": "se"}, "errors='se'"),
        ((X, 0.3), {"sphere_tol": float("nan")}, "sphere_tol must be a finite number >= 0"),
        ((X, 0.3), {"sphere_tol": float("inf")}, "sphere_tol must be a finite number >= 0"),
        ((X, 0.3), {"sphere_tol": -1e-3}, "sphere_tol must be a finite number >= 0"),
        ((X, 0.3), {"seed": "a"}, "seed must be None, an int"),
        ((X, 0.3), {"seed": 1.5}, "seed must be None, an int"),
        ((X.astype(complex), 0.3), {}, "x must be real"),
        ((torch.from_numpy(X.astype(complex)), 0.3), {}, "x must be real"),
    ],
)
def test_bad_input_raises(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        rotation_stability(lambda z: z, *args, **kwargs)


def test_rotation_helpers_bad_input():
    with pytest.raises(ValueError, match="d must be an integer >= 2"):
        random_rotations(1, 0.1, 2)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        random_planes(3, 0)
    with pytest.raises(ValueError, match="theta"):
        random_rotations(3, 4.0, 2)
    with pytest.raises(ValueError, match="theta"):
        rotate(np.ones((2, 3)), *random_planes(3, 2, 0), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="shape of x"):
        rotate(np.ones((2, 3)), *random_planes(3, 3, 0), 0.1)
    with pytest.raises(ValueError, match="non-zero rows"):
        geodesic_rotate(np.zeros((2, 3)), 0.1)
    with pytest.raises(ValueError, match="x contains non-finite"):
        geodesic_rotate(np.array([[1.0, np.nan, 0.0]]), 0.1)


U, V = random_planes(3, 2, 0)
NAN_ROW = np.array([[np.nan, 0.0, 0.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    "u, v, match",
    [
        (2 * U, V, "orthonormal pairs"),  # |u| = 2
        (np.zeros((2, 3)), V, "orthonormal pairs"),
        (U, U, "orthonormal pairs"),  # u . v = 1
        (U, V + 1e-6 * U, "orthonormal pairs"),  # overlap 1e-6 > ORTHONORMAL_TOL = 1e-8
        (NAN_ROW, V, "u contains non-finite"),
        (U, np.where(NAN_ROW == 1.0, np.inf, V), "v contains non-finite"),
    ],
)
def test_rotate_rejects_planes_that_are_not_orthonormal(u, v, match):
    with pytest.raises(ValueError, match=match):
        rotate(np.ones((2, 3)), u, v, 0.1)
    with pytest.raises(ValueError, match=match):
        rotation_matrices(u, v, 0.1)


def test_rotate_and_linear_sensitivity_bad_input():
    with pytest.raises(ValueError, match="x contains non-finite"):
        rotate(NAN_ROW, U, V, 0.1)
    rotate(np.ones((2, 3)), U, V + 1e-10 * U, 0.1)  # float64 rounding-level overlaps are accepted
    W = np.ones((2, 3))
    for bad, match in [(np.where(W == 1, np.nan, W), "weight contains non-finite"),
                       (np.full((2, 3), np.inf), "weight contains non-finite"),
                       (np.empty((0, 3)), "m >= 1"), (np.ones(1), "d >= 2")]:
        with pytest.raises(ValueError, match=match):
            linear_rotation_sensitivity(bad, 0.3)
    for theta in (np.array([0.1, 0.2]), np.array([0.1]), "a", 4.0):
        with pytest.raises(ValueError, match="theta must be"):
            linear_rotation_sensitivity(W, theta)
