"""Benchmark: deform a batch of 4096 images 3×32×32 (float64, one field per image, c = 3, T mid-window).

* ``ours_s``: :func:`numerics.diffeo.deform` on a numpy batch (fused numba synthesis + bilinear remap);
* ``baseline_s``: the reference design, written here: a Python loop over images, each drawing its
  coefficients, synthesising the field from sine tables (torch matrix products) and remapping bilinearly by
  torch indexing (floor/ceil corners, clamped);
* ``copy_s``: a plain copy of the batch, the memory-bound floor.

Times are the best of ``--repeat`` runs after one warm-up (numba compilation excluded).
``python -m benchmarks diffeo [--batch 4096] [--repeat 3] [--threads 2]``
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from numerics.diffeo import deform, temperature_range


def _baseline_one(img: torch.Tensor, T: float, c: int, gen: torch.Generator, tables) -> torch.Tensor:
    """Reference-style deformation of one image (C, n, n): field per call, bilinear pull-back."""
    weights, sines = tables
    n = img.shape[-1]
    fields = []
    for _ in range(2):
        coef = torch.randn(weights.shape, generator=gen, dtype=img.dtype) * weights
        fields.append(n * math.sqrt(T) * (sines.T @ coef @ sines))  # Σ_ij C_ij sin(iπu_y) sin(jπu_x)
    dy, dx = fields
    grid = torch.arange(n, dtype=img.dtype)
    yy = (grid[:, None] - dy).clamp(0, n - 1)
    xx = (grid[None, :] - dx).clamp(0, n - 1)
    y0, x0 = yy.floor().long(), xx.floor().long()
    y1, x1 = yy.ceil().long(), xx.ceil().long()
    fy, fx = yy - y0, xx - x0
    top = (1 - fx) * img[:, y0, x0] + fx * img[:, y0, x1]
    bottom = (1 - fx) * img[:, y1, x0] + fx * img[:, y1, x1]
    return (1 - fy) * top + fy * bottom


def _tables(n: int, c: int, dtype: torch.dtype):
    k = torch.arange(1, c + 1, dtype=dtype)
    r = (k[:, None] ** 2 + k[None, :] ** 2).sqrt()
    weights = (r < c + 0.5).to(dtype) / r
    sines = torch.sin(math.pi * k[:, None] * torch.linspace(0, 1, n, dtype=dtype)[None, :])
    return weights, sines


def baseline(x: torch.Tensor, T: float, c: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    tables = _tables(x.shape[-1], c, x.dtype)
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        out[b] = _baseline_one(x[b], T, c, gen, tables)
    return out


def _best(fn, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks diffeo")
    parser.add_argument("--batch", type=int, default=4096, help="images of 3x32x32 per call (default 4096)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side, best kept (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads (CI has 2 cores)")
    args = parser.parse_args(argv)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(args.threads)
    n, c = 32, 3
    t_min, t_max = temperature_range(n, c)
    T = 0.5 * (t_min + t_max)
    x = np.random.default_rng(0).standard_normal((args.batch, 3, n, n))
    xt = torch.from_numpy(x.copy())

    deform(x[:2], T, c, seed=0)  # compile / load the numba cache
    ours = _best(lambda: deform(x, T, c, seed=1), args.repeat)
    copy = _best(lambda: x.copy(), args.repeat)
    base = _best(lambda: baseline(xt, T, c, seed=1), max(1, args.repeat - 1))
    return {
        "name": "diffeo",
        "ours_s": ours,
        "baseline_s": base,
        "ratio": base / ours,
        "copy_s": copy,
        "ours_over_copy": ours / copy,
        "batch": args.batch,
        "shape": [3, n, n],
        "c": c,
        "T": T,
        "threads": args.threads,
    }
