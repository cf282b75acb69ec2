"""Low-pass filter learning: Laplacian spectra of the conv filters over training (Tomasini et al. 2022, Sec. 3;
talk slide "weights become low-pass with training").

For every conv layer t and training checkpoint, c_{t,λ} = <(w_{ch,t}·Ψ_λ)²>_ch with Ψ_λ the eigenvectors of the
3×3 grid Laplacian (``theory.laplacian``, summed over degenerate eigenspaces; 1D nets: path-graph eigenvectors).
Prediction: with training the low-λ (pooling) part grows relative to the high-λ part.  Statistic per layer, the
*low-pass gain* at the end of training

    gain_t = [c_{T,0} / c_{0,0}] / [Σ_{λ>=3} c_{T,λ} / Σ_{λ>=3} c_{0,λ}]     (1D: μ = 0 vs μ = 3),

predicted > 1, with a 95% bootstrap interval over the layer's filters (channel pairs resampled, the same pairs at
t = 0 and t = T).  Verdict: one pass/fail row for the network, pass when the median of the per-layer gains exceeds 1
(low λ grows relative to high λ in most layers); the per-layer gains are reported for information (at the quick
sizes the first layer, which has a single input channel and few filters, is the least low-pass).

Networks: the 1D and 2D scale-detection CNNs of ``cnn_layers`` (shared cache), and, on real images, the
:class:`~verify.models.ConvNet` of the ``architectures`` experiment trained on the MNIST subset (``mnist5k``, or the
data set passed as ``data``; rows labelled with the data set's name; the 2021 paper measured the spectra on
CIFAR-10).

Seeds: ``SIZES[size]["seeds"]`` training runs (seeds ``seed, seed + 1, …``).  Rule: per seed the median over layers
of log10 gain_t; the row passes when the two-sided 95% Student-t interval over seeds of its mean lies above 0 (the
geometric-mean gain is > 1 beyond the training variation).  Per-layer rows give the geometric mean over seeds and
the range of the seeds.  :func:`analyse` on one seed keeps the single-run rule (median gain > 1); the figures show
the geometric mean over seeds of c_{t,λ}/c_{0,λ}.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from numerics.seeds import generator
from theory.laplacian import filter_spectrum, path_filter_spectrum
from verify.experiments.common import (draw_figure, fmt, fmt_seeds, interval_verdict, jsonable, make_row,
                                        resolve_device, resolve_size, seed_interval, trained_cnn, training_seeds)

NAME = "lowpass"


def spectra_over_training(checkpoints: list[dict], dim: int) -> dict:
    """{layer: {"epochs": [...], "lambdas": [...], "c": [[c_λ per epoch]]}} from the filter checkpoints."""
    out: dict[str, dict] = {}
    spec = filter_spectrum if dim == 2 else path_filter_spectrum
    for ck in checkpoints:
        for name, w in ck["filters"].items():
            lam, c = spec(w)
            d = out.setdefault(name, {"epochs": [], "lambdas": lam.tolist(), "c": []})
            d["epochs"].append(int(ck["epoch"]))
            d["c"].append(c.tolist())
    return out


def lowpass_gain(lambdas, c0, cT, *, high: float = 3.0) -> float:
    """[c_T(λ=0)/c_0(λ=0)] / [Σ_{λ>=high} c_T / Σ_{λ>=high} c_0]."""
    lam = np.asarray(lambdas)
    c0, cT = np.asarray(c0), np.asarray(cT)
    hi = lam >= high - 1e-9
    return float((cT[0] / c0[0]) / (cT[hi].sum() / c0[hi].sum()))


def gain_interval(w0: np.ndarray, wT: np.ndarray, dim: int, *, n_boot: int = 200, seed: int = 0) -> list[float]:
    """95% bootstrap interval of :func:`lowpass_gain` over the filters (channel pairs) of one layer."""
    spec = filter_spectrum if dim == 2 else path_filter_spectrum
    shape = (-1, 3, 3) if dim == 2 else (-1, 3)
    a, b = np.asarray(w0).reshape(shape), np.asarray(wT).reshape(shape)
    lam, _ = spec(a[:1])
    rng = generator(seed)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        reps.append(lowpass_gain(lam, spec(a[idx])[1], spec(b[idx])[1]))
    return [float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))]


def analyse(spectra: dict, dim: int, intervals: dict | None = None, *, label: str | None = None
            ) -> tuple[list[dict], dict]:
    """Rows of one training run (single-run rule: median gain > 1); ``label`` prefixes the rows (default "2D")."""
    tag = label or f"{dim}D"
    rows, gains = [], {}
    for i, (name, d) in enumerate(spectra.items()):
        g = lowpass_gain(d["lambdas"], d["c"][0], d["c"][-1])
        gains[name] = g
        ci = (intervals or {}).get(name)
        rows.append(make_row(NAME, f"{tag} layer {i + 1}: low-pass gain (λ=0 vs λ>=3), epoch {d['epochs'][-1]}",
                             "> 1", fmt(g, ci) if ci else g, None, "info"))
    med = float(np.median(list(gains.values())))
    rows.append(make_row(NAME, f"{tag} median over layers of the low-pass gain", "> 1", med, "> 1",
                         "pass" if med > 1 else "fail",
                         note=f"layers with gain > 1: {sum(g > 1 for g in gains.values())}/{len(gains)}"))
    return rows, gains


def analyse_seeds(per_seed: list[dict], dim: int, *, label: str | None = None) -> tuple[list[dict], dict]:
    """Rows from the spectra of several training runs (one :func:`spectra_over_training` dict per seed, same
    layers); the rule of the module docstring."""
    if not per_seed:
        raise ValueError("per_seed must hold at least one seed")
    tag = label or f"{dim}D"
    gains = [{name: lowpass_gain(d["lambdas"], d["c"][0], d["c"][-1]) for name, d in sp.items()} for sp in per_seed]
    names = list(per_seed[0])
    rows = []
    for i, name in enumerate(names):
        g = np.array([gs[name] for gs in gains])
        gm = float(np.exp(np.mean(np.log(g)))) if np.all(g > 0) else float("nan")
        epoch = per_seed[0][name]["epochs"][-1]
        rows.append(make_row(NAME, f"{tag} layer {i + 1}: low-pass gain (λ=0 vs λ>=3), epoch {epoch}", "> 1",
                             f"{gm:.3g} (seeds {g.min():.2g}…{g.max():.2g})", None, "info"))
    meds = [float(np.median(list(gs.values()))) for gs in gains]
    iv = seed_interval([np.log10(m) if m > 0 else float("nan") for m in meds])
    gm = 10 ** iv["mean"] if np.isfinite(iv["mean"]) else float("nan")
    lo, hi = iv["ci"]
    cell = (f"{gm:.3g} [{10 ** lo:.2g}, {10 ** hi:.2g}] ({iv['n']} seeds)" if np.isfinite(lo) else
            f"{gm:.3g} ({iv['n']} seed{'s' if iv['n'] != 1 else ''})")
    above = [sum(g > 1 for g in gs.values()) for gs in gains]
    rows.append(make_row(NAME, f"{tag} median over layers of the low-pass gain", "> 1", cell,
                         "95% t-interval over seeds of the mean log10 gain above 0", interval_verdict(iv, above=0.0),
                         note=f"geometric mean over seeds; per seed {', '.join(f'{m:.3g}' for m in meds)}; layers "
                              f"with gain > 1: {above} of {len(names)}; log10 {fmt_seeds(iv)}"))
    return rows, {"gains": gains, "median_gain": meds, "log10_median_gain": iv}


def mean_spectra(per_seed: list[dict]) -> dict:
    """Geometric mean over seeds of c_{t,λ}/c_{0,λ} (so that ``c[0]`` is 1), per layer, in the format of
    :func:`spectra_over_training` (for the figure)."""
    out = {}
    for name in per_seed[0]:
        ratios = [np.asarray(sp[name]["c"], dtype=float) / np.asarray(sp[name]["c"][0], dtype=float)
                  for sp in per_seed]
        n = min(len(r) for r in ratios)
        c = np.exp(np.mean([np.log(r[:n]) for r in ratios], axis=0))
        out[name] = {"epochs": per_seed[0][name]["epochs"][:n], "lambdas": per_seed[0][name]["lambdas"],
                     "c": c.tolist()}
    return out


def run(*, quick: bool, out_dir: Path, seed: int = 0, device: str | None = None, size: str | None = None,
        dims=(2, 1), real: bool = True, data=None, progress: bool = True) -> dict:
    """Spectra of the scale-detection CNNs (``dims``) and, with ``real``, of the ConvNet trained on real images
    (``data``: see :mod:`verify.experiments.architectures`)."""
    size = resolve_size(quick, size)
    device = resolve_device(device)
    out_dir = Path(out_dir)
    seeds = training_seeds(size, seed)
    rows, data_rec, figures = [], {"size": size, "seeds": seeds}, []
    for dim in dims:
        nets = [trained_cnn(dim, size, s, device, progress=progress) for s in seeds]
        per_seed = [spectra_over_training(n.result.checkpoints, dim) for n in nets]
        r, summary = analyse_seeds(per_seed, dim)
        rows += r
        data_rec[f"{dim}d"] = {"spectra": per_seed, **summary}
        draw_figure(NAME, "plot_spectra", mean_spectra(per_seed), out_dir / f"lowpass_{dim}d.png",
                    title=f"{dim}D CNN filters: c_λ(t)/c_λ(0) (Laplacian eigenbasis; geometric mean of "
                          f"{len(seeds)} seeds)", rows=rows, figures=figures)
    if real:
        from verify.experiments.architectures import data_label, image_data, trained_image_net

        ds = image_data(size, seed, data)
        label = data_label(ds)
        nets = [trained_image_net("convnet", size, s, device, data=ds, split_seed=seed, progress=progress)
                for s in seeds]
        per_seed = [spectra_over_training(n.result.checkpoints, 2) for n in nets]
        r, summary = analyse_seeds(per_seed, 2, label=f"{label} 2D ConvNet")
        rows += r
        data_rec["images"] = {"dataset": ds.describe(), "architecture": repr(nets[0].model).splitlines()[0],
                              "test_err": [n.test_err for n in nets], "spectra": per_seed, **summary}
        draw_figure(NAME, "plot_spectra", mean_spectra(per_seed), out_dir / f"lowpass_{label}.png",
                    title=f"{label}: ConvNet filters, c_λ(t)/c_λ(0) (geometric mean of {len(seeds)} seeds)",
                    rows=rows, figures=figures)
    return {"name": NAME, "rows": rows, "data": jsonable(data_rec), "figures": figures}
