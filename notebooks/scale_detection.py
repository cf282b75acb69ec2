# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Scale detection: exact layer-wise stability of the hand-constructed network
#
# Task (Tomasini, Petrini, Cagnetta & Wyart 2022): two active pixels at distance $\delta$,
# $y=\mathrm{sign}(\xi-\delta)$.  The network pools with constant filters up to the layer
# $\tilde k$ whose receptive field is $\xi$, thresholds once, pools again, and reads out
# $f(x)=(\xi-d)_+$.  We derive $D_k$, $G_k$, $R_k$ exactly at every layer and compare them with
# a Monte-Carlo simulation.  The modelling choices are listed in `theory.scale_detection`.

# %%
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch

from numerics.scale_detection import make_dataset, simulate_layers
from theory.scale_detection import (asymptotic_laws, exact_layers, pooling_limit_expressions, trinomial_kernel)
from verify.handcrafted import HandcraftedNet

QUICK = os.environ.get("NOTEBOOK_QUICK") == "1"
OUT = pathlib.Path(os.environ.get("NOTEBOOK_OUT", "notebooks/out"))
OUT.mkdir(parents=True, exist_ok=True)
SAMPLES = 4000 if QUICK else 200000

# %% [markdown]
# ## 1. Pooling on non-negative inputs is linear
# Constant filters $(1,1,1)/3$ with zero bias never switch a ReLU off on a non-negative input, so
# a unit pixel after $m$ layers is the $m$-step kernel of a lazy random walk,
# $\kappa_m(d)=T(m,d)/3^m$ with $T$ the trinomial coefficient.  With full padding,
# $\langle A^k\delta_p, A^k\delta_q\rangle=\kappa_{2k}(p-q)$.

# %%
m, d = sp.symbols("m d", integer=True, nonnegative=True)
kappa = trinomial_kernel(m, d)
display = print
display(sp.Eq(sp.Symbol("kappa_m(d)"), kappa))
print("kappa_4(0..4) =", [kappa.subs({m: 4, d: v}).doit() for v in range(5)])

# %% [markdown]
# ## 2. Diffeo term, $n\to\infty$
# Far-apart pixels dominate the pair average; each moves by $\mu\in\{-1,0,1\}^{\rm dim}$, so
# $D_k = \mathbb E_\mu\,[1-K_{2k}(\mu)/K_{2k}(0)]$.  The walk has variance $v=4k/3$ after $2k$
# steps; with the Gaussian kernel $e^{-\mu^2/2v}$ the large-$k$ expansion gives the law:

# %%
k = sp.Symbol("k", positive=True)
v = sp.Rational(4, 3) * k
one_minus_ratio = 1 - sp.exp(-1 / (2 * v))
display(sp.Eq(sp.Symbol("1 - kappa_2k(1)/kappa_2k(0)"), sp.series(one_minus_ratio, k, sp.oo, 3).removeO()))
display(sp.Eq(sp.Symbol("D_k (1D)"), sp.Rational(2, 3) * sp.limit(one_minus_ratio * k, k, sp.oo) / k))

# %% [markdown]
# At finite $n$ (non-periodic frame, pairs weighted by their multiplicity) the same quadratic form
# gives an exact rational number; e.g. $D_2$ for $n=9$:

# %%
from theory.scale_detection import evaluate_sums, pooling_D_expression

Dexpr = pooling_D_expression()
D2 = sp.nsimplify(evaluate_sums(Dexpr["D"].subs({Dexpr["k"]: 2, Dexpr["n"]: 9})))
print("D_2(n=9) =", D2, "=", float(D2), "  numeric theory:", exact_layers(5, 9, layers=3)[1]["D"])

# %% [markdown]
# ## 3. Noise term: rectified correlated Gaussians
# The noise $\eta\sim\mathcal N(0,\sigma^2 I)$, $n^{\rm dim}\sigma^2=\mathbb E|\tau x-x|^2$, enters the
# first ReLU.  Layer-1 units share input pixels: correlation $\rho=\prod_a(3-|e_a|)/3$ at offset $e$.
# Where the signal vanishes, the second moment is the arc-cosine kernel; where it does not, the
# bivariate moment with means (`theory.scale_gauss`).  After layer 1 the difference propagates
# linearly, and its *mean* $\sigma_1/\sqrt{2\pi}$ per unit survives pooling: the pile-up.

# %%
rho = sp.Symbol("rho")
t = sp.acos(rho)
arccos = (sp.sin(t) + (sp.pi - t) * rho) / (2 * sp.pi)
display(sp.Eq(sp.Symbol("E[X_+ Y_+]"), arccos))
law1, law2 = asymptotic_laws(1), asymptotic_laws(2)
for dim, law in ((1, law1), (2, law2)):
    print(f"dim={dim}:  D_k ~ {law['D']},  G_k ~ {sp.nsimplify(law['G'])} (+ O(1)),  R_k ~ {law['R']}")
