"""verify.experiments: every experiment runs end to end at the tiny size; the analysis logic on synthetic data."""
import json
import sys

import numpy as np
import pytest
import torch

from verify.compare import validate_record
from verify.experiments import (EXPERIMENTS, architectures, channel_shuffle, cnn_layers, fc_vs_cnn, handcrafted,
                                lowpass)
from verify.experiments.common import SIZES, clear_cache, mean_layers


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Run every experiment once at the tiny size (the trained CNNs are shared through the in-process cache)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("verify")
    recs = {}
    try:
        for name, run in EXPERIMENTS.items():
            if name == "spherical":
                continue  # its own helper tests it; forwarding is tested below
            recs[name] = run(quick=True, out_dir=out, seed=0, device="cpu", size="tiny", progress=False)
    finally:
        torch.set_num_threads(threads)
        clear_cache()
        architectures.clear_cache()
    return out, recs


@pytest.mark.parametrize("name", ["cnn_layers", "lowpass", "channel_shuffle", "fc_vs_cnn", "handcrafted",
                                  "architectures", "fc_regimes"])
def test_experiment_runs_at_tiny_size(records, name):
    out, recs = records
    rec = recs[name]
    validate_record(json.loads(json.dumps(rec, default=float)))
    assert rec["name"] == name and rec["rows"]
    for fig in rec["figures"]:
        assert (out / fig).stat().st_size > 1000
    for row in rec["rows"]:
        assert row["experiment"] == name


def test_expected_rows_and_figures(records):
    out, recs = records
    assert {"cnn_layers_1d.png", "cnn_layers_2d.png"} <= set(recs["cnn_layers"]["figures"])
    assert {"lowpass_1d.png", "lowpass_2d.png"} <= set(recs["lowpass"]["figures"])
    q = [r["quantity"] for r in recs["cnn_layers"]["rows"]]
    assert any("R_k falls with depth" in s for s in q) and any("trained vs theory" in s for s in q)
    data = recs["cnn_layers"]["data"]["2d"]
    assert len(data["trained"]) == SIZES["tiny"]["cnn2d"]["depth"] + 1
    assert data["theory"] is not None  # theory.scale_detection is in this checkout
    # the 2D channel-shuffle test runs on the size's VGG set-up (the paper's nets), measured after every ReLU and
    # pooling layer; 1D on the shared ConvNet
    sh = recs["channel_shuffle"]["data"]
    assert sh["2d"]["architecture"].startswith("VGGNet") and sh["1d"]["architecture"].startswith("ConvNet")
    assert len(sh["2d"]["trained"]) == 13 + 1


def test_handcrafted_torch_network_matches_exact_theory(records):
    """The torch hand-constructed net, measured by Monte Carlo, agrees with the exact values within 4 s.e."""
    rows = records[1]["handcrafted"]["rows"]
    assert all(r["verdict"] in ("pass", "info") for r in rows), [r for r in rows if r["verdict"] == "fail"]
    assert sum(r["verdict"] == "pass" for r in rows) >= 10


# ------------------------------------------------------------------------------------------------------------
# analysis logic on synthetic measurements


def _layers(values_by_q, se=0.01):
    L = len(values_by_q["D"])
    out = []
    for i in range(L):
        d = {"k": i + 1, "layer": f"blocks.{i}.act" if i < L - 1 else "output"}
        for q, v in values_by_q.items():
            d[q], d[q + "_se"], d[q + "_ci"] = v[i], se * v[i], [v[i] * (1 - 2 * se), v[i] * (1 + 2 * se)]
        out.append(d)
    return out


P2 = dict(n=16, xi=9, depth=6, width=8)


def _power(e, L=7):
    k = np.arange(1, L + 1, dtype=float)
    return list(k ** e)


