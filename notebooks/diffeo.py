# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Maximum-entropy diffeomorphisms: exact statistics vs sampling
#
# Petrini, Favero, Geiger, Wyart (NeurIPS 2021). Each displacement component is
# $\tau(u,v)=\sum_{(i,j)\in\mathcal K(c)} C_{ij}\sin(i\pi u)\sin(j\pi v)$ with
# $C_{ij}\sim\mathcal N(0, T/(i^2+j^2))$; in pixels the field is $n\tau$.
#
# This notebook derives the statistics used to choose $T$ (`theory.diffeo`) and checks them against the
# numba sampler (`numerics.diffeo`).

# %%
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import sympy as sp

from numerics import diffeo as nd
from theory import diffeo as td

QUICK = os.environ.get("NOTEBOOK_QUICK") == "1"
OUT = pathlib.Path(os.environ.get("NOTEBOOK_OUT", "notebooks/out"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Equipartition
# The gradient energy of one mode integrates to $\frac{\pi^2}{4}(i^2+j^2)C^2$; with
# $\mathbb E C^2 = T/(i^2+j^2)$ every mode carries $\pi^2T/4$ per component, hence
# $\langle\|\nabla\tau\|^2\rangle = \frac{\pi^2T}{2}N(c)$.

# %%
d = td.derivation()
sp.pprint(sp.Eq(sp.Symbol("E_mode"), d["gradient_energy_per_mode"]))
sp.pprint(sp.Eq(sp.Symbol("<E_mode>"), d["mean_energy_per_mode"]))

# %% [markdown]
# ## 2. Typical displacement at the centre
# Only odd-odd modes move the centre: $\delta^2 = 2Tn^2 S_{\rm odd}(c)$. Its large-$c$ law contains
# Sierpinski's constant $K$: $S_{\rm odd} \simeq \frac{\pi}{8}\ln c + \frac{K}{16}$, which the paper's
# $\delta=\frac n2\sqrt{\pi T \ln c}$ drops.

# %%
print("K =", td.SIERPINSKI_K, "=", float(td.SIERPINSKI_K))
cs = [2, 3, 4, 5, 7, 10, 15, 20, 30, 50] if QUICK else list(range(2, 61))
exact = [float(td.odd_lattice_sum(c, "code")) for c in cs]
paper = [float(sp.pi / 8 * sp.log(c)) for c in cs]
corrected = [float(td.odd_lattice_sum_asymptotic(c)) for c in cs]

n, T = 33, 1e-3
K = 2000 if QUICK else 20000
measured, se = [], []
for c in cs[:6]:
    f = nd.sample_diffeos(K, n, n, T, c, seed=c).fields()[:, :, n // 2, n // 2]
    sq = (f**2).sum(1) / (2 * T * n**2)
    measured.append(sq.mean())
    se.append(sq.std() / np.sqrt(K))

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(cs, exact, "k-", label=r"exact $S_{\rm odd}(c)$ (code cut-off)")
ax.plot(cs, paper, "r--", label=r"paper: $\frac{\pi}{8}\ln c$")
ax.plot(cs, corrected, "b:", label=r"$\frac{\pi}{8}\ln c + K/16$")
ax.errorbar(cs[:6], measured, yerr=np.array(se) * 2, fmt="o", color="C2", label="Monte Carlo (±2 s.e.)")
ax.set_xscale("log")
ax.set_xticks([2, 3, 5, 10, 20, 50], labels=["2", "3", "5", "10", "20", "50"])
ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax.set_xlabel("cut-off c")
ax.set_ylabel(r"$\delta^2/(2Tn^2)$")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(OUT / "diffeo_centre_displacement.png", dpi=120)

# %% [markdown]
# ## 3. How often does a field fold?
# $T_{\max}=4/(\pi^3c^2\ln c)$ is a heuristic: a sizeable fraction of fields have
# $\det(I-\nabla\tau)\le 0$ somewhere at $T_{\max}$. `SineDiffeo.folds()` detects them with exact derivatives.

# %%
ratios = [0.25, 0.5, 1.0, 2.0]
nfields = 100 if QUICK else 500
fig, ax = plt.subplots(figsize=(5, 3.5))
for c in (3, 5, 10):
    t_max = nd.temperature_range(32, c, method="paper")[1]
    p = [nd.sample_diffeos(nfields, 32, 32, r * t_max, c, seed=c).folds().mean() for r in ratios]
    ax.plot(ratios, p, "o-", label=f"c = {c}")
    print(c, dict(zip(ratios, p)))
ax.set_xscale("log")
ax.set_xticks(ratios, labels=[str(r) for r in ratios])
ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
ax.set_xlabel(r"$T/T_{\max}$ (paper)")
ax.set_ylabel("fraction of folded fields")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "diffeo_fold_probability.png", dpi=120)

# %% [markdown]
# ## 4. What the deformations look like

# %%
yy, xx = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
img = ((yy // 4 + xx // 4) % 2).astype(float)[None].repeat(3, 0)
lo, hi = nd.temperature_range(32, 3)
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
for ax, T in zip(axes, [0.0, lo, np.sqrt(lo * hi), hi]):
    ax.imshow(nd.deform(img, T, 3, seed=0)[0], cmap="gray")
    ax.set_title(f"T = {T:.2g}", fontsize=8)
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "diffeo_examples.png", dpi=120)
