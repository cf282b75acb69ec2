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
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from numerics.seeds import generator
from theory.laplacian import filter_spectrum, path_filter_spectrum
from verify.experiments._common import (draw_figure, fmt, jsonable, make_row, resolve_device, resolve_size,
                                        trained_cnn)

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


def analyse(spectra: dict, dim: int, intervals: dict | None = None) -> tuple[list[dict], dict]:
    rows, gains = [], {}
    for i, (name, d) in enumerate(spectra.items()):
        g = lowpass_gain(d["lambdas"], d["c"][0], d["c"][-1])
        gains[name] = g
        ci = (intervals or {}).get(name)
        rows.append(make_row(NAME, f"{dim}D layer {i + 1}: low-pass gain (λ=0 vs λ>=3), epoch {d['epochs'][-1]}",
                             "> 1", fmt(g, ci) if ci else g, None, "info"))
    med = float(np.median(list(gains.values())))
    rows.append(make_row(NAME, f"{dim}D median over layers of the low-pass gain", "> 1", med, "> 1",
                         "pass" if med > 1 else "fail",
                         note=f"layers with gain > 1: {sum(g > 1 for g in gains.values())}/{len(gains)}"))
    return rows, gains


def run(*, quick: bool, out_dir: Path, seed: int = 0, device: str | None = None, size: str | None = None,
        dims=(2, 1), progress: bool = True) -> dict:
    size = resolve_size(quick, size)
    device = resolve_device(device)
    out_dir = Path(out_dir)
    rows, data, figures = [], {"size": size}, []
    for dim in dims:
        net = trained_cnn(dim, size, seed, device, progress=progress)
        spectra = spectra_over_training(net.result.checkpoints, dim)
        first, last = net.result.checkpoints[0]["filters"], net.result.checkpoints[-1]["filters"]
        intervals = {name: gain_interval(first[name], last[name], dim, seed=seed) for name in spectra}
        r, gains = analyse(spectra, dim, intervals)
        rows += r
        data[f"{dim}d"] = {"spectra": spectra, "gains": gains, "gain_ci": intervals}
        draw_figure(NAME, "plot_spectra", spectra, out_dir / f"lowpass_{dim}d.png",
                    title=f"{dim}D CNN filters: c_λ(t)/c_λ(0) (Laplacian eigenbasis)", rows=rows, figures=figures)
    return {"name": NAME, "rows": rows, "data": jsonable(data), "figures": figures}