def test_cnn_layers_analysis_pass_and_fail():
    good = _layers({"D": _power(-1), "G": _power(1), "R": _power(-2)})
    init = _layers({"D": [0.8] * 7, "G": [0.8] * 7, "R": [1.0] * 7})
    rows, fits = cnn_layers.analyse(2, P2, good, init, None, "no theory", 0.0)
    verdicts = {r["quantity"]: r["verdict"] for r in rows}
    claimed = [v for q, v in verdicts.items() if "with depth" in q or "trained < init" in q]
    assert len(claimed) == 4 and all(v == "pass" for v in claimed)   # D, G, R trends and R_k trained < init
    assert fits["R"]["trained_all"]["exponent"] == pytest.approx(-2, abs=1e-9)
    bad = _layers({"D": _power(1), "G": _power(-1), "R": _power(2)})
    rows, _ = cnn_layers.analyse(2, P2, bad, init, None, None, 0.0)
    trends = [r["verdict"] for r in rows if "with depth" in r["quantity"]]
    assert trends == ["fail"] * 3
    # 1D carries no claim: same data, info only
    rows, _ = cnn_layers.analyse(1, P2, bad, init, None, None, 0.0)
    assert all(r["verdict"] == "info" for r in rows)


def test_cnn_layers_theory_exponent_is_fitted_on_the_same_layers():
    theory = [{"k": k, "name": "pool", "D": 1.0 / k, "G": k ** 0.5, "R": k ** -1.5} for k in range(1, 5)]
    trained = _layers({"D": _power(-1), "G": _power(0.5), "R": _power(-1.5)})
    rows, fits = cnn_layers.analyse(1, P2, trained, trained, theory, None, 0.0)
    assert fits["k_range"] == [1, 4]
    assert fits["D"]["theory"]["exponent"] == pytest.approx(-1.0)
    row = next(r for r in rows if r["quantity"].startswith("1D R_k depth exponent"))
    assert row["predicted"] == pytest.approx(-1.5) and row["verdict"] == "info"


def test_channel_shuffle_analysis():
    tr = _layers({"D": [1] * 5, "G": [1] * 5, "R": [1.0, 0.5, 0.2, 0.1, 0.01]})
    init = _layers({"D": [1] * 5, "G": [1] * 5, "R": [1.0] * 5})
    rows, s = channel_shuffle.analyse(2, tr, tr, init)
    assert rows[-1]["verdict"] == "pass" and rows[-1]["measured"] == 0
    sh = _layers({"D": [1] * 5, "G": [1] * 5, "R": [1.0, 0.5, 0.2, 1.0, 0.01]})
    rows, s = channel_shuffle.analyse(2, tr, sh, init)
    assert rows[-1]["verdict"] == "fail" and rows[-1]["measured"] == pytest.approx(1.0)
    assert s["layers_intact"] == 3 and rows[-2]["measured"] == "3 of 4"   # hidden layers 1-3 unchanged, 4 is not



def test_channel_shuffle_mean_over_permutations_is_geometric():
    a = _layers({"D": [1.0, 1.0], "G": [1.0, 1.0], "R": [1.0, 0.01]})
    b = _layers({"D": [1.0, 1.0], "G": [1.0, 1.0], "R": [100.0, 1.0]})
    m = channel_shuffle.mean_over_permutations([a, b])
    assert [d["k"] for d in m] == [1, 2]
    assert m[0]["R"] == pytest.approx(10.0) and m[1]["R"] == pytest.approx(0.1)
    assert m[1]["R_ci"] == pytest.approx([0.01, 1.0])
    assert channel_shuffle.mean_over_permutations([a])[1]["R"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="runs"):
        channel_shuffle.mean_over_permutations([])


