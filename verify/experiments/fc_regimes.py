r"""A fully-connected net on real images in the lazy and in the feature regime (Petrini, Cagnetta, Vanden-Eijnden &
Wyart 2022, part ii; the talk's "the poor choice of architecture is such that the feature regime breaks the
symmetry by overfitting pixels").

Task: binary MNIST, even against odd digits (y = +1 for an even class label, -1 for an odd one), on the first
``n_train`` images of the ``mnist5k`` train split; test error on the whole test split (1000 images).  Another data
set of :mod:`verify.datasets` can be passed as ``data`` (see :mod:`verify.experiments.architectures`; labels are
grouped by parity the same way).

Network and regimes: a one-hidden-layer ReLU net without hidden biases, :class:`verify.models.FCNet` (depth 1,
width h, He-normal first layer, readout N(0, 1/h): f is O(1) at initialisation), trained through the α-trick of
:mod:`verify.train` (:class:`~verify.train.AlphaPredictor`): the predictor is F = α (f(w) - f(w₀)) and the loss
ReLU(1 - yF)/α² (hinge), SGD with momentum 0.9, constant step, no weight decay, mini-batches of ``batch_size``,
until an epoch ends with zero hinge loss (every training margin >= 1: zero training error; ``stop_loss=0``) or
``epochs`` epochs.  Lazy: α = ``alpha_lazy`` = 10², where the first-layer weights move by ~10⁻³ of their norm (the
net stays at its linearisation: kernel regime).  Feature: α = ``alpha_feature`` = 10⁻⁶ (the value of the paper's
FC runs on images), where they move by ~10² times their norm.  The crossover sits near α ~ h^{-1/2} ≈ 0.03 for this
readout scale (h = 1000); both values are two or more decades away from it, chosen before any claim was looked at.

Step sizes.  The lazy run uses ``lr`` = 0.1: with the loss divided by α² the function-space dynamics
dF/dt = -lr ℓ'(F) |∇_w f|² does not depend on α.  For α ≪ 1 the same step is far too large: f is 2-homogeneous in
(w, β), so w̃ = α^{1/2} w gives F = f(w̃) - f(w̃₀) and turns a step ``lr`` on the α-trick loss into a step lr/α on the
plain loss ℓ(F) from an initialisation of scale α^{1/2}.  The feature run therefore uses ``lr · α`` (the α-independent
small-initialisation dynamics; the same rule as ``verify.spherical.trained_regimes``, whose notes found that a step
independent of α stalls or interpolates before the neurons condense).  Both regimes then have the same
function-space step once the feature net's weights have grown to O(1).

Measured per seed and regime (training seeds ``seed, seed + 1, …``, ``SIZES[size]["fc_regimes"]["seeds"]`` of
them: 8 at the quick size, where a pair of runs costs ~7 s, since the first run with 3 seeds left the R_f interval
at [-0.002, 0.70] decades; both regimes of one seed start from the same w₀ and see the same mini-batches): test
error; the effective number of neurons, the participation ratio PR = (Σ_h c_h)² / Σ_h c_h² of the neuron
contributions c_h = |β_h| |w_h| (h for equal contributions, 1 for a single neuron), and the atoms of :func:`numerics.atoms.count_atoms` (neurons grouped by their sign pattern on the
training images, rel_tol 10⁻³); D_f, G_f, R_f of the predictor F at c = 3, δ = 1 pixel
(:func:`verify.experiments.architectures.measure_output`: per-sample matched noise, 500 test probes).

Claims (per-seed statistic, two-sided 95% Student-t interval over seeds):
(a) test error feature > lazy: err_feature - err_lazy, interval above 0;
(b) far fewer effective neurons in the feature regime: log10 PR_feature/PR_lazy, interval below log10(1/2)
    (at least a factor 2);
(c) R_f feature > lazy, and D_f feature > lazy: log10 ratios, intervals above 0.
Figure ``fc_regimes.png``: the first-layer weights of the heaviest neurons (largest c_h) of each regime as images
(seed ``seed``), next to a probe digit, its deformation at δ = 1 pixel and their difference.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from verify.experiments.common import (SIZES, draw_figure, fmt_seeds, interval_verdict, jsonable, log10_ratio,
                                       make_row, resolve_device, resolve_size, seed_interval, training_seeds)
from verify.experiments.architectures import data_label, describe_data, image_data, measure_output
from verify.models import FCNet
from verify.train import TrainConfig, classification_error, train

NAME = "fc_regimes"
REGIMES = ("lazy", "feature")
FEWER_FACTOR = 2.0  # claim (b): PR_feature < PR_lazy / FEWER_FACTOR
ATOM_TOL = 1e-3

__all__ = ["NAME", "REGIMES", "parity_labels", "participation_ratio", "neuron_stats", "train_regime", "analyse",
           "run"]


def parity_labels(y) -> torch.Tensor:
    """+1 for an even class label, -1 for an odd one (float64)."""
    y = torch.as_tensor(y)
    return (1 - 2 * (y % 2)).to(torch.float64)


def participation_ratio(c) -> float:
    r""":math:`(\sum_h c_h)^2 / \sum_h c_h^2` of non-negative contributions (h when they are equal, 1 for one)."""
    c = np.abs(np.asarray(c, dtype=np.float64)).ravel()
    if c.size == 0 or not np.all(np.isfinite(c)) or c.sum() == 0:
        raise ValueError("participation_ratio needs finite contributions, not all zero")
    return float(c.sum() ** 2 / np.sum(c**2))


def neuron_stats(net: FCNet, w0: torch.Tensor, x_train) -> dict:
    """Participation ratio of c_h = |β_h| |w_h|, atoms (sign patterns on the training images), relative weight
    change |W - W0| / |W0| of a one-hidden-layer :class:`FCNet`."""
    from numerics.atoms import count_atoms
    with torch.no_grad():
        W = net.blocks[0].linear.weight.detach().to(torch.float64).cpu()
        beta = net.readout.weight.detach().to(torch.float64).cpu().reshape(-1)
        c = (beta.abs() * W.norm(dim=1)).numpy()
        rel = float((W - w0.to(W)).norm() / w0.to(W).norm())
    x = np.asarray(torch.as_tensor(x_train).reshape(len(x_train), -1).to(torch.float64).cpu())
    atoms = count_atoms(W.numpy(), beta.numpy() * W.norm(dim=1).numpy(), x=x, rel_tol=ATOM_TOL)
    return {"participation_ratio": participation_ratio(c), "atoms": atoms.n_atoms,
            "atoms_effective": atoms.n_effective, "relative_weight_change": rel, "width": int(W.shape[0])}


def train_regime(regime: str, size: str, seed: int, device: str, ds, *, progress: bool = True) -> tuple[dict, dict]:
    """Train the one-hidden-layer net of ``SIZES[size]["fc_regimes"]`` in ``regime`` with seed ``seed``; return
    (the per-seed record, the weights for the figure)."""
    p = SIZES[size]["fc_regimes"]
    alpha = p["alpha_lazy"] if regime == "lazy" else p["alpha_feature"]
    lr = p["lr"] if regime == "lazy" else p["lr"] * alpha
    n_tr = ds.n_train if p.get("n_train") is None else min(int(p["n_train"]), ds.n_train)
    x, y = ds.x_train[:n_tr].to(torch.float64), parity_labels(ds.y_train[:n_tr])
    xt, yt = ds.x_test.to(torch.float64), parity_labels(ds.y_test)
    net = FCNet(tuple(ds.shape), depth=1, width=p["width"], bias=False, seed=seed)
    w0 = net.blocks[0].linear.weight.detach().clone()
    cfg = TrainConfig(loss="hinge", alpha=alpha, lr=lr, epochs=p["epochs"], batch_size=p["batch_size"],
                      momentum=0.9, weight_decay=0.0, schedule="constant", stop_loss=0.0, seed=seed, device=device,
                      dtype="float64", eval_every=p["epochs"], progress=progress)
    t0 = time.perf_counter()
    res = train(net, x, y, cfg, x_test=xt, y_test=yt)
    pred = res.predictor.eval()
    rec = {"seed": seed, "regime": regime, "alpha": alpha, "lr": lr,
           "test_err": float(res.final.get("test_err", classification_error(pred, xt, yt))),
           "train_err": float(classification_error(pred, x, y)), "epochs_done": res.epochs_done,
           "stopped_at_zero_loss": res.stopped_early, "interrupted": res.interrupted, "train_seconds": res.seconds}
    rec.update(neuron_stats(net, w0, x))
    rec["stability"] = measure_output(pred, ds, seed=seed, n_probe=p["n_probe"], n_boot=p["n_boot"])
    rec["seconds"] = time.perf_counter() - t0
    with torch.no_grad():
        W = net.blocks[0].linear.weight.detach().to(torch.float64).cpu()
        c = net.readout.weight.detach().to(torch.float64).cpu().reshape(-1).abs() * W.norm(dim=1)
        top = torch.argsort(c, descending=True)[: p.get("top", 6)]
        weights = {"weights": W[top].reshape(len(top), *ds.shape).numpy(), "contribution": c[top].numpy(),
                   "contribution_share": (c[top] / c.sum()).numpy()}
    return rec, weights


def analyse(per_seed: dict[str, list[dict]], *, label: str = "mnist5k") -> tuple[list[dict], dict]:
    """Rows of claims (a)-(c) from per-seed records ``{"lazy": [rec, …], "feature": [rec, …]}`` (paired by seed;
    rec: test_err, participation_ratio, atoms, relative_weight_change, train_err, stability {D, G, R}) (pure
    function, unit-tested)."""
    lazy, feat = per_seed["lazy"], per_seed["feature"]
    if len(lazy) != len(feat) or not lazy:
        raise ValueError(f"lazy and feature need the same number (>= 1) of seeds, got {len(lazy)} and {len(feat)}")
    rows = []
    m = lambda recs, key: float(np.mean([r[key] for r in recs]))  # noqa: E731
    gm = lambda recs, q: float(10 ** np.mean([math.log10(r["stability"][q]) for r in recs]))  # noqa: E731
    for reg, recs in (("lazy", lazy), ("feature", feat)):
        rows.append(make_row(NAME, f"{label} parity {reg} (alpha={recs[0]['alpha']:g}): test / train error", None,
                             f"{m(recs, 'test_err'):.4f} / {m(recs, 'train_err'):.4f}", None, "info",
                             note=f"{len(recs)} seeds; |W - W0|/|W0| = {m(recs, 'relative_weight_change'):.3g}; "
                                  f"epochs {[r['epochs_done'] for r in recs]}"))
    stats = {}
    d_err = seed_interval([f["test_err"] - z["test_err"] for f, z in zip(feat, lazy)])
    stats["test_err_difference"] = d_err
    v = interval_verdict(d_err, above=0.0)
    note = (f"error lazy {m(lazy, 'test_err'):.4f}, feature {m(feat, 'test_err'):.4f}")
    if v == "fail" and d_err["mean"] < 0:
        note += ("; here the feature regime generalises better than the lazy one (see the fc_regimes docstring and "
                 "docs/results.md)")
    rows.append(make_row(NAME, f"{label} parity (a) test error: feature > lazy", "err_feature - err_lazy > 0",
                         fmt_seeds(d_err), "95% t-interval over seeds above 0", v, note=note))
    pr = seed_interval([log10_ratio(f["participation_ratio"], z["participation_ratio"]) for f, z in zip(feat, lazy)])
    stats["participation_log10_ratio"] = pr
    rows.append(make_row(NAME, f"{label} parity (b) effective neurons (participation ratio of |beta_h||w_h|): "
                         "feature far fewer", f"log10 PR_f/PR_l < log10(1/{FEWER_FACTOR:g})",
                         f"PR {m(feat, 'participation_ratio'):.1f} vs {m(lazy, 'participation_ratio'):.1f}; "
                         f"log10 ratio {fmt_seeds(pr)}",
                         f"95% t-interval over seeds below {-math.log10(FEWER_FACTOR):.3f}",
                         interval_verdict(pr, below=-math.log10(FEWER_FACTOR)),
                         note=f"width {lazy[0].get('width')}; PR = h for equal contributions, 1 for one neuron"))
    rows.append(make_row(NAME, f"{label} parity atoms (sign patterns on the training set): feature vs lazy", None,
                         f"{m(feat, 'atoms'):.1f} vs {m(lazy, 'atoms'):.1f}", None, "info",
                         note=f"numerics.atoms.count_atoms, rel_tol {ATOM_TOL:g}; effective "
                              f"{m(feat, 'atoms_effective'):.1f} vs {m(lazy, 'atoms_effective'):.1f}"))
    for q, claim in (("R", "(c) R_f"), ("D", "(c) D_f"), ("G", None)):
        iv = seed_interval([log10_ratio(f["stability"][q], z["stability"][q]) for f, z in zip(feat, lazy)])
        stats[f"{q}_log10_ratio"] = iv
        cell = f"{gm(feat, q):.3g} vs {gm(lazy, q):.3g}; log10 ratio {fmt_seeds(iv)}"
        if claim is None:
            rows.append(make_row(NAME, f"{label} parity G_f: feature vs lazy", None, cell, None, "info"))
            continue
        rows.append(make_row(NAME, f"{label} parity {claim}: feature > lazy", f"log10 {q}_f ratio > 0", cell,
                             "95% t-interval over seeds above 0", interval_verdict(iv, above=0.0),
                             note="geometric means over seeds; c = 3, delta = 1 pixel, per-sample matched noise"))
    return rows, stats


def run(*, quick: bool, out_dir: Path, seed: int = 0, device: str | None = None, size: str | None = None,
        data=None, progress: bool = True) -> dict:
    size = resolve_size(quick, size)
    device = resolve_device(device)
    out_dir = Path(out_dir)
    p = SIZES[size]["fc_regimes"]
    seeds = training_seeds(size, seed, p.get("seeds"))
    ds = image_data(size, seed, data)
    label = data_label(ds)
    per_seed, weights = {r: [] for r in REGIMES}, {}
    for s in seeds:
        for reg in REGIMES:
            rec, w = train_regime(reg, size, s, device, ds, progress=progress)
            per_seed[reg].append(rec)
            if s == seeds[0]:
                weights[reg] = w
    rows, stats = analyse(per_seed, label=label)
    figure = _figure_data(ds, weights, seed)
    data_rec = {"size": size, "device": device, "seeds": seeds, "params": p,
                "dataset": {**describe_data(ds, {**p, "n_test": None}), "task": "parity of the class label: "
                                                                                 "+1 even, -1 odd"},
                "per_seed": per_seed, "statistics": stats, "figure": figure}
    figures: list[str] = []
    draw_figure(NAME, "plot_fc_regimes", data_rec, out_dir / "fc_regimes.png",
                title=f"{label} parity, one hidden layer (h = {p['width']}): heaviest neurons' weights",
                rows=rows, figures=figures)
    return {"name": NAME, "rows": rows, "data": jsonable(data_rec), "figures": figures}


def _figure_data(ds, weights: dict, seed: int) -> dict:
    """A probe digit, its deformation at δ = 1 pixel (c = 3) and the top neurons' weights of both regimes."""
    from numerics.diffeo import deform, temperature_for_displacement

    from verify.experiments.architectures import C_CUTOFF, DELTA

    x = ds.x_test[:1].to(torch.float64).numpy()
    C, H, W = ds.shape
    T = temperature_for_displacement(DELTA, C_CUTOFF, H if H == W else (H, W))
    xd = deform(x, T, C_CUTOFF, seed=seed)
    out = {"digit": x[0], "digit_deformed": xd[0], "delta": DELTA, "c": C_CUTOFF, "shape": [C, H, W]}
    for reg, w in weights.items():
        out[reg] = {k: np.asarray(v) for k, v in w.items()}
    return out
