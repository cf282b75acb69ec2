"""numerics.sphere / numerics.atoms / numerics.fitting for the spherical model."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats
from scipy.optimize import linprog

from numerics.atoms import count_atoms, min_l1_interpolant, relu_features
from numerics.fitting import fit_power_law
from numerics.sphere import (harmonic_power_s2, make_dataset, make_teacher, sample_ball, sample_gaussian, sample_inputs,
                            sample_sphere)


@given(st.integers(2, 8), st.integers(0, 10_000))
def test_sphere_is_uniform(d, seed):
    n = 4000
    x = sample_sphere(n, d, seed=seed)
    assert np.allclose(np.linalg.norm(x, axis=1), 1)
    # E x = 0, E xx^T = I/d with the exact per-entry s.e.: Var x_i = 1/d, Var x_i x_j = E x_i^2 x_j^2 = 1/(d(d+2))
    # (i != j), Var x_i^2 = 3/(d(d+2)) - 1/d^2.  At most 44 entries (d = 8), z = 5.5 (two-sided 3.8e-8 each):
    # false alarm < 2e-6 per example.  (The former bound 5/sqrt(n) was 7-14 s.e. on the mean, 14-45 off-diagonal.)
    assert np.all(np.abs(x.mean(0)) < 5.5 * math.sqrt(1 / d / n))
    se2 = np.full((d, d), math.sqrt(1 / (d * (d + 2)) / n))
    se2[np.diag_indices(d)] = math.sqrt((3 / (d * (d + 2)) - 1 / d**2) / n)
    assert np.all(np.abs(x.T @ x / n - np.eye(d) / d) < 5.5 * se2)
    # the first coordinate of a uniform point: (x_1 + 1)/2 ~ Beta((d-1)/2, (d-1)/2)
    assert stats.kstest((x[:, 0] + 1) / 2, stats.beta((d - 1) / 2, (d - 1) / 2).cdf).pvalue > 1e-4


def test_ball_and_gaussian():
    d = 4
    r = np.linalg.norm(sample_ball(5000, d, seed=0), axis=1)
    assert r.max() <= 1 and stats.kstest(r, lambda s: np.clip(s, 0, 1) ** d).pvalue > 1e-4
    g = sample_gaussian(5000, d, seed=0)
    assert stats.kstest(np.sum(g**2, 1), stats.chi2(d).cdf).pvalue > 1e-4
    assert np.array_equal(sample_inputs(10, 3, "ball", seed=5), sample_ball(10, 3, seed=5))


def test_seeded_and_reproducible():
    a = make_dataset(20, 3, target="grf", smoothness=1.5, teacher_width=1000, seed=4)
    b = make_dataset(20, 3, target="grf", smoothness=1.5, teacher_width=1000, seed=4)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y_test, b.y_test)
    assert np.array_equal(a.teacher(a.x), a.y)  # the teacher is stored and re-evaluable


def test_targets():
    D = make_dataset(50, 3, target="norm", distribution="gaussian", P_test=30, seed=0)
    assert np.allclose(D.y, np.linalg.norm(D.x, axis=1)) and D.smoothness == math.inf
    C = make_dataset(50, 3, target="constant", seed=0)
    assert np.all(C.y == 1) and np.all(C.y_test == 1)


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.25])
def test_teacher_has_unit_variance_on_the_sphere(nu):
    """Across teachers, f*(x) at a fixed x has mean 0 and variance 1 (normalisation m_a)."""
    x = sample_sphere(3, 3, seed=1)
    ys = np.array([make_teacher(3, nu, width=3000, seed=s)(x) for s in range(300)])
    # s.e. of the mean 1/sqrt(300); of the variance ~ sqrt(2/300) (Gaussian by CLT); 5 s.e.  (This resolves the
    # normalisation m_a only to +-41%; test_single_ridge_teacher_has_unit_mean_square pins it to ~1-6%.)
    assert np.abs(ys.mean(0)).max() < 5 / math.sqrt(300)
    assert np.abs(ys.var(0) - 1).max() < 5 * math.sqrt(2 / 300)


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 8), st.floats(0.5, 4.0), st.integers(0, 10_000))
def test_single_ridge_teacher_has_unit_mean_square(d, nu, seed):
    """Width 1: f*(x) = s sigma(theta.x)^a / sqrt(m_a), so E_x f*(x)^2 = E sigma(theta.x)^{2a} / m_a = 1 exactly for
    every theta (x uniform on S^{d-1}).  Monte Carlo over 2e5 points, 5 measured s.e. (relative s.e. 0.2-1.2%: the
    kurtosis E f^4 / (E f^2)^2 = m_{2a}/m_a^2 is at most ~30 here, so the CLT holds)."""
    v = make_teacher(d, nu, width=1, seed=seed)(sample_sphere(200_000, d, seed=seed + 1)) ** 2
    assert abs(v.mean() - 1) < 5 * v.std() / math.sqrt(v.size)


def test_smoother_teacher_is_smoother():
    """Mean squared increment at small distance ~ r^{2 min(nu,1)}: rough field varies more than a smooth one."""
    x = sample_sphere(2000, 3, seed=0)
    v = sample_sphere(2000, 3, seed=1)
    v -= (v * x).sum(1, keepdims=True) * x
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    x2 = math.cos(0.05) * x + math.sin(0.05) * v
    inc = [np.mean((t(x) - t(x2)) ** 2) for t in (make_teacher(3, 0.5, width=20000, seed=2),
                                                   make_teacher(3, 2.5, width=20000, seed=2))]
    assert inc[0] > 5 * inc[1]


@pytest.mark.parametrize("kw, name", [
    (dict(P=0, d=3), "P"), (dict(P=10, d=1), "d"), (dict(P=10, d=3.0), "d"), (dict(P=2.5, d=3), "P"),
    (dict(P=10, d=3, target="grf"), "smoothness"), (dict(P=10, d=3, target="grf", smoothness=0.2), "smoothness"),
    (dict(P=10, d=3, target="grf", smoothness=float("nan")), "smoothness"),
    (dict(P=10, d=3, target="constant", smoothness=2.0), "smoothness"),
    (dict(P=10, d=3, target="nope"), "target"), (dict(P=10, d=3, distribution="cube"), "distribution"),
    (dict(P=10, d=3, P_test=0), "P_test"),
])
def test_bad_arguments_raise(kw, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        make_dataset(**kw)


@given(st.floats(0.3, 4.0), st.floats(0.0, 0.3), st.integers(0, 1000))
def test_power_law_fit(beta, noise, seed):
    rng = np.random.default_rng(seed)
    P = np.array([64, 128, 256, 512, 1024])
    err = 3.0 * P[:, None] ** (-beta) * np.exp(noise * rng.standard_normal((5, 4)))
    f = fit_power_law(P, err)
    # a second computation of the same least-squares fit: numpy's polyfit with its covariance (scaled by the
    # residual variance with m - 2 degrees of freedom, as in the module)
    lx, ly = np.repeat(np.log(P), 4), np.log(err).ravel()
    m = lx.size
    if noise > 0:
        coef, cov = np.polyfit(lx, ly, 1, cov="unscaled")
        s2 = np.sum((ly - np.polyval(coef, lx)) ** 2) / (m - 2)
        assert f.exponent == pytest.approx(-coef[0], rel=1e-9, abs=1e-12)
        assert f.se == pytest.approx(math.sqrt(s2 * cov[0, 0]), rel=1e-6)
    # the interval is beta +- t_{0.975, m-2} se
    q = stats.t.ppf(0.975, m - 2)
    assert f.ci[0] == pytest.approx(f.exponent - q * f.se, abs=1e-12)
    assert f.ci[1] == pytest.approx(f.exponent + q * f.se, abs=1e-12)
    # under Gaussian log-noise (beta_hat - beta)/se is exactly Student t with m - 2 dof: a two-sided 2e-7 bound
    assert abs(f.exponent - beta) <= stats.t.ppf(1 - 1e-7, m - 2) * f.se + 1e-9
    if noise == 0:
        assert math.isclose(f.exponent, beta, rel_tol=1e-9) and math.isclose(f.prefactor, 3.0, rel_tol=1e-9)


def test_power_law_coverage():
    """95% intervals cover the true exponent in ~95% of noisy replicas (binomial bounds for 400 replicas)."""
    rng = np.random.default_rng(0)
    P = np.array([64, 128, 256, 512, 1024, 2048])
    hits = sum(fit_power_law(P, P[:, None] ** -2.0 * np.exp(0.2 * rng.standard_normal((6, 3)))).contains(2.0)
               for _ in range(400))
    assert 0.91 * 400 <= hits <= 0.99 * 400


def test_power_law_bad_input():
    with pytest.raises(ValueError, match=r"^err must be finite and > 0"):
        fit_power_law([1, 2, 3], [1.0, -1.0, 0.5])
    with pytest.raises(ValueError, match=r"^P must be a 1-d array"):
        fit_power_law([1], [1.0])


@pytest.mark.parametrize("d, P", [(3, 24), (5, 40)])
def test_min_l1_matches_highs(d, P):
    """Our interior point + crossover reaches the LP optimum found by HiGHS, with <= P atoms."""
    x = sample_sphere(P, d, seed=0)
    y = make_dataset(P, d, target="grf", smoothness=1.5, teacher_width=2000, seed=1).y
    dirs = sample_sphere(4 * P, d, seed=2)
    sol = min_l1_interpolant(x, y, dirs)
    Phi = relu_features(x, dirs)
    ref = linprog(np.ones(2 * len(dirs)), A_eq=np.hstack([Phi, -Phi]), b_eq=y, bounds=(0, None), method="highs")
    assert ref.status == 0
    assert math.isclose(sol.l1, ref.fun, rel_tol=1e-6)
    assert sol.residual < 1e-8 and len(sol.support) <= P and sol.vertex
    assert np.allclose(sol(x), y, atol=1e-8)
    with pytest.raises(ValueError, match=rf"^directions must hold at least P = {P} rows"):
        min_l1_interpolant(x, y, dirs[: P - 1])


def test_count_atoms_clusters():
    rng = np.random.default_rng(0)
    centers = sample_sphere(7, 3, seed=3)
    W = np.repeat(centers, 30, axis=0) + 1e-4 * rng.standard_normal((210, 3))
    c = np.abs(rng.standard_normal(210)) + 0.1
    a = count_atoms(W, c, angle=0.01)
    assert a.n_atoms == 7 and a.method == "angle"
    x = sample_sphere(50, 3, seed=4)
    s = count_atoms(W, c, x=x)
    assert s.n_atoms == 7 and s.method == "sign"
    c0 = c.copy()
    c0[:30] = 0.0  # an atom with no weight is not counted
    assert count_atoms(W, c0, x=x).n_atoms == 6
    # symmetric pair with opposite weights cancels
    assert count_atoms(np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]]), np.array([1.0, -1.0, 1.0]),
                       angle=0.1).n_atoms == 1
    with pytest.raises(ValueError, match=r"^rel_tol must be in \(0, 1\)"):
        count_atoms(W, c, rel_tol=0)


def test_min_l1_refinement_lowers_norm_towards_continuous_problem():
    """Column generation can only lower the L1 norm (the dictionary grows towards all of S^{d-1}) and keeps an
    exact interpolant with <= P atoms."""
    P, d = 40, 3
    x = sample_sphere(P, d, seed=0)
    y = np.ones(P)
    dirs = sample_sphere(2 * P, d, seed=1)
    base = min_l1_interpolant(x, y, dirs)
    ref = min_l1_interpolant(x, y, dirs, refine=5, seed=2)
    assert ref.l1 <= base.l1 * (1 + 1e-9) and ref.residual < 1e-8 and len(ref.support) <= P
    with pytest.raises(ValueError, match=r"^refine must be an integer >= 0"):
        min_l1_interpolant(x, y, dirs, refine=-1)


# ---------------------------------------------------------------------------------------------------------------------
# harmonic power spectrum on S^2


def _real_harmonic(k: int, m: int, x: np.ndarray) -> np.ndarray:
    """Real orthonormal spherical harmonic of degree k, order m (sqrt(2) Re / Im of the complex one for m != 0)."""
    from scipy.special import sph_harm_y
    t = np.arccos(np.clip(x[:, 2], -1, 1))
    ph = np.arctan2(x[:, 1], x[:, 0])
    y = sph_harm_y(k, abs(m), t, ph)
    return y.real if m == 0 else math.sqrt(2) * (y.real if m > 0 else y.imag)


@given(st.lists(st.tuples(st.integers(0, 12), st.integers(-12, 12), st.floats(-2, 2)), min_size=1, max_size=6,
                unique_by=lambda t: t[:2]))
def test_harmonic_power_of_band_limited_functions_is_exact(terms):
    """A finite combination sum c_km Y_km (orthonormal real harmonics) has p_k = sum_m c_km^2 / (4 pi): exact."""
    terms = [(k, max(-k, min(k, m)), c) for k, m, c in terms]
    terms = list({(k, m): (k, m, c) for k, m, c in terms}.values())
    f = lambda x: sum(c * _real_harmonic(k, m, x) for k, m, c in terms)  # noqa: E731
    p = harmonic_power_s2(f, 12)
    want = np.zeros(13)
    for k, m, c in terms:
        want[k] += c * c / (4 * math.pi)
    np.testing.assert_allclose(p, want, atol=1e-13)


def test_harmonic_power_of_a_relu_ridge_is_funk_hecke():
    """Independent check against theory: the power of sigma(theta.x) in degree k is N_k lambda_k, lambda_k the Mercer
    eigenvalues of the ReLU random-feature kernel (Funk-Hecke quadrature in ``theory.spherical``).  The kink's power
    above the quadrature's band (degree 427 here) aliases: relative error 1e-6 at k = 0, 2e-4 at k = 20 (measured)."""
    from theory.spherical import harmonic_multiplicity, mercer_eigenvalues
    theta = sample_sphere(1, 3, seed=4)[0]
    p = harmonic_power_s2(lambda x: np.maximum(x @ theta, 0.0), 60, oversample=4)
    k = np.arange(61)
    want = harmonic_multiplicity(3, k) * mercer_eigenvalues("rf", 3, 60)
    even = (k % 2 == 0) | (k == 1)
    low = k <= 20
    np.testing.assert_allclose(p[even & low], want[even & low], rtol=5e-4)
    assert np.all(p[~even] < 1e-20)            # odd degrees >= 3 vanish exactly for a bias-free ReLU ridge
    assert p.sum() == pytest.approx(1 / 6, rel=2e-5)   # E sigma(theta.x)^2 = E (theta.x)^2 / 2 = 1/6 on S^2