def test_channel_shuffle_part():
    from verify.models import ConvNet, shuffle_channels
    tr = ConvNet(dim=2, depth=3, width=5, seed=1)
    zero = ConvNet(dim=2, depth=3, width=5, seed=2)
    with torch.no_grad():
        for _, c in zero.conv_layers():
            c.weight.zero_()
    # W0 = 0: shuffling the learned part is shuffle_channels (same generator, same order of draws)
    a = channel_shuffle.shuffle_part(tr, zero, part="learned", seed=7)
    b = shuffle_channels(tr, seed=7)
    for (_, ca), (_, cb) in zip(a.conv_layers(), b.conv_layers()):
        assert torch.equal(ca.weight, cb.weight)
    # W0 = W: ΔW = 0, shuffling it changes nothing; shuffling W0 is then shuffle_channels again
    same = channel_shuffle.shuffle_part(tr, tr, part="learned", seed=7)
    init_sh = channel_shuffle.shuffle_part(tr, tr, part="init", seed=7)
    for (_, c0), (_, c1), (_, c2), (_, cb) in zip(tr.conv_layers(), same.conv_layers(), init_sh.conv_layers(),
                                                  b.conv_layers()):
        assert torch.equal(c0.weight, c1.weight)
        assert torch.allclose(c2.weight, cb.weight)
    with pytest.raises(ValueError, match="part"):
        channel_shuffle.shuffle_part(tr, tr, part="both", seed=0)
    with pytest.raises(ValueError, match="n_permutations"):
        channel_shuffle.run(quick=True, out_dir=".", size="tiny", device="cpu", n_permutations=0, progress=False)

def test_lowpass_gain_and_analysis():
    lam = [0, 1, 2, 3, 4, 6]
    assert lowpass.lowpass_gain(lam, [1] * 6, [2, 1, 1, 1, 1, 1]) == pytest.approx(2.0)
    assert lowpass.lowpass_gain(lam, [1] * 6, [1, 1, 1, 2, 2, 2]) == pytest.approx(0.5)
    spectra = {f"l{i}": {"epochs": [0, 5], "lambdas": lam, "c": [[1] * 6, [g, 1, 1, 1, 1, 1]]}
               for i, g in enumerate([0.5, 2.0, 3.0])}
    rows, gains = lowpass.analyse(spectra, 2)
    assert rows[-1]["verdict"] == "pass" and rows[-1]["measured"] == 2.0
    spectra["l1"]["c"][1][0] = 0.9
    assert lowpass.analyse(spectra, 2)[0][-1]["verdict"] == "fail"


def test_lowpass_from_checkpoints_constant_filters_grow_lambda0():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 4, 3, 3))
    wT = w0 + 3.0  # add a constant (λ = 0) component to every filter
    cks = [{"epoch": 0, "filters": {"c": w0}}, {"epoch": 9, "filters": {"c": wT}}]
    spectra = lowpass.spectra_over_training(cks, 2)
    d = spectra["c"]
    assert d["epochs"] == [0, 9] and d["lambdas"] == [0, 1, 2, 3, 4, 6]
    np.testing.assert_allclose(d["c"][1][1:], d["c"][0][1:], rtol=1e-12)  # only λ = 0 changes
    assert lowpass.lowpass_gain(d["lambdas"], d["c"][0], d["c"][1]) > 1
    lo, hi = lowpass.gain_interval(w0, wT, 2, n_boot=50)
    assert 1 < lo <= hi


def test_channel_shuffle_analysis_fails_on_a_non_finite_layer():
    tr = _layers({"D": [1] * 5, "G": [1] * 5, "R": [1.0, 0.5, 0.2, 0.1, 0.01]})
    init = _layers({"D": [1] * 5, "G": [1] * 5, "R": [1.0] * 5})
    for bad in (float("nan"), 0.0, -1.0):
        sh = _layers({"D": [1] * 5, "G": [1] * 5, "R": [1.0, 0.5, bad, 0.1, 0.01]})  # layer 3 broken, not first
        rows, s = channel_shuffle.analyse(2, tr, sh, init)
        assert rows[-1]["verdict"] == "fail" and "layers [3]" in rows[-1]["note"]
        assert s["layers_intact"] == 2


