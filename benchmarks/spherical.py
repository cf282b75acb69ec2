"""Benchmark: training the spherical-model network to convergence, our trainer vs a plain torch loop (CPU).

Task (Petrini et al. 2022, Fig. 4 set-up): d = 5, P = 1024 points uniform on S^4, constant target, symmetric
initialisation of width h = 4096, alpha-trick with alpha = 1, float64, full-batch GD with learning rate ``lr * h``.
Both runs start from the same weights and stop at the same criterion, train error <(F - y)^2>/<y^2> <= 1e-5 (or
``--max-steps``).

* ours: :func:`verify.two_layer.train_two_layer` -- closed-form gradients in a fused numba kernel (each neuron's P
  pre-activations recomputed in a buffer, the (P, h) matrix never stored), no autograd graph, adaptive step with
  rejection;
* baseline: ``torch.nn.Parameter`` + autograd + ``torch.optim.SGD`` at the fixed rate ``lr * h`` (no fusion).

``python -m benchmarks spherical [--P 1024 --h 4096 --d 5 --threads N --max-steps 5000 --tol 1e-5]``
"""
from __future__ import annotations

import argparse
import time

import torch


def _baseline(model, x, y, *, lr, tol, max_steps):
    X = torch.as_tensor(x, dtype=torch.float64)
    Y = torch.as_tensor(y, dtype=torch.float64)
    W = torch.nn.Parameter(model.w.detach().clone())
    beta = torch.nn.Parameter(model.beta.detach().clone())
    h, alpha = model.h, model.alpha
    opt = torch.optim.SGD([W, beta], lr=lr * h)
    y2 = float((Y**2).mean())
    t0 = time.perf_counter()
    step = 0
    while True:
        opt.zero_grad()
        F = alpha * (torch.relu(X @ W.T) @ beta) / h
        loss = ((F - Y) ** 2).mean() / (2 * alpha**2)
        err = 2 * alpha**2 * float(loss.detach()) / y2
        if err <= tol or step >= max_steps:
            break
        loss.backward()
        opt.step()
        step += 1
    return time.perf_counter() - t0, step, err


def main(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks spherical")
    ap.add_argument("--d", type=int, default=5, help="input dimension, x on S^(d-1) (default 5)")
    ap.add_argument("--P", type=int, default=1024, help="training points (default 1024)")
    ap.add_argument("--h", type=int, default=4096, help="hidden neurons (default 4096)")
    ap.add_argument("--alpha", type=float, default=1.0, help="the alpha of F = alpha (f - f0) (default 1)")
    ap.add_argument("--lr", type=float, default=1.0, help="learning rate, times h (default 1)")
    ap.add_argument("--tol", type=float, default=1e-5, help="stop at train error <= tol (default 1e-5)")
    ap.add_argument("--max-steps", type=int, default=5000, help="step limit of both sides (default 5000)")
    ap.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: theirs)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data and the weights (default 0)")
    a = ap.parse_args(argv)

    import numba

    from numerics.sphere import make_dataset
    from verify.two_layer import symmetric_init, train_two_layer

    if a.threads:
        torch.set_num_threads(a.threads)
        numba.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    D = make_dataset(a.P, a.d, target="constant", P_test=16, seed=a.seed)
    # warm-up: compile the numba kernel outside the timing
    warm = symmetric_init(64, a.d, alpha=a.alpha, seed=a.seed)
    train_two_layer(warm, D.x[:32], D.y[:32], max_steps=2)

    ref = symmetric_init(a.h, a.d, alpha=a.alpha, seed=a.seed + 1)
    base_s, base_steps, base_err = _baseline(ref, D.x, D.y, lr=a.lr, tol=a.tol, max_steps=a.max_steps)

    m = symmetric_init(a.h, a.d, alpha=a.alpha, seed=a.seed + 1)
    res = train_two_layer(m, D.x, D.y, lr=a.lr, loss_tol=a.tol, max_steps=a.max_steps, patience=10 * a.max_steps)
    ours_s = res.seconds
    # same trajectory without the adaptive step: isolates the per-step (implementation) speed-up
    m2 = symmetric_init(a.h, a.d, alpha=a.alpha, seed=a.seed + 1)
    fixed = train_two_layer(m2, D.x, D.y, lr=a.lr, loss_tol=a.tol, max_steps=a.max_steps, patience=10 * a.max_steps,
                  adaptive=False)
    return {
        "name": "spherical",
        "ours_s": round(ours_s, 4),
        "baseline_s": round(base_s, 4),
        "ratio": round(base_s / ours_s, 3),
        "ours_steps": res.steps, "ours_rejected": res.rejected, "ours_train_error": res.train_error,
        "ours_converged": res.converged,
        "baseline_steps": base_steps, "baseline_train_error": base_err, "baseline_converged": base_err <= a.tol,
        "fixed_lr_s": round(fixed.seconds, 4), "fixed_lr_steps": fixed.steps,
        "per_step_ratio": round((base_s / max(base_steps, 1)) / (fixed.seconds / max(fixed.steps, 1)), 3),
        "d": a.d, "P": a.P, "h": a.h, "alpha": a.alpha, "lr": a.lr, "tol": a.tol, "threads": threads,
        "dtype": "float64", "device": "cpu",
    }