def test_harmonic_power_bad_input():
    with pytest.raises(ValueError, match=r"^kmax must be an integer >= 0"):
        harmonic_power_s2(lambda x: x[:, 0], -1)
    with pytest.raises(ValueError, match=r"^oversample must be an integer >= 1"):
        harmonic_power_s2(lambda x: x[:, 0], 4, oversample=0)
    with pytest.raises(ValueError, match=r"^f must map"):
        harmonic_power_s2(lambda x: x, 4)
    with pytest.raises(ValueError, match=r"^f must map"):
        harmonic_power_s2(lambda x: np.full(len(x), np.nan), 4)


_X, _D = sample_sphere(10, 3, seed=0), sample_sphere(40, 3, seed=1)
_T = make_teacher(3, 1.5, width=10, seed=0)


@pytest.mark.parametrize("name, call", [
    ("directions", lambda: relu_features(_X, np.ones((3, 4)))),
    ("x", lambda: relu_features(np.full((2, 3), np.nan), _D)),
    ("tol", lambda: min_l1_interpolant(_X, np.ones(10), _D, tol=0)),
    ("tol", lambda: min_l1_interpolant(_X, np.ones(10), _D, tol=np.nan)),
    ("max_iter", lambda: min_l1_interpolant(_X, np.ones(10), _D, max_iter=0)),
    ("max_iter", lambda: min_l1_interpolant(_X, np.ones(10), _D, max_iter=2.5)),
    ("refine", lambda: min_l1_interpolant(_X, np.ones(10), _D, refine=True)),
    ("y", lambda: min_l1_interpolant(_X, np.full(10, np.nan), _D)),
    ("x", lambda: min_l1_interpolant(np.full((10, 3), np.inf), np.ones(10), _D)),
    ("x", lambda: min_l1_interpolant(np.ones((0, 3)), np.ones(0), _D)),
    ("directions", lambda: count_atoms(np.ones((0, 3)), np.ones(0))),
    ("directions", lambda: count_atoms(np.full((4, 3), np.nan), np.ones(4))),
    ("weights", lambda: count_atoms(_D, np.full(40, np.nan))),
    ("x", lambda: count_atoms(_D, np.ones(40), x=np.full((5, 3), np.nan))),
    ("rel_tol", lambda: count_atoms(_D, np.ones(40), rel_tol="a")),
    ("angle", lambda: count_atoms(_D, np.ones(40), angle=True)),
    ("P", lambda: fit_power_law([1, 2, np.inf], [1.0, 0.5, 0.3])),
    ("P", lambda: fit_power_law([2, 2, 2], [1.0, 0.5, 0.3])),
    ("err", lambda: fit_power_law([1, 2], [1.0, 0.5])),
    ("err", lambda: fit_power_law([1, 2, 3], np.ones((3, 1, 1)))),
    ("batch", lambda: _T(_X, batch=0)), ("batch", lambda: _T(_X, batch=-1)),
    ("x", lambda: _T(np.full((2, 3), np.nan))),
    ("smoothness", lambda: make_teacher(3, True, width=10)),
    ("batch", lambda: harmonic_power_s2(lambda z: z[:, 0], 4, batch=0)),
    ("f", lambda: harmonic_power_s2(3, 4)),
])
def test_bad_arguments_name_the_argument(name, call):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        call()