def test_cnn_layers_analysis_fails_on_missing_layers_and_intervals():
    good = _layers({"D": _power(-1), "G": _power(1), "R": _power(-2)})
    init = _layers({"D": [0.8] * 7, "G": [0.8] * 7, "R": [1.0] * 7})
    holed = _layers({"D": _power(-1), "G": _power(1), "R": _power(-2)})
    holed[2]["G"] = float("nan")
    holed[4]["G"] = float("nan")
    rows, _ = cnn_layers.analyse(2, P2, holed, init, None, None, 0.0)
    row = next(r for r in rows if r["quantity"].startswith("2D G_k grows"))
    assert row["verdict"] == "fail" and "layers [3, 5]" in row["note"]
    assert next(r for r in rows if r["quantity"].startswith("2D D_k falls"))["verdict"] == "pass"
    kt = min(cnn_layers.k_tilde(P2["xi"]), P2["depth"])
    for ends in ([float("nan"), 0.5], [0.1, None]):
        tr = _layers({"D": _power(-1), "G": _power(1), "R": _power(-2)})
        tr[kt - 1]["R_ci"] = ends
        rows, _ = cnn_layers.analyse(2, P2, tr, init, None, None, 0.0)
        assert next(r for r in rows if "trained < init" in r["quantity"])["verdict"] == "fail"
    rows, _ = cnn_layers.analyse(2, P2, good, init, None, None, 0.0)
    assert next(r for r in rows if "trained < init" in r["quantity"])["verdict"] == "pass"


def test_handcrafted_analysis_simulator_rows():
    measured = [{"k": 1, "D": 0.5, "D_se": 0.01, "G": 1.0, "G_se": 0.01, "R": 0.5, "R_se": 0.01}]
    exact = [{"k": 1, "name": "pool_after", "D": 0.5, "G": None, "R": None}]
    sim_ok = [{"k": 1, "D": 0.5, "D_se": 0.01, "G": 1.01, "G_se": 0.01, "R": 0.495, "R_se": 0.01}]
    sim_far = [dict(sim_ok[0], G=1.2)]
    sim_nan = [dict(sim_ok[0], G_se=float("nan"))]
    v = lambda rows: {r["quantity"].split(") ")[1]: r["verdict"] for r in rows}  # noqa: E731
    assert v(handcrafted.analyse(1, measured, exact, sim_ok)) == {
        "D_k": "pass", "G_k vs numba simulator": "pass", "R_k vs numba simulator": "pass"}
    # |1.0 - 1.2| = 0.2 > 4 hypot(0.01, 0.01) = 0.057
    assert v(handcrafted.analyse(1, measured, exact, sim_far))["G_k vs numba simulator"] == "fail"
    assert v(handcrafted.analyse(1, measured, exact, sim_nan))["G_k vs numba simulator"] == "fail"
    assert v(handcrafted.analyse(1, measured, exact, None)) == {"D_k": "pass", "G_k": "info", "R_k": "info"}
    # the exact rows: 4 s.e. of the measurement
    assert v(handcrafted.analyse(1, [dict(measured[0], D=0.55)], exact, sim_ok))["D_k"] == "fail"


def test_fc_matched_width_is_the_closest_parameter_count():
    from verify.experiments.fc_vs_cnn import matched_width
    from verify.models import FCNet, count_parameters
    for d_in, depth, target in ((16, 2, 3000), (64, 1, 5000), (256, 3, 70_000)):
        H = matched_width(d_in, depth, target)
        # brute force over the neighbouring widths with real networks
        counts = {h: count_parameters(FCNet((d_in,), depth=depth, width=h)) for h in range(max(8, H - 3), H + 4)}
        assert abs(counts[H] - target) == min(abs(c - target) for c in counts.values())


def test_fc_vs_cnn_analysis_verdicts():
    from verify.experiments.fc_vs_cnn import analyse
    r = lambda R, lo, hi: {"R": R, "R_ci": [lo, hi]}  # noqa: E731
    errs = {"fc": 0.1, "cnn": 0.0}
    assert analyse(2, r(0.5, 0.4, 0.6), r(0.01, 0.005, 0.02), r(1, 1, 1), r(1, 1, 1), errs)[0]["verdict"] == "pass"
    assert analyse(2, r(0.5, 0.015, 0.6), r(0.01, 0.005, 0.02), r(1, 1, 1), r(1, 1, 1), errs)[0]["verdict"] == "fail"
    nan = float("nan")
    assert analyse(2, r(0.5, nan, 0.6), r(0.01, 0.005, 0.02), r(1, 1, 1), r(1, 1, 1), errs)[0]["verdict"] == "fail"


# ------------------------------------------------------------------------------------------------------------
# the image experiments at the tiny size, and the rules over training seeds


