"""The authors' conventions as options (issue 18; docs/reference-conventions.md), each against an independent check.

Scale detection (`theory.scale_detection`, `numerics.scale_detection`):
* move laws: exact probabilities; the "direction" law against the authors' rounding of a random unit vector, the
  samplers against their laws (Monte Carlo, 5 binomial s.e. per cell: false alarm < 1e-5 per cell);
* D_k with always-+-1 / rounded-direction moves and the block-preserving diffeo: theory == brute-force enumeration
  with dense forward passes (both float64 sums of O(10^4) terms: 1e-9 absolute on the numerators);
* E|tau x - x|^2 (hence sigma) with every move law and the block rule: against pixel-multiset enumeration, 1e-12;
* rectified noise (x + ReLU(eta)) and the other laws: theory == the numba simulation within 4 s.e. (delta-method
  s.e. estimated from the 20k-40k samples themselves; the simulator is seeded, so each case is deterministic);
  where the theory has no closed form (stride 1 after the threshold with rectified noise) it returns None;
* data: the 2D pair counts of the authors' pixel set (256,164) and of ours (203,154) by explicit enumeration, the
  1D half-width gap against the authors' rule written out.
The one-call temperature sweep is tested in test_perturbations.py, the median convention in test_stability.py, the
kernel's weight law of krr_predict in test_spherical_verify.py.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from itertools import combinations, product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.scale_detection import (brute_force_layers, diffeo_moves, make_dataset, pixel_noise, sample_moves,
                                      sample_terms, simulate_layers)
from theory.scale_detection import (asymptotic_laws, diffeo_input_norm, exact_layers, move_law, noise_sigma,
                                    pooling_limit_expressions)
from numerics.testing import assert_mc_close

# ---------------------------------------------------------------------------------------------------------------
# move laws


def test_move_laws_exact():
    for dim in (1, 2):
        for moves in ("lazy", "always", "direction"):
            v, w = move_law(moves, dim)
            assert v.shape[1] == dim and len(set(map(tuple, v))) == len(v)
            p = w / w.sum()
            m2 = float(p @ (v ** 2).sum(1))
            want = {"lazy": 2 * dim / 3, "always": dim, "direction": 1.0 if dim == 1 else 4 / 3}[moves]
            assert m2 == pytest.approx(want, rel=1e-15)
            assert np.allclose(p @ v, 0)                   # unbiased moves
    assert not np.any(np.all(move_law("always", 2)[0] == 0, axis=1))


def test_direction_law_is_the_rounded_unit_vector():
    """The authors' 2D local translation: t ~ N(0, I_2), round(t / |t|) (``relativestability:data/__init__.py``),
    sampled here directly: every rounded vector is one of the law's 8 steps, with its probability (5 s.e.)."""
    rng = np.random.default_rng(0)
    t = rng.standard_normal((200_000, 2))
    r = np.rint(t / np.linalg.norm(t, axis=1, keepdims=True)).astype(int)
    v, w = move_law("direction", 2)
    freq = Counter(map(tuple, r))
    assert set(freq) == set(map(tuple, v))
    for vec, p in zip(map(tuple, v), w / w.sum()):
        f = freq[vec] / len(r)
        assert abs(f - p) < 5 * math.sqrt(p * (1 - p) / len(r)), (vec, f, p)


@pytest.mark.parametrize("moves", ["always", "direction"])
def test_samplers_follow_the_law(moves):
    N = 40_000
    mv = sample_moves(N, 2, 1, moves=moves).reshape(-1, 2)
    v, w = move_law(moves, 2)
    freq = Counter(map(tuple, mv))
    assert set(freq) <= set(map(tuple, v))
    for vec, p in zip(map(tuple, v), w / w.sum()):
        f = freq[vec] / len(mv)
        assert abs(f - p) < 5 * math.sqrt(p * (1 - p) / len(mv)), (vec, f, p)
    # the default stream is the one of every earlier release
    assert np.array_equal(sample_moves(50, 2, 3), np.random.default_rng(3).integers(-1, 2, size=(50, 2, 2)))


# ---------------------------------------------------------------------------------------------------------------
# D_k: theory against brute force


