"""Scale detection: exact theory vs brute force and Monte Carlo; asymptotics; data; bad input.

Tolerances:
* theory vs brute-force enumeration (both float64 sums of O(10^4) terms): 1e-9 absolute on the
  numerators (values O(1)), 1e-9 relative on the denominators;
* theory vs Monte Carlo: |theory - mean| < 4 standard errors (delta-method s.e. of the ratio of
  means, 20k samples); the simulator is seeded, so each drawn case is deterministic;
* Gaussian moments vs mpmath at 30 digits: 1e-12;
* asymptotic laws vs the exact n -> infinity expressions: relative error < c/k with c read off
  the next-order term (measured |c| = 0.56 (1D), 0.69 (2D) for D at k = 100 and 400; 0.085-0.19 for G_next),
  tested with c = 1 for D and c = 0.5 for G_next.
"""
from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from collections import Counter
from itertools import combinations, product

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.scale_detection import (brute_force_layers, diffeo_moves, make_dataset, pixel_noise, sample_moves,
                                      simulate_layers)
from theory.scale_detection import (asymptotic_laws, check_params, diffeo_input_norm, evaluate_sums, exact_layers,
                                    noise_sigma, pooling_D_expression, pooling_limit_expressions, threshold_layer,
                                    trinomial_kernel)
from theory.scale_gauss import relu_correlation_moment, relu_product_moment, relu_product_moment_mp

# ---------------------------------------------------------------------------------------------
# exact theory vs brute-force enumeration (all pairs, all moves, dense forward passes)