def test_image_experiments_records(records):
    out, recs = records
    a = recs["architectures"]
    assert a["figures"] == ["architectures.png"] and (out / "architectures.png").stat().st_size > 1000
    d = a["data"]
    assert d["dataset"]["spec"] == "mnist5k" and d["dataset"]["normalisation"]["mode"] == "train"
    assert d["dataset"]["split"]["kind"] == "stratified" and d["dataset"]["n_train_used"] == 64
    n_seeds = SIZES["tiny"]["seeds"]
    assert set(d["architectures"]) == set(architectures.ARCHITECTURES)
    for arch, rec in d["architectures"].items():
        assert rec["n_parameters"] > 0 and len(rec["seeds"]) == n_seeds
        for s in rec["seeds"]:
            assert 0 <= s["test_err"] <= 1
            for when in ("init", "trained"):
                assert all(s[when][q] > 0 for q in ("D", "G", "R"))
                assert s[when]["delta"] == pytest.approx(1.0)          # delta = 1 pixel at c = 3
    q = [r["quantity"] for r in a["rows"]]
    assert any("(a) Spearman rho(R_f" in x for x in q) and sum("(b)" in x for x in q) == 5
    f = recs["fc_regimes"]
    assert f["figures"] == ["fc_regimes.png"] and (out / "fc_regimes.png").stat().st_size > 1000
    fd = f["data"]
    assert set(fd["per_seed"]) == {"lazy", "feature"} and len(fd["per_seed"]["lazy"]) == \
        SIZES["tiny"]["fc_regimes"]["seeds"]
    lazy, feat = fd["per_seed"]["lazy"][0], fd["per_seed"]["feature"][0]
    assert lazy["relative_weight_change"] < feat["relative_weight_change"]   # the alpha-trick regimes
    assert len(fd["figure"]["lazy"]["weights"]) == SIZES["tiny"]["fc_regimes"]["top"]
    # lowpass on real data: the architectures ConvNet, rows labelled with the data set
    lq = [r["quantity"] for r in recs["lowpass"]["rows"]]
    assert "mnist5k 2D ConvNet median over layers of the low-pass gain" in lq
    assert "lowpass_mnist5k.png" in recs["lowpass"]["figures"]
    assert recs["lowpass"]["data"]["images"]["dataset"]["spec"] == "mnist5k"


def _seed_layers(R, D=None, G=None):
    L = len(R)
    D = D or [1.0] * L
    G = G or [1.0] * L
    return [{"k": i + 1, "layer": f"blocks.{i}.act" if i < L - 1 else "output", "D": D[i], "D_se": 0.01 * D[i],
             "D_ci": [0.9 * D[i], 1.1 * D[i]], "G": G[i], "G_se": 0.01 * G[i], "G_ci": [0.9 * G[i], 1.1 * G[i]],
             "R": R[i], "R_se": 0.01 * R[i], "R_ci": [0.9 * R[i], 1.1 * R[i]]} for i in range(L)]