def test_min_l1_interpolant_refuses_infeasible_problems():
    """Issue 15: contradictory labels on a repeated point, or an all-zero dictionary, used to return l1 = 0 with
    residual 1 and no error."""
    import numpy as np

    from numerics.atoms import min_l1_interpolant
    from numerics.sphere import sample_sphere

    x = sample_sphere(5, 3, seed=0)
    with pytest.raises(ValueError, match="no interpolant exists"):
        min_l1_interpolant(np.vstack([x, x[:1]]), np.r_[np.ones(5), -1.0], sample_sphere(40, 3, seed=1))
    with pytest.raises(ValueError, match="no interpolant exists"):
        min_l1_interpolant(x, np.ones(5), np.zeros((20, 3)))


def test_min_l1_interpolant_takes_tensors_that_require_grad_and_refuses_non_arrays():
    """Issue 15: a tensor that requires grad raised a RuntimeError about .numpy(); a string or None is a TypeError
    naming the argument."""
    import numpy as np
    import torch

    from numerics.atoms import min_l1_interpolant
    from numerics.sphere import sample_sphere

    x, dirs = sample_sphere(5, 3, seed=0), sample_sphere(40, 3, seed=1)
    ref = min_l1_interpolant(x, np.ones(5), dirs)
    got = min_l1_interpolant(torch.tensor(x, requires_grad=True), torch.ones(5, requires_grad=True),
                             torch.tensor(dirs, requires_grad=True))
    assert got.l1 == pytest.approx(ref.l1, rel=1e-12) and got.residual < 1e-9
    for bad, name in (("abc", "x"), (None, "x")):
        with pytest.raises(TypeError, match=rf"^{name} must be"):
            min_l1_interpolant(bad, np.ones(5), dirs)
    with pytest.raises(TypeError, match=r"^directions must be a real"):
        min_l1_interpolant(x, np.ones(5), dirs + 0j)