CASES = [
    dict(xi=5, n=9, dim=1, layers=5), dict(xi=3, n=8, dim=1, layers=4, periodic=True),
    dict(xi=5, n=7, dim=2, layers=4), dict(xi=3, n=6, dim=2, layers=3, periodic=True),
    dict(xi=4, n=16, dim=1, stride=2, layers=3), dict(xi=9, n=27, dim=1, stride=3, layers=3),
    dict(xi=2, n=8, dim=2, stride=2, layers=3),
]
CONV = [dict(moves="always"), dict(moves="direction"), dict(moves="always", preserve_blocks=True),
        dict(moves="lazy", preserve_blocks=True)]


PAIRS = [(c, v) for c in CASES for v in CONV if c.get("stride", 1) > 1 or not v.get("preserve_blocks")]


@pytest.mark.parametrize("case, conv", PAIRS, ids=[f"{c}-{v}" for c, v in PAIRS])
def test_exact_D_matches_brute_force(case, conv):
    """(The block-preserving diffeo exists for strided networks only: stride-1 cases run the move laws.)"""
    th = exact_layers(**case, **conv, with_numerators=True)
    bf = brute_force_layers(**case, **conv)
    np.testing.assert_allclose([r["D_num"] for r in th], bf["D_num"], rtol=0, atol=1e-9)
    np.testing.assert_allclose([r["den"] for r in th], bf["den"], rtol=1e-9)
    if conv.get("preserve_blocks"):   # every layer from k~ on sees only xi-blocks, which the diffeo keeps
        kt = round(math.log(case["xi"], case["stride"]))
        assert all(r["D"] == 0.0 for r in th[kt - 1:])


def test_always_moves_multiply_D_by_three_halves_at_large_k():
    """E|m|^2 = 1 against 2/3 (1D): D_k ratio -> 3/2 in the pooling stage (n -> oo limits and finite n)."""
    lazy, always = pooling_limit_expressions(1), pooling_limit_expressions(1, moves="always")
    for k in (50, 200):
        assert float(always["D"](k) / lazy["D"](k)) == pytest.approx(1.5, abs=1.0 / k)
    a = exact_layers(15, 64, layers=8, moves="always")
    b = exact_layers(15, 64, layers=8)
    assert [r["D"] / s["D"] for r, s in zip(a[:7], b[:7])] == pytest.approx([1.5] * 7, abs=0.02)