def test_cnn_layers_seed_rule():
    k = np.arange(1, 8, dtype=float)
    good = [_seed_layers(list(k ** -(2 + 0.1 * s)), list(k ** -1.0), list(k ** (1 + 0.1 * s))) for s in range(3)]
    init = [_seed_layers([1.0] * 7, [0.8] * 7, [0.8] * 7) for _ in range(3)]
    rows, fits = cnn_layers.analyse(2, P2, good, init, None, None, [0.0, 0.01, 0.02])
    claimed = {r["quantity"]: r["verdict"] for r in rows if "with depth" in r["quantity"] or "trained < init" in
               r["quantity"]}
    assert len(claimed) == 4 and set(claimed.values()) == {"pass"}
    assert fits["n_seeds"] == 3 and fits["G"]["trend_seeds"]["rho"]["mean"] == pytest.approx(1.0)
    # one seed whose G_k falls with depth: rho = +1, +1, -1, the interval over seeds includes 0 -> fail, although
    # the seed-mean layers still grow
    bad = [good[0], good[1], _seed_layers(list(k ** -2.0), list(k ** -1.0), list(k ** -0.5))]
    rows, _ = cnn_layers.analyse(2, P2, bad, init, None, None, [0.0] * 3)
    g_row = next(r for r in rows if r["quantity"].startswith("2D G_k grows"))
    assert g_row["verdict"] == "fail"
    assert g_row["note"].startswith("per seed rho +1.00, +1.00, -1.00") and "seed index [2]" in g_row["note"]
    assert next(r for r in rows if r["quantity"].startswith("2D D_k falls"))["verdict"] == "pass"
    holed = [_seed_layers(list(k ** -2.0), list(k ** -1.0), list(k ** 1.0)) for _ in range(3)]
    holed[1][2]["G"] = float("nan")
    rows, _ = cnn_layers.analyse(2, P2, holed, init, None, None, [0.0] * 3)
    row = next(r for r in rows if r["quantity"].startswith("2D G_k grows"))
    assert row["verdict"] == "fail" and "layers [3]" in row["note"]
    # R_k at k~ rises in one seed: the log-ratio interval is not below 0
    kt = min(cnn_layers.k_tilde(P2["xi"]), P2["depth"])
    up = [_seed_layers(list(k ** -2.0), list(k ** -1.0), list(k ** 1.0)) for _ in range(3)]
    up[2][kt - 1]["R"] = 5.0
    rows, _ = cnn_layers.analyse(2, P2, up, init, None, None, [0.0] * 3)
    assert next(r for r in rows if "trained < init" in r["quantity"])["verdict"] == "fail"
    # 1D: information only
    rows, _ = cnn_layers.analyse(1, P2, good, init, None, None, [0.0] * 3)
    assert all(r["verdict"] == "info" for r in rows)


def test_mean_layers_is_the_geometric_mean_over_seeds():
    a, b = _seed_layers([1.0, 0.01]), _seed_layers([100.0, 1.0])
    m = mean_layers([a, b])
    assert [d["R"] for d in m] == [pytest.approx(10.0), pytest.approx(0.1)]
    assert m[0]["R_ci"][0] < 10 < m[0]["R_ci"][1]
    assert mean_layers([a])[1]["R"] == 0.01


def test_lowpass_seed_rule():
    lam = [0, 1, 2, 3, 4, 6]

    def sp(gains):
        return {f"l{i}": {"epochs": [0, 5], "lambdas": lam, "c": [[1] * 6, [g, 1, 1, 1, 1, 1]]}
                for i, g in enumerate(gains)}

    rows, summ = lowpass.analyse_seeds([sp([0.5, 2.0, 3.0]), sp([1.5, 2.5, 3.0]), sp([0.9, 1.8, 2.2])], 2)
    assert rows[-1]["verdict"] == "pass" and summ["median_gain"] == [2.0, 2.5, 1.8]
    rows, _ = lowpass.analyse_seeds([sp([0.5, 2.0, 3.0]), sp([0.5, 0.6, 3.0]), sp([0.9, 1.8, 2.2])], 2,
                                    label="mnist5k 2D ConvNet")
    assert rows[-1]["verdict"] == "fail" and rows[-1]["quantity"].startswith("mnist5k 2D ConvNet median")
    assert lowpass.analyse_seeds([sp([2.0, 2.0, 2.0])], 2)[0][-1]["verdict"] == "fail"   # one seed: no interval
    m = lowpass.mean_spectra([sp([4.0]), sp([1.0])])
    assert m["l0"]["c"][1][0] == pytest.approx(2.0) and m["l0"]["c"][0] == [1.0] * 6


def test_channel_shuffle_seed_rule():
    tr = _seed_layers([1.0, 0.5, 0.2, 0.1, 0.01])
    init = _seed_layers([1.0] * 5)
    near = _seed_layers([1.0, 0.5, 0.25, 0.1, 0.01])   # |Δ| = 0.1 decades at layer 3
    rows, s = channel_shuffle.analyse_seeds(2, [tr] * 3, [tr, near, near], [init] * 3)
    assert rows[-1]["verdict"] == "pass" and s["max_delta"]["values"] == pytest.approx([0.0, 0.097, 0.097], abs=1e-3)
    far = _seed_layers([1.0, 0.5, 0.2, 1.0, 0.01])     # |Δ| = 1 decade at layer 4
    rows, s = channel_shuffle.analyse_seeds(2, [tr] * 3, [tr, far, near], [init] * 3)
    assert rows[-1]["verdict"] == "fail"
    with pytest.raises(ValueError, match="same number"):
        channel_shuffle.analyse_seeds(2, [tr] * 2, [tr], [init] * 2)


