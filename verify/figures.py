"""PNG figures of ``python -m verify.compare`` (matplotlib, Agg backend; nothing is shown on screen).

* :func:`plot_layers` — D_k, G_k, R_k against depth k (log-log): measured points with 95% intervals (trained and
  at initialisation), the hand-constructed network's exact values as a line, the fitted power law of the trained
  net over the pooling stage, and k̃ (receptive field = ξ) marked.
* :func:`plot_spectra` — Laplacian spectra of the filters over training, c_{t,λ}/c_{0,λ}, one panel per layer.
* :func:`plot_shuffle` — R_k of the trained net, its channel-shuffled copy and the initial net.
* :func:`plot_handcrafted` — exact vs Monte-Carlo D_k, G_k, R_k of the hand-constructed network.
* :func:`plot_architectures` — test error against R_f across architectures (log-log, error bars over seeds), and
  R_f at initialisation against after training.
* :func:`plot_fc_regimes` — the heaviest neurons' first-layer weights of a lazy and a feature-regime FC net as
  images, next to a deformed digit.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_layers", "plot_spectra", "plot_shuffle", "plot_handcrafted", "plot_architectures",
           "plot_fc_regimes"]


def _hidden(layers):
    return [d for d in layers if d.get("layer") != "output"]


def _errbar(ax, layers, q, **kw):
    ls = _hidden(layers)
    k = np.array([d["k"] for d in ls], dtype=float)
    v = np.array([d[q] for d in ls], dtype=float)
    ci = np.array([d.get(q + "_ci", [np.nan, np.nan]) for d in ls], dtype=float)
    lo = np.where(np.isfinite(ci[:, 0]), np.clip(v - ci[:, 0], 0, None), 0)
    hi = np.where(np.isfinite(ci[:, 1]), np.clip(ci[:, 1] - v, 0, None), 0)
    ax.errorbar(k, v, yerr=[lo, hi], capsize=2, **kw)


def _plain_log_axes(ax, x: bool = True, y: bool = True) -> None:
    """Log axes with plain-number tick labels (the ranges here span one or two decades)."""
    from matplotlib.ticker import (FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter,
                                   NullLocator)

    fmt = FuncFormatter(lambda v, _: f"{v:.3g}")
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            lo, hi = axis.get_view_interval()
            if axis is ax.xaxis and hi / max(lo, 1e-12) < 100:  # depth axis: every integer layer
                ticks = [t for t in range(1, int(hi) + 1) if t >= lo]
                if len(ticks) > 12:
                    ticks = [t for t in ticks if t in (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100)]
                axis.set_major_locator(FixedLocator(ticks))
                axis.set_minor_locator(NullLocator())
            elif 0 < lo < hi and hi / lo < 30:  # within about a decade: label 1, 2, 5 x 10^n, not only 10^n,
                loc = LogLocator(base=10, subs=(1.0, 2.0, 5.0))  # or evenly spaced values in a narrow range
                if sum(lo <= t <= hi for t in loc.tick_values(lo, hi)) < 3:
                    loc = MaxNLocator(nbins=5)
                axis.set_major_locator(loc)
            axis.set_major_formatter(fmt)
            axis.set_minor_formatter(NullFormatter())


def _layer_axes(ax, ylabel: str) -> None:
    """Log-log axes of a quantity against the layer k (plain tick labels on k), labelled, with a legend."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axes(ax, y=False)
    ax.set_xlabel("layer k")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_layers(data: dict, path, *, title: str = "") -> Path:
    """Three log-log panels D_k, G_k, R_k vs k from a ``cnn_layers`` data block (keys trained, init, theory, fits,
    k_tilde)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    kt = data.get("k_tilde")
    for ax, q in zip(axes, ("D", "G", "R")):
        _errbar(ax, data["trained"], q, fmt="o", color="C0", label="trained")
        _errbar(ax, data["init"], q, fmt="s", mfc="none", color="C7", label="init")
        th = data.get("theory")
        if th:
            pts = [(d["k"], d[q]) for d in th if d.get(q) is not None and d["name"] != "output" and d[q] > 0]
            if pts:
                k, v = zip(*pts)
                ax.plot(k, v, "-", color="C3", label="hand-constructed (exact)")
        fit = (data.get("fits") or {}).get(q, {}).get("trained")
        if fit:
            kk = np.linspace(min(fit["k"]), max(fit["k"]), 20)
            ax.plot(kk, fit["prefactor"] * kk ** fit["exponent"], "--", color="C0",
                    label=f"fit k^{fit['exponent']:.2f}")
        if kt:
            ax.axvline(kt, ls=":", color="k", lw=0.8, label="k~ (receptive field = xi)")
        _layer_axes(ax, f"{q}_k")
    fig.suptitle(title)
    return _save(fig, path)


def plot_spectra(spectra: dict, path, *, title: str = "") -> Path:
    """c_{t,λ}/c_{0,λ} over training epochs, one panel per conv layer, one curve per Laplacian eigenvalue λ."""
    names = list(spectra)
    ncol = min(len(names), 5)
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.8 * nrow), squeeze=False, constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    for i, name in enumerate(names):
        ax = axes[i // ncol][i % ncol]
        d = spectra[name]
        c = np.array(d["c"], dtype=float)
        lam = np.array(d["lambdas"], dtype=float)
        ratio = c / c[0]
        for j, l in enumerate(lam):
            ax.plot(d["epochs"], ratio[:, j], color=cmap(l / max(lam.max(), 1)), label=f"λ={l:g}")
        ax.set_yscale("log")
        _plain_log_axes(ax, x=False)
        ax.set_title(f"layer {i + 1}", fontsize=9)
        ax.set_xlabel("epoch")
        if i % ncol == 0:
            ax.set_ylabel("c_λ(t) / c_λ(0)")
        if i == 0:
            ax.legend(fontsize=6)
    for j in range(len(names), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    fig.suptitle(title)
    return _save(fig, path)


def plot_shuffle(data: dict, path, *, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.8), constrained_layout=True)
    _errbar(ax, data["trained"], "R", fmt="o-", color="C0", label="trained")
    _errbar(ax, data["shuffled"], "R", fmt="^--", color="C1", label="trained, channels shuffled")
    _errbar(ax, data["init"], "R", fmt="s:", mfc="none", color="C7", label="init")
    _layer_axes(ax, "R_k")
    ax.set_title(title)
    return _save(fig, path)


def plot_handcrafted(data: dict, path, *, title: str = "") -> Path:
    """D_k, G_k, R_k of the hand-constructed net over its layers: torch Monte Carlo (2 s.e. bars), the exact values,
    the numba simulator. The output (after the readout: G ~ 10^4 in 2D) would squash the layers' scale, so its
    measured values are written in the panel titles instead of plotted."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    out_k = {d["k"] for d in data["exact"] if d.get("name") == "output"}
    for ax, q in zip(axes, ("D", "G", "R")):
        m = [d for d in data["measured"] if d["k"] not in out_k]
        k = np.array([d["k"] for d in m], dtype=float)
        v = np.array([d[q] for d in m], dtype=float)
        se = np.array([d[q + "_se"] for d in m], dtype=float)
        ax.errorbar(k, v, yerr=2 * np.nan_to_num(se), fmt="o", color="C0", capsize=2, label="Monte Carlo (torch)")
        ex = [(d["k"], d[q]) for d in data["exact"] if d.get(q) is not None and d[q] > 0 and d["k"] not in out_k]
        if ex:
            kk, vv = zip(*ex)
            ax.plot(kk, vv, "-", color="C3", label="exact")
        sim = [(d["k"], d[q]) for d in (data.get("simulated") or [])
               if d.get(q) is not None and d[q] > 0 and d["k"] not in out_k]
        if sim:
            kk, vv = zip(*sim)
            ax.plot(kk, vv, "x", color="C2", label="numba simulator")
        outs = [d for d in data["measured"] if d["k"] in out_k]
        if outs:
            ax.set_title(f"layers 1..{int(k.max())}; output: {q} = {outs[0][q]:.3g}", fontsize=9)
        _layer_axes(ax, f"{q}_k")
    fig.suptitle(title)
    return _save(fig, path)


