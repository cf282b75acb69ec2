"""The hand-constructed scale-detection network measured end to end in torch, against its exact D_k, G_k, R_k.

``verify.handcrafted.HandcraftedNet`` (helper "scale") is run on random probe pairs of
``numerics.scale_detection.make_dataset`` (uniform over all pairs, as the theory), deformed by ``diffeo_moves``; every
layer's representation (through ``verify.models.Tapped`` and forward hooks) is measured by Monte Carlo with
``numerics.stability.layerwise_stability`` (bootstrap standard errors) and compared with
``theory.scale_detection.exact_layers``.  The noise is the theory's: i.i.d. Gaussian on every pixel with the exact
σ of ``theory.scale_detection.noise_sigma`` (E|η|² = E|τx - x|²), drawn by ``numerics.scale_detection.pixel_noise``
and passed to the estimator as the perturbed input, so G_k is the estimator's normalised sensitivity to x -> x + η
(same probes, same pair denominator as D_k).  Verdict per layer and quantity: pass if
|measured - exact| <= 4 s.e. (s.e. of R_k by the delta method from the two numerators).  G_k, R_k after the
threshold layer of a stride-1 network with k~ >= 2 have no closed form (the theory returns None): there torch
Monte Carlo is compared with the numba simulator instead.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from verify.experiments.common import (SIZES, draw_figure, jsonable, make_row, resolve_size)
from verify.models import Tapped

NAME = "handcrafted"
N_SE = 4.0


def analyse(dim: int, measured: list[dict], exact: list[dict], simulated: list[dict] | None = None) -> list[dict]:
    """Rows: exact vs torch Monte Carlo (4 s.e.); where the theory has no closed form, torch Monte Carlo vs the
    independent numba simulator ``numerics.scale_detection.simulate_layers`` (4 combined s.e.).  ``simulated=None``
    (no simulator run) makes those rows info; a simulator layer without a finite value or
    standard error makes them fail."""
    rows = []
    for i, (m, e) in enumerate(zip(measured, exact)):
        for q in ("D", "G", "R"):
            ev, mv, se = e.get(q), m[q], m[q + "_se"]
            name = f"{dim}D layer {m['k']} ({e.get('name', '')}) {q}_k"
            if ev is None:
                if simulated is None:
                    rows.append(make_row(NAME, name, None, mv, None, "info",
                                         note="no closed form after the threshold (simulator not available)"))
                    continue
                sim = simulated[i] if i < len(simulated) else {}
                sv, sse = sim.get(q), sim.get(q + "_se")
                if sv is None or sse is None or not (math.isfinite(sv) and math.isfinite(sse)):
                    rows.append(make_row(NAME, name + " vs numba simulator", sv, mv, None, "fail",
                                         note="the simulator gave no finite value or standard error at this layer"))
                    continue
                tol = N_SE * math.hypot(se, sse)
                ok = abs(mv - sv) <= tol if math.isfinite(tol) else False
                rows.append(make_row(NAME, name + " vs numba simulator", sv, mv, f"4 s.e. = {tol:.2g}",
                                     "pass" if ok else "fail",
                                     note="no closed form after the threshold: torch MC vs numba MC"))
                continue
            tol = N_SE * se
            ok = abs(mv - ev) <= tol if math.isfinite(se) else False
            rows.append(make_row(NAME, name, ev, mv, f"4 s.e. = {tol:.2g}", "pass" if ok else "fail"))
    return rows


def run(*, quick: bool, out_dir: Path, seed: int = 0, device: str | None = None, size: str | None = None,
        dims=(1, 2), progress: bool = True) -> dict:
    size = resolve_size(quick, size)
    p = SIZES[size]["handcrafted"]
    from numerics.scale_detection import diffeo_moves, make_dataset, pixel_noise, simulate_layers
    from numerics.stability import layerwise_stability
    from theory.scale_detection import exact_layers, noise_sigma
    from verify.handcrafted import HandcraftedNet

    rows, data, figures = [], {"size": size, "params": p}, []
    for dim in dims:
        xi, n, L = p["xi"], p["n"] if dim == 1 else max(2 * p["xi"], p["n"] // 2), p["layers"]
        exact = exact_layers(xi, n, dim=dim, stride=1, layers=L)
        m = (n - 2) ** dim  # sites in the frame with a one-pixel margin (theory.scale_detection)
        total = m * (m - 1) // 2
        ds = make_dataset(n, xi, dim=dim, n_pairs=p["samples"] if p["samples"] < total else None, seed=seed)
        x = np.asarray(ds.x, dtype=np.float64)
        xd = np.asarray(diffeo_moves(ds, seed=seed + 1), dtype=np.float64)
        net = HandcraftedNet(xi, n, dim=dim, stride=1, layers=L)
        tapped = Tapped(net, len(exact))
        eta = pixel_noise(x, xd, sigma=noise_sigma(xi, n, dim=dim), seed=seed + 3)
        kw = dict(layers=tapped.layer_names(), include_output=False, noise="mean", errors="bootstrap",
                  n_boot=SIZES[size]["n_boot"], seed=seed + 2, batch_size=512)
        res_d = layerwise_stability(tapped, x, xd, **kw)
        res_g = layerwise_stability(tapped, x, x + eta, **kw)  # "diffeo" x -> x + η: its D is the theory's G
        measured = []
        for k, name in enumerate(tapped.layer_names(), 1):
            rd, rg = res_d[name], res_g[name]
            nd, ng = rd.diffeo_sensitivity, rg.diffeo_sensitivity
            R = nd.value / ng.value
            R_se = abs(R) * math.hypot(nd.se / nd.value, ng.se / ng.value) if nd.value > 0 else float("nan")
            measured.append({"k": k, "D": float(rd.D.value), "D_se": float(rd.D.se), "G": float(rg.D.value),
                             "G_se": float(rg.D.se), "R": float(R), "R_se": float(R_se)})
        simulated = simulate_layers(xi, n, dim=dim, stride=1, layers=L, samples=p["samples"] * 5, seed=seed + 4)
        rows += analyse(dim, measured, exact, simulated)
        data[f"{dim}d"] = {"n": n, "xi": xi, "layers": L, "measured": measured, "exact": exact,
                           "simulated": simulated}
        draw_figure(NAME, "plot_handcrafted", data[f"{dim}d"], Path(out_dir) / f"handcrafted_{dim}d.png",
                    title=f"hand-constructed net, {dim}D (n={n}, xi={xi})", rows=rows, figures=figures)
    return {"name": NAME, "rows": rows, "data": jsonable(data), "figures": figures}