def test_fc_vs_cnn_seed_rule():
    r = lambda R: {"R": R, "R_ci": [R, R], "D": R, "G": 1.0}  # noqa: E731
    seeds = [{"fc": r(0.5), "cnn": r(c), "fc_init": r(1.0), "cnn_init": r(1.0), "test_err": {"fc": 0.1, "cnn": 0.0}}
             for c in (0.01, 0.004, 0.02)]
    rows = fc_vs_cnn.analyse_seeds(2, seeds)
    assert rows[0]["verdict"] == "pass"
    seeds[1]["cnn"] = r(2.0)   # one seed with R_f(CNN) > R_f(FC): the interval reaches below 0
    assert fc_vs_cnn.analyse_seeds(2, seeds)[0]["verdict"] == "fail"
    assert fc_vs_cnn.analyse_seeds(2, seeds[:1])[0]["verdict"] == "fail"   # one seed: no interval


def test_settled_thread_pools_keep_the_torch_thread_count():
    """numba's OpenMP layer resets torch's thread count at its first parallel kernel; importing verify.experiments
    settles it first, so a count set afterwards survives the kernels the experiments run (fresh processes)."""
    import subprocess

    code = ("import torch, numba{imp}\n"
            "torch.set_num_threads(1)\n"
            "from numerics.diffeo import sample_diffeos\n"
            "d = sample_diffeos(4, 28, 28, 1e-3, 3, seed=0)\n"
            "assert torch.get_num_threads() == 1   # torch's pool in use before numba's starts, as in a run\n"
            "d.folds()   # a parallel numba kernel\n"
            "print(numba.threading_layer(), numba.get_num_threads(), torch.get_num_threads())")

    def run(imp):
        out = subprocess.run([sys.executable, "-c", code.format(imp=imp)], capture_output=True, text=True,
                             check=True).stdout.split()
        return out[-3], int(out[-2]), int(out[-1])

    assert run("; import verify.experiments")[2] == 1
    layer, n_numba, n_torch = run("")
    if layer == "omp" and n_numba > 1:
        assert n_torch == n_numba   # the reset that importing verify.experiments prevents


@pytest.mark.parametrize("name", ["cnn_layers", "lowpass", "channel_shuffle", "fc_vs_cnn", "architectures",
                                  "fc_regimes"])
def test_ctrl_c_in_training_reaches_the_caller(tmp_path, monkeypatch, name):
    """No experiment computes a verdict from an unfinished training: Ctrl-C during any training step propagates out
    of the experiment's run (to verify.compare's run loop), it is neither swallowed nor turned into rows."""
    def interrupted_step(self, *a, **k):
        raise KeyboardInterrupt

    clear_cache()
    architectures.clear_cache()
    monkeypatch.setattr(torch.optim.SGD, "step", interrupted_step)
    monkeypatch.setattr(torch.optim.Adam, "step", interrupted_step)
    try:
        with pytest.raises(KeyboardInterrupt):
            EXPERIMENTS[name](quick=True, out_dir=tmp_path, seed=0, device="cpu", size="tiny", progress=False)
    finally:
        clear_cache()
        architectures.clear_cache()
    assert not list(tmp_path.glob("*.png"))  # nothing drawn from a half-trained net


@pytest.mark.parametrize("dim", [1, 2])
def test_cnn_layers_asymptotic_exponents_are_the_papers_scalings(dim):
    # Tomasini et al. 2022 (hand-constructed net, stride 1): D_k ~ 1/k, G_k ~ k^(d/2), so R_k ~ k^(-1-d/2); here
    # taken from the sympy laws by a limit of the log-derivative
    assert [cnn_layers.asymptotic_exponent(dim, q) for q in "DGR"] == [-1.0, dim / 2, -1 - dim / 2]