def plot_architectures(data: dict, path, *, title: str = "") -> Path:
    """From an ``architectures`` data block (``summary``: per architecture err_mean / err_sd and log10 R means /
    s.d. at init and after training; ``fit``, ``paper_fit``): left, test error against R_f after training (log-log,
    ± 1 s.d. over seeds, geometric for R_f) with the fitted power law and the paper's CIFAR-10 line 0.2 R_f^{1/2};
    right, R_f at initialisation against after training (the diagonal: no change)."""
    summ = data["summary"]
    labels = {a: (data.get("architectures", {}).get(a, {}) or {}).get("label", a) for a in summ}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    allR = []
    for i, (arch, s) in enumerate(summ.items()):
        lr, sr = s["R_trained_log10_mean"], np.nan_to_num(s["R_trained_log10_sd"])
        e, se = s["err_mean"], np.nan_to_num(s["err_sd"])
        if not (np.isfinite(lr) and e > 0):
            continue
        R = 10**lr
        allR.append(R)
        ax.errorbar([R], [e], xerr=[[R - 10 ** (lr - sr)], [10 ** (lr + sr) - R]],
                    yerr=[[min(se, e * 0.999)], [se]], fmt="o", color=f"C{i}", capsize=3, label=labels[arch])
        li, si = s["R_init_log10_mean"], np.nan_to_num(s["R_init_log10_sd"])
        if np.isfinite(li):
            bx.errorbar([10**li], [R], xerr=[[10**li - 10 ** (li - si)], [10 ** (li + si) - 10**li]],
                        yerr=[[R - 10 ** (lr - sr)], [10 ** (lr + sr) - R]], fmt="o", color=f"C{i}", capsize=3,
                        label=labels[arch])
            allR.append(10**li)
    if allR:
        rr = np.geomspace(min(allR) / 2, max(allR) * 2, 50)
        fit = data.get("fit")
        if fit:
            ax.plot(rr, fit["prefactor"] * rr ** fit["exponent"], "--", color="k", lw=1,
                    label=f"fit {fit['prefactor']:.2g} R^{fit['exponent']:.2f}")
        pf = data.get("paper_fit") or {}
        if pf:
            ax.plot(rr, pf["prefactor"] * rr ** pf["exponent"], ":", color="C7", lw=1.2,
                    label=f"paper (CIFAR-10): {pf['prefactor']:g} R^{pf['exponent']:g}")
        bx.plot(rr, rr, "-", color="C7", lw=0.8, label="no change")
    for a in (ax, bx):
        a.set_xscale("log")
        a.set_yscale("log")
    ax.set_xlabel("R_f after training")
    ax.set_ylabel("test error")
    ax.legend(fontsize=7)
    ax.set_title("test error vs relative stability (± 1 s.d. over seeds)", fontsize=9)
    bx.set_xlabel("R_f at initialisation")
    bx.set_ylabel("R_f after training")
    bx.legend(fontsize=7)
    bx.set_title("training moves R_f", fontsize=9)
    fig.suptitle(title)
    return _save(fig, path)


