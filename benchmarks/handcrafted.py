"""Benchmark: layer-wise D/G numerators of the 2D hand-constructed network.

`python -m benchmarks handcrafted [--n 32 --xi 15 --layers 20 --samples 10000]`

Both sides compute, for the same samples (pair x, moved pair tau x, a second pair x', noise
eta), the squared representation differences |f_k(tau x) - f_k(x)|^2, |f_k(x + eta) - f_k(x)|^2,
|f_k(x') - f_k(x)|^2 at every layer and the output:
* ours: `numerics.scale_detection.sample_terms` (numba, parallel over samples, sparse clean passes);
* baseline: dense torch conv2d forward passes of `verify.handcrafted.HandcraftedNet` on CPU,
  batches of 500, float64.
Both sides run on the same number of threads (`--threads`, default 2: numba.set_num_threads and
torch.set_num_threads).  Timings exclude numba compilation (one warm-up call), the baseline's first
(warm-up) batch and its data generation; ours includes its own sampling (conservative).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks handcrafted")
    p.add_argument("--n", type=int, default=32, help="pixels per side of the 2D input (default 32)")
    p.add_argument("--xi", type=int, default=15, help="the scale xi (default 15)")
    p.add_argument("--layers", type=int, default=20, help="depth of the network (default 20)")
    p.add_argument("--samples", type=int, default=10000, help="Monte-Carlo samples (default 10000)")
    p.add_argument("--batch", type=int, default=500, help="samples per forward pass (default 500)")
    p.add_argument("--threads", type=int, default=2, help="torch and numba threads (default 2)")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error(f"--threads must be >= 1, got {a.threads}")

    import numba
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(a.threads)

    from numerics.scale_detection import sample_terms
    from verify.handcrafted import HandcraftedNet
    from numerics.scale_detection import make_dataset, sample_moves, move_positions, positions_to_images
    from theory.scale_detection import noise_sigma

    kw = dict(dim=2, stride=1, layers=a.layers, periodic=False)
    sample_terms(a.xi, a.n, samples=2, seed=0, **kw)          # compile
    t0 = time.perf_counter()
    (nD, nG, den), _ = sample_terms(a.xi, a.n, samples=a.samples, seed=0, **kw)
    ours = time.perf_counter() - t0

    net = HandcraftedNet(a.xi, a.n, **kw)
    data = make_dataset(a.n, a.xi, dim=2, metric="linf")
    rng = np.random.default_rng(0)
    sigma = noise_sigma(a.xi, a.n, dim=2)
    t_base = 0.0
    done = -min(a.batch, a.samples)   # one untimed warm-up batch first
    while done < a.samples:
        m = min(a.batch, a.samples - done)
        ix = rng.integers(0, len(data), m)
        iy = (ix + 1 + rng.integers(0, len(data) - 1, m)) % len(data)
        pos = data.positions[ix]
        x = positions_to_images(pos, a.n, 2)
        xt = positions_to_images(move_positions(pos, sample_moves(m, 2, rng), a.n, False), a.n, 2)
        xy = positions_to_images(data.positions[iy], a.n, 2)
        xn = x + sigma * rng.standard_normal(x.shape)
        tx = [torch.from_numpy(v) for v in (x, xt, xy, xn)]
        t0 = time.perf_counter()
        with torch.no_grad():
            r0 = net.representations(tx[0])
            for t in tx[1:]:
                r = net.representations(t)
                _ = [((u - v) ** 2).flatten(1).sum(1) if u.dim() > 1 else (u - v) ** 2 for u, v in zip(r, r0)]
        if done >= 0:
            t_base += time.perf_counter() - t0
        done += m
    return {"name": "handcrafted", "threads": a.threads, "n": a.n, "xi": a.xi, "layers": a.layers, "samples": a.samples,
            "ours_s": round(ours, 4), "baseline_s": round(t_base, 4), "ratio": round(t_base / ours, 2),
            "D_output": float(nD[:, -1].mean() / den[:, -1].mean())}
