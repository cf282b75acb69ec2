"""PNG figures of ``python -m verify.compare`` (matplotlib, Agg backend; nothing is shown on screen).

* :func:`plot_layers` — D_k, G_k, R_k against depth k (log-log): measured points with 95% intervals (trained and
  at initialisation), the hand-constructed network's exact values as a line, the fitted power law of the trained
  net over the pooling stage, and k̃ (receptive field = ξ) marked.
* :func:`plot_spectra` — Laplacian spectra of the filters over training, c_{t,λ}/c_{0,λ}, one panel per layer.
* :func:`plot_shuffle` — R_k of the trained net, its channel-shuffled copy and the initial net.
* :func:`plot_handcrafted` — exact vs Monte-Carlo D_k, G_k, R_k of the hand-constructed network.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_layers", "plot_spectra", "plot_shuffle", "plot_handcrafted"]


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
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            lo, hi = axis.get_view_interval()
            if axis is ax.xaxis and hi / max(lo, 1e-12) < 100:  # depth axis: every integer layer
                ticks = [t for t in range(1, int(hi) + 1) if t >= lo]
                if len(ticks) > 12:
                    ticks = [t for t in ticks if t in (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100)]
                axis.set_major_locator(FixedLocator(ticks))
                axis.set_minor_locator(NullLocator())
            axis.set_major_formatter(fmt)
            axis.set_minor_formatter(NullFormatter())


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
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_axes(ax, y=False)
        ax.set_xlabel("layer k")
        ax.set_ylabel(f"{q}_k")
        ax.legend(fontsize=7)
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axes(ax, y=False)
    ax.set_xlabel("layer k")
    ax.set_ylabel("R_k")
    ax.legend(fontsize=7)
    ax.set_title(title)
    return _save(fig, path)


def plot_handcrafted(data: dict, path, *, title: str = "") -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    for ax, q in zip(axes, ("D", "G", "R")):
        m = data["measured"]
        k = np.array([d["k"] for d in m], dtype=float)
        v = np.array([d[q] for d in m], dtype=float)
        se = np.array([d[q + "_se"] for d in m], dtype=float)
        ax.errorbar(k, v, yerr=2 * np.nan_to_num(se), fmt="o", color="C0", capsize=2, label="Monte Carlo (torch)")
        ex = [(d["k"], d[q]) for d in data["exact"] if d.get(q) is not None and d[q] > 0]
        if ex:
            kk, vv = zip(*ex)
            ax.plot(kk, vv, "-", color="C3", label="exact")
        sim = [(d["k"], d[q]) for d in (data.get("simulated") or []) if d.get(q) is not None and d[q] > 0]
        if sim:
            kk, vv = zip(*sim)
            ax.plot(kk, vv, "x", color="C2", label="numba simulator")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_axes(ax, y=False)
        ax.set_xlabel("layer k")
        ax.set_ylabel(f"{q}_k")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)
