"""verify.experiments.architectures and fc_regimes: the analysis rules on synthetic per-seed records (pass and fail
cases), the statistics they rest on, and the data option."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from verify.compare import validate_record
from verify.experiments import architectures as A
from verify.experiments import fc_regimes as F
from verify.experiments.common import interval_verdict, seed_interval


def _rec(err, R_init, R_tr, D_tr=None, G_tr=None):
    D_tr = R_tr * 0.1 if D_tr is None else D_tr
    G_tr = D_tr / R_tr if G_tr is None else G_tr
    return {"test_err": err, "init": {"D": 0.3, "G": 0.3 / R_init, "R": R_init},
            "trained": {"D": D_tr, "G": G_tr, "R": R_tr}}


def _zoo(fc_change=0.5, cnn_change=-1.0, rho_sign=+1, jitter=0.02):
    """Six architectures whose trained R_f and test error are ordered together (rho_sign=+1) or oppositely."""
    rng = np.random.default_rng(0)
    out = {}
    for i, arch in enumerate(A.ARCHITECTURES):
        R = 10.0 ** (-2 + 0.4 * i)
        err = 0.02 * 1.5 ** (i if rho_sign > 0 else 5 - i)
        change = fc_change if arch == "fc" else cnn_change
        out[arch] = [_rec(err * (1 + jitter * rng.normal()), R / 10**change * (1 + jitter * rng.normal()),
                          R * (1 + jitter * rng.normal())) for _ in range(3)]
    return out


def _verdicts(rows):
    return {r["quantity"]: r["verdict"] for r in rows}


def test_architectures_analysis_passes_on_the_papers_picture():
    rows, summ = A.analyse(_zoo(), n_boot=300, seed=0)
    v = _verdicts(rows)
    claims = {q: x for q, x in v.items() if "(a)" in q or "(b)" in q}
    assert len(claims) == 1 + len(A.CNNS) + 1 and all(x == "pass" for x in claims.values()), claims
    assert summ["correlations"]["R"]["rho"] == pytest.approx(1.0)
    assert summ["correlations"]["R"]["p"] == pytest.approx(1 / math.factorial(6))   # exact, 6 architectures
    assert all(r["verdict"] == "info" for r in rows if "(c)" in r["quantity"] or "test error, R_f" in r["quantity"])
    assert "weak" not in next(r for r in rows if "(a)" in r["quantity"])["note"]


def test_architectures_weak_ranking_is_said_in_the_note():
    # seeds that agree closely, and test-error ranks 3 1 2 6 4 5 against R_f ranks 1..6 (rho = 0.66): the bootstrap
    # over seeds stays above 0 while the exact permutation p over 6 architectures is about 0.1; the note says so
    zoo = _zoo(jitter=0.01)
    rank = dict(zip(A.ARCHITECTURES, (3, 1, 2, 6, 4, 5)))
    per = {a: [dict(r, test_err=0.01 * rank[a] * (1 + 0.01 * j)) for j, r in enumerate(zoo[a])] for a in zoo}
    rows, summ = A.analyse(per, n_boot=300, seed=0)
    row = next(r for r in rows if "(a)" in r["quantity"])
    assert summ["correlations"]["R"]["p"] >= 0.05, summ["correlations"]["R"]
    assert row["verdict"] == "pass" and "itself weak" in row["note"], row


def test_architectures_analysis_fails_when_the_picture_is_reversed():
    rows, _ = A.analyse(_zoo(rho_sign=-1, cnn_change=+0.5, fc_change=-1.0), n_boot=300, seed=0)
    v = _verdicts(rows)
    assert v["mnist5k (a) Spearman rho(R_f after training, test error) across architectures"] == "fail"
    for arch in A.CNNS:
        assert v[f"mnist5k (b) {A.LABELS[arch]}: training lowers R_f"] == "fail"
    assert v["mnist5k (b) FC: training does not lower R_f"] == "fail"
    # one seed per architecture: no interval over seeds, the correlation row cannot pass
    one = {a: recs[:1] for a, recs in _zoo().items()}
    rows, _ = A.analyse(one, n_boot=50)
    row = next(r for r in rows if "(a)" in r["quantity"])
    assert row["verdict"] == "fail" and "fewer than 2 seeds" in row["note"]


def test_architectures_power_law_fit_recovers_the_papers_law():
    per = {}
    for i, arch in enumerate(A.ARCHITECTURES):
        R = 10.0 ** (-2 + 0.4 * i)
        per[arch] = [_rec(0.2 * R**0.5, 1.0, R)] * 2
    rows, summ = A.analyse(per, n_boot=50)
    assert summ["fit"]["prefactor"] == pytest.approx(0.2) and summ["fit"]["exponent"] == pytest.approx(0.5)
    per["fc"] = [_rec(0.0, 1.0, 1.0)] * 2     # a zero error: no log-log fit, an info row says why
    rows, summ = A.analyse(per, n_boot=50)
    assert summ["fit"] is None and "no fit" in next(r for r in rows if "fit test error" in r["quantity"])["note"]


def test_spearman_bootstrap_against_scipy_and_its_interval():
    rng = np.random.default_rng(1)
    x = [list(rng.normal(m, 0.3, 4)) for m in (0, 1, 2, 3, 4)]
    y = [list(rng.normal(m, 0.3, 4)) for m in (0.5, 0.2, 2.5, 2.9, 4.5)]
    res = A.spearman_bootstrap(x, y, n_boot=400, seed=3)
    ref = stats.spearmanr([np.mean(a) for a in x], [np.mean(b) for b in y]).statistic
    assert res["rho"] == pytest.approx(ref)
    assert res["ci"][0] <= res["rho"] <= res["ci"][1] and res["m"] == 5
    # identical seeds: every bootstrap replicate has the same means, the interval is the point
    same = A.spearman_bootstrap([[v] * 3 for v in (1, 2, 3)], [[v] * 3 for v in (3, 1, 2)], n_boot=50)
    assert same["ci"] == [pytest.approx(same["rho"])] * 2
    assert A.spearman_bootstrap(x, y, n_boot=400, seed=3) == res      # seeded
    with pytest.raises(ValueError, match="groups"):
        A.spearman_bootstrap([[1.0]], [[1.0]])
    with pytest.raises(ValueError, match="same number"):
        A.spearman_bootstrap([[1.0], [2.0, 3.0]], [[1.0], [2.0]])


def test_seed_interval_is_the_student_t_interval():
    v = [0.3, -0.1, 0.5, 0.2]
    iv = seed_interval(v)
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    assert iv["ci"] == [pytest.approx(lo), pytest.approx(hi)] and iv["n"] == 4
    assert interval_verdict(iv, above=-1.0) == "pass" and interval_verdict(iv, above=0.0) == "fail"
    assert interval_verdict(iv, below=1.0) == "pass" and interval_verdict(iv, below=0.4) == "fail"
    assert all(math.isnan(c) for c in seed_interval([1.0])["ci"])
    assert interval_verdict(seed_interval([1.0]), above=0.0) == "fail"
    assert interval_verdict(seed_interval([1.0, float("nan")]), above=-5.0) == "fail"
    with pytest.raises(ValueError, match="exactly one"):
        interval_verdict(iv)


# ---------------------------------------------------------------------------------------------------------------
# fc_regimes


def _fc(err, pr, R, D, alpha):
    return {"test_err": err, "train_err": 0.0, "participation_ratio": pr, "atoms": pr, "atoms_effective": pr,
            "relative_weight_change": 1.0 / alpha, "alpha": alpha, "epochs_done": 10, "width": 1000,
            "stability": {"R": R, "D": D, "G": D / R}}


def test_fc_regimes_analysis_pass_and_fail():
    lazy = [_fc(0.05 + 0.001 * i, 600 + i, 1.0 + 0.01 * i, 0.05, 100.0) for i in range(4)]
    feat = [_fc(0.08 + 0.002 * i, 80 + 3 * i, 3.0 + 0.1 * i, 0.09, 1e-6) for i in range(4)]
    v = _verdicts(F.analyse({"lazy": lazy, "feature": feat})[0])
    claims = {q: x for q, x in v.items() if "(a)" in q or "(b)" in q or "(c)" in q}
    assert len(claims) == 4 and set(claims.values()) == {"pass"}, claims
    # the reverse: feature better, as many neurons, more stable
    rows, stats_ = F.analyse({"lazy": feat, "feature": lazy})
    v = _verdicts(rows)
    assert {x for q, x in v.items() if "(a)" in q or "(b)" in q or "(c)" in q} == {"fail"}
    assert "generalises better" in next(r for r in rows if "(a)" in r["quantity"])["note"]
    # fewer neurons, but not by a factor 2: (b) fails
    close = [dict(r, participation_ratio=r["participation_ratio"] * 0.7) for r in lazy]
    v = _verdicts(F.analyse({"lazy": lazy, "feature": close})[0])
    assert next(x for q, x in v.items() if "(b)" in q) == "fail"
    with pytest.raises(ValueError, match="same number"):
        F.analyse({"lazy": lazy, "feature": feat[:2]})


def test_participation_ratio_and_parity_labels():
    assert F.participation_ratio(np.ones(7)) == pytest.approx(7)
    assert F.participation_ratio([0, 0, 3.0, 0]) == pytest.approx(1)
    assert F.participation_ratio([1.0, 1.0, 2.0]) == pytest.approx(16 / 6)
    with pytest.raises(ValueError, match="participation_ratio"):
        F.participation_ratio([0.0, 0.0])
    assert F.parity_labels(torch.tensor([0, 1, 2, 7])).tolist() == [1.0, -1.0, 1.0, -1.0]


def test_neuron_stats_of_a_constructed_net():
    from verify.models import FCNet
    net = FCNet((2, 2), depth=1, width=3, bias=False, seed=0)
    with torch.no_grad():
        W = torch.tensor([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 0.5]], dtype=torch.float64)
        net.blocks[0].linear.weight.copy_(W)
        net.readout.weight.copy_(torch.tensor([[1.0, -1.0, 4.0]], dtype=torch.float64))
    x = torch.eye(4, dtype=torch.float64).reshape(4, 2, 2)
    s = F.neuron_stats(net, W.clone(), x)
    c = np.array([1.0, 2.0, 2.0])                    # |beta_h| |w_h|
    assert s["participation_ratio"] == pytest.approx(c.sum() ** 2 / (c**2).sum())
    assert s["relative_weight_change"] == 0.0 and s["width"] == 3
    assert s["atoms"] == 3                           # three different sign patterns on the 4 basis images


def test_architectures_run_on_another_data_set():
    """The data option: scikit-learn's digits resized to 16x16 instead of mnist5k (two architectures)."""
    rec = A.run(quick=True, out_dir="/tmp", size="tiny", device="cpu", progress=False, archs=["fc", "lenet"],
                data={"spec": "digits", "size": 16})
    validate_record(rec)
    ds = rec["data"]["dataset"]
    assert ds["spec"] == "digits" and ds["shape"] == [1, 16, 16] and ds["n_classes"] == 10
    assert set(rec["data"]["architectures"]) == {"fc", "lenet"}
    assert rec["rows"][0]["quantity"].startswith("digits ")
    with pytest.raises(ValueError, match="archs"):
        A.run(quick=True, out_dir="/tmp", size="tiny", device="cpu", archs=["alexnet"])
    with pytest.raises(ValueError, match="^data"):
        A.image_data("tiny", 0, data=3)