def _enumerated_input_norm(n, dim, periodic, moves, block=None):
    """E|tau x - x|^2 by listing every pair and every pair of moves as pixel multisets (no 4-point formula)."""
    lo, hi = (0, n - 1) if periodic else (1, n - 2)
    sites = list(product(range(lo, hi + 1), repeat=dim))
    vecs, wts = move_law(moves, dim)
    total, pairs = 0.0, 0

    def move(r, m):
        q = tuple((u + v) % n if periodic else u + v for u, v in zip(r, m))
        if block is not None and any(a // block != b // block for a, b in zip(q, r)):
            return r
        return q

    for p, q in combinations(sites, 2):
        pairs += 1
        for a, wa in zip(vecs, wts):
            for b, wb in zip(vecs, wts):
                diff = Counter([move(p, a), move(q, b)])
                diff.subtract([p, q])
                total += wa * wb * sum(c * c for c in diff.values())
    return total / (pairs * wts.sum() ** 2)


@pytest.mark.parametrize("n, dim, periodic", [(9, 1, False), (8, 1, True), (6, 2, False), (6, 2, True)])
@pytest.mark.parametrize("moves", ["lazy", "always", "direction"])
def test_input_norm_and_sigma_against_enumeration(n, dim, periodic, moves):
    want = _enumerated_input_norm(n, dim, periodic, moves)
    assert diffeo_input_norm(n, dim=dim, periodic=periodic, moves=moves) == pytest.approx(want, rel=1e-12)
    assert n ** dim * noise_sigma(3, n, dim=dim, periodic=periodic, moves=moves) ** 2 == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("n, xi, dim", [(8, 2, 1), (12, 4, 1), (8, 4, 2)])
@pytest.mark.parametrize("moves", ["lazy", "always"])
def test_block_preserving_sigma_against_enumeration(n, xi, dim, moves):
    want = _enumerated_input_norm(n, dim, True, moves, block=xi)
    got = n ** dim * noise_sigma(xi, n, dim=dim, stride=2, moves=moves, preserve_blocks=True) ** 2
    assert got == pytest.approx(want, rel=1e-12)
    assert exact_layers(xi, n, dim=dim, stride=2, layers=round(math.log2(xi)) + 1, moves=moves,
                        preserve_blocks=True, with_numerators=True)[0]["sigma"] == pytest.approx(
        math.sqrt(want / n ** dim), rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# rectified noise and the other laws: theory against simulation


@st.composite
def convention_cases(draw):
    dim = draw(st.sampled_from([1, 2]))
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    conv = dict(moves=draw(st.sampled_from(["lazy", "always", "direction"])),
                rectify=draw(st.sampled_from(["none", "noise", "noise"])))
    if stride == 1:
        periodic = draw(st.booleans())
        xi = draw(st.sampled_from([3, 5] if dim == 2 else [3, 5, 7]))
        kt = (xi - 1) // 2
        n = draw(st.integers(2 * xi, 2 * xi + 3)) if periodic else draw(st.integers(5, 9 if dim == 2 else 20))
        return dict(xi=xi, n=n, dim=dim, stride=1, layers=kt + draw(st.integers(1, 2)), periodic=periodic), conv
    kt = draw(st.integers(1, (3 if dim == 1 else 2) if stride == 2 else (2 if dim == 1 else 1)))
    xi = stride ** kt
    layers = kt + draw(st.integers(1, 2))
    block = stride ** (layers - 1)
    n = block * -(-2 * xi // block)
    conv["preserve_blocks"] = draw(st.booleans())
    return dict(xi=xi, n=n, dim=dim, stride=stride, layers=layers, periodic=True), conv


@settings(max_examples=20)
@given(convention_cases(), st.integers(0, 2 ** 16))
def test_theory_matches_simulation_under_every_convention(case, seed):
    g, conv = case
    th = exact_layers(**g, **conv)
    sim = simulate_layers(**g, **conv, samples=20000, seed=seed)
    kt = (g["xi"] - 1) // 2 if g["stride"] == 1 else round(math.log(g["xi"], g["stride"]))
    for a, b in zip(th, sim):
        assert_mc_close(a["D"], b["D_se"], b["D"], atol=1e-12, what="D")
        if a["G"] is None:      # no closed form: stride 1 after the threshold (k~ >= 2, or rectified noise)
            assert g["stride"] == 1 and a["k"] > kt + (1 if conv["rectify"] == "noise" else 0)
            assert (kt >= 2 or conv["rectify"] == "noise") and math.isfinite(b["G"]) and b["G"] > 0
            continue
        assert_mc_close(a["G"], b["G_se"], b["G"], what="G")
        if a["D"] > 0:
            assert_mc_close(a["R"], b["R_se"], b["R"], what="R")


@pytest.mark.slow
@pytest.mark.parametrize("case", [dict(xi=7, n=20, dim=1, layers=5), dict(xi=5, n=9, dim=2, layers=4),
                                  dict(xi=8, n=32, dim=1, stride=2, layers=5),
                                  dict(xi=4, n=16, dim=2, stride=2, layers=4)])
def test_authors_conventions_exact_where_the_theory_is(case):
    """The authors' 1D set-up (always +-1, x + ReLU(eta), block-preserving diffeo for the strided block task) at
    40k samples: every closed form within 4 s.e. (strided: every layer and the output; stride 1: through the
    threshold layer)."""
    conv = dict(moves="always", rectify="noise", preserve_blocks=case.get("stride", 1) > 1)
    th = exact_layers(**case, **conv)
    sim = simulate_layers(**case, **conv, samples=40000, seed=21)
    n_exact = sum(r["G"] is not None for r in th)
    assert n_exact == (len(th) if case.get("stride", 1) > 1 else (case["xi"] - 1) // 2 + 1)
    for a, b in zip(th, sim):
        for q in "DGR":
            if a[q] is None or (q == "R" and a["D"] == 0):
                continue
            assert_mc_close(a[q], b[q + "_se"], b[q], atol=1e-12, what=q)


@pytest.mark.parametrize("case", [dict(xi=7, n=20, dim=1, layers=5), dict(xi=5, n=12, dim=1, layers=4, periodic=True),
                                  dict(xi=5, n=9, dim=2, layers=4)])
@pytest.mark.parametrize("conv", [dict(moves="always", rectify="noise"), dict(moves="direction", rectify="input")])
def test_sparse_simulator_equals_dense_under_the_options(case, conv):
    """The fast stride-1 simulator vs four dense forward passes per sample (float64 rounding only), with the
    rectified noises and the other move laws."""
    a, _ = sample_terms(**case, **conv, samples=200, seed=3)
    b, _ = sample_terms(**case, **conv, samples=200, seed=3, sparse=False)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


def test_rectified_noise_asymptotics():
    """n -> oo laws with rectified noise: G_next against the exact n -> oo pooling expression (relative error of
    order K_2k(0)-corrections, < 1/k as for the default), and the strided laws against finite-n theory.  With
    rectified noise the strided numerator N v + N s^k mu^2 is exact at every n, so G's finite-n deviation is the
    denominator's, 4 (1 - s^k/n) against 4 (measured 1.13, 1.07, 1.05 s^k/n at k = 1, 2, 3): bound 2 s^k/n, as
    for D."""
    lim = pooling_limit_expressions(1, moves="always", rectify="noise")
    law = asymptotic_laws(1, moves="always", rectify="noise")
    k = law["k"]
    for kk in (100, 400):
        assert abs(float(lim["G"](kk)) / float(law["G_next"].subs(k, kk)) - 1) < 1 / kk
        assert abs(float(lim["D"](kk)) / float(law["D"].subs(k, kk)) - 1) < 1 / kk
    assert float(law["D"].subs(k, 1)) == pytest.approx(3 / 8)       # 3/(8k), the authors' notebook's law
    law2 = asymptotic_laws(1, stride=2, moves="always", rectify="noise")
    rows = exact_layers(16, 512, stride=2, layers=5, moves="always", rectify="noise")
    for kk in (1, 2, 3):
        assert abs(rows[kk - 1]["G"] / float(law2["G_next"].subs(law2["k"], kk)) - 1) < 2 * 2 ** kk / 512
        assert abs(rows[kk - 1]["D"] / float(law2["D_limit"].subs(law2["k"], kk)) - 1) < 2 * 2 ** kk / 512


def test_finite_n_rectified_G_approaches_its_limit():
    """Rectified noise, pooling stage: exact finite-n G_k -> the n -> oo expression; three-point Richardson in 1/n
    (as test_finite_n_approaches_limit) to 2e-4."""
    lim = pooling_limit_expressions(1, rectify="noise")
    rows = {n: exact_layers(9, n, layers=5, rectify="noise") for n in (100, 200, 400)}
    for kk in (2, 4):
        f1, f2, f4 = (rows[n][kk - 1]["G"] for n in (100, 200, 400))
        assert abs((8 * f4 - 6 * f2 + f1) / 3 / float(lim["G"](kk)) - 1) < 2e-4


# ---------------------------------------------------------------------------------------------------------------
# perturbations at the data level


def _same_block(row, xi):
    """+1 if every active pixel of a dense 1D image lies in one xi-block (a collision counts once), else -1."""
    return 1 if len(set(np.flatnonzero(row) // xi)) == 1 else -1


def test_block_preserving_diffeo_keeps_every_label():
    d = make_dataset(16, 4, metric="block")
    xt = diffeo_moves(d, seed=0, moves="always", block=4)
    assert np.all(xt.sum(1) == 2)
    assert [_same_block(r, 4) for r in xt] == list(d.y)
    # without the rule labels flip (a +-1 move crosses a block boundary w.p. 1/4 per pixel here)
    xf = diffeo_moves(d, seed=0, moves="always")
    assert [_same_block(r, 4) for r in xf] != list(d.y)
    # dense images: every unit of mass stays in its block
    dense = diffeo_moves(d.x, seed=1, periodic=True, moves="always", block=4)
    blocks = np.arange(16) // 4
    for a, b in zip(dense, d.x):
        assert np.array_equal(np.bincount(blocks, weights=a, minlength=4), np.bincount(blocks, weights=b, minlength=4))
    assert not np.array_equal(dense, d.x)


def test_matched_noise_rectification():
    d = make_dataset(20, 5, seed=0)
    xt = diffeo_moves(d, seed=1, moves="always")
    raw = pixel_noise(d.x, xt, seed=2)
    eta = pixel_noise(d.x, xt, seed=2, rectify="noise")
    assert np.array_equal(eta, np.maximum(raw, 0))
    inp = pixel_noise(d.x, xt, seed=2, rectify="input")
    assert np.array_equal(d.x + inp, np.maximum(d.x + raw, 0))
    # E ReLU(sigma g) = sigma/sqrt(2 pi): 5 s.e.
    sig = math.sqrt(np.mean(((xt - d.x) ** 2).sum(1)) / 20)
    assert abs(eta.mean() - sig / math.sqrt(2 * math.pi)) < 5 * sig * math.sqrt(0.5 - 0.5 / math.pi) / math.sqrt(
        eta.size)
    per = pixel_noise(d.x, xt, seed=2, per_sample=True, rectify="noise")
    assert np.array_equal(per, np.maximum(pixel_noise(d.x, xt, seed=2, per_sample=True), 0))


def test_always_moves_always_move():
    """Every pixel moves on every axis (the one-pixel margin means no clamping), and diffeo_moves applies exactly
    those moves (same seed, same stream)."""
    from numerics.scale_detection import move_positions, positions_to_images
    d = make_dataset(12, 3, dim=2, metric="linf")
    mv = sample_moves(len(d), 2, 0, moves="always")
    assert np.all(np.abs(mv) == 1)
    new = move_positions(d.positions, mv, 12, False)
    assert np.all(new != d.positions)
    assert np.array_equal(diffeo_moves(d, seed=0, moves="always"), positions_to_images(new, 12, 2))


# ---------------------------------------------------------------------------------------------------------------
# data: pixel set and gap


def test_pair_counts_of_the_two_pixel_sets():
    """d = 28, xi = 14, gap 2, Euclidean labels: the authors' set (every (i, j) with i != j, 756 pixels, no margin)
    gives 256,164 labelled pairs, ours (one-pixel margin, 26 x 26) 203,154 -- counted here by enumerating the pixel
    pairs directly (the label rule of twopoints.py: far iff delta >= xi + gap/2, close iff delta < xi - gap/2)."""
    def count(sites):
        s = np.array(sites)
        i, j = np.triu_indices(len(s), 1)
        dd = np.sqrt(((s[i] - s[j]) ** 2).sum(1))
        return int(((dd < 13) | (dd >= 15)).sum()), int((dd < 13).sum())

    theirs = [(a, b) for a, b in product(range(28), repeat=2) if a != b]
    ours = list(product(range(1, 27), repeat=2))
    assert len(theirs) == 756 and count(theirs) == (256_164, 120_767) and count(ours) == (203_154, 107_982)
    t = make_dataset(28, 14, dim=2, gap=2, sites="off_diagonal")
    o = make_dataset(28, 14, dim=2, gap=2)
    assert (len(t), int((t.y == 1).sum())) == (256_164, 120_767) and (len(o), int((o.y == 1).sum())) == (203_154,
                                                                                                          107_982)
    assert t.sites == "off_diagonal" and o.sites == "margin"
    assert not np.any(t.positions[:, :, 0] == t.positions[:, :, 1])
    a = make_dataset(10, 3, dim=2, sites="all")
    assert len(a) == 100 * 99 // 2 and a.positions.min() == 0 and a.positions.max() == 9


@st.composite
def gap_cases(draw):
    """Both classes non-empty: xi - gap_dist >= 2 (a pair at distance 1 is close) and n >= 2 (xi + gap_dist)."""
    xi = draw(st.integers(2, 6))
    gap_dist = draw(st.integers(0, xi - 2))
    return draw(st.integers(2 * (xi + gap_dist), 40)), xi, gap_dist


@given(gap_cases())
def test_half_width_gap_is_the_authors_gap_dist(case):
    """``gap_measure="half_width"`` == the authors' 1D Task 1 (create_dataset.py): periodic distance, +1 iff
    d < xi - gap_dist, -1 iff d >= xi + gap_dist, all positions; == ``gap = 2 gap_dist`` in our width convention."""
    n, xi, gap_dist = case
    d = make_dataset(n, xi, metric="periodic", gap=gap_dist, gap_measure="half_width")
    want = {}
    for r1, r2 in combinations(range(n), 2):
        dist = min(r2 - r1, n - (r2 - r1))
        if dist < xi - gap_dist:
            want[(r1, r2)] = 1
        elif dist >= xi + gap_dist:
            want[(r1, r2)] = -1
    assert dict(zip(map(tuple, d.positions), d.y)) == want
    w = make_dataset(n, xi, metric="periodic", gap=2 * gap_dist)
    assert np.array_equal(w.positions, d.positions) and np.array_equal(w.y, d.y)


# ---------------------------------------------------------------------------------------------------------------
# bad arguments and CLIs


@pytest.mark.parametrize("call, name", [
    (lambda: exact_layers(5, 12, moves="stay"), "moves"),
    (lambda: exact_layers(5, 12, rectify="input"), "rectify"),
    (lambda: exact_layers(5, 12, rectify=True), "rectify"),
    (lambda: exact_layers(5, 12, preserve_blocks=True), "preserve_blocks"),
    (lambda: exact_layers(4, 16, stride=2, layers=3, preserve_blocks=1), "preserve_blocks"),
    (lambda: noise_sigma(5, 12, moves="always", preserve_blocks=True), "preserve_blocks"),
    (lambda: simulate_layers(5, 12, layers=3, samples=10, rectify="both"), "rectify"),
    (lambda: sample_moves(3, 1, 0, moves="lazy2"), "moves"),
    (lambda: diffeo_moves(make_dataset(12, 3), block=0), "block"),
    (lambda: diffeo_moves(make_dataset(12, 3), moves=None), "moves"),
    (lambda: pixel_noise(np.zeros((2, 4)), np.ones((2, 4)), rectify="relu"), "rectify"),
    (lambda: make_dataset(12, 3, sites="inner"), "sites"),
    (lambda: make_dataset(12, 3, sites="off_diagonal"), "sites"),
    (lambda: make_dataset(12, 3, metric="periodic", sites="margin"), "sites"),
    (lambda: make_dataset(12, 3, gap_measure="half"), "gap_measure"),
    (lambda: make_dataset(12, 3, gap=4, gap_measure="half_width"), "gap"),
    (lambda: asymptotic_laws(1, moves="x"), "moves"),
    (lambda: pooling_limit_expressions(1, rectify="input"), "rectify"),
])
def test_bad_convention_arguments(call, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        call()


def test_clis_take_the_convention_flags(capsys):
    from numerics.scale_detection import main as nmain
    from theory.scale_detection import main as tmain
    out = subprocess.run([sys.executable, "-m", "theory.scale_detection", "--xi", "5", "--n", "12", "--layers", "4",
                          "--moves", "always", "--rectify", "noise", "--json"], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out)["layers"] == exact_layers(5, 12, layers=4, moves="always", rectify="noise")
    assert nmain(["--xi", "4", "--n", "16", "--stride", "2", "--layers", "3", "--samples", "500", "--moves", "always",
                  "--rectify", "input", "--preserve-blocks", "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)["layers"]
    assert sim == simulate_layers(4, 16, stride=2, layers=3, samples=500, seed=0, moves="always", rectify="input",
                                  preserve_blocks=True)
    for main, argv, flag in [(tmain, ["--preserve-blocks"], "--preserve-blocks"),
                             (nmain, ["--preserve-blocks", "--samples", "10"], "--preserve-blocks"),
                             (tmain, ["--moves", "stay"], "--moves"), (tmain, ["--rectify", "input"], "--rectify"),
                             (nmain, ["--rectify", "relu"], "--rectify")]:
        try:
            rc = main(argv + ["--json"])
        except SystemExit as e:
            rc = e.code
        err = capsys.readouterr()
        assert rc == 2 and err.out == "" and f"error: argument {flag}: " in err.err, err.err
    helps = subprocess.run([sys.executable, "-m", "numerics.scale_detection", "--help"], capture_output=True,
                           text=True, check=True).stdout
    assert "always" in helps and "ReLU(eta)" in helps and "xi-block" in helps