CASES = [
    dict(xi=5, n=9, dim=1, layers=5),
    dict(xi=3, n=5, dim=1, layers=3),
    dict(xi=3, n=8, dim=1, layers=4, periodic=True),
    dict(xi=5, n=7, dim=2, layers=4),
    dict(xi=3, n=6, dim=2, layers=3, periodic=True),
    dict(xi=4, n=16, dim=1, stride=2, layers=3),
    dict(xi=3, n=18, dim=1, stride=3, layers=3),
    dict(xi=2, n=8, dim=2, stride=2, layers=3),
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_exact_matches_brute_force(case):
    th = exact_layers(**case, with_numerators=True)
    bf = brute_force_layers(**case)
    num = np.array([r["D_num"] for r in th])
    den = np.array([r["den"] for r in th])
    np.testing.assert_allclose(num, bf["D_num"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(den, bf["den"], rtol=1e-9)
    geom = dict(dim=case["dim"], periodic=case.get("periodic", False) or case.get("stride", 1) > 1)
    assert diffeo_input_norm(case["n"], **geom) == pytest.approx(bf["input_norm"], abs=1e-12)


# ---------------------------------------------------------------------------------------------
# exact theory vs Monte Carlo, hypothesis-drawn geometries


@st.composite
def geometries(draw):
    dim = draw(st.sampled_from([1, 2]))
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    if stride == 1:
        periodic = draw(st.booleans())
        xi = draw(st.sampled_from([3, 5] if dim == 2 else [3, 5, 7]))
        kt = (xi - 1) // 2
        if periodic:
            n = draw(st.integers(2 * xi, 2 * xi + (4 if dim == 2 else 10)))
        else:
            n = draw(st.integers(5, 10 if dim == 2 else 24))
        layers = kt + draw(st.integers(1, 3))
        return dict(xi=xi, n=n, dim=dim, stride=1, layers=layers, periodic=periodic)
    kt = draw(st.integers(1, (3 if dim == 1 else 2) if stride == 2 else (2 if dim == 1 else 1)))
    xi = stride ** kt
    layers = kt + draw(st.integers(1, 2))
    block = stride ** (layers - 1)
    m_min = -(-2 * xi // block)
    n = block * draw(st.integers(m_min, m_min + (0 if dim == 2 else 2)))
    return dict(xi=xi, n=n, dim=dim, stride=stride, layers=layers, periodic=True)


@settings(max_examples=25)
@given(geometries(), st.integers(0, 2**16))
def test_theory_matches_simulation(g, seed):
    th = exact_layers(**g)
    sim = simulate_layers(**g, samples=20000, seed=seed)
    assert len(th) == len(sim) == g["layers"] + 1
    kt = (g["xi"] - 1) // 2 if g["stride"] == 1 else round(math.log(g["xi"], g["stride"]))
    if kt == 1 or g["stride"] > 1:   # exact at every layer (single Gaussian units / independent blocks)
        assert all(r["G"] is not None for r in th)
    for a, b in zip(th, sim):
        assert b["D_se"] > 0 or a["D"] == pytest.approx(b["D"], abs=1e-12)
        assert abs(a["D"] - b["D"]) <= 4 * b["D_se"] + 1e-12, (a, b)
        if a["G"] is None:
            assert a["k"] > kt
            assert math.isfinite(b["G"]) and b["G"] > 0
            continue
        assert abs(a["G"] - b["G"]) <= 4 * b["G_se"], (a, b)
        assert abs(a["R"] - b["R"]) <= 4 * b["R_se"], (a, b)


def test_pooling_stage_trends():
    """D_k falls and G_k grows through the pooling stage (the paper's observation)."""
    rows = exact_layers(15, 64, dim=1, layers=8)
    D = [r["D"] for r in rows[:7]]
    G = [r["G"] for r in rows[:7]]
    assert all(np.diff(D) < 0) and all(np.diff(G) > 0)


def test_include_diagonal_factor():
    a = exact_layers(5, 10, layers=3)
    b = exact_layers(5, 10, layers=3, include_diagonal=True)
    P = 8 * 7 // 2
    for r, s in zip(a, b):
        assert s["D"] == pytest.approx(r["D"] * P / (P - 1), rel=1e-12)


@pytest.mark.parametrize("k,n", [(1, 7), (2, 6), (2, 9), (3, 8)])
def test_sympy_expression_is_exact_rational(k, n):
    """The symbolic D_k (pooling stage, 1D) evaluates to a rational equal to the numeric theory."""
    e = pooling_D_expression()
    v = evaluate_sums(e["D"].subs({e["k"]: k, e["n"]: n}))
    assert v.is_Rational                                 # exact arithmetic throughout, no float crept in
    assert float(v) == pytest.approx(exact_layers(2 * k + 1, n, layers=k + 1)[k - 1]["D"], rel=1e-12)


# ---------------------------------------------------------------------------------------------
# asymptotics


@pytest.mark.parametrize("dim", [1, 2])
def test_asymptotic_laws_stride1(dim):
    lim = pooling_limit_expressions(dim)
    law = asymptotic_laws(dim)
    k = law["k"]
    for kk in (100, 400):
        D = float(lim["D"](kk))
        G = float(lim["G"](kk))
        assert abs(D / float(law["D"].subs(k, kk)) - 1) < 1 / kk
        assert abs(G / float(law["G_next"].subs(k, kk)) - 1) < 0.5 / kk
    # R_k = D_k/G_k from the exact limits approaches the leading law with the order of G's next term:
    # relative error ~ k^(-dim/2), so quadrupling k divides it by 4^(dim/2) (to 15%; measured 0.54 and 0.254)
    err = [float(lim["D"](kk)) / float(lim["G"](kk)) / float(law["R"].subs(k, kk)) - 1 for kk in (100, 400)]
    assert err[1] / err[0] == pytest.approx(4.0 ** (-dim / 2), rel=0.15)
    # the exponents of the paper's notes
    assert sp_exponent(law["D"], k) == -1
    assert sp_exponent(law["G"], k) == pytest.approx(dim / 2)
    assert sp_exponent(law["R"], k) == pytest.approx(-1 - dim / 2)


def sp_exponent(expr, k):
    return float(sp.limit(sp.diff(sp.log(expr), k) * k, k, sp.oo))


def test_finite_n_approaches_limit():
    """Exact finite-n D_k, G_k -> the n -> infinity expressions, with O(1/n) corrections.

    The corrections are smooth in 1/n (rational for D; for G also a Gaussian tail exp(-c n), < 1e-10 at n >= 100),
    so the three-point Richardson extrapolation (8 f(4n) - 6 f(2n) + f(n))/3 removes the 1/n and 1/n^2 terms: its
    relative deviation from the limit, measured 1.4e-5 .. 3.4e-5 (raw values at n = 400 are off by 1.3-2.1 %),
    is bounded by 2e-4 (6x the largest); a limit wrong by 0.02 % already fails."""
    lim = pooling_limit_expressions(1)
    errs = []
    rows = {n: exact_layers(9, n, layers=5) for n in (100, 200, 400)}
    for n in (100, 200, 400):
        errs.append(max(abs(rows[n][k - 1]["D"] / float(lim["D"](k)) - 1)
                        + abs(rows[n][k - 1]["G"] / float(lim["G"](k)) - 1) for k in (2, 4)))
    assert errs[1] < 0.6 * errs[0] and errs[2] < 0.6 * errs[1]
    for k in (2, 4):
        for q in "DG":
            f1, f2, f4 = (rows[n][k - 1][q] for n in (100, 200, 400))
            assert abs((8 * f4 - 6 * f2 + f1) / 3 / float(lim[q](k)) - 1) < 2e-4, (k, q)


def test_pooling_limit_D_2d():
    """2D: D_k on the n x n torus is a rational function of N = n^2 once n >= 13 (no pair's kernels wrap around
    at k <= 2), smooth in h = 1/(N - 1); the cubic in h through n = 13..16, evaluated at h = 0, deviates from the
    limit by 3.1e-6 (k = 1) and 7.3e-5 (k = 2) relative (raw values at n = 16: 3.9 % and 8.0 %); bound 5e-4
    (7x the larger)."""
    lim = pooling_limit_expressions(2)
    ns = (13, 14, 15, 16)
    rows = [exact_layers(5, n, dim=2, layers=3, periodic=True) for n in ns]
    h = 1.0 / (np.array(ns) ** 2 - 1.0)
    for k in (1, 2):
        c = np.polyfit(h, [r[k - 1]["D"] for r in rows], 3)
        assert abs(c[-1] / float(lim["D"](k)) - 1) < 5e-4, k


def _pool_torus(v, dim):
    for ax in range(1, dim + 1):
        v = (np.roll(v, 1, ax) + v + np.roll(v, -1, ax)) / 3
    return v


@pytest.mark.parametrize("dim, side, samples", [(1, 128, 20000), (2, 32, 4000)])
def test_pooling_limit_G_noise_only_monte_carlo(dim, side, samples):
    """n -> infinity, the noise numerator is carried by the signal-free units: G_k = V E[v_0^2] / (4 K_2k(0)) with
    v = A^(k-1) ReLU(A xi), xi i.i.d. N(0, 1), A the constant 3^dim filter (ReLU is homogeneous, so sigma^2 = V/N
    cancels against the N units), 4 K_2k(0) the limiting denominator, K_2k(0) = kappa_2k(0)^dim.  Sampled on a
    torus much larger than the pooled window (so E v_0^2 is the infinite-lattice value); one estimate per noise
    field, s.e. from their spread (relative s.e. 2.2e-3 .. 3.7e-3, measured |z| <= 0.82); 4 s.e.  For scale: taking
    the layer-1 correlation as rho^2 instead of rho moves G_2, G_3 by 12-19 %."""
    lim = pooling_limit_expressions(dim)
    V = 4 * (1 - 3.0 ** -dim)
    rng = np.random.default_rng(0)
    v = np.maximum(_pool_torus(rng.standard_normal((samples,) + (side,) * dim), dim), 0.0)
    for k in range(1, 5):
        if k > 1:
            v = _pool_torus(v, dim)
        T = np.ones(1)
        for _ in range(2 * k):
            T = np.convolve(T, np.ones(3))
        g = V * (v ** 2).reshape(samples, -1).mean(1) / (4 * (T[2 * k] / 9.0 ** k) ** dim)
        assert abs(g.mean() - float(lim["G"](k))) < 4 * g.std(ddof=1) / math.sqrt(samples), k


@pytest.mark.parametrize("call, pattern", [
    (lambda: pooling_limit_expressions(1, 2), r"^stride must be 1"),
    (lambda: pooling_limit_expressions(1, 1.0), r"^stride must be an integer"),
    (lambda: pooling_limit_expressions(3), r"^dim must"),
    (lambda: pooling_limit_expressions(1)["D"](0), r"^k must be >= 1"),
    (lambda: pooling_limit_expressions(2)["G"](1.5), r"^k must be an integer"),
])
def test_pooling_limit_expressions_bad_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("dim", [1, 2])
def test_asymptotic_laws_strided(dim):
    """The strided n -> infinity laws (D_limit exact at every k, G_next) against the exact finite-n values: the
    relative deviations are finite-n corrections, of order (s^k/n)^dim for D (measured 1.1-1.3 (s^k/n)^dim; bound
    2 (s^k/n)^dim) and of order n^-dim for G, independent of k (measured 6.5/n in 1D, 12.7/n^2 in 2D; bound
    2 (4/n)^dim), so both fall by 2^dim when n doubles (measured ratios 2.0 in 1D and 4.0-4.2 in 2D).  The
    leading law (2/3) dim s^-k is D_limit to first order in s^-k, exact in 1D."""
    law = asymptotic_laws(dim, stride=2)
    k = law["k"]
    ns = (512, 1024) if dim == 1 else (16, 32)
    xi, layers, ks = (16, 5, (1, 2, 3)) if dim == 1 else (4, 3, (1, 2))
    errs = []
    for n in ns:
        rows = exact_layers(xi, n, dim=dim, stride=2, layers=layers)
        e = []
        for kk in ks:
            r = rows[kk - 1]
            eD = abs(r["D"] / float(law["D_limit"].subs(k, kk)) - 1)
            eG = abs(r["G"] / float(law["G_next"].subs(k, kk)) - 1)
            assert eD < 2 * (2 ** kk / n) ** dim and eG < 2 * (4 / n) ** dim
            e += [eD, eG]
        errs.append(np.array(e))
    ratio = errs[1] / errs[0]
    assert np.all((ratio > 0.6 * 2.0 ** -dim) & (ratio < 1.4 * 2.0 ** -dim))
    # leading term of D_limit; the 2D overlap term is -(4/9) s^-2k
    for kk in ks:
        lead = float(law["D"].subs(k, kk))
        assert float(law["D_limit"].subs(k, kk)) == pytest.approx(lead - (dim - 1) * (4 / 9) * 4.0 ** -kk, rel=1e-12)


@pytest.mark.parametrize("kw, name", [(dict(dim=3), "dim"), (dict(dim=True), "dim"), (dict(dim=1, stride=0), "stride"),
                                      (dict(dim=2, stride=1.5), "stride")])
def test_asymptotic_laws_bad_arguments(kw, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        asymptotic_laws(**kw)


@pytest.mark.parametrize("kw, name", [(dict(n=3), "n"), (dict(n=2, periodic=True), "n"), (dict(n=8.0), "n"),
                                      (dict(n=8, dim=3), "dim")])
def test_diffeo_input_norm_bad_arguments(kw, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        diffeo_input_norm(**kw)


# ---------------------------------------------------------------------------------------------
# Gaussian moments


@given(st.floats(-2, 3), st.floats(-2, 3), st.floats(-0.9, 0.9))
def test_relu_moments_against_mpmath(a, b, r):
    assert relu_product_moment(a, b, r) == pytest.approx(relu_product_moment_mp(a, b, r), abs=1e-12)


def test_arccos_kernel_is_zero_mean_limit():
    rho = np.linspace(-0.9, 0.9, 7)
    np.testing.assert_allclose(relu_product_moment(0 * rho, 0 * rho, rho), relu_correlation_moment(rho), atol=1e-14)


def test_relu_correlation_moment_is_the_symbolic_degree_1_arccos_kernel():
    """A second derivation: theory.spherical integrates k_1(phi) symbolically; at cos(phi) = rho it must be the
    closed form used by the scale-detection theory."""
    import sympy as sp
    from theory import spherical as ths

    k1 = sp.lambdify(ths.phi, ths.arccos_kernel(1), "numpy")
    rho = np.linspace(-1.0, 1.0, 11)
    np.testing.assert_allclose(relu_correlation_moment(rho), k1(np.arccos(rho)), atol=1e-14)


# ---------------------------------------------------------------------------------------------
# data and perturbations


def test_dataset_labels_and_gap():
    d = make_dataset(16, 5, metric="euclidean")
    assert len(d) == 14 * 13 // 2
    assert np.all((d.y == 1) == (d.delta < 5))
    assert d.x.shape == (len(d), 16) and np.all(d.x.sum(1) == 2)
    g = make_dataset(16, 5, gap=2.0)
    assert np.all((g.delta < 4) | (g.delta >= 6))
    b = make_dataset(16, 5, balance=True, seed=0)
    assert (b.y == 1).sum() == (b.y == -1).sum()
    p = make_dataset(12, 3, dim=2, metric="periodic_linf", n_pairs=50, seed=1)
    assert p.positions.shape == (50, 2, 2) and p.x.shape == (50, 12, 12)
    blk = make_dataset(16, 4, metric="block")
    assert np.all((blk.y == 1) == (blk.positions[:, 0] // 4 == blk.positions[:, 1] // 4))


def test_moves_and_noise():
    d = make_dataset(20, 5, seed=0)
    xt = diffeo_moves(d, seed=1)
    assert np.all(xt.sum(1) == 2)
    # every active pixel of tau x lies within one step of an active pixel of x
    dil = d.x + np.roll(d.x, 1, axis=1) + np.roll(d.x, -1, axis=1)
    assert np.all(dil[xt > 0] > 0)
    # moves are -1/0/+1 with probability 1/3 each (binomial s.e. sqrt(2/9/N); 5 s.e. tolerance)
    from numerics.scale_detection import sample_moves
    mv = sample_moves(30000, 2, 0)
    freq = np.array([(mv == v).mean() for v in (-1, 0, 1)])
    assert np.all(np.abs(freq - 1 / 3) < 5 * np.sqrt(2 / 9 / mv.size))
    eta = pixel_noise(d.x, xt, seed=2)
    # definition: n_pix sigma^2 = <|tau x - x|^2> over the batch; the mean of eta^2 over N i.i.d. N(0, sigma^2)
    # values has relative s.e. sqrt(2/N): 5 s.e. tolerance (false-alarm rate < 1e-6)
    sig2 = np.mean(((xt - d.x) ** 2).sum(1)) / 20
    assert abs(np.mean(eta ** 2) / sig2 - 1) < 5 * math.sqrt(2 / eta.size)
    assert abs(np.mean(eta)) < 5 * math.sqrt(sig2 / eta.size)
    eta_s = pixel_noise(d.x, xt, seed=3, sigma=0.7)                   # a given sigma overrides the matching
    assert abs(np.mean(eta_s ** 2) / 0.49 - 1) < 5 * math.sqrt(2 / eta_s.size)
    with pytest.raises(ValueError, match=r"^sigma must"):
        pixel_noise(d.x, xt, sigma=-1.0)
    with pytest.raises(ValueError, match=r"^sigma must"):
        pixel_noise(d.x, xt, sigma=float("nan"))
    with pytest.raises(ValueError, match=r"^x and x_diffeo must have the same shape"):
        pixel_noise(d.x, xt[:, :-1])
    eta2 = pixel_noise(d.x, xt, per_sample=True, seed=2)
    np.testing.assert_allclose((eta2 ** 2).sum(1), ((xt - d.x) ** 2).sum(1), atol=1e-9)
    # exact sigma: E|eta|^2 = E|tau x - x|^2 over the dataset and moves
    s = noise_sigma(5, 20)
    assert 20 * s ** 2 == pytest.approx(diffeo_input_norm(20), rel=1e-12)
    # dense-input moves clamp to the frame, and wrap when periodic
    x = np.zeros((3, 5))
    x[:, 0] = 1
    assert np.all(diffeo_moves(x, seed=0).sum(1) == 1)
    assert np.all(diffeo_moves(x, seed=0, periodic=True)[:, [0, 1, 4]].sum(1) == 1)


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("kwargs,name", [
    (dict(xi=4, n=20), "xi"), (dict(xi=1, n=20), "xi"), (dict(xi=7, n=3), "n"), (dict(xi=7, n=10, periodic=True), "n"),
    (dict(xi=7, n=20, layers=3), "layers"), (dict(xi=7, n=20, dim=3), "dim"), (dict(xi=6, n=24, stride=2), "xi"),
    (dict(xi=4, n=20, stride=2, layers=4), "n"), (dict(xi=7, n=20, stride=0), "stride"), (dict(xi=7.0, n=20), "xi"),
])
def test_invalid_parameters(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        exact_layers(**kwargs)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        check_params(**kwargs)


@pytest.mark.parametrize("kwargs,name", [
    (dict(n=3, xi=3), "n"), (dict(n=10, xi=-1), "xi"), (dict(n=10, xi=3, gap=-1), "gap"),
    (dict(n=10, xi=3, metric="l1"), "metric"), (dict(n=10, xi=3, n_pairs=0), "n_pairs"),
    (dict(n=10, xi=3, gap=100), "gap"), (dict(n=10, xi=3, dim=0), "dim"), (dict(n=10, xi=3, metric="block"), "xi"),
    (dict(n=10.5, xi=3), "n"),
])
def test_invalid_dataset(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        make_dataset(**kwargs)


def test_standard_errors_match_the_spread_of_replicates():
    """The delta-method s.e. that every Monte-Carlo tolerance here is built on, against the actual spread of 60
    independent replicates (500 samples each): sd/mean(s.e.) measured 0.87-1.07 over all layers and D, G, R (and
    0.84-1.10 in other geometries, 0.88-1.04 with 200 replicates); the spread of 60 replicates has relative s.e.
    ~9 %, so [0.7, 1.4] (>= 3.3 of those s.e. from 1) still catches an s.e. off by a factor sqrt(2)."""
    runs = [simulate_layers(3, 7, layers=3, samples=500, seed=s) for s in range(60)]
    for q in "DGR":
        est = np.array([[r[q] for r in run] for run in runs])
        se = np.array([[r[q + "_se"] for r in run] for run in runs])
        ratio = est.std(0, ddof=1) / se.mean(0)
        assert np.all((ratio > 0.7) & (ratio < 1.4)), (q, ratio)


def test_invalid_simulation():
    with pytest.raises(ValueError, match=r"^samples must"):
        simulate_layers(5, 10, layers=3, samples=1)
    with pytest.raises(ValueError, match=r"^noise must"):
        simulate_layers(5, 10, layers=3, samples=10, noise="white")
    for seed in (-1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match=r"^seed must be None, an integer >= 0"):
            simulate_layers(5, 10, layers=3, samples=10, seed=seed)


# ---------------------------------------------------------------------------------------------
# CLIs


def test_clis():
    out = subprocess.run([sys.executable, "-m", "theory.scale_detection", "--xi", "5", "--n", "12", "--layers", "4",
                          "--json"], capture_output=True, text=True, check=True).stdout
    th = json.loads(out)["layers"]
    assert [r["k"] for r in th] == [1, 2, 3, 4, 5]
    assert th == exact_layers(5, 12, layers=4)           # the flags reach the library (JSON floats round-trip)
    out = subprocess.run([sys.executable, "-m", "numerics.scale_detection", "--xi", "5", "--n", "12", "--layers", "4",
                          "--samples", "2000", "--seed", "0", "--json"], capture_output=True, text=True,
                         check=True).stdout
    sim = json.loads(out)["layers"]
    assert {"D", "G", "R", "D_se", "G_se", "R_se"} <= set(sim[0])
    bad = subprocess.run([sys.executable, "-m", "theory.scale_detection", "--xi", "4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "error: argument --xi: xi must be an odd integer" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("case", [dict(xi=7, n=20, dim=1, layers=5), dict(xi=5, n=12, dim=1, layers=4, periodic=True),
                                  dict(xi=5, n=9, dim=2, layers=4), dict(xi=5, n=10, dim=2, layers=3, periodic=True)])
def test_sparse_simulator_equals_dense_forward_passes(case):
    """The fast simulator (kernel inner products + one linearised noise pass) reproduces, sample by
    sample, four dense forward passes of the network (float64 rounding only)."""
    from numerics.scale_detection import sample_terms
    a, _ = sample_terms(**case, samples=200, seed=3)
    b, _ = sample_terms(**case, samples=200, seed=3, sparse=False)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", [dict(xi=3, n=9, dim=1, layers=4), dict(xi=3, n=7, dim=1, layers=3, periodic=True),
                                  dict(xi=3, n=6, dim=2, layers=3), dict(xi=2, n=16, dim=1, stride=2, layers=4),
                                  dict(xi=3, n=9, dim=2, stride=3, layers=2),
                                  dict(xi=8, n=32, dim=1, stride=2, layers=5),
                                  dict(xi=9, n=27, dim=1, stride=3, layers=3),
                                  dict(xi=4, n=16, dim=2, stride=2, layers=4)])
def test_exact_at_every_layer_and_output(case):
    """k~ = 1 (any stride) and strided k~ >= 2: G_k, R_k exact after the threshold layer and at the output too
    (4 s.e., 40k samples)."""
    th = exact_layers(**case)
    sim = simulate_layers(**case, samples=40000, seed=11)
    for a, b in zip(th, sim):
        for q in "DGR":
            assert a[q] is not None
            assert abs(a[q] - b[q]) <= 4 * b[q + "_se"], (q, a, b)


# ---------------------------------------------------------------------------------------------
# kernels, symbolic sums, parameters, sigma: each against an independent construction


def _trinomial_row(m):
    """Integer coefficients of (1 + x + 1/x)^m by repeated convolution (entry d + m is the one of x^d)."""
    T = np.ones(1, dtype=np.int64)
    for _ in range(m):
        T = np.convolve(T, np.ones(3, dtype=np.int64))
    return T


@settings(max_examples=15)
@given(st.integers(0, 10), st.integers(-12, 12))
def test_trinomial_kernel_is_a_convolution_power(m, d):
    """kappa_m(d) (sympy sum of factorials) == [x^d] (1 + x + 1/x)^m / 3^m, exactly, by Sum.doit and by evaluate_sums
    (which `pooling_D_expression` relies on), including 0 for |d| > m."""
    want = sp.Rational(int(_trinomial_row(m)[d + m]) if abs(d) <= m else 0, 3 ** m)
    assert trinomial_kernel(m, d).doit() == want
    assert evaluate_sums(trinomial_kernel(m, d)) == want


@pytest.mark.parametrize("n, periodic", [(7, False), (7, True), (5, True)])
def test_axis_tables_are_kernel_powers(n, periodic):
    """`scale_exact.axis_tables`: kappa_m on [-R, R] == the trinomial row / 3^m (on the torus the sum over all d = t
    mod n), and the trivial axis is a delta.  1e-14 absolute: <= 8 float64 averaging steps of values <= 1."""
    from theory.scale_exact import axis_tables
    R, M = 12, 8
    kap, _, _ = axis_tables(n, periodic, M, R, trivial=False)
    for m in range(M + 1):
        T, d = _trinomial_row(m) / 3.0 ** m, np.arange(-m, m + 1)
        want = [T[(d - t) % n == 0].sum() if periodic else T[d == t].sum() for t in range(-R, R + 1)]
        np.testing.assert_allclose(kap[m], want, rtol=0, atol=1e-14)
    triv, _, _ = axis_tables(n, periodic, M, R, trivial=True)
    assert np.all(triv == (np.arange(-R, R + 1) == 0))


@settings(max_examples=15)
@given(st.integers(0, 6), st.integers(-6, 6), st.integers(0, 4), st.integers(-6, 6), st.integers(0, 4))
def test_axis_tables_box_sum_identity(m, a, la, c, lc):
    """The prefix-sum identity of `scale_exact` (module docstring, used for every box atom):
    sum_{s in [a,b], t in [c,d]} kappa_m(s - t) = F2(b-c) - F2(a-1-c) - F2(b-d-1) + F2(a-d-2), against the double
    sum itself; both are float64 sums of <= 25 terms <= 1: 1e-13."""
    from theory.scale_exact import axis_tables
    R = 24
    kap, _, F2 = axis_tables(9, False, m, R, trivial=False)
    b, d = a + la, c + lc
    brute = sum(kap[m, s - t + R] for s in range(a, b + 1) for t in range(c, d + 1))
    F = lambda t: F2[m, t + R]  # noqa: E731  (all arguments here are >= -R)
    assert F(b - c) - F(a - 1 - c) - F(b - d - 1) + F(a - d - 2) == pytest.approx(brute, abs=1e-13)


@settings(max_examples=15)
@given(st.integers(-3, 3), st.integers(0, 4), st.integers(0, 3), st.integers(0, 2), st.integers(-2, 2))
def test_evaluate_sums_equals_doit(lo, length, p, q, shift):
    """Nested finite sums with a symbolic outer limit, substituted: evaluate_sums == sympy's Sum.doit exactly (every
    sum here has upper >= lower - 1, where both conventions agree); a reversed sum is empty (0) by the documented
    convention, where doit's Karr convention would give minus the sum over the gap."""
    i, j, N = sp.symbols("i j N", integer=True)
    expr = sp.Sum(sp.Sum(i ** p * j ** q + sp.Rational(1, 3), (j, shift, shift + i ** 2)), (i, lo, N))
    e = expr.subs(N, lo + length - 1)
    assert evaluate_sums(e) == e.doit()
    assert evaluate_sums(sp.Sum(i, (i, 5, 2))) == 0 and sp.Sum(i, (i, 5, 2)).doit() == -7


def _enumerated_input_norm(n, dim, periodic):
    """(E_{x,tau}|tau x - x|^2, number of pairs) by listing every pair and every move as pixel multisets."""
    lo, hi = (0, n - 1) if periodic else (1, n - 2)
    sites = list(product(range(lo, hi + 1), repeat=dim))
    moves = list(product((-1, 0, 1), repeat=dim))
    total, pairs = 0, 0
    for p, q in combinations(sites, 2):
        pairs += 1
        for a in moves:
            for b in moves:
                diff = Counter(tuple((u + v) % n if periodic else u + v for u, v in zip(r, m))
                               for r, m in ((p, a), (q, b)))
                diff.subtract([p, q])
                total += sum(c * c for c in diff.values())
    return total / (pairs * len(moves) ** 2), pairs


@st.composite
def sigma_geometries(draw):
    dim = draw(st.sampled_from([1, 2]))
    mode = draw(st.sampled_from(["linf", "periodic_linf", "block"]))
    top = 7 if dim == 2 else 16
    if mode == "linf":
        return dict(xi=3, n=draw(st.integers(5, top)), dim=dim), mode
    if mode == "periodic_linf":
        return dict(xi=3, n=draw(st.integers(6, top)), dim=dim, periodic=True), mode
    return dict(xi=2, n=2 * draw(st.integers(2, top // 2)), dim=dim, stride=2), mode


@settings(max_examples=10)
@given(sigma_geometries())
def test_noise_sigma_and_pair_count_against_enumeration(gm):
    """n^dim sigma^2 == E_{x,tau}|tau x - x|^2 and ScaleNetSpec.n_pairs == the number of pairs, both by explicit
    enumeration (pixel multisets, no 4-point formula) and the pair count also as len(make_dataset).  The sums are of
    small integers, exact in float64; 1e-12 relative absorbs the final division and square root."""
    g, metric = gm
    norm, pairs = _enumerated_input_norm(g["n"], g["dim"], metric != "linf")
    assert g["n"] ** g["dim"] * noise_sigma(**g) ** 2 == pytest.approx(norm, rel=1e-12)
    assert check_params(**g).n_pairs == pairs == len(make_dataset(g["n"], g["xi"], dim=g["dim"], metric=metric))


@settings(max_examples=15)
@given(st.integers(1, 12), st.integers(2, 5))
def test_threshold_layer(k, s):
    assert threshold_layer(2 * k + 1) == k and threshold_layer(s ** k, s) == k
    with pytest.raises(ValueError, match=r"^xi must be a power stride\^k"):
        threshold_layer(s ** k + 1, s)                  # s^k < s^k + 1 < s^(k+1)
    with pytest.raises(ValueError, match=r"^xi must be an odd integer >= 3"):
        threshold_layer(2 * k + 2)


J = sp.Symbol("j", integer=True)


@pytest.mark.parametrize("call, pattern", [
    (lambda: trinomial_kernel(-1, 0), r"^m must be >= 0"),
    (lambda: trinomial_kernel(2.5, 0), r"^m must be an integer"),
    (lambda: trinomial_kernel(2, 0.5), r"^d must be an integer"),
    (lambda: evaluate_sums(sp.Sum(J, (J, 0, 2.5))), r"^expr must have integer summation limits"),
    (lambda: evaluate_sums(pooling_D_expression()["D"]), r"^expr must have integer summation limits"),
    (lambda: exact_layers(5, 12, periodic="no"), r"^periodic must be True or False"),
    (lambda: check_params(5, 12, periodic=1), r"^periodic must be True or False"),
    (lambda: exact_layers(5, 12, layers=3, include_diagonal=1), r"^include_diagonal must be True or False"),
    (lambda: check_params(5, 12, layers=0), r"^layers must be >= k~\+1 = 3"),
    (lambda: check_params(5, -5), r"^n must be >= 5"),
    (lambda: threshold_layer(-8, 2), r"^xi must be a power"),
    (lambda: sample_moves(-1, 1, 0), r"^P must be an integer >= 0"),
    (lambda: sample_moves(3, 3, 0), r"^dim must be 1 or 2"),
])
def test_more_bad_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("module, argv, flag", [
    ("theory", ["--n", "-5"], "--n"), ("theory", ["--n", "0"], "--n"),
    ("theory", ["--xi", "41", "--n", "32"], "--layers"),
    ("theory", ["--xi", "9", "--n", "12", "--layers", "5", "--periodic"], "--n"), ("theory", ["--xi", "4"], "--xi"),
    ("theory", ["--stride", "0"], "--stride"), ("theory", ["--layers", "0"], "--layers"),
    ("theory", ["--dim", "3"], "--dim"),
    ("theory", ["--xi", "nan"], "--xi"), ("theory", ["--n", "3.5"], "--n"),
    ("numerics", ["--samples", "0"], "--samples"), ("numerics", ["--seed", "-1"], "--seed"),
    ("numerics", ["--samples", "2.5"], "--samples"),
    ("numerics", ["--n", "10", "--xi", "4", "--stride", "2", "--layers", "3"], "--n"),
])
def test_cli_bad_arguments_exit_2_naming_the_flag(module, argv, flag, capsys):
    """Library ValueErrors are reported like argparse's own errors (exit 2, "error: argument --flag: ...")."""
    main = importlib.import_module(f"{module}.scale_detection").main
    try:
        rc = main(argv + ["--json"])
    except SystemExit as e:                              # argparse's own type errors
        rc = e.code
    out = capsys.readouterr()
    assert rc == 2 and out.out == "" and f"error: argument {flag}: " in out.err, out.err


def test_one_class_data_set_is_refused():
    """Issue 15: make_dataset(16, xi=100) returned a one-class data set silently; it now warns (OneClassWarning; an
    error would break the simulations of D, G, R, which need no labels and use one-class sets on purpose, and do so
    without the warning)."""
    import warnings

    from numerics.scale_detection import OneClassWarning, simulate_layers

    with pytest.warns(OneClassWarning, match="one class only"):
        make_dataset(16, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OneClassWarning)
        make_dataset(16, 5)                       # two classes: no warning
        simulate_layers(3, 5, layers=2, seed=0)   # a one-class set inside a simulation: no warning