for s_ in (2,):
    for dim in (1, 2):
        law = asymptotic_laws(dim, stride=s_)
        print(f"stride {s_}, dim={dim}:  D_k ~ {law['D']},  G_k ~ {law['G']},  R_k ~ {law['R']}")

# %% [markdown]
# ## 4. The output is exactly $(\xi-d)_+$
# At $\tilde k$ each pixel is a trinomial $\tilde T\ge 1$ on its box $S$; $\mathrm{ReLU}(\tilde h-1)
# =\tilde h-\mathbf 1_{S_1\cup S_2}$, pooling preserves mass, so the output counts
# $|S_1\cap S_2|=(\xi-d)_+$ (in 2D, $\prod_a(\xi-|\Delta_a|)_+$: the $L^\infty$ distance).

# %%
xi, n = 7, 24
data = make_dataset(n, xi)
net = HandcraftedNet(xi, n, layers=6)
f = net(torch.from_numpy(data.x)).numpy()
print("max |f - ReLU(xi - d)| =", np.abs(f - np.maximum(xi - data.delta, 0)).max(),
      " accuracy =", np.mean(net.predict(torch.from_numpy(data.x)).numpy() == data.y))

# %% [markdown]
# ## 5. Theory against simulation, every layer
# $D_k$ is exact at every layer.  $G_k$ is exact through the pooling stage; after the threshold
# the noise reaches a biased ReLU as a sum of many rectified Gaussians.  For stride 1 they are
# correlated (neighbouring units share pixels): no closed form, simulation only -- except for
# $\tilde k=1$ ($\xi=3$), where the threshold sees single Gaussian units and the theory is exact
# at every layer and at the output (last figure of this section).  For strided networks they are
# independent, and `theory.rectified_sums` gives the moments of the biased ReLU deterministically:
# exact at every layer for any $\tilde k$.

# %%
def compare(xi, n, dim, layers, stride=1, periodic=False, name="1d"):
    th = exact_layers(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic)
    sim = simulate_layers(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic, samples=SAMPLES, seed=0)
    ks = np.array([r["k"] for r in th])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, q in zip(axes, "DGR"):
        y = np.array([np.nan if r[q] is None else r[q] for r in th])
        ax.plot(ks, y, "k-", label="exact")
        ax.errorbar(ks, [r[q] for r in sim], yerr=[r[q + "_se"] for r in sim], fmt="o", ms=3, label="simulation")
        ax.axvline(th[0]["k"] - 1 + sum(r["name"] == "pool" for r in th) + 0.5, color="gray", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("layer k")
        ax.set_title(f"{q}_k  ({name}, xi={xi}, n={n})")
    law = asymptotic_laws(dim, stride=stride)
    kk = np.arange(1, sum(r["name"] == "pool" for r in th) + 1)
    axes[0].plot(kk, [float(law["D"].subs(law["k"], v)) for v in kk], "r--", label="asymptotic law")
    axes[1].plot(kk, [float(law["G_next"].subs(law["k"], v)) for v in kk], "r--")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / f"scale_detection_{name}.png", dpi=110)
    plt.close(fig)
    z = max(abs(a[q] - b[q]) / b[q + "_se"] for a, b in zip(th, sim) for q in "DGR" if a[q] is not None)
    print(f"{name}: max |theory - simulation| / s.e. = {z:.2f}")


if QUICK:
    compare(7, 16, 1, 5, name="1d")
    compare(5, 9, 2, 4, name="2d")
    compare(4, 16, 1, 3, stride=2, name="1d_stride2")
    compare(3, 10, 1, 5, name="1d_xi3")
else:
    compare(21, 64, 1, 14, name="1d")
    compare(9, 24, 2, 8, name="2d")
    compare(16, 128, 1, 6, stride=2, name="1d_stride2")
    compare(3, 32, 1, 12, name="1d_xi3")

# %% [markdown]
# ## 6. Exact values against the laws at large depth ($n\to\infty$)

# %%
lim1 = pooling_limit_expressions(1)
ks = [2, 4, 8, 16, 32] if QUICK else [2, 4, 8, 16, 32, 64, 128]
Dx = [float(lim1["D"](v)) for v in ks]
Gx = [float(lim1["G"](v)) for v in ks]
fig, ax = plt.subplots(figsize=(5, 3.8))
ax.loglog(ks, Dx, "o-", label="D_k exact (n→∞)")
ax.loglog(ks, Gx, "s-", label="G_k exact (n→∞)")
ax.loglog(ks, [x / y for x, y in zip(Dx, Gx)], "^-", label="R_k exact (n→∞)")
for key, st in (("D", "k--"), ("G_next", "k:"), ("R", "k-.")):
    ax.loglog(ks, [float(law1[key].subs(law1["k"], v)) for v in ks], st, lw=1)
ax.set_xlabel("k")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "scale_detection_asymptotics.png", dpi=110)
plt.close(fig)
print("R_k k^(3/2) at the largest k:", Dx[-1] / Gx[-1] * ks[-1] ** 1.5, " law:", float(law1["R"] * law1["k"] ** 1.5))