def _image_of(w: np.ndarray) -> np.ndarray:
    """(C, H, W) weights or image -> (H, W): itself for one channel, the per-pixel norm over channels else."""
    w = np.asarray(w, dtype=float)
    return w[0] if w.shape[0] == 1 else np.sqrt((w**2).sum(0))


def plot_fc_regimes(data: dict, path, *, title: str = "") -> Path:
    """From a ``fc_regimes`` data block (``figure``: digit, digit_deformed, delta and per regime the top neurons'
    weights (k, C, H, W) and contribution shares): top row, a probe digit, its deformation and their difference;
    then one row per regime with the first-layer weights of its heaviest neurons (colour scale symmetric per
    image)."""
    f = data["figure"]
    regimes = [r for r in ("lazy", "feature") if r in f]
    k = max(len(f[r]["weights"]) for r in regimes) if regimes else 1
    ncol = max(k, 3)
    fig, axes = plt.subplots(1 + len(regimes), ncol, figsize=(1.7 * ncol, 1.9 * (1 + len(regimes))),
                             squeeze=False, constrained_layout=True)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
        a.axis("off")
    x, xd = _image_of(f["digit"]), _image_of(f["digit_deformed"])
    for j, (img, name, cmap) in enumerate(((x, "probe digit", "gray"), (xd, f"deformed, delta = {f['delta']:g} px",
                                                                          "gray"),
                                           (xd - x, "difference", "RdBu_r"))):
        a = axes[0][j]
        a.axis("on")
        a.set_xticks([])
        a.set_yticks([])
        v = np.abs(img).max() or 1.0
        a.imshow(img, cmap=cmap, vmin=-v if cmap != "gray" else None, vmax=v if cmap != "gray" else None)
        a.set_title(name, fontsize=7)
    for i, reg in enumerate(regimes, 1):
        ws, share = f[reg]["weights"], f[reg].get("contribution_share", [np.nan] * len(f[reg]["weights"]))
        for j, (w, sh) in enumerate(zip(ws, share)):
            a = axes[i][j]
            a.axis("on")
            a.set_xticks([])
            a.set_yticks([])
            img = _image_of(np.asarray(w))
            v = np.abs(img).max() or 1.0
            a.imshow(img, cmap="RdBu_r", vmin=-v, vmax=v)
            a.set_title(f"{reg} #{j + 1} ({100 * float(sh):.1f}%)", fontsize=7)
    fig.suptitle(title + "\n(share: |beta_h| |w_h| / sum over neurons)", fontsize=9)
    return _save(fig, path)
