"""Benchmark: ``RandomDiffeo`` as a data augmentation on 1024×3×32×32 float32 images, and the cost of a torch tensor.

* ``ours_s``: :class:`verify.transforms.RandomDiffeo` with the reference augmentation's defaults (``c_range=(1, 15)``,
  Beta laws (2, 1) for c and T, p = 1) and one (c, T) per sample (``draw="sample"``: every call then synthesises the
  modes of the largest drawn c, ≈ 15, for every image, so the time does not depend on which c a call draws);
* ``kornia_s``: kornia's ``RandomElasticTransform`` (its defaults: 63×63 Gaussian kernel, σ = 32, α = 1; p = 1) on
  the same batch, one field per image as ours; ``ratio = kornia_s / ours_s`` (> 1: ours is faster);
* ``numpy_s``, ``torch_s``: :func:`numerics.diffeo.deform` (c = 3, T mid-window) of the batch as a numpy array and
  as a torch tensor on ``--device``; ``torch_over_numpy = torch_s / numpy_s`` (on the CPU the tensor takes the numba
  kernel through a zero-copy view, issue 12 asks <= 1.5); ``torch_ops_s``: the same tensor through the torch
  operations (the GPU / autograd path; timed with ``requires_grad`` under ``torch.no_grad``).

Times are the best of ``--repeat`` runs after one warm-up (numba compilation, kernel caches excluded), the contenders
interleaved run by run so that a load from other processes hits them alike; on CUDA each run is synchronised. kornia
is the benchmark-only extra ``pip install -e ".[bench]"``; without it the kornia fields are null.
``python -m benchmarks transform [--batch 1024] [--repeat 5] [--threads 2] [--device cpu|cuda]``
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from numerics.diffeo import deform, temperature_range
from verify.transforms import RandomDiffeo


def _best(fn, repeat: int, sync) -> float:
    best = math.inf
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks transform")
    parser.add_argument("--batch", type=int, default=1024, help="images of 3x32x32 per call (default 1024)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side, best kept (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads (CI has 2 cores)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default cpu)")
    return parser


def main(argv: list[str]) -> dict:
    parser = _parser()
    args = parser.parse_args(argv)
    for flag, value in (("--batch", args.batch), ("--repeat", args.repeat), ("--threads", args.threads)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    n, c = 32, 3
    t_min, t_max = temperature_range(n, c)
    T = 0.5 * (t_min + t_max)
    x_np = np.random.default_rng(0).random((args.batch, 3, n, n), dtype=np.float32)
    x = torch.from_numpy(x_np.copy()).to(device)
    x_ops = x.clone().requires_grad_()

    ours = RandomDiffeo(c_range=(1, 15), beta_c=(2.0, 1.0), beta_T=(2.0, 1.0), draw="sample", seed=0)
    runs = {
        "ours_s": lambda: ours(x),
        "numpy_s": lambda: deform(x_np, T, c, seed=1),
        "torch_s": lambda: deform(x, T, c, seed=1),
    }
    try:
        import kornia
        from kornia.augmentation import RandomElasticTransform

        elastic = RandomElasticTransform(p=1.0).to(device)
        runs["kornia_s"] = lambda: elastic(x)
        kornia_version = kornia.__version__
    except ImportError:
        kornia_version = None
    record: dict = {"name": "transform"}
    with torch.no_grad():
        for fn in runs.values():
            fn()  # warm-up
        # interleaved, so that a load from other processes hits every contender alike (best of each)
        best = dict.fromkeys(runs, math.inf)
        for _ in range(args.repeat):
            for key, fn in runs.items():
                best[key] = min(best[key], _best(fn, 1, sync))
        record.update(best)
        deform(x_ops, T, c, seed=1)
        record["torch_ops_s"] = _best(lambda: deform(x_ops, T, c, seed=1), max(1, args.repeat - 2), sync)
    kornia_s = record.get("kornia_s")
    record.update(
        kornia_s=kornia_s,
        ratio=None if kornia_s is None else kornia_s / record["ours_s"],
        torch_over_numpy=record["torch_s"] / record["numpy_s"],
        torch_ops_over_numpy=record["torch_ops_s"] / record["numpy_s"],
        batch=args.batch,
        shape=[3, n, n],
        dtype="float32",
        device=str(device),
        threads=args.threads,
        ours="RandomDiffeo(c_range=(1, 15), beta_c=(2, 1), beta_T=(2, 1), draw='sample')",
        kornia="RandomElasticTransform(p=1.0), defaults" if kornia_version else "not installed (pip install .[bench])",
        kornia_version=kornia_version,
        deform={"c": c, "T": T},
    )
    return record
