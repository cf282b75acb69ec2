# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Spherical model: lazy vs feature learning, sparsification and rotation stability
#
# Petrini, Cagnetta, Vanden-Eijnden, Wyart (NeurIPS 2022), "Learning sparse features can lead to overfitting in
# neural networks". Data uniform on $S^{d-1}$, target of smoothness $\nu_t$ (constant target: $\nu_t=\infty$),
# network $f(x)=\frac1h\sum_i\beta_i\sigma(w_i\cdot x)$ with the $\alpha$-trick:
# lazy ($\alpha\to\infty$) = kernel regression with the NTK; feature ($\alpha\to0$, or $L^1$-regularised training
# with $\lambda\to0^+$) = the minimum-$L^1$ interpolant, supported on at most $P$ atoms.
#
# This notebook derives the kernel and the exponents (`theory.spherical`), then measures learning curves, atoms and
# the rotation sensitivity $S=\langle|f(x)-f(R_\theta x)|^2\rangle$ (`verify.spherical`).

# %%
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp

from numerics.sphere import sample_sphere
from theory import spherical as th
from verify import spherical as vs

QUICK = os.environ.get("NOTEBOOK_QUICK") == "1"
OUT = pathlib.Path(os.environ.get("NOTEBOOK_OUT", "notebooks/out"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Arc-cosine kernels, derived by integration
# $k_n(\phi)=\frac1{2\pi}\int_0^\infty r^{2n+1}e^{-r^2/2}dr\int_{\phi-\pi/2}^{\pi/2}\cos^n\psi\cos^n(\psi-\phi)d\psi$.

# %%
k0, k1 = th.relu_kernels()
print("k0(phi) =", k0)
print("k1(phi) =", sp.simplify(k1))
ntk_expr = th.ntk_expr()
print("NTK(phi), first layer uniform on S^{D-1}:", ntk_expr)

# %% [markdown]
# ## 2. Smoothness of the kernels and the exponents
# Substituting $\phi=\arccos(1-\epsilon)$: the first half-integer power $\epsilon^{\nu_K}$ gives the Mercer decay
# $\lambda_k\sim k^{-(d-1)-2\nu_K}$.

# %%
print("nu_K(NTK) =", th.kernel_smoothness("ntk"), "  nu_K(RF) =", th.kernel_smoothness("rf"))
print("kernel exponent (spectral-bias ansatz):", th.derive_kernel_exponent())
print("feature exponent (sparse atoms heuristic):", th.derive_feature_exponent())
for d in (3, 5):
    print(f"d={d}: constant target  beta_lazy={th.beta_lazy(d)}  beta_feature={th.beta_feature(d)}"
          f"  beta_RF={th.beta_kernel(d, kind='rf')}")

# %% [markdown]
# ## 3. Analytic NTK vs the empirical NTK of a wide symmetric network

# %%
d = 3
x = sample_sphere(40, d, seed=0)
h = 2000 if QUICK else 10_000
Ka = th.ntk(x)
fig, ax = plt.subplots(figsize=(4.5, 4))
for init, mk in (("random", "."), ("qmc", "x")):
    Ke = vs.empirical_ntk(vs.symmetric_init(h, d, init=init, seed=1), x)
    err = np.linalg.norm(Ke - Ka) / np.linalg.norm(Ka)
    ax.plot(Ka.ravel(), Ke.ravel(), mk, ms=3, label=f"{init} init, h={h}: rel. err {err:.2%}")
ax.plot([0, Ka.max()], [0, Ka.max()], "k-", lw=0.6)
ax.set(xlabel="analytic NTK", ylabel="empirical NTK", title="NTK, d=3")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(OUT / "spherical_ntk.png", dpi=100)

# %% [markdown]
# ## 4. Learning curves, atoms and rotation stability
# Feature regime: min-$L^1$ interpolant over a dictionary of $4P$ uniform directions (interior point + crossover);
# lazy regime: ridgeless NTK regression. Fitted exponents (95% CI) against the asymptotic predictions and against
# the slopes of the finite-P curves over the same range of P (`th.lazy_learning_curve`, eigenlearning;
# `th.feature_learning_curve`, the atoms heuristic summed over the discrete harmonic shells). At d = 5 the cut-off
# degree $k_c\sim P^{1/4}$ is only 3..7 for P = 64..2048, so both regimes are still steeper than their limits.

# %%
cfg = dict(ds=(3,), Ps=(32, 64, 128, 256), seeds=2, P_test=1000, dict_factor=4) if QUICK else vs.SIZES["full"]
sw = vs.sweep(**cfg, seed=0, progress=not QUICK)
for key, f in sw["fits"].items():
    print(f"{key:12s} measured {f['fit']['exponent']:.2f} CI [{f['fit']['ci'][0]:.2f}, {f['fit']['ci'][1]:.2f}]"
          f"   predicted {f['predicted']:.2f}" + (f" (finite P: {f['predicted_finite_P']:.2f})"
                                                    if "predicted_finite_P" in f else ""))
figs = vs._figures(sw, OUT)
print("figures:", figs)

# %% [markdown]
# ## 5. Rotation sensitivity vs the test error
# For a rotation-invariant target the predictor's fluctuations are pure error, so for rotations larger than the data
# spacing $S\to 2\,\mathrm{Var}_x f$ (`theory.spherical.rotation_stability_prediction`): each regime's $S$ follows
# its own learning curve and $S_F/S_L$ grows like $P^{\beta_L-\beta_F}$.

# %%
recs = sw["records"]
fig, ax = plt.subplots(figsize=(4.5, 4))
for reg, col in (("lazy", "C0"), ("feature", "C3")):
    pred = [th.rotation_stability_prediction(r["var_" + reg]) for r in recs]
    ax.loglog(pred, [r["S_" + reg] for r in recs], "o", color=col, ms=4, label=reg)
lo = min(min(r["S_lazy"] for r in recs), min(2 * r["var_lazy"] for r in recs))
hi = max(max(r["S_feature"] for r in recs), max(2 * r["var_feature"] for r in recs))
ax.loglog([lo, hi], [lo, hi], "k-", lw=0.6)
ax.set(xlabel="2 Var f (prediction, large theta)", ylabel=f"measured S (theta={sw['theta']})")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "spherical_S_vs_var.png", dpi=100)
