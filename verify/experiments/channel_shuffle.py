"""Channel-pooling test: shuffle the input channels of every trained conv layer and recompute R_k (Tomasini et al.
2022, Sec. 3; ``verify.models.shuffle_channels``: W ← W[:, π_layer], an independent permutation per layer).

Shuffling keeps every filter's spatial structure (spatial pooling survives) and destroys the learned coupling
between channels (channel pooling is removed).  On the scale-detection task the stability comes from spatial
pooling only (talk: "channel pooling is not present, i.e. shuffling channels has no effect"), so the prediction is
R_k(shuffled) ≈ R_k(trained) at every layer.  Statistic: Δ_k = |log10 R_k(shuffled) - log10 R_k(trained)|
(decades), max over the hidden layers, predicted 0 within a tolerance of 0.3 decades (a factor 2; training itself
moves R_k by much more, reported alongside as |log10 R_k(init) - log10 R_k(trained)|, with the share of that gain
kept after shuffling).

Measured at the quick sizes (16 channels, 40 epochs from a He initialisation, CPU): shuffling removes a large part of
the stability gained in training in the deep layers (2D: 55-95% of the gain in log10 R_k for seeds 0-1), i.e. the
stability these small, briefly trained nets learn depends on the coupling between channels, and the row fails.  The paper's "no effect" concerns deep nets (VGG, 64-512 channels)
trained for 300 epochs on 28×28 images; the default (full, GPU) sizes are the ones to compare with it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from verify.experiments._common import (SIZES, jsonable, make_row, measure_layers, resolve_device, resolve_size,
                                        trained_cnn)
from verify.models import shuffle_channels

NAME = "channel_shuffle"
TOLERANCE_DECADES = 0.3


def analyse(dim: int, trained: list[dict], shuffled: list[dict], init: list[dict],
            tol: float = TOLERANCE_DECADES) -> tuple[list[dict], dict]:
    rows = []
    deltas, train_effect = [], []
    hidden = [d for d in trained if d["layer"] != "output"]
    for d_tr in hidden:
        k = d_tr["k"]
        d_sh = next(d for d in shuffled if d["k"] == k)
        d_in = next(d for d in init if d["k"] == k)
        delta = abs(math.log10(d_sh["R"]) - math.log10(d_tr["R"]))
        eff = abs(math.log10(d_in["R"]) - math.log10(d_tr["R"]))
        deltas.append(delta)
        train_effect.append(eff)
        rows.append(make_row(NAME, f"{dim}D layer {k}: R_k shuffled vs trained", d_tr["R"], d_sh["R"], None, "info",
                             note=f"|Δlog10 R| = {delta:.2f} (training moved it by {eff:.2f})"))
    worst = max(deltas)
    # share of the training-induced gain in log R kept after shuffling, at the layer training changed most
    j = int(np.argmax(train_effect))
    k_j = hidden[j]["k"]
    r_in = next(d for d in init if d["k"] == k_j)["R"]
    r_sh = next(d for d in shuffled if d["k"] == k_j)["R"]
    gain = math.log10(r_in) - math.log10(hidden[j]["R"])
    kept = (math.log10(r_in) - math.log10(r_sh)) / gain if gain != 0 else float("nan")
    note = (f"training moved log10 R_k by up to {max(train_effect):.2f} decades (layer {k_j}); "
            f"after shuffling {kept:.0%} of that gain is kept")
    if worst > tol:
        note += ("; the learned stability of this net relies on the coupling between channels (the paper's 'no "
                 "effect' is for deep nets trained to convergence; see the channel_shuffle docstring)")
    rows.append(make_row(NAME, f"{dim}D max_k |log10 R_k(shuffled) - log10 R_k(trained)| (decades)", 0.0, worst,
                         tol, "pass" if worst <= tol else "fail", note=note))
    return rows, {"delta_decades": deltas, "training_effect_decades": train_effect, "gain_kept": kept,
                  "gain_layer": k_j}


def run(*, quick: bool, out_dir: Path, seed: int = 0, device: str | None = None, size: str | None = None,
        dims=(2, 1), progress: bool = True) -> dict:
    size = resolve_size(quick, size)
    device = resolve_device(device)
    out_dir = Path(out_dir)
    rows, data, figures = [], {"size": size}, []
    for dim in dims:
        net = trained_cnn(dim, size, seed, device, progress=progress)
        shuffled_net = shuffle_channels(net.model, seed=seed + 17)
        shuffled = measure_layers(shuffled_net, net.task.x_probe, net.task.x_probe_diffeo, seed=seed + 2,
                                  n_boot=SIZES[size]["n_boot"])
        r, summary = analyse(dim, net.layers_trained, shuffled, net.layers_init)
        rows += r
        data[f"{dim}d"] = {"trained": net.layers_trained, "shuffled": shuffled, "init": net.layers_init, **summary}
        try:
            from verify.figures import plot_shuffle
            fig = out_dir / f"channel_shuffle_{dim}d.png"
            plot_shuffle(data[f"{dim}d"], fig, title=f"{dim}D: channel shuffling")
            figures.append(fig.name)
        except Exception as exc:
            data[f"{dim}d"]["figure_error"] = repr(exc)
    return {"name": NAME, "rows": rows, "data": jsonable(data), "figures": figures}
