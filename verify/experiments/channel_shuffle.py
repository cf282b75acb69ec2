"""Channel-pooling test: shuffle the input channels of every trained conv layer and recompute R_k (Tomasini et al.
2022, Sec. 3; ``verify.models.shuffle_channels``: W ← W[:, π_layer], an independent permutation per layer).

Shuffling keeps every filter's spatial structure (spatial pooling survives) and destroys the learned coupling
between channels (channel pooling is removed).  On the scale-detection task the stability comes from spatial
pooling only (talk: "channel pooling is not present, i.e. shuffling channels has no effect"), so the prediction is
R_k(shuffled) ≈ R_k(trained) at every layer.  Statistic: Δ_k = |log10 R_k(shuffled) - log10 R_k(trained)|
(decades), max over the hidden layers, predicted 0 within a tolerance of 0.3 decades (a factor 2; training itself
moves R_k by much more, reported alongside as |log10 R_k(init) - log10 R_k(trained)|, with the share of that gain
kept after shuffling).

Networks: the 2D test runs on the paper's own set-up where the size defines one (``SIZES[size]["shuffle2d"]``; full:
VGG11bn (:class:`verify.models.VGGNet`: batch norm, biases, max pooling) on 28×28 images, ξ = 14, gap 2, ~2100
training pairs, 300 epochs, measured after every ReLU and every pooling layer), otherwise (``--quick``, and 1D) on
the scale-detection ConvNet shared with ``cnn_layers``.  A CPU check of the VGG set-up (width ×1/8, 100 epochs,
P = 1024; not the paper's width or length) memorised (test error 0.35) and lost the whole training gain when
shuffled (last conv layer: log10 R -0.95 at init, -2.05 trained, -0.63 shuffled).  The full set-up itself, run
once on 2 CPU cores (VGG11bn at full width, 300 epochs, 62 min; seed 0, 500 probes, 3 permutations, measured in
float32): test error 0.000, shuffled nets 0.503.  Over the 13 ReLU / pooling outputs, log10 R_k (init / trained /
shuffled) is -0.10 / -0.08 / -0.08 after the first conv, -0.51 / -0.95 / -0.89 after the third (5th output),
-0.54 / -1.64 / -1.03 after the fourth, and -0.55 / -2.43 / -1.00 at the last pooling layer.  So the first 5
outputs (3 of the 8 convolutions) are unchanged by shuffling (|Δ| <= 0.18 decades), the deeper ones keep 24-46% of
their training gain in log R (13% at the output), and the maximum |Δ| is 1.42 decades.  This first-half /
second-half picture is the one the later version of the paper reports for CIFAR10; the talk's "no effect" holds
only for the first layers.

R_k(shuffled) is the geometric mean over ``N_PERMUTATIONS`` independent permutation sets: with one draw the
statistic scatters by 0.1-0.3 decades per hidden layer (0.8 at the output), as much as the tolerance (2D quick net,
seed 0, layer 6: log10 R = -0.21, -0.41, -0.91 for three draws, trained -1.46, init -0.15).

What was checked at the quick sizes (2D, n = 16, ξ = 9, depth 6, width 16, 40 epochs, CPU; investigation of
issue 5; R_k in log10, layer 6 unless said):

* ``shuffle_channels`` is right: every output channel keeps its multiset of input filters, one π per layer, the
  first (one-input-channel) layer is untouched, there are no biases.  Shuffling the *initial* net changes log10 R_k
  by <= 0.3 (a random net shuffled is another random net), which is the floor of the statistic.
* The measurement is not the cause: per-sample noise |η_i| = |τx_i - x_i| instead of the rms-matched noise, and
  the authors' 2D moves (round(t/|t|), t ~ N(0, I₂), clipped) instead of ±1/0 per axis, change every log10 R_k by
  <= 0.05 and leave the kept share of the gain unchanged (0.37-0.41 at layers 4-6).
* The net is channel-coupled, not only spatially pooled: averaged over 5 permutations, shuffling keeps 37-40% of
  the gain at layers 4-6 (seed 1: 26-59%), and the shuffled nets classify at chance (test error 0.50 against 0.04).
  Writing W = W0 + ΔW: shuffling only W0 keeps the whole gain (≈ 1.0), shuffling only ΔW loses about half of it
  (kept ≈ 0.3-0.7 per draw); ΔW alone is a stable net (log10 R_6 = -1.55) that shuffling ruins (-0.68).  The
  learned ΔW is 20-60% of |W0| and has 14-41% of its weight in the channel-constant component (1/16 for a random
  filter bank), 16-50% in the spatially constant filter: training adds low-pass structure, but coupled across
  channels, so spatial structure alone (shuffled vs init) carries only a third of the gain.  Splitting ΔW into its
  channel-constant part (shuffle-invariant) and the rest: W0 + const part gives log10 R_5, R_6 = -0.18, -0.22
  (init -0.08, -0.15), W0 + the rest gives -0.74, -1.37 (trained -0.96, -1.46): the gain sits in the
  channel-varying part of the learned weights.
* Architecture, not measurement, separates this set-up from the paper's: the VGG nets there have max-pooling layers
  (fixed spatial pooling, untouched by shuffling) and batch norm.  Adding BN alone: Δ = 1.03 decades (kept 0.2).
  Adding 2×2 max pooling after layers 2 and 4: Δ = 0.31 / 0.39 (seeds 0 / 1; no BN) and 0.33 / 0.81 (with BN), i.e.
  near the tolerance, because the pooling gives most of the stability at init and training adds less.  BN + max
  pooling on the paper's 28×28, ξ = 14, gap 2, P ≈ 2000 data: Δ = 0.89 / 0.84 (seeds 0 / 1; kept 0.19 / 0.26 at
  layer 6); at width 32 Δ = 1.19 (kept 0.14), i.e. wider is not closer.  In every variant the gain kept is
  largest in the first layers and smallest in the last ones (the later abstract of the paper: "spatial pooling in
  the first half of the net, and channel pooling in the second half", there for CIFAR10).  So no variant reproduces
  "no effect" at these sizes; the quick row fails because these small stride-1 nets without pooling layers must
  learn all their pooling, and their deep layers learn it through channel-coupled weights.
* The gain being tested is itself fragile in this set-up: trained 120 instead of 40 epochs (test error 0.003
  against 0.04) the same net ends with log10 R_k ≈ -0.1…+0.15 at every hidden layer (no gain; shuffling then
  lowers R_k, Δ = 0.43); with the authors' input scale (active pixel n²/2, mean pixel 1, instead of 1; for a
  zero-bias ReLU net this only rescales the output, i.e. the training regime) R_k rises with training (+0.7 at
  layers 3-6, seed 0; Δ = 0.68 / 1.08 for seeds 0 / 1).  The width-64 / 40-epoch and width-32 / 100-epoch CPU runs
  of this ConvNet did not reach the paper's regime either, and a width-32 / 40-epoch run at lr 0.05 did not train
  at all (test error 0.5); the full size therefore runs the paper's VGG11bn set-up (above), where the same
  first-layers-only picture holds.

Seeds: ``SIZES[size]["seeds"]`` training runs (seeds ``seed, seed + 1, …``, the nets of ``cnn_layers`` from the
shared cache).  Rule: per seed the statistic max_k Δ_k (with R_k(shuffled) the geometric mean over its
``N_PERMUTATIONS`` permutation sets); the row passes when the two-sided 95% Student-t interval over seeds of its
mean lies below the tolerance.  The per-layer rows give geometric means over seeds; the partial-shuffle diagnostic
is computed for the first seed only (information).  :func:`analyse` on one seed keeps the single-run rule.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from verify.experiments.common import (SIZES, draw_figure, fmt_seeds, interval_verdict, jsonable, make_row,
                                        mean_layers, measure_layers, resolve_device, resolve_size, seed_interval,
                                        trained_cnn, training_seeds)
from verify.models import shuffle_channels
from verify.train import classification_error

NAME = "channel_shuffle"
TOLERANCE_DECADES = 0.3


def _log10(v) -> float:
    """log10 of a positive finite value, NaN for anything else (0, negative, NaN, inf or None)."""
    return math.log10(v) if v is not None and math.isfinite(v) and v > 0 else float("nan")


def analyse(dim: int, trained: list[dict], shuffled: list[dict], init: list[dict],
            tol: float = TOLERANCE_DECADES) -> tuple[list[dict], dict]:
    rows = []
    deltas, train_effect = [], []
    hidden = [d for d in trained if d["layer"] != "output"]
    for d_tr in hidden:
        k = d_tr["k"]
        d_sh = next(d for d in shuffled if d["k"] == k)
        d_in = next(d for d in init if d["k"] == k)
        delta = abs(_log10(d_sh["R"]) - _log10(d_tr["R"]))
        eff = abs(_log10(d_in["R"]) - _log10(d_tr["R"]))
        deltas.append(delta)
        train_effect.append(eff)
        rows.append(make_row(NAME, f"{dim}D layer {k}: R_k shuffled vs trained", d_tr["R"], d_sh["R"], None, "info",
                             note=f"|Δlog10 R| = {delta:.2f} (training moved it by {eff:.2f})"))
    # a layer whose R_k (trained or shuffled) is not a finite positive number fails the row: Python's max() would skip
    # a NaN that is not first, and "nan > tol" is False
    bad = [d["k"] for d, dl in zip(hidden, deltas) if not math.isfinite(dl)]
    worst = float(np.max(deltas)) if not bad else float("nan")
    # share of the training-induced gain in log R kept after shuffling, at the layer training changed most
    effects = np.asarray(train_effect)
    j = int(np.nanargmax(effects)) if np.isfinite(effects).any() else 0
    k_j = hidden[j]["k"]
    r_in = next(d for d in init if d["k"] == k_j)["R"]
    r_sh = next(d for d in shuffled if d["k"] == k_j)["R"]
    gain = _log10(r_in) - _log10(hidden[j]["R"])
    kept = (_log10(r_in) - _log10(r_sh)) / gain if gain != 0 else float("nan")
    note = (f"training moved log10 R_k by up to {effects[j]:.2f} decades (layer {k_j}); "
            f"after shuffling {kept:.0%} of that gain is kept")
    if bad:
        note += f"; R_k is not finite and positive at layers {bad}"
    elif worst > tol:
        note += ("; the learned stability of this net relies on the coupling between channels (see the "
                 "partial-shuffle row; the paper's VGG nets also have max-pooling layers and BN; see the "
                 "channel_shuffle docstring)")
    # how deep shuffling leaves R_k alone: the last layer of the unbroken run from the input with |Δ| <= tol
    intact = next((i for i, dl in enumerate(deltas) if not dl <= tol), len(deltas))
    rows.append(make_row(NAME, f"{dim}D layers with R_k unchanged by shuffling (|Δlog10 R| <= {tol}), from the input",
                         None, f"{intact} of {len(deltas)}", None, "info",
                         note="the later version of the paper: spatial pooling in the first half of the net, "
                              "channel pooling in the second half"))
    rows.append(make_row(NAME, f"{dim}D max_k |log10 R_k(shuffled) - log10 R_k(trained)| (decades)", 0.0, worst,
                         tol, "pass" if (not bad and worst <= tol) else "fail", note=note))
    return rows, {"delta_decades": deltas, "training_effect_decades": train_effect, "gain_kept": kept,
                  "gain_layer": k_j, "layers_intact": intact}


N_PERMUTATIONS = 5  # independent permutation sets averaged (in log R); one draw scatters by 0.1-0.3 decades


def analyse_seeds(dim: int, trained: list[list[dict]], shuffled: list[list[dict]], init: list[list[dict]],
                  tol: float = TOLERANCE_DECADES) -> tuple[list[dict], dict]:
    """Rows from several seeds (per seed: the trained, shuffled (mean over permutations) and initial layer lists);
    the rule of the module docstring."""
    if not (len(trained) == len(shuffled) == len(init)) or not trained:
        raise ValueError("trained, shuffled and init must hold the same number (>= 1) of seeds")
    per = [analyse(dim, t, s, i, tol)[1] for t, s, i in zip(trained, shuffled, init)]
    worst = [float(np.max(p["delta_decades"])) if all(math.isfinite(d) for d in p["delta_decades"]) else float("nan")
             for p in per]
    m_tr, m_sh, m_in = mean_layers(trained), mean_layers(shuffled), mean_layers(init)
    rows = []
    hidden = [d for d in m_tr if d["layer"] != "output"]
    for j, d_tr in enumerate(hidden):
        k = d_tr["k"]
        d_sh = next(d for d in m_sh if d["k"] == k)
        deltas = [p["delta_decades"][j] for p in per]
        effs = [p["training_effect_decades"][j] for p in per]
        rows.append(make_row(NAME, f"{dim}D layer {k}: R_k shuffled vs trained", d_tr["R"], d_sh["R"], None, "info",
                             note=f"geometric means over {len(per)} seeds; |Δlog10 R| per seed "
                                  f"{', '.join(f'{v:.2f}' for v in deltas)} (training moved it by "
                                  f"{', '.join(f'{v:.2f}' for v in effs)})"))
    intact = [p["layers_intact"] for p in per]
    rows.append(make_row(NAME, f"{dim}D layers with R_k unchanged by shuffling (|Δlog10 R| <= {tol}), from the input",
                         None, f"{intact} of {len(hidden)} (per seed)", None, "info",
                         note="the later version of the paper: spatial pooling in the first half of the net, "
                              "channel pooling in the second half"))
    iv = seed_interval(worst)
    kept = [p["gain_kept"] for p in per]
    note = (f"per seed max |Δ| {', '.join(f'{w:.2f}' for w in worst)}; share of the training gain kept after "
            f"shuffling (at the layer training changed most) {', '.join(f'{v:.0%}' for v in kept)}")
    verdict = interval_verdict(iv, below=tol)
    if verdict == "fail" and math.isfinite(iv["mean"]) and iv["mean"] > tol:
        note += ("; the learned stability of this net relies on the coupling between channels (see the "
                 "partial-shuffle row; the paper's VGG nets also have max-pooling layers and BN; see the "
                 "channel_shuffle docstring)")
    rows.append(make_row(NAME, f"{dim}D max_k |log10 R_k(shuffled) - log10 R_k(trained)| (decades)", 0.0,
                         fmt_seeds(iv), f"95% t-interval over seeds below {tol}", verdict, note=note))
    return rows, {"per_seed": per, "max_delta": iv, "layers_intact": intact, "gain_kept": kept,
                  "gain_layer": [p["gain_layer"] for p in per]}


def mean_over_permutations(runs: list[list[dict]]) -> list[dict]:
    """Layer-wise geometric mean of D, G, R over the shuffled copies (one layer list per permutation set);
    ``*_ci`` becomes the [min, max] over the permutations (the spread due to the choice of π, which a single draw
    leaves in the statistic: 0.1-0.3 decades per hidden layer at the quick sizes), ``*_se`` the standard error of
    the mean of log values propagated to the value (se(log10 R)·R·ln 10)."""
    if not runs:
        raise ValueError("runs must hold at least one layer list")
    out = []
    for per_layer in zip(*runs):
        d = {"k": per_layer[0]["k"], "layer": per_layer[0]["layer"]}
        for q in ("D", "G", "R"):
            logs = np.log10([max(e[q], np.finfo(float).tiny) for e in per_layer])
            v = float(10 ** logs.mean())
            se = float(logs.std(ddof=1) / math.sqrt(len(logs))) * v * math.log(10) if len(logs) > 1 else float("nan")
            d[q], d[q + "_se"], d[q + "_ci"] = v, se, [float(10 ** logs.min()), float(10 ** logs.max())]
        out.append(d)
    return out


@torch.no_grad()
def shuffle_part(trained: torch.nn.Module, init: torch.nn.Module, *, part: str, seed: int) -> torch.nn.Module:
    """Copy of ``trained`` with W = W0 + ΔW (ΔW = W - W0, the change made by training) where only one part has
    its input channels permuted: ``part="learned"``: W0 + ΔW[:, π]; ``part="init"``: W0[:, π] + ΔW (independent
    π per layer, as in :func:`verify.models.shuffle_channels`; shuffling both parts with one π is that function).
    Tells whether the stability gained in training sits in a channel-coupled ΔW (the "learned" copy loses it,
    the "init" copy keeps it) or in the spatial structure of the filters (both keep it)."""
    if part not in ("learned", "init"):
        raise ValueError(f"part must be 'learned' or 'init', got {part!r}")
    g = torch.Generator()
    g.manual_seed(int(seed))
    new = copy.deepcopy(trained)
    convs0 = [m for m in init.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]
    convs = [m for m in new.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]
    if len(convs0) != len(convs):
        raise ValueError("trained and init must have the same conv layers")
    for c0, c in zip(convs0, convs):
        w0 = c0.weight.to(c.weight)
        dw = c.weight - w0
        perm = torch.randperm(w0.shape[1], generator=g).to(w0.device)
        c.weight.copy_(w0 + dw[:, perm] if part == "learned" else w0[:, perm] + dw)
    return new


def _gain_kept(init: list[dict], trained: list[dict], other: list[dict], k: int) -> float:
    r = {name: next(d for d in lst if d["k"] == k)["R"] for name, lst in
         (("init", init), ("trained", trained), ("other", other))}
    gain = math.log10(r["init"]) - math.log10(r["trained"])
    return (math.log10(r["init"]) - math.log10(r["other"])) / gain if gain != 0 else float("nan")


def run(*, quick: bool, out_dir: Path, seed: int = 0, device: str | None = None, size: str | None = None,
        dims=(2, 1), progress: bool = True, n_permutations: int = N_PERMUTATIONS) -> dict:
    size = resolve_size(quick, size)
    device = resolve_device(device)
    out_dir = Path(out_dir)
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations must be an integer >= 1, got {n_permutations!r}")
    seeds = training_seeds(size, seed)
    rows, data, figures = [], {"size": size, "n_permutations": n_permutations, "seeds": seeds}, []
    n_boot = SIZES[size]["n_boot"]
    for dim in dims:
        config = "shuffle2d" if dim == 2 and "shuffle2d" in SIZES[size] else None
        per_seed, trained_l, shuffled_l, init_l = [], [], [], []
        for s in seeds:
            net = trained_cnn(dim, size, s, device, progress=progress, config=config)
            task = net.task

            def measure(model, s=s + 2, task=task):
                return measure_layers(model, task.x_probe, task.x_probe_diffeo, seed=s, n_boot=n_boot)

            # permutation seeds: s + 17 + i for the full shuffles, the next n_permutations for the partial ones
            # (disjoint for every n_permutations; they overlapped from n_permutations = 15 on)
            copies = [shuffle_channels(net.model, seed=s + 17 + i) for i in range(n_permutations)]
            per_perm = [measure(m) for m in copies]
            shuffled = mean_over_permutations(per_perm)
            trained_l.append(net.layers_trained)
            shuffled_l.append(shuffled)
            init_l.append(net.layers_init)
            err_tr = classification_error(net.model, task.x_test, task.y_test)
            err_sh = float(np.mean([classification_error(m, task.x_test, task.y_test) for m in copies]))
            rec = {"seed": s, "trained": net.layers_trained, "shuffled": shuffled, "init": net.layers_init,
                   "shuffled_per_permutation": per_perm, "test_err_trained": err_tr, "test_err_shuffled": err_sh}
            if s == seeds[0]:
                # diagnostics (info, first seed): which part of W = W0 + ΔW carries the gain
                k_j = analyse(dim, net.layers_trained, shuffled, net.layers_init)[1]["gain_layer"]
                rec["gain_kept_partial_shuffle"] = {
                    part: _gain_kept(net.layers_init, net.layers_trained, mean_over_permutations(
                        [measure(shuffle_part(net.model, net.init_model, part=part,
                                              seed=s + 17 + n_permutations + i)) for i in range(n_permutations)]), k_j)
                    for part in ("learned", "init")}
                rec["gain_layer"] = k_j
                first = (net, rec)
            per_seed.append(rec)
        r, summary = analyse_seeds(dim, trained_l, shuffled_l, init_l)
        rows += r
        net0, rec0 = first
        kept = rec0["gain_kept_partial_shuffle"]
        rows.append(make_row(NAME, f"{dim}D layer {rec0['gain_layer']}: share of the training gain in log10 R_k kept "
                             "when only ΔW = W - W0 is shuffled / only W0 is shuffled", None,
                             f"{kept['learned']:.2f} / {kept['init']:.2f}", None, "info",
                             note=f"seed {seeds[0]}, mean of {n_permutations} π; learned low, init ≈ 1: the gain sits "
                                  "in the channel coupling of the learned ΔW; both ≈ 1: in the filters' spatial "
                                  "structure"))
        err_tr = float(np.mean([r_["test_err_trained"] for r_ in per_seed]))
        err_sh = float(np.mean([r_["test_err_shuffled"] for r_ in per_seed]))
        rows.append(make_row(NAME, f"{dim}D test error: trained / channels shuffled", None,
                             f"{err_tr:.3f} / {err_sh:.3f}", None, "info", note=f"mean over {len(seeds)} seeds"))
        data[f"{dim}d"] = {"architecture": repr(net0.model), "set_up": net0.task.params,
                           "trained": mean_layers(trained_l), "shuffled": mean_layers(shuffled_l),
                           "init": mean_layers(init_l), "per_seed": per_seed, "test_err_trained": err_tr,
                           "test_err_shuffled": err_sh, **summary}
        draw_figure(NAME, "plot_shuffle", data[f"{dim}d"], out_dir / f"channel_shuffle_{dim}d.png",
                    title=f"{dim}D: channel shuffling (mean of {n_permutations} π, geometric mean of {len(seeds)} "
                          "seeds)", rows=rows, figures=figures)
    return {"name": NAME, "rows": rows, "data": jsonable(data), "figures": figures}
