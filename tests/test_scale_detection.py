"""Scale detection: exact theory vs brute force and Monte Carlo; asymptotics; data; bad input.

Tolerances:
* theory vs brute-force enumeration (both float64 sums of O(10^4) terms): 1e-9 absolute on the
  numerators (values O(1)), 1e-9 relative on the denominators;
* theory vs Monte Carlo: |theory - mean| < 4 standard errors (delta-method s.e. of the ratio of
  means, 20k samples); the simulator is seeded, so each drawn case is deterministic;
* Gaussian moments vs mpmath at 30 digits: 1e-12;
* asymptotic laws vs the exact n -> infinity expressions: relative error < c/k with c read off
  the next-order term (measured c ~ 0.7 for D, ~ 0.2 for G_next), tested with c = 2.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.scale_detection import (brute_force_layers, diffeo_moves, make_dataset, matched_noise,
                                      simulate_layers)
from theory.scale_detection import (asymptotic_laws, check_params, diffeo_input_norm, exact_layers, noise_sigma,
                                    pooling_limit_expressions)
from theory.scale_gauss import arccos_kernel, relu_product_moment, relu_product_moment_mp

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
    import sympy as sp
    from theory.scale_detection import evaluate_sums, pooling_D_expression
    e = pooling_D_expression()
    v = sp.nsimplify(evaluate_sums(e["D"].subs({e["k"]: k, e["n"]: n})))
    assert v.is_Rational
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
        assert abs(D / float(law["D"].subs(k, kk)) - 1) < 2 / kk
        assert abs(G / float(law["G_next"].subs(k, kk)) - 1) < 2 / kk
    # R_k = D_k/G_k from the exact limits approaches the leading law with the order of G's next term:
    # relative error ~ k^(-dim/2), so quadrupling k divides it by 4^(dim/2) (to 15%; measured 0.54 and 0.254)
    err = [float(lim["D"](kk)) / float(lim["G"](kk)) / float(law["R"].subs(k, kk)) - 1 for kk in (100, 400)]
    assert err[1] / err[0] == pytest.approx(4.0 ** (-dim / 2), rel=0.15)
    # the exponents of the paper's notes
    assert sp_exponent(law["D"], k) == -1
    assert sp_exponent(law["G"], k) == pytest.approx(dim / 2)
    assert sp_exponent(law["R"], k) == pytest.approx(-1 - dim / 2)


def sp_exponent(expr, k):
    import sympy as sp
    return float(sp.limit(sp.diff(sp.log(expr), k) * k, k, sp.oo))


def test_finite_n_approaches_limit():
    """Exact finite-n D_k, G_k -> the n -> infinity expressions, with O(1/n) corrections."""
    lim = pooling_limit_expressions(1)
    errs = []
    for n in (100, 200, 400):
        rows = exact_layers(9, n, layers=5)
        errs.append(max(abs(rows[k - 1]["D"] / float(lim["D"](k)) - 1) + abs(rows[k - 1]["G"] / float(lim["G"](k)) - 1)
                        for k in (2, 4)))
    assert errs[1] < 0.6 * errs[0] and errs[2] < 0.6 * errs[1]


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
    with pytest.raises(ValueError, match=name):
        asymptotic_laws(**kw)


@pytest.mark.parametrize("kw, name", [(dict(n=3), "n"), (dict(n=2, periodic=True), "n"), (dict(n=8.0), "n"),
                                      (dict(n=8, dim=3), "dim")])
def test_diffeo_input_norm_bad_arguments(kw, name):
    with pytest.raises(ValueError, match=name):
        diffeo_input_norm(**kw)


# ---------------------------------------------------------------------------------------------
# Gaussian moments


@given(st.floats(-2, 3), st.floats(-2, 3), st.floats(-0.9, 0.9))
def test_relu_moments_against_mpmath(a, b, r):
    assert relu_product_moment(a, b, r) == pytest.approx(relu_product_moment_mp(a, b, r), abs=1e-12)


def test_arccos_kernel_is_zero_mean_limit():
    rho = np.linspace(-0.9, 0.9, 7)
    np.testing.assert_allclose(relu_product_moment(0 * rho, 0 * rho, rho), arccos_kernel(rho), atol=1e-14)


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
    eta = matched_noise(d.x, xt, seed=2)
    # definition: n_pix sigma^2 = <|tau x - x|^2> over the batch; the mean of eta^2 over N i.i.d. N(0, sigma^2)
    # values has relative s.e. sqrt(2/N): 5 s.e. tolerance (false-alarm rate < 1e-6)
    sig2 = np.mean(((xt - d.x) ** 2).sum(1)) / 20
    assert abs(np.mean(eta ** 2) / sig2 - 1) < 5 * math.sqrt(2 / eta.size)
    assert abs(np.mean(eta)) < 5 * math.sqrt(sig2 / eta.size)
    eta_s = matched_noise(d.x, xt, seed=3, sigma=0.7)                   # a given sigma overrides the matching
    assert abs(np.mean(eta_s ** 2) / 0.49 - 1) < 5 * math.sqrt(2 / eta_s.size)
    with pytest.raises(ValueError, match="sigma"):
        matched_noise(d.x, xt, sigma=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        matched_noise(d.x, xt, sigma=float("nan"))
    with pytest.raises(ValueError, match="same shape"):
        matched_noise(d.x, xt[:, :-1])
    eta2 = matched_noise(d.x, xt, per_sample=True, seed=2)
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
    with pytest.raises(ValueError, match=name):
        exact_layers(**kwargs)
    with pytest.raises(ValueError, match=name):
        check_params(**kwargs)


@pytest.mark.parametrize("kwargs,name", [
    (dict(n=3, xi=3), "n"), (dict(n=10, xi=-1), "xi"), (dict(n=10, xi=3, gap=-1), "gap"),
    (dict(n=10, xi=3, metric="l1"), "metric"), (dict(n=10, xi=3, n_pairs=0), "n_pairs"),
    (dict(n=10, xi=3, gap=100), "gap"), (dict(n=10, xi=3, dim=0), "dim"), (dict(n=10, xi=3, metric="block"), "xi"),
    (dict(n=10.5, xi=3), "n"),
])
def test_invalid_dataset(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_dataset(**kwargs)


def test_invalid_simulation():
    with pytest.raises(ValueError, match="samples"):
        simulate_layers(5, 10, layers=3, samples=1)
    with pytest.raises(ValueError, match="noise"):
        simulate_layers(5, 10, layers=3, samples=10, noise="white")


# ---------------------------------------------------------------------------------------------
# CLIs


def test_clis():
    out = subprocess.run([sys.executable, "-m", "theory.scale_detection", "--xi", "5", "--n", "12", "--layers", "4",
                          "--json"], capture_output=True, text=True, check=True).stdout
    th = json.loads(out)["layers"]
    assert [r["k"] for r in th] == [1, 2, 3, 4, 5]
    out = subprocess.run([sys.executable, "-m", "numerics.scale_detection", "--xi", "5", "--n", "12", "--layers", "4",
                          "--samples", "2000", "--seed", "0", "--json"], capture_output=True, text=True,
                         check=True).stdout
    sim = json.loads(out)["layers"]
    assert {"D", "G", "R", "D_se", "G_se", "R_se"} <= set(sim[0])
    bad = subprocess.run([sys.executable, "-m", "theory.scale_detection", "--xi", "4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "xi" in bad.stderr


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
                                  dict(xi=3, n=9, dim=2, stride=3, layers=2), dict(xi=8, n=32, dim=1, stride=2, layers=5),
                                  dict(xi=9, n=27, dim=1, stride=3, layers=3), dict(xi=4, n=16, dim=2, stride=2, layers=4)])
def test_exact_at_every_layer_and_output(case):
    """k~ = 1 (any stride) and strided k~ >= 2: G_k, R_k exact after the threshold layer and at the output too
    (4 s.e., 40k samples)."""
    th = exact_layers(**case)
    sim = simulate_layers(**case, samples=40000, seed=11)
    for a, b in zip(th, sim):
        for q in "DGR":
            assert a[q] is not None
            assert abs(a[q] - b[q]) <= 4 * b[q + "_se"], (q, a, b)
