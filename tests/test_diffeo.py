"""Properties of the maximum-entropy diffeomorphism sampler (numerics.diffeo) against independent computations.

Statistical tolerances: every Monte-Carlo comparison uses |estimate - exact| < 4 standard errors (the s.e.
estimated from the same samples), except where a different bound is stated. With ~20 such checks per run the
chance of a false alarm is ~20 × 6e-5 ≈ 1e-3; hypothesis runs derandomized, so a run is reproducible.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.fft import dst

from numerics import diffeo as nd
from theory import diffeo as td

sizes = st.integers(min_value=3, max_value=24)
cuts = st.sampled_from([1, 1.5, 2, 3, 4.5, 6])
rules = st.sampled_from(["code", "paper"])
interps = st.sampled_from(["linear", "nearest"])


def _cut_ok(h: int, w: int, c: float, rule: str) -> bool:
    n = max(h, w)
    return bool(td.kept_modes(c, rule, td.sp.Rational(h - 1, n - 1), td.sp.Rational(w - 1, n - 1)))


# --------------------------------------------------------------------------------------------- identity, borders
@given(h=sizes, w=sizes, ch=st.integers(1, 3), c=cuts, rule=rules, interp=interps, seed=st.integers(0, 2**31))
def test_zero_temperature_is_identity(h, w, ch, c, rule, interp, seed):
    assume(_cut_ok(h, w, c, rule))
    x = np.random.default_rng(seed).standard_normal((3, ch, h, w))
    y = nd.deform(x, 0.0, c, cutoff=rule, interp=interp, seed=seed)
    assert np.array_equal(y, x)
    # the structural path too: a sampled diffeo at T = 0 has zero coefficients, the kernel must give x exactly
    d = nd.sample_diffeos(3, h, w, 0.0, c, cutoff=rule, seed=seed)
    assert not d.coef.any()
    img = np.ascontiguousarray(x)
    sy, sx = d.sine_tables()
    assert np.array_equal(nd._deform_fused(img, d.coef, d.mi, d.mj, sy, sx, nd._check_interp(interp)), x)
    xt = torch.from_numpy(x)
    assert torch.equal(nd.deform(xt, 0.0, c, cutoff=rule, interp=interp, seed=seed), xt)


@given(h=sizes, w=sizes, c=cuts, interp=interps, seed=st.integers(0, 2**31), frac=st.floats(0.1, 2.0))
def test_border_pixels_fixed(h, w, c, interp, seed, frac):
    assume(_cut_ok(h, w, c, "code"))
    x = np.random.default_rng(seed).standard_normal((4, h, w))
    T = frac * 4 / (math.pi**3 * max(c, 1.5) ** 2 * math.log(max(c, 1.5)))
    d = nd.sample_diffeos(4, h, w, T, c, seed=seed)
    f = d.fields()
    for edge in (f[..., 0, :], f[..., -1, :], f[..., :, 0], f[..., :, -1]):
        assert np.all(edge == 0.0)
    y = nd.deform(x, interp=interp, diffeo=d)
    for sl in (np.s_[:, 0, :], np.s_[:, -1, :], np.s_[:, :, 0], np.s_[:, :, -1]):
        assert np.array_equal(y[sl], x[sl])


def test_bilinear_reproduces_affine_images_exactly():
    # a linear image x(p) = α p_y + β p_x + γ is reproduced exactly by bilinear interpolation wherever the source
    # point is inside the image: τx(p) = α (p_y - D_y) + β (p_x - D_x) + γ.
    h, w = 17, 23
    gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    x = (0.7 * gy - 1.3 * gx + 2.0)[None].repeat(8, 0)
    d = nd.sample_diffeos(8, h, w, 2e-3, 3, seed=3)
    f = d.fields()
    sy, sx = gy - f[:, 0], gx - f[:, 1]
    inside = (sy >= 0) & (sy <= h - 1) & (sx >= 0) & (sx <= w - 1)
    y = nd.deform(x, diffeo=d)
    np.testing.assert_allclose(y[inside], (0.7 * sy - 1.3 * sx + 2.0)[inside], rtol=0, atol=1e-12)
    assert inside.mean() > 0.9


# --------------------------------------------------------------------------------------------- numba vs torch
@given(h=sizes, w=sizes, ch=st.integers(1, 3), c=cuts, rule=rules, interp=interps, seed=st.integers(0, 2**31))
def test_numba_and_torch_paths_agree(h, w, ch, c, rule, interp, seed):
    assume(_cut_ok(h, w, c, rule))
    x = np.random.default_rng(seed + 1).standard_normal((5, ch, h, w))
    T = 4 / (math.pi**3 * max(c, 1.5) ** 2 * math.log(max(c, 1.5)))
    y_np = nd.deform(x, T, c, cutoff=rule, interp=interp, seed=seed)
    # requires_grad: a CPU tensor without gradient would take the numba kernel too (issue 12); this checks the torch ops
    y_t = nd.deform(torch.from_numpy(x).requires_grad_(), T, c, cutoff=rule, interp=interp, seed=seed).detach()
    if interp == "linear":
        np.testing.assert_allclose(y_t.numpy(), y_np, rtol=0, atol=1e-10)
    else:
        # nearest: the two paths round the same source coordinate; a coordinate within 1e-12 of a half-integer
        # could round differently after a last-bit difference in the field, so compare where it is not ambiguous
        d = nd.sample_diffeos(5, h, w, T, c, cutoff=rule, seed=seed)
        f = d.fields()
        gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        src = np.stack([gy - f[:, 0], gx - f[:, 1]], 1)
        ambiguous = (np.abs(np.abs(src - np.floor(src)) - 0.5) < 1e-9).any(1)
        ok = ~ambiguous[:, None].repeat(ch, 1)
        np.testing.assert_array_equal(y_t.numpy()[ok], y_np[ok])
    # same fields from the torch synthesis and the numba synthesis
    d = nd.sample_diffeos(5, h, w, T, c, cutoff=rule, seed=seed)
    np.testing.assert_allclose(nd._fields_torch(d, "cpu", torch.float64).numpy(), d.fields(), rtol=0, atol=1e-12)


def test_remap_numpy_and_torch_agree_on_given_fields():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 9, 12))
    f = rng.normal(scale=2.0, size=(3, 2, 9, 12))  # large, arbitrary fields: exercises the clamping
    xt = torch.from_numpy(x).requires_grad_()  # the torch ops, not the numba kernel a CPU tensor without grad takes
    np.testing.assert_allclose(nd.remap(xt, f).detach().numpy(), nd.remap(x, f), atol=1e-12, rtol=0)


def test_torch_path_is_differentiable_and_keeps_dtype():
    x = torch.randn(2, 1, 7, 9, dtype=torch.float64, requires_grad=True)
    d = nd.sample_diffeos(2, 7, 9, 0.01, 3, seed=0)
    assert torch.autograd.gradcheck(lambda z: nd.deform(z, diffeo=d), (x,))
    y32 = nd.deform(torch.randn(2, 5, 5), 0.01, 2, seed=0)
    assert y32.dtype == torch.float32


def test_torch_generator_seed():
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    x = torch.randn(4, 10, 10, dtype=torch.float64)
    a = nd.deform(x, 0.01, 3, seed=g1)
    b = nd.deform(x, 0.01, 3, seed=g2)
    assert torch.equal(a, b) and not torch.equal(a, x)


# --------------------------------------------------------------------------------------------- statistics
def test_per_sample_fields_are_independent():
    # the centre displacement of sample 0 and sample 1 of each batch: correlation ~ N(0, 1/K)
    K = 4000
    d = nd.sample_diffeos(K * 2, 11, 11, 0.01, 3, seed=11)
    centre = d.fields()[:, 0, 5, 5].reshape(K, 2)
    r = np.corrcoef(centre[:, 0], centre[:, 1])[0, 1]
    assert abs(r) < 4 / math.sqrt(K)
    # and the two fields in one batch are never identical
    f = d.fields()
    assert not np.allclose(f[0], f[1])
    # seeded: same seed, same fields; different seed, different fields
    assert np.array_equal(nd.sample_fields(3, 8, 8, 0.01, 3, seed=1), nd.sample_fields(3, 8, 8, 0.01, 3, seed=1))
    assert not np.array_equal(nd.sample_fields(3, 8, 8, 0.01, 3, seed=1), nd.sample_fields(3, 8, 8, 0.01, 3, seed=2))


@given(n=st.sampled_from([9, 15, 21, 33]), c=st.sampled_from([1, 2, 3, 5, 8]), rule=rules)
def test_centre_displacement_matches_exact_typical_displacement(n, c, rule):
    assume(_cut_ok(n, n, c, rule) and td.odd_lattice_sum(c, rule) != 0)
    T = 1e-3
    K = 20000
    d = nd.sample_diffeos(K, n, n, T, c, cutoff=rule, seed=n * 100 + int(2 * c))
    centre = d.fields()[:, :, (n - 1) // 2, (n - 1) // 2]
    sq = (centre**2).sum(1)
    exact = float(td.typical_displacement_sq(T, c, n, rule))
    assert abs(sq.mean() - exact) < 4 * sq.std() / math.sqrt(K)
    # plumbing only (nd wraps td), not an independent check
    assert math.isclose(nd.typical_displacement(T, c, n, cutoff=rule) ** 2, exact, rel_tol=1e-12)


def test_rectangular_images_are_isotropic():
    # (H, W) and (W, H) give transposed laws; the short side keeps fewer modes (physical wavenumber cut-off)
    da = nd.sample_diffeos(1, 11, 21, 0.01, 4, seed=0)
    db = nd.sample_diffeos(1, 21, 11, 0.01, 4, seed=0)
    assert sorted(zip(da.mi, da.mj)) == sorted(zip(db.mj, db.mi))
    assert da.mi.max() < da.mj.max()
    # centre variance of each component vs the exact lattice sum with a = 1/2, b = 1
    K = 20000
    f = nd.sample_diffeos(K, 11, 21, 0.01, 4, seed=1).fields()[:, :, 5, 10]
    exact = float(td.typical_displacement_sq(0.01, 4, 21, "code", td.sp.Rational(1, 2), 1))
    sq = (f**2).sum(1)
    assert abs(sq.mean() - exact) < 4 * sq.std() / math.sqrt(K)
    # plumbing only (nd wraps td), not an independent check
    assert math.isclose(nd.typical_displacement(0.01, 4, (11, 21)) ** 2, exact, rel_tol=1e-12)
    # each component separately carries half of δ² (theory: two independent components with the same lattice sum)
    for comp in (0, 1):
        sq_c = f[:, comp] ** 2
        assert abs(sq_c.mean() - exact / 2) < 4 * sq_c.std() / math.sqrt(K)


@given(n=st.sampled_from([12, 17, 26]), c=st.sampled_from([2, 3, 4.5]), rule=rules)
def test_mode_variances_follow_T_over_k2(n, c, rule):
    # Independent projection: the discrete sine transform (DST-I) of the sampled field on the interior grid
    # recovers each coefficient, sum_k sin(iπk/(n-1)) sin(i'πk/(n-1)) = (n-1)/2 δ_ii'.
    assume(_cut_ok(n, n, c, rule))
    T, K = 0.02, 3000
    f = nd.sample_diffeos(K, n, n, T, c, cutoff=rule, seed=n + 7).fields()[:, 0, 1:-1, 1:-1]
    coef = dst(dst(f, type=1, axis=1), type=1, axis=2) / (2 * (n - 1)) ** 2 * 4  # DST-I norm: 2 Σ ... sin
    kept = set(td.kept_modes(c, rule))
    var = (coef**2).mean(0) / n**2  # variance of C_ij = coefficient / n (domain units)
    for i in range(1, n - 1):
        for j in range(1, n - 1):
            expected = float(td.mode_variance(i, j, T)) if (i, j) in kept else 0.0
            if expected:
                # chi²_K / K has s.d. sqrt(2/K); 5 s.d. (many modes are tested at once)
                assert abs(var[i - 1, j - 1] / expected - 1) < 5 * math.sqrt(2 / K)
            else:
                assert var[i - 1, j - 1] < 1e-20 * T


def test_mean_gradient_energy_equipartition():
    # finite-difference gradient of sampled fields on a fine grid vs (π²T/2) N(c) (theory.diffeo)
    n, c, T, K = 129, 3, 0.01, 400
    f = nd.sample_diffeos(K, n, n, T, c, seed=5).fields() / n  # domain units: τ = D / n
    du = 1 / (n - 1)
    gy = np.gradient(f, du, axis=2, edge_order=2)
    gx = np.gradient(f, du, axis=3, edge_order=2)
    dens = gy**2 + gx**2  # (K, 2, n, n)
    w = np.ones(n)
    w[[0, -1]] = 0.5  # trapezoid rule on [0, 1]
    per_field = np.einsum("bcyx,y,x->b", dens, w, w) * du * du
    exact = float(td.mean_gradient_energy(T, c))
    assert abs(per_field.mean() - exact) < 4 * per_field.std() / math.sqrt(K) + 1e-3 * exact


# --------------------------------------------------------------------------------------------- folds
def test_jacobian_matches_finite_differences():
    d = nd.sample_diffeos(6, 33, 33, 0.02, 3, seed=2)
    f = d.fields()
    dyy = np.gradient(f[:, 0], axis=1, edge_order=2)
    dyx = np.gradient(f[:, 0], axis=2, edge_order=2)
    dxy = np.gradient(f[:, 1], axis=1, edge_order=2)
    dxx = np.gradient(f[:, 1], axis=2, edge_order=2)
    det_fd = ((1 - dyy) * (1 - dxx) - dyx * dxy).reshape(6, -1).min(1)
    det_exact_pixels = d.min_jacobian_det(resolution=1)
    # second-order differences of modes up to k = 3 on 33 pixels have a relative error ~ (3π/32)²/6 ≈ 1.5% per
    # derivative, so the determinant's deviation from 1 is off by at most ~3%: rtol 5% on 1 - det
    np.testing.assert_allclose(1 - det_fd, 1 - det_exact_pixels, rtol=0.05, atol=1e-3)
    assert np.all(d.min_jacobian_det(resolution=4) <= det_exact_pixels + 1e-12)


def test_fold_probability_at_paper_T_max():
    # research notes §2.4 (independent simulation, 500 fields, n = 32, c = 3): 35% of fields fold at T_max.
    # With 600 fields the s.e. is ~0.02: accept 0.25-0.46.
    t_max = nd.temperature_range(32, 3, method="paper")[1]
    p = nd.sample_diffeos(600, 32, 32, t_max, 3, seed=8).folds(resolution=4).mean()
    assert 0.25 < p < 0.46
    assert not nd.sample_diffeos(600, 32, 32, t_max / 8, 3, seed=8).folds().any()


def test_resample_folds_gives_diffeomorphisms():
    t_max = nd.temperature_range(32, 3, method="paper")[1]
    d = nd.sample_diffeos(200, 32, 32, t_max, 3, seed=1, resample_folds=True)
    assert not d.folds().any()
    with pytest.raises(ValueError, match=r"^T=.* is too large"):
        nd.sample_diffeos(50, 32, 32, 100 * t_max, 3, seed=1, resample_folds=True, max_tries=3)


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(T=-1e-3), r"^T "),
        (dict(T=float("nan")), r"^T "),
        (dict(T=None), r"^T must be given"),
        (dict(c=0.5), r"^c "),
        (dict(c=float("inf")), r"^c "),
        (dict(c=None), r"^c must be given"),
        (dict(cutoff="circle"), r"^cutoff "),
        (dict(interp="cubic"), r"^interp "),
        (dict(seed="abc"), r"^seed "),
        (dict(seed=-1), r"^seed "),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = dict(T=1e-3, c=3)
    args.update(kwargs)
    x = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match=match):
        nd.deform(x, **args)


def test_bad_images_raise():
    with pytest.raises(ValueError, match=r"^x "):
        nd.deform(np.zeros((8, 8)), 1e-3, 3)  # no batch axis
    with pytest.raises(ValueError, match=r"^x "):
        nd.deform(np.zeros((2, 1, 8)), 1e-3, 3)  # H = 1
    bad = np.zeros((2, 8, 8))
    bad[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"^x contains non-finite"):
        nd.deform(bad, 1e-3, 3)
    with pytest.raises(ValueError, match=r"^x contains non-finite"):
        nd.deform(torch.full((2, 8, 8), float("inf")), 1e-3, 3)
    with pytest.raises(TypeError, match=r"^x must be a real numeric array"):
        nd.deform(np.zeros((2, 8, 8), dtype=complex), 1e-3, 3)
    with pytest.raises(TypeError, match=r"^x must be a real numeric array"):
        nd.deform("not an array", 0.01, 3)
    with pytest.raises(ValueError, match=r"^diffeo was sampled for"):
        nd.deform(np.zeros((2, 8, 8)), diffeo=nd.sample_diffeos(3, 8, 8, 1e-3, 3))
    with pytest.raises(ValueError, match=r"^fields "):
        nd.remap(np.zeros((2, 8, 8)), np.zeros((2, 2, 8, 7)))
    with pytest.raises(ValueError, match=r"^c=1.2 with cutoff='paper' keeps no mode"):
        nd.deform(np.zeros((2, 8, 8)), 1e-3, 1.2, cutoff="paper")
    # torch remap: an integer image would truncate the fields to integers (0.5-pixel fields gave the identity)
    half = np.full((2, 2, 8, 8), 0.5)
    with pytest.raises(ValueError, match=r"^x must be a floating-point tensor"):
        nd.remap(torch.arange(128).reshape(2, 8, 8), half)
    with pytest.raises(ValueError, match=r"^x contains non-finite"):
        nd.remap(torch.full((2, 8, 8), float("nan")), half)
    with pytest.raises(ValueError, match=r"^x must have shape"):
        nd.remap(torch.zeros(2, 1, 8), np.zeros((2, 2, 1, 8)))
    with pytest.raises(ValueError, match=r"^fields contains non-finite"):
        nd.remap(torch.zeros(2, 8, 8), np.full((2, 2, 8, 8), np.nan))
    with pytest.raises(ValueError, match=r"^fields contains non-finite"):
        nd.remap(np.zeros((2, 8, 8)), np.full((2, 2, 8, 8), np.inf))
    # the same image as float: a 0.5-pixel shift averages neighbouring rows and columns (interior pixel (3, 3))
    x = torch.arange(128, dtype=torch.float64).reshape(2, 8, 8)
    assert nd.remap(x, half)[0, 3, 3] == (x[0, 2, 2] + x[0, 2, 3] + x[0, 3, 2] + x[0, 3, 3]) / 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(T=1e-3), r"^T must not be given with diffeo"),
        (dict(c=3), r"^c must not be given with diffeo"),
        (dict(cutoff="code"), r"^cutoff must not be given with diffeo"),
        (dict(seed=0), r"^seed must not be given with diffeo"),
        (dict(resample_folds=True), r"^resample_folds must not be given with diffeo"),
        (dict(diffeo="abc"), r"^diffeo must be a SineDiffeo"),
    ],
)
def test_deform_with_a_given_diffeo_rejects_sampling_arguments(kwargs, match):
    # with diffeo=..., T, c, cutoff, seed and resample_folds belong to the sampled diffeo: giving one would be ignored
    args = dict(diffeo=nd.sample_diffeos(2, 8, 8, 1e-3, 3, seed=0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        nd.deform(np.zeros((2, 8, 8)), **args)


@given(n=st.integers(2, 200), c=st.floats(1.01, 200))
def test_temperature_window_empty_iff_c_large(n, c):
    # paper window: T_min < T_max  <=>  c < 2n/π  (second derivation of the condition checked in the code)
    if c < 2 * n / math.pi:
        lo, hi = nd.temperature_range(n, c, method="paper")
        assert 0 < lo < hi
    else:
        with pytest.raises(ValueError, match=r"^empty temperature window"):
            nd.temperature_range(n, c, method="paper")


def test_temperature_functions_validate():
    with pytest.raises(ValueError, match=r"^c must be > 1"):
        nd.temperature_range(32, 1, method="paper")
    with pytest.raises(ValueError, match=r"^c must be > 1"):
        nd.typical_displacement(1e-3, 1, 32, method="paper")
    with pytest.raises(ValueError, match=r"^n "):
        nd.temperature_range(1, 3)
    with pytest.raises(ValueError, match=r"^method "):
        nd.temperature_range(32, 3, method="guess")
    with pytest.raises(ValueError, match=r"^delta "):
        nd.temperature_for_displacement(-1, 3, 32)
    with pytest.raises(ValueError, match=r"^delta "):
        nd.temperature_for_displacement(float("inf"), 3, 32)
    with pytest.raises(ValueError, match=r"^method='paper' is defined for square images only"):
        nd.typical_displacement(1e-3, 3, (16, 32), method="paper")
    # the exact method works at c = 1 for the code rule (one mode), where the paper formula divides by ln 1 = 0
    assert nd.typical_displacement(1e-3, 1, 32) > 0


#: Sierpinski's constant, K = 2.5849817595792532... (OEIS A062089), typed in independently of td.SIERPINSKI_K
K_SIERPINSKI = 2.5849817595792532


def _odd_sum_float(c: float, rule: str = "code") -> float:
    """Float brute force of S_odd(c) = Σ 1/(i²+j²) over odd i, j inside the cut-off (independent of theory)."""
    i = np.arange(1, int(c) + 2, 2, dtype=float)
    r2 = i[:, None] ** 2 + i[None, :] ** 2
    keep = (r2 < (c + 0.5) ** 2) if rule == "code" else (r2 <= c * c)
    return float((1.0 / r2[keep]).sum())


@given(delta=st.floats(0.05, 3.0), c=st.sampled_from([2, 3, 5, 10]), n=st.integers(8, 64),
       method=st.sampled_from(["exact", "paper", "asymptotic"]))
def test_temperature_for_displacement_closed_forms(delta, c, n, method):
    # solving the documented δ(T) for T by hand:
    #   exact       δ² = 2Tn²S_odd(c)                 ->  T = δ²/(2n²S_odd)
    #   paper       δ  = (n/2) sqrt(πT ln c)           ->  T = 4δ²/(πn² ln c)
    #   asymptotic  δ² = (πn²T/4)(ln c + K/(2π))       ->  T = 4δ²/(πn²(ln c + K/(2π)))
    # with S_odd from a float brute-force sum and K typed in: rel_tol 1e-12 covers float64 rounding (~1e-15).
    T = nd.temperature_for_displacement(delta, c, n, method=method)
    if method == "exact":
        expected = delta**2 / (2 * n**2 * _odd_sum_float(c))
    elif method == "paper":
        expected = 4 * delta**2 / (math.pi * n**2 * math.log(c))
    else:
        expected = 4 * delta**2 / (math.pi * n**2 * (math.log(c) + K_SIERPINSKI / (2 * math.pi)))
    assert math.isclose(T, expected, rel_tol=1e-12)
    # and the forward formula at that T gives δ back (a round trip: consistency, not an independent check)
    assert math.isclose(nd.typical_displacement(T, c, n, method=method), delta, rel_tol=1e-12)


def test_exact_T_min_gives_half_pixel_and_paper_formula_is_off_by_the_constant():
    for c in (3, 5, 10):
        lo, _ = nd.temperature_range(32, c)
        # exact T_min = T(δ = 1/2) = 1/(8n²S_odd), S_odd by float brute force (rounding ~1e-15)
        assert math.isclose(lo, 1 / (8 * 32**2 * _odd_sum_float(c)), rel_tol=1e-12)
        lo_paper, _ = nd.temperature_range(32, c, method="paper")
        assert math.isclose(lo_paper, 1 / (math.pi * 32**2 * math.log(c)), rel_tol=1e-12)
        # at the paper's T_min the exact centre displacement is sqrt(2 n² T S_odd) = sqrt(2 S_odd/(π ln c)) > 1/2
        # (0.637 px at c = 3, 0.574 at c = 5, 0.549 at c = 10, code cut-off)
        delta = nd.typical_displacement(lo_paper, c, 32)
        assert math.isclose(delta, math.sqrt(2 * _odd_sum_float(c) / (math.pi * math.log(c))), rel_tol=1e-12)
        assert delta > 0.5


def test_asymptotic_temperature_range():
    # method="asymptotic": T_min solves (n/2)² π T (ln c + K/2π) = (1/2)², i.e. T_min = 1/(πn²(ln c + K/2π));
    # T_max is the paper's 4/(π³c² ln c). K typed in; float64 rounding only, rel_tol 1e-12.
    for n, c in ((32, 3), (32, 10), (200, 50)):
        lo, hi = nd.temperature_range(n, c, method="asymptotic")
        assert math.isclose(lo, 1 / (math.pi * n**2 * (math.log(c) + K_SIERPINSKI / (2 * math.pi))), rel_tol=1e-12)
        assert math.isclose(hi, 4 / (math.pi**3 * c**2 * math.log(c)), rel_tol=1e-12)
        # a second code path (theory.typical_displacement_asymptotic, not odd_lattice_sum_asymptotic): δ(T_min) = 1/2
        assert math.isclose(nd.typical_displacement(lo, c, n, method="asymptotic"), 0.5, rel_tol=1e-12)
    # at c = 50 the asymptotic T_min is within the lattice remainder of the exact one: S_odd(50) (code rule)
    # differs from (π/8) ln 50 + K/16 by 1.67e-3 relative (measured), tolerance 5e-3 = 3x; the paper's T_min is
    # 10% off (it drops K/16), so the check separates the two.
    exact_lo = nd.temperature_range(200, 50)[0]
    assert abs(nd.temperature_range(200, 50, method="asymptotic")[0] / exact_lo - 1) < 5e-3
    assert abs(nd.temperature_range(200, 50, method="paper")[0] / exact_lo - 1) > 0.05
    with pytest.raises(ValueError, match=r"^empty temperature window"):
        nd.temperature_range(8, 6, method="asymptotic")


@pytest.mark.parametrize("c, rule", [(3, "code"), (5, "paper")])
def test_exact_T_max_solves_its_defining_relation(c, rule):
    # docstring: T_max is defined by 2 ln c <|∇τ|²> = 1 (domain mean, both components). Monte Carlo of the sampler
    # at T = T_max: finite-difference gradient energy (as in the equipartition test), n = 65, K = 1600 fields.
    # Tolerance: 4 s.e. (s.e. ~0.010 for c = 3, ~0.0066 for c = 5) plus the central-difference bias, which lowers
    # the energy of a mode of frequency ω by at most (ωh)²/3: ω <= 4π here (largest index 3 for c = 3 code, 4 for
    # c = 5 paper), h = 1/64, bound 0.013 (measured mean bias 0.34% and 0.66%).
    n, K = 65, 1600
    t_max = nd.temperature_range(n, c, cutoff=rule)[1]
    f = nd.sample_diffeos(K, n, n, t_max, c, cutoff=rule, seed=c).fields() / n
    du = 1 / (n - 1)
    dens = np.gradient(f, du, axis=2, edge_order=2) ** 2 + np.gradient(f, du, axis=3, edge_order=2) ** 2
    w = np.ones(n)
    w[[0, -1]] = 0.5  # trapezoid rule on [0, 1]
    lhs = 2 * math.log(c) * np.einsum("bcyx,y,x->b", dens, w, w) * du * du
    assert abs(lhs.mean() - 1) < 4 * lhs.std() / math.sqrt(K) + 0.013
    # and exactly, with the equipartition value of theory.diffeo (itself checked by Monte Carlo above)
    lo, hi = td.temperature_range_exact(n, c, rule)
    assert td.sp.simplify(2 * td.sp.log(c) * td.mean_gradient_energy(hi, c, rule) - 1) == 0


# --------------------------------------------------------------------------------------------- issue 12: axes, dtypes
def _reference_bilinear(img, dy, dx):
    """The reference package's pull-back, written from its description (pcsl-epfl/diffeomorphism ``remap``): one
    (H, W) field for every leading index of img [..., H, W], source clamped, floor/ceil corners."""
    H, W = img.shape[-2:]
    gy, gx = np.meshgrid(np.arange(H, dtype=float), np.arange(W, dtype=float), indexing="ij")
    yn, xn = np.clip(gy - dy, 0, H - 1), np.clip(gx - dx, 0, W - 1)
    yf, xf = np.floor(yn).astype(int), np.floor(xn).astype(int)
    yc, xc = np.ceil(yn).astype(int), np.ceil(xn).astype(int)
    fy, fx = yn - yf, xn - xf
    return ((1 - fy) * (1 - fx) * img[..., yf, xf] + (1 - fy) * fx * img[..., yf, xc]
            + fy * (1 - fx) * img[..., yc, xf] + fy * fx * img[..., yc, xc])


def _series(d, b):
    """Displacement (dy, dx) of sample b from the sine series on linspace(0, 1, n) (numpy, not the kernels)."""
    uy, ux = np.linspace(0, 1, d.height), np.linspace(0, 1, d.width)
    basis = np.sin(np.pi * (d.mi[:, None, None] + 1) * uy[None, :, None]) * np.sin(
        np.pi * (d.mj[:, None, None] + 1) * ux[None, None, :])
    return tuple(np.tensordot(d.coef[b, comp], basis, axes=1) for comp in (0, 1))


def test_batch_dims_zero_is_the_reference_deform():
    # the reference deform(image, T, cut) draws one field and applies it to every leading index of [..., n, n]
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12))
    d = nd.sample_diffeos(1, 12, 12, 0.02, 3, seed=4)
    y = nd.deform(x, diffeo=d, batch_dims=0)
    np.testing.assert_allclose(y, _reference_bilinear(x, *_series(d, 0)), rtol=0, atol=1e-12)
    # a (3, H, W) image with identical channels keeps identical channels (issue 12, "Done when")
    img = np.repeat(x[0, :1], 3, 0)
    out = nd.deform(img, 0.02, 3, seed=5, batch_dims=0)
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2]) and not np.array_equal(out, img)
    # and the torch paths (numba view; torch ops) follow the same rule
    for xt in (torch.from_numpy(img), torch.from_numpy(img).requires_grad_()):
        o = nd.deform(xt, 0.02, 3, seed=5, batch_dims=0).detach()
        assert torch.equal(o[0], o[1]) and torch.equal(o[0], o[2])
        np.testing.assert_allclose(o.numpy(), out, rtol=0, atol=1e-12)


@given(lead_bd=st.lists(st.integers(1, 3), min_size=1, max_size=3).flatmap(
    lambda lead: st.tuples(st.just(lead), st.integers(0, len(lead)))), seed=st.integers(0, 2**31))
def test_batch_dims_gives_one_field_per_batch_index(lead_bd, seed):
    lead, bd = lead_bd
    shape = (*lead, 9, 10)
    x = np.random.default_rng(seed).standard_normal(shape)
    y = nd.deform(x, 0.02, 3, seed=seed, batch_dims=bd)
    B, C = math.prod(lead[:bd]), math.prod(lead[bd:])
    # the flat C-order index of the batch axes is the sample index of the SineDiffeo, channels share it
    d = nd.sample_diffeos(B, 9, 10, 0.02, 3, seed=seed)
    expected = nd.deform(x.reshape(B, C, 9, 10), diffeo=d).reshape(shape)
    assert np.array_equal(y, expected)
    # identical channels stay identical, and different batch indices get different fields
    same = np.broadcast_to(x.reshape(B, C, 9, 10)[:, :1], (B, C, 9, 10)).reshape(shape)
    z = nd.deform(same, 0.02, 3, seed=seed, batch_dims=bd).reshape(B, C, 9, 10)
    assert all(np.array_equal(z[:, 0], z[:, k]) for k in range(C))
    same_img = np.broadcast_to(x.reshape(-1, 9, 10)[0], shape)
    w = nd.deform(same_img, 0.02, 3, seed=seed, batch_dims=bd).reshape(B, C, 9, 10)
    assert all(not np.array_equal(w[0], w[b]) for b in range(1, B))


def test_default_batch_dims_is_unchanged_per_channel_rule():
    # batch_dims=1 stays the default: a (3, H, W) array is three samples with three fields (the old behaviour that
    # every existing caller relies on); batch_dims=0 is the one-image rule
    img = np.repeat(np.random.default_rng(1).standard_normal((1, 16, 16)), 3, 0)
    y = nd.deform(img, 0.02, 3, seed=0)
    assert not np.array_equal(y[0], y[1])
    assert np.array_equal(y, nd.deform(img, 0.02, 3, seed=0, batch_dims=1))


@pytest.mark.parametrize("bad, exc, match", [
    (1.0, TypeError, r"^batch_dims must be an integer"),
    (True, TypeError, r"^batch_dims must be an integer"),
    ("1", TypeError, r"^batch_dims must be an integer"),
    (None, TypeError, r"^batch_dims must be an integer"),
    (-1, ValueError, r"^batch_dims must be an integer >= 0"),
    (3, ValueError, r"^x must have shape .* batch_dims=3 batch axes, i\.e\. ndim >= 5"),
])
def test_bad_batch_dims_raise(bad, exc, match):
    for x in (np.zeros((2, 3, 8, 8)), torch.zeros(2, 3, 8, 8)):
        with pytest.raises(exc, match=match):
            nd.deform(x, 1e-3, 3, batch_dims=bad)
        with pytest.raises(exc, match=match):
            nd.remap(x, np.zeros((2, 2, 8, 8)), batch_dims=bad)


def test_remap_batch_dims():
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 9))
    f = np.random.default_rng(3).normal(scale=0.7, size=(1, 2, 8, 9))
    y = nd.remap(x, f, batch_dims=0)
    np.testing.assert_allclose(y, _reference_bilinear(x, f[0, 0], f[0, 1]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"^fields must have shape \(batch, 2, H, W\) = \(1, 2, 8, 9\)"):
        nd.remap(x, np.zeros((2, 2, 8, 9)), batch_dims=0)


def test_dtypes_numpy_and_torch():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (3, 2, 16, 16)).astype(np.uint8)
    u8[0] = 255  # a saturated sample: bilinear weights summing to 1 - 1e-7 must still give 255 (round, clamp)
    d = nd.sample_diffeos(3, 16, 16, 0.01, 3, seed=0)
    ref32 = nd.deform(u8.astype(np.float32), diffeo=d)
    # uint8 in, uint8 out: the float32 result rounded half to even and clamped to [0, 255]
    expected = np.clip(np.rint(ref32), 0, 255).astype(np.uint8)
    for y in (nd.deform(u8, diffeo=d), nd.deform(torch.from_numpy(u8), diffeo=d).numpy()):
        assert y.dtype == np.uint8 and np.array_equal(y, expected)
    assert np.all(expected[0] == 255)
    # the torch ops path (taken here because the coefficients require grad) gives uint8 too; its float32 field
    # differs from the numba float64 one in the last bits, so a value next to a .5 may round the other way
    y_ops = nd.deform(torch.from_numpy(u8), diffeo=d.to_torch(requires_grad=True))
    assert y_ops.dtype == torch.uint8
    diff = np.abs(y_ops.numpy().astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-2
    # float32 stays float32 (computed in float32, the field in float64): equals the float64 result rounded
    x64 = rng.standard_normal((3, 2, 16, 16))
    y32 = nd.deform(x64.astype(np.float32), diffeo=d)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, nd.deform(x64.astype(np.float32).astype(np.float64), diffeo=d), rtol=0, atol=1e-6)
    # float16 (numpy and torch) and bfloat16 (torch): deformed in float32, returned in their dtype
    x16 = x64.astype(np.float16)
    expect16 = nd.deform(x16.astype(np.float32), diffeo=d).astype(np.float16)
    assert nd.deform(x16, diffeo=d).dtype == np.float16 and np.array_equal(nd.deform(x16, diffeo=d), expect16)
    t16 = nd.deform(torch.from_numpy(x16), diffeo=d)
    assert t16.dtype == torch.float16 and np.array_equal(t16.numpy(), expect16)
    xb = torch.from_numpy(x64).to(torch.bfloat16)
    tb = nd.deform(xb, diffeo=d)
    assert tb.dtype == torch.bfloat16
    assert torch.equal(tb, torch.from_numpy(nd.deform(xb.float().numpy(), diffeo=d)).to(torch.bfloat16))
    # other numpy integers: float64 (unchanged); torch integers other than uint8 are refused
    assert nd.deform(u8.astype(np.int16), diffeo=d).dtype == np.float64
    with pytest.raises(ValueError, match=r"^x must be a floating-point tensor or a uint8 tensor"):
        nd.deform(torch.zeros(3, 16, 16, dtype=torch.int32), diffeo=d)


def test_cpu_tensor_without_grad_runs_the_numba_kernel_on_its_memory(monkeypatch):
    x = torch.randn(4, 3, 12, 12)
    seen = []
    kernel = nd._deform_fused

    def spy(img, *args):
        seen.append(img)
        return kernel(img, *args)

    monkeypatch.setattr(nd, "_deform_fused", spy)
    y = nd.deform(x, 0.01, 3, seed=0)
    # the kernel ran on a view of x's memory (no copy for float32), and gave what the numpy path gives
    assert len(seen) == 1 and np.shares_memory(seen[0], x.numpy())
    assert y.dtype == torch.float32 and np.array_equal(y.numpy(), nd.deform(x.numpy(), 0.01, 3, seed=0))
    # a tensor that requires grad (or a GPU tensor) takes the torch operations instead
    calls = len(seen)
    yg = nd.deform(x.clone().requires_grad_(), 0.01, 3, seed=0)
    assert len(seen) == calls and yg.grad_fn is not None
    np.testing.assert_allclose(yg.detach().numpy(), y.numpy(), rtol=0, atol=1e-5)  # float32 fields on that path


def test_tensor_subclasses_keep_their_type():
    class Image(torch.Tensor):  # a tv_tensors.Image-like subclass
        pass

    x = torch.randn(2, 3, 10, 10).as_subclass(Image)
    for xin in (x, x.detach().clone().requires_grad_()):
        for interp in nd.INTERPOLATIONS:
            assert type(nd.deform(xin, 0.01, 3, seed=0, interp=interp)) is Image
        assert type(nd.remap(xin, np.zeros((2, 2, 10, 10)))) is Image
    assert type(nd.deform(x, 0.0, 3)) is Image


# --------------------------------------------------------------------------------------------- issue 12: gaussian
def _gaussian_reference(x, dy, dx, sigma=0.4715):
    """The reference Gaussian pull-back, from its description: every output pixel is the normalised average over
    all pixels q of exp(-|s - q|²/2σ²) x(q), s the clamped source point (an O(n⁴) brute force)."""
    H, W = x.shape[-2:]
    gy, gx = np.meshgrid(np.arange(H, dtype=float), np.arange(W, dtype=float), indexing="ij")
    sy, sx = np.clip(gy - dy, 0, H - 1), np.clip(gx - dx, 0, W - 1)
    w = np.exp(-((sy[:, :, None, None] - gy) ** 2 + (sx[:, :, None, None] - gx) ** 2) / (2 * sigma**2))
    w /= w.sum((2, 3), keepdims=True)
    return np.einsum("yxqr,...qr->...yx", w, x)


@given(h=st.integers(3, 14), w=st.integers(3, 14), c=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**31),
       frac=st.floats(0.0, 3.0))
def test_gaussian_interpolation_matches_the_reference_sum(h, w, c, seed, frac):
    assume(_cut_ok(h, w, c, "code"))
    T = frac * 4 / (math.pi**3 * max(c, 1.5) ** 2 * math.log(max(c, 1.5)))  # up to 3 T_max: large fields, clamping
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w))
    d = nd.sample_diffeos(2, h, w, T, c, seed=seed)
    y = nd.deform(x, diffeo=d, interp="gaussian")
    f = d.fields()
    # truncation to 2R = 10 taps per axis drops weights < 7e-25 (GAUSSIAN_RADIUS): agreement to rounding
    for b in range(2):
        np.testing.assert_allclose(y[b], _gaussian_reference(x[b], f[b, 0], f[b, 1]), rtol=0, atol=1e-12)
    # the torch operations (GPU / autograd path) give the same result
    yt = nd.deform(torch.from_numpy(x).requires_grad_(), diffeo=d, interp="gaussian").detach().numpy()
    np.testing.assert_allclose(yt, y, rtol=0, atol=1e-12)
    # remap with the same fields is the same operation
    np.testing.assert_allclose(nd.remap(x, f, interp="gaussian"), y, rtol=0, atol=1e-12)


@given(value=st.floats(-1e6, 1e6), h=st.integers(2, 12), w=st.integers(2, 12), seed=st.integers(0, 2**31),
       dtype=st.sampled_from(["float64", "float32"]))
def test_gaussian_interpolation_of_a_constant_image_is_that_constant(value, h, w, seed, dtype):
    # normalised weights, written as ref + Σ w (x_q - ref): a constant image comes out exactly, in every path
    assume(_cut_ok(h, w, 2, "code"))
    x = np.full((3, 2, h, w), value, dtype=dtype)
    d = nd.sample_diffeos(3, h, w, 0.05, 2, seed=seed)
    assert np.array_equal(nd.deform(x, diffeo=d, interp="gaussian"), x)
    xt = torch.from_numpy(x)
    assert torch.equal(nd.deform(xt, diffeo=d, interp="gaussian"), xt)
    assert torch.equal(nd.deform(xt.clone().requires_grad_(), diffeo=d, interp="gaussian").detach(), xt)
    u8 = np.full((3, 2, h, w), int(abs(value)) % 256, dtype=np.uint8)
    assert np.array_equal(nd.deform(u8, diffeo=d, interp="gaussian"), u8)


def test_gaussian_at_zero_temperature_is_the_reference_blur():
    # the reference's clean image for its Gaussian stability numbers is deform(img, 0, 1, 'gaussian'): a blur
    x = np.random.default_rng(0).standard_normal((2, 12, 12))
    y = nd.deform(x, 0.0, 1, interp="gaussian", seed=0)
    for b in range(2):
        np.testing.assert_allclose(y[b], _gaussian_reference(x[b], 0.0, 0.0), rtol=0, atol=1e-12)
    assert not np.allclose(y, x)
    assert np.array_equal(nd.deform(x, 0.0, 1, interp="linear"), x)


# --------------------------------------------------------------------------------------------- issue 12: gradients
@pytest.mark.parametrize("interp", ["linear", "gaussian"])
def test_gradient_with_respect_to_the_sine_coefficients(interp):
    # bilinear interpolation is piecewise linear in the source coordinate: gradcheck's finite differences
    # (eps = 1e-6) are exact unless a source coordinate sits within 1e-6 of an integer; a small T keeps the
    # displacements below a pixel and the sample coordinates away from integers (checked below).
    H, W = 7, 9
    x = torch.randn(2, 2, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    d = nd.sample_diffeos(2, H, W, 0.003, 2, seed=3)
    f = d.fields()
    gy, gx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    frac = np.stack([gy - f[:, 0], gx - f[:, 1]])[:, :, 1:-1, 1:-1] % 1.0  # interior (the border never moves)
    assert np.minimum(frac, 1 - frac).min() > 1e-4

    def out(coef, img):
        return nd.deform(img, diffeo=dataclasses.replace(d, coef=coef), interp=interp)

    coef = torch.tensor(d.coef, requires_grad=True)
    assert torch.autograd.gradcheck(out, (coef, x.clone().requires_grad_()))
    # the documented API: a leaf tensor from to_torch, gradient after backward
    dt = d.to_torch(requires_grad=True)
    y = nd.deform(x, diffeo=dt, interp=interp)
    assert y.requires_grad and dt.coef.is_leaf
    np.testing.assert_allclose(y.detach().numpy(), nd.deform(x.numpy(), diffeo=d, interp=interp), rtol=0, atol=1e-12)
    y.pow(2).sum().backward()
    assert dt.coef.grad.shape == d.coef.shape and dt.coef.grad.abs().max() > 0
    # at T = 0 the derivative is not zero (the shortcut to the identity is skipped when the coefficients need grad).
    # There every source point is a pixel; d/dD_y of the pull-back is -(x[y+1] - x[y]) for bilinear (the slope on the
    # side where floor() puts the corner), the symmetric Gaussian gives its own smooth slope: gradcheck in that case
    zero = dataclasses.replace(d, coef=torch.zeros(d.coef.shape, dtype=torch.float64, requires_grad=True))
    nd.deform(x, diffeo=zero, interp=interp).sum().backward()
    sy, sx = (torch.tensor(t) for t in d.sine_tables())
    # basis[m] = sin(iπy/(H-1)) sin(jπx/(W-1)), shape (M, H, W)
    basis = sy[torch.tensor(d.mi)][:, :, None] * sx[torch.tensor(d.mj)][:, None, :]
    if interp == "linear":
        slope_y = torch.cat([x[..., 1:, :] - x[..., :-1, :], torch.zeros_like(x[..., :1, :])], -2).sum(1)
        slope_x = torch.cat([x[..., 1:] - x[..., :-1], torch.zeros_like(x[..., :1])], -1).sum(1)
        expected = -torch.stack([torch.einsum("byx,myx->bm", s, basis) for s in (slope_y, slope_x)], 1)
        torch.testing.assert_close(zero.coef.grad, expected, rtol=0, atol=1e-12)
    else:
        assert zero.coef.grad.abs().max() > 0
        assert torch.autograd.gradcheck(
            lambda c: nd.deform(x, diffeo=dataclasses.replace(zero, coef=c), interp=interp), (zero.coef,))
    with pytest.raises(ValueError, match=r"^diffeo\.coef requires grad but x is a numpy array"):
        nd.deform(x.numpy(), diffeo=dt)
    # fields() of a torch diffeo is the differentiable torch synthesis, equal to the numba one
    np.testing.assert_allclose(dt.fields().detach().numpy(), f, rtol=0, atol=1e-12)
    assert dt.min_jacobian_det().shape == (2,)


def test_sine_diffeo_validates_its_coefficients():
    d = nd.sample_diffeos(2, 8, 8, 0.01, 3, seed=0)
    with pytest.raises(ValueError, match=r"^coef must have shape \(batch, 2, 6\)"):
        dataclasses.replace(d, coef=np.zeros((2, 2, 5)))
    bad = d.coef.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^diffeo\.coef contains non-finite"):
        nd.deform(np.zeros((2, 8, 8)), diffeo=dataclasses.replace(d, coef=bad))
    with pytest.raises(ValueError, match=r"^dtype must be a floating-point torch dtype"):
        d.to_torch(dtype=torch.int64)


def test_approximate_inverse_undoes_the_deformation_to_first_order():
    # y = x(p - D(p)), z = y(p + D(p)) = x(p - r(p)) with r = D(p + D) - D(p) = O(|D| |∇D|): relative to the forward
    # change ~|D|, the residual is O(|∇D|) ∝ sqrt(T). Measured on a smooth image (n = 65): mean ratio 0.13 at
    # T_max/16 and 0.26 at T_max/4 (sqrt(4) = 2 times more); with +D instead of -D the ratio would be ~2.
    n = 65
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    img = np.sin(np.pi * yy / (n - 1) * 0.8 + 0.3) * np.cos(np.pi * xx / (n - 1) * 0.6)
    x = np.repeat(img[None, None], 100, 0)
    t_max = nd.temperature_range(n, 3)[1]
    ratios = []
    for T in (t_max / 16, t_max / 4):
        d = nd.sample_diffeos(100, n, n, T, 3, seed=1)
        inv = d.approximate_inverse()
        assert np.array_equal(inv.coef, -d.coef)
        y = nd.deform(x, diffeo=d)
        z = nd.deform(y, diffeo=inv)
        ratios.append(np.mean(np.linalg.norm((z - x).reshape(100, -1), axis=1)
                              / np.linalg.norm((y - x).reshape(100, -1), axis=1)))
    assert ratios[0] < 0.2 and 1.6 < ratios[1] / ratios[0] < 2.4


# --------------------------------------------------------------------------------------------- issue 12: per sample
def test_per_sample_temperature_and_cutoff():
    # sample b has its own (T_b, c_b): its coefficient of mode (i, j) is N sqrt(T_b) z / k_ij where (i, j) is kept
    # at c_b, exactly 0 beyond. Monte Carlo of the variance: chi²_K/K has s.d. sqrt(2/K), 5 s.d. (many modes).
    K, n = 3000, 16
    c = np.tile([2.0, 4.0, 3.0], K)
    T = np.tile([0.01, 0.002, 0.005], K)
    d = nd.sample_diffeos(3 * K, n, n, T, c, seed=7)
    assert np.array_equal(d.c, c) and np.array_equal(d.T, T)
    for which, (cb, Tb) in enumerate([(2, 0.01), (4, 0.002), (3, 0.005)]):
        kept = set(td.kept_modes(cb, "code"))
        coef = d.coef[which::3]
        for m, (i, j) in enumerate(zip(d.mi + 1, d.mj + 1)):
            if (i, j) in kept:
                var = (coef[:, :, m] ** 2).mean() / (n**2 * Tb / (i * i + j * j))
                assert abs(var - 1) < 5 * math.sqrt(2 / (2 * K))
            else:
                assert not coef[:, :, m].any()
    # scalars and arrays agree: a constant array gives the same numbers as the scalar
    a = nd.sample_diffeos(4, n, n, np.full(4, 0.01), np.full(4, 3), seed=2)
    b = nd.sample_diffeos(4, n, n, 0.01, 3, seed=2)
    assert np.array_equal(a.coef, b.coef)
    # deform takes the arrays too (one value per field)
    x = np.random.default_rng(0).standard_normal((3, 2, n, n))
    expected = nd.deform(x, diffeo=nd.sample_diffeos(3, n, n, T[:3], c[:3], seed=1))
    assert np.array_equal(nd.deform(x, T[:3], c[:3], seed=1), expected)
    for kwargs, match in [(dict(T=np.zeros(2)), r"^T must be a scalar or have shape \(batch,\) = \(3,\)"),
                          (dict(c=np.array([3, 0.5, 2])), r"^c must be >= 1\.0 for every sample"),
                          (dict(T=np.array([0.1, np.nan, 0.1])), r"^T must be finite"),
                          (dict(c=np.array(["a", "b", "c"])), r"^c must be a real number or a real array")]:
        args = dict(T=0.01, c=3)
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            nd.sample_diffeos(3, n, n, args["T"], args["c"])
    t_max = nd.temperature_range(32, 3, method="paper")[1]
    folds = nd.sample_diffeos(60, 32, 32, np.full(60, t_max), np.tile([3.0, 4.0], 30), seed=1, resample_folds=True)
    assert not folds.folds().any()


# --------------------------------------------------------------------------------------------- issue 12: c = 1
def test_single_mode_temperature_range():
    from scipy import stats

    # closed forms: S_odd(1) = 1/2 (mode (1, 1)) so T_min = 1/(8 n² S_odd) = 1/(4n²); N(1) = 1 so T_max = 2/π²
    for n in (8, 32, 100):
        lo, hi = nd.single_mode_temperature_range(n)
        assert math.isclose(lo, 1 / (4 * n**2), rel_tol=1e-12) and math.isclose(hi, 2 / math.pi**2, rel_tol=1e-12)
    n, K = 32, 4000
    lo, hi = nd.single_mode_temperature_range(n)
    # Monte Carlo: rms centre displacement 1/2 pixel at T_min (4 s.e.)
    centre = nd.sample_diffeos(K, n + 1, n + 1, 1 / (4 * (n + 1) ** 2), 1, seed=0).fields()[:, :, n // 2, n // 2]
    sq = (centre**2).sum(1)
    assert abs(sq.mean() - 0.25) < 4 * sq.std() / math.sqrt(K)
    # at T_max a field folds iff max(|A|, |B|) >= (n-1)/π with A, B ~ N(0, n²T/2): P = 1 - (2Φ((n-1)/n) - 1)²
    # (0.555 at n = 32; measured 0.564 with the Jacobian check of the sampler); binomial s.e. 0.008, 4 s.e.
    p = nd.sample_diffeos(K, n, n, hi, 1, seed=1).folds().mean()
    exact = 1 - (2 * stats.norm.cdf((n - 1) / n) - 1) ** 2
    assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / K)
    # no mode, no window: the paper rule at c = 1, or an image too elongated for (1, 1)
    with pytest.raises(ValueError, match=r"^c=1 with cutoff='paper' keeps no mode"):
        nd.single_mode_temperature_range(32, cutoff="paper")
    with pytest.raises(ValueError, match=r"^c=1 with cutoff='code' keeps no mode for n=\(8, 32\)"):
        nd.single_mode_temperature_range((8, 32))
    # the ln-c windows still refuse c = 1 (the reference divides by ln 1 = 0)
    with pytest.raises(ValueError, match=r"^c must be > 1"):
        nd.temperature_range(32, 1, method="exact")


def test_paper_window_is_the_reference_formula():
    # reference temperature_range(n, cut): T1 = 1/(π n² ln c), T2 = 4/(π³ c² ln c), typed in from its source
    for n in (28, 32, 64):
        for c in range(2, int(2 * n / math.pi) + 1):
            if c >= 2 * n / math.pi:
                continue
            lo, hi = nd.temperature_range(n, c, method="paper")
            assert math.isclose(lo, 1 / (math.pi * n**2 * math.log(c)), rel_tol=1e-12)
            assert math.isclose(hi, 4 / (math.pi**3 * c**2 * math.log(c)), rel_tol=1e-12)


def test_temperature_range_underflow_is_refused():
    """Issue 15: temperature_range(10**200, 3) returned T_min = 0."""
    from numerics.diffeo import temperature_range

    with pytest.raises(ValueError, match="not representable"):
        temperature_range(10**200, 3)
