r"""The spherical model's network: lazy vs feature regime of a one-hidden-layer ReLU network (Petrini et al. 2022).

Network (mean-field scaling, alpha-trick; conventions of :mod:`theory.spherical`):

.. math:: f(x) = \frac1h\sum_{i=1}^h \beta_i\,\sigma(w_i\cdot x + b_i),\qquad F(x) = \alpha\,[f(x) - f_0(x)],
          \qquad L = \frac{1}{2\alpha^2 P}\sum_\mu (F(x_\mu) - y_\mu)^2,

trained by full-batch gradient descent with learning rate ``eta * h``; ``alpha -> oo`` is lazy (kernel regression with
the NTK of :func:`theory.spherical.ntk`), ``alpha -> 0`` feature learning.  Symmetric initialisation: ``(w_i, b_i)``
uniform on S^{D-1} and ``beta_i = +-1`` in pairs sharing ``(w_i, b_i)``, so ``f_0 = 0`` and the neuron measure is
rotation invariant.

* :class:`TwoLayerReLU`, :func:`symmetric_init` -- the model (a ``torch.nn.Module``);
* :func:`train_two_layer` -- closed-form gradients (no autograd graph), float64, a fused numba kernel on CPU (two
  passes over the neurons, each neuron's P pre-activations recomputed in a buffer) or torch matmuls on GPU, adaptive
  step with rejection and stopping rules (train error, stall, max steps / time);
* :func:`empirical_ntk`, :func:`krr_predict` -- finite-width NTK and the infinite-width lazy limit;
* :func:`network_atoms` -- the atoms (distinct active neurons) of a trained network.

The sweep and the experiment (learning curves, exponents, atoms, rotation stability S) are
:mod:`verify.experiments.spherical`; the command line is ``python -m verify.spherical``.

Small alpha: the step is ``lr * h`` on a loss that carries ``1/alpha^2``, so below alpha ~ 1 use ``lr ~ alpha`` (the
alpha-independent small-initialisation dynamics, see :func:`verify.experiments.spherical.trained_regimes`) and
``adaptive=False``; with
``lr = 1`` a run at alpha = 1e-16 stalls after one step, and one at alpha = 1e-8 interpolates within 1.4e3 steps,
before the neurons condense (h = 1000, P = 64: 538 atoms and the lazy net's test error, against 34 atoms with
``lr = alpha = 1e-25``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numba as nb
import numpy as np
import torch

from numerics.atoms import count_atoms
from numerics.seeds import generator
from numerics.sphere import qmc_sphere, sample_sphere
from theory import spherical as th
from theory.arguments import check_choice, check_flag, check_int, check_real
from verify.outputs import caused_by_interrupt

__all__ = ["TwoLayerReLU", "symmetric_init", "TwoLayerTrainResult", "train_two_layer", "empirical_ntk", "krr_predict",
           "KRR_WEIGHTS", "network_atoms"]

DTYPE = torch.float64


def _check_alpha(alpha) -> float:
    return check_real(alpha, "alpha", 0.0, low_inclusive=False)


# ------------------------------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------------------------------
class TwoLayerReLU(torch.nn.Module):
    """``F(x) = alpha (f(x) - f_0(x))``, ``f(x) = (1/h) sum_i beta_i relu(w_i.x + b_i)``.

    ``w`` (h, d), ``b`` (h,) (a zero buffer when ``bias=False``), ``beta`` (h,).  With a symmetric init ``f_0 = 0``
    identically and is not evaluated; otherwise the initial parameters are kept as buffers.
    """

    def __init__(self, w: torch.Tensor, b: torch.Tensor | None, beta: torch.Tensor, *, alpha: float = 1.0,
                 symmetric: bool = False):
        super().__init__()
        h, d = w.shape
        self.alpha = _check_alpha(alpha)
        self.bias = b is not None
        self.w = torch.nn.Parameter(w.clone())
        self.beta = torch.nn.Parameter(beta.clone())
        if self.bias:
            self.b = torch.nn.Parameter(b.clone())
        else:
            self.register_buffer("b", torch.zeros(h, dtype=w.dtype, device=w.device))
        self.symmetric = bool(symmetric)
        if not self.symmetric:
            self.register_buffer("w0", w.clone())
            self.register_buffer("b0", self.b.detach().clone())
            self.register_buffer("beta0", beta.clone())

    @property
    def h(self) -> int:
        return self.w.shape[0]

    @property
    def d(self) -> int:
        return self.w.shape[1]

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """Mean-field output ``(1/h) sum_i beta_i relu(w_i.x + b_i)``."""
        return torch.relu(x @ self.w.T + self.b) @ self.beta / self.h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=self.w.dtype, device=self.w.device)
        out = self.f(x)
        if not self.symmetric:
            out = out - torch.relu(x @ self.w0.T + self.b0) @ self.beta0 / self.h
        return self.alpha * out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """numpy in, numpy out (no graph)."""
        with torch.no_grad():
            return self.forward(torch.as_tensor(np.asarray(x), dtype=self.w.dtype, device=self.w.device)).cpu().numpy()


def symmetric_init(h: int, d: int, *, alpha: float = 1.0, bias: bool = False, init: str = "random", seed=None,
                   device: str | torch.device = "cpu") -> TwoLayerReLU:
    """Symmetric initialisation: ``(w_i, b_i)`` uniform on S^{D-1} (D = d + bias) for ``i < h/2``; neuron
    ``i + h/2`` has the same ``(w_i, b_i)`` and ``beta = -beta_i``; ``beta_i = +-1`` at random.  ``f_0 = 0``.
    ``init="random"``: i.i.d. directions; ``"qmc"``: :func:`qmc_sphere` (same law of each direction, smaller
    finite-h fluctuations of the NTK)."""
    h = check_int(h, "h", 2)
    if h % 2:
        raise ValueError(f"h must be even for the symmetric initialisation, got {h}")
    d = check_int(d, "d", 2)
    _check_alpha(alpha)
    bias = check_flag("bias", bias)
    if init not in ("random", "qmc"):
        raise ValueError(f"init must be 'random' or 'qmc', got {init!r}")
    rng = generator(seed)
    u = (sample_sphere if init == "random" else qmc_sphere)(h // 2, d + int(bias), seed=rng)
    s = rng.choice(np.array([-1.0, 1.0]), size=h // 2)
    u = np.concatenate([u, u])
    beta = np.concatenate([s, -s])
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=DTYPE, device=device)  # noqa: E731
    return TwoLayerReLU(t(u[:, :d]), t(u[:, d]) if bias else None, t(beta), alpha=alpha, symmetric=True)


# ------------------------------------------------------------------------------------------------------------------
# closed-form gradients
# ------------------------------------------------------------------------------------------------------------------
@nb.njit(cache=True, fastmath=True, inline="always")
def _preactivations(z, XT, WT, b, i):  # pragma: no cover - compiled
    """In place: ``z_mu = b_i + sum_k W_ik X_mu,k`` for every sample mu (X^T rows contiguous in mu)."""
    bi = b[i]
    for mu in range(z.shape[0]):
        z[mu] = bi
    for k in range(XT.shape[0]):
        wk = WT[k, i]
        for mu in range(z.shape[0]):
            z[mu] += wk * XT[k, mu]


@nb.njit(parallel=True, cache=True, fastmath=True)
def _fused_grad(X, WT, b, beta, y, alpha, nblk):  # pragma: no cover - compiled
    """Loss and gradients of L = sum (alpha f - y)^2 / (2 alpha^2 P) w.r.t. (W^T, b, beta): two passes over the
    neurons (split in ``nblk`` chunks, one per thread), each recomputing a neuron's P pre-activations
    z_mu = b_i + w_i.x_mu in a length-P buffer (never the (P, h) matrix), against X^T so that the loops over the
    samples are contiguous and vectorise; the forward pass reduces into one partial output per chunk."""
    P, d = X.shape
    h = WT.shape[1]
    XT = np.ascontiguousarray(X.T)
    bs = (h + nblk - 1) // nblk
    parts = np.zeros((nblk, P))
    for t in nb.prange(nblk):
        z = np.empty(P)
        acc = np.zeros(P)
        for i in range(t * bs, min(h, (t + 1) * bs)):
            _preactivations(z, XT, WT, b, i)
            be = beta[i]
            for mu in range(P):
                acc[mu] += be * max(z[mu], 0.0)
        parts[t] = acc
    f = np.zeros(P)
    for t in range(nblk):
        f += parts[t]
    F = alpha * f / h
    r = np.empty(P)
    loss = 0.0
    for mu in range(P):
        e = F[mu] - y[mu]
        loss += e * e
        r[mu] = e / (alpha * P)
    loss = loss / (2.0 * alpha * alpha * P)
    gWT = np.zeros((d, h))
    gb = np.zeros(h)
    gbeta = np.zeros(h)
    for t in nb.prange(nblk):
        z = np.empty(P)
        m = np.empty(P)
        for i in range(t * bs, min(h, (t + 1) * bs)):
            _preactivations(z, XT, WT, b, i)
            sb = 0.0
            sbeta = 0.0
            for mu in range(P):
                mm = r[mu] if z[mu] > 0 else 0.0
                m[mu] = mm
                sb += mm
                sbeta += mm * z[mu]
            c = beta[i] / h
            for k in range(d):
                s = 0.0
                for mu in range(P):
                    s += m[mu] * XT[k, mu]
                gWT[k, i] = s * c
            gb[i] = sb * c
            gbeta[i] = sbeta / h
    return loss, F, gWT, gb, gbeta


def _torch_grad(X, W, b, beta, y, alpha):
    """Same as :func:`_fused_grad` with torch matmuls (any device)."""
    P = X.shape[0]
    h = W.shape[0]
    Z = torch.addmm(b, X, W.T)
    A = torch.relu(Z)
    F = alpha * (A @ beta) / h
    e = F - y
    loss = float(e @ e) / (2 * alpha * alpha * P)
    r = e / (alpha * P)
    gbeta = A.T @ r / h
    A.gt_(0).mul_(r[:, None])  # A <- sigma'(Z) * r
    gW = (A.T @ X) * (beta / h)[:, None]
    gb = A.sum(0) * beta / h
    return loss, F, gW, gb, gbeta


@dataclass
class TwoLayerTrainResult:
    steps: int
    converged: bool
    reason: str                  # "loss_tol" | "stall" | "max_steps" | "max_time"
    train_error: float           # mean (F - y)^2 / mean y^2 at the end
    loss: float                  # alpha-trick loss at the end
    seconds: float
    rejected: int = 0
    history: list = field(default_factory=list)   # (step, train_error, lr)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def train_two_layer(model: TwoLayerReLU, x, y, *, lr: float = 1.0, max_steps: int = 100_000, loss_tol: float = 1e-6,
          stall_rtol: float = 1e-4, patience: int = 1000, adaptive: bool = True, lr_max: float | None = None,
          max_time: float | None = None,
          backend: str = "auto", threads: int | None = None, progress: bool = False,
          log_every: int = 100) -> TwoLayerTrainResult:
    r"""Full-batch gradient descent on the alpha-trick loss with learning rate ``lr * h`` (in place).

    Gradients are closed-form (no autograd): with ``r_mu = (F_mu - y_mu)/(alpha P)``,
    ``dL/dbeta_i = (1/h) sum_mu r_mu sigma(z_{mu i})``, ``dL/dw_i = (beta_i/h) sum_mu r_mu sigma'(z_{mu i}) x_mu``,
    ``dL/db_i = (beta_i/h) sum_mu r_mu sigma'(z_{mu i})``.  ``adaptive``: a step that raises the loss is rejected and
    the rate halved, an accepted step multiplies it by 1.05 up to ``lr_max`` (default ``16 lr``) -- a discretisation
    of the same gradient flow at the largest stable rate.  Stops when ``train_error = <(F-y)^2>/<y^2> <= loss_tol``
    (converged), when the loss fell by less than a fraction ``stall_rtol`` over ``patience`` steps, or at
    ``max_steps`` / ``max_time`` seconds;
    Ctrl-C (KeyboardInterrupt) leaves the model at its last accepted step and propagates, so that a caller does not
    take a half-trained network for a trained one; a non-finite train error (divergence, e.g. a too large fixed
    ``lr``) raises ``FloatingPointError``.  ``backend``: ``"numba"`` (CPU, fused), ``"torch"`` (closed form, any device), ``"auto"``.
    Feature regime (alpha << 1): pass ``lr ~ alpha`` and ``adaptive=False`` (module notes, :func:`trained_regimes`).
    """
    if not isinstance(model, TwoLayerReLU):
        raise ValueError("model must be a TwoLayerReLU")
    if not model.symmetric:
        raise ValueError("train_two_layer() needs a symmetric initialisation (f_0 = 0); use symmetric_init")
    lr = check_real(lr, "lr", 0.0, low_inclusive=False)
    check_int(max_steps, "max_steps", 1)
    check_int(patience, "patience", 1)
    if not loss_tol >= 0:
        raise ValueError(f"loss_tol must be >= 0, got {loss_tol}")
    if not (0 <= stall_rtol < 1):
        raise ValueError(f"stall_rtol must be in [0, 1), got {stall_rtol}")
    if lr_max is not None and not (math.isfinite(lr_max) and lr_max >= lr):
        raise ValueError(f"lr_max must be None or a finite number >= lr = {lr}, got {lr_max}")
    if max_time is not None and not max_time > 0:
        raise ValueError(f"max_time must be None or > 0 seconds, got {max_time}")
    check_int(log_every, "log_every", 1)
    if threads is not None:
        check_int(threads, "threads", 1)
    check_choice(backend, "backend", ("auto", "numba", "torch"))
    dev = model.w.device
    if backend == "auto":
        backend = "numba" if dev.type == "cpu" else "torch"
    check_choice(backend, "backend", ("numba", "torch"))
    if backend == "numba" and dev.type != "cpu":
        raise ValueError("backend='numba' needs the model on the CPU")
    xn = np.ascontiguousarray(np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64))
    yn = np.ascontiguousarray(np.asarray(y.detach().cpu() if torch.is_tensor(y) else y, dtype=np.float64))
    if xn.ndim != 2 or xn.shape[1] != model.d or yn.shape != (xn.shape[0],):
        raise ValueError(f"x must be (P, {model.d}) and y (P,), got {xn.shape}, {yn.shape}")
    if not (np.isfinite(xn).all() and np.isfinite(yn).all()):
        raise ValueError("x and y must be finite")
    if xn.shape[0] == 0:
        raise ValueError("x must hold at least one training point, got P = 0")
    alpha, h = model.alpha, model.h
    y2 = max(float(np.mean(yn**2)), 1e-300)
    train_b = model.bias

    if backend == "numba":
        nthreads = threads or nb.get_num_threads()
        nblk = max(1, min(nthreads, h // 64 if h >= 64 else 1))
        with torch.no_grad():
            p = [model.w.detach().cpu().numpy().T.copy(), model.b.detach().cpu().numpy().copy(),
                 model.beta.detach().cpu().numpy().copy()]

        def evaluate(q):
            loss, F, gW, gb, gbeta = _fused_grad(xn, q[0], q[1], q[2], yn, alpha, nblk)
            return loss, F, [gW, gb, gbeta]
    else:
        X = torch.as_tensor(xn, dtype=DTYPE, device=dev)
        Y = torch.as_tensor(yn, dtype=DTYPE, device=dev)
        p = [model.w.detach().clone(), model.b.detach().clone(), model.beta.detach().clone()]

        def evaluate(q):
            loss, F, gW, gb, gbeta = _torch_grad(X, q[0], q[1], q[2], Y, alpha)
            return loss, F, [gW, gb, gbeta]

    old_threads = nb.get_num_threads()
    if threads and backend == "numba":
        nb.set_num_threads(int(threads))
    t0 = time.perf_counter()
    eta = lr * h
    eta_max = (16 * lr if lr_max is None else float(lr_max)) * h
    loss, F, g = evaluate(p)
    hist, step, rejected, reason = [], 0, 0, "max_steps"
    ckpt_loss, ckpt_step = loss, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_steps, desc=f"train alpha={alpha:g}", leave=False)
    try:
        while True:
            err = 2 * alpha * alpha * loss / y2
            if step % log_every == 0:
                hist.append((step, err, eta / h))
                if bar is not None:
                    bar.n = step
                    bar.set_postfix(err=f"{err:.2e}", lr=f"{eta / h:.2g}")
            if err <= loss_tol:
                reason = "loss_tol"
                break
            if step >= max_steps:
                reason = "max_steps"
                break
            if max_time is not None and time.perf_counter() - t0 > max_time:
                reason = "max_time"
                break
            if step - ckpt_step >= patience:
                if loss > (1 - stall_rtol) * ckpt_loss:
                    reason = "stall"
                    break
                ckpt_loss, ckpt_step = loss, step
            q = [p[0] - eta * g[0], p[1] - eta * g[1] if train_b else p[1], p[2] - eta * g[2]]
            new = evaluate(q)
            if not adaptive and not math.isfinite(new[0]):
                raise FloatingPointError(
                    f"train diverged: the loss became {new[0]} at step {step + 1} with the fixed lr = {lr:g}; use a "
                    "smaller lr (the feature regime needs lr ~ alpha) or adaptive=True (the model keeps step "
                    f"{step})")
            if adaptive and not (new[0] <= loss):
                eta *= 0.5
                rejected += 1
                if eta < 1e-12 * lr * h:
                    reason = "stall"
                    break
                continue
            p, (loss, F, g) = q, new
            step += 1
            if adaptive:
                eta = min(eta * 1.05, eta_max)
    except SystemError as exc:  # Ctrl-C inside a numba kernel's call back into Python
        if caused_by_interrupt(exc):
            raise KeyboardInterrupt from None
        raise
    finally:  # also on Ctrl-C: the model keeps the last accepted step, then KeyboardInterrupt propagates
        if bar is not None:
            bar.close()
        if threads and backend == "numba":
            nb.set_num_threads(old_threads)
        _store(model, p, backend)
    err = 2 * alpha * alpha * loss / y2
    if not math.isfinite(err):
        raise FloatingPointError(
            f"train diverged: the train error is {err} after {step} steps at lr = {lr:g} (adaptive={adaptive}); "
            "use a smaller lr (the feature regime needs lr ~ alpha) or adaptive=True")
    hist.append((step, err, eta / h))
    return TwoLayerTrainResult(steps=step, converged=reason == "loss_tol", reason=reason, train_error=float(err),
                       loss=float(loss), seconds=time.perf_counter() - t0, rejected=rejected, history=hist)


def _store(model: "TwoLayerReLU", p, backend: str) -> None:
    """Copy the parameters ``p`` of :func:`train` back into ``model``."""
    with torch.no_grad():
        if backend == "numba":
            model.w.copy_(torch.as_tensor(p[0].T))
            model.b.copy_(torch.as_tensor(p[1]))
            model.beta.copy_(torch.as_tensor(p[2]))
        else:
            model.w.copy_(p[0])
            model.b.copy_(p[1])
            model.beta.copy_(p[2])


# ------------------------------------------------------------------------------------------------------------------
# kernels
# ------------------------------------------------------------------------------------------------------------------
def _inputs(x, name: str, model: "TwoLayerReLU"):
    """``x`` as a finite (P, d) float64 tensor on the model's device, else an error naming ``name``."""
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    if isinstance(x, (str, bytes)) or x is None or np.iscomplexobj(x):
        raise TypeError(f"{name} must be a real (P, {model.d}) array, got {type(x).__name__}")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real (P, {model.d}) array, got {type(x).__name__}") from None
    if a.ndim != 2 or a.shape[1] != model.d:
        raise ValueError(f"{name} must have shape (P, {model.d}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return torch.as_tensor(a, dtype=DTYPE, device=model.w.device)


def empirical_ntk(model: TwoLayerReLU, x1, x2=None) -> np.ndarray:
    r"""Finite-width NTK in the normalisation of :func:`theory.spherical.ntk`:
    ``Theta_h(x, x') = (1/h) sum_i [sigma(z_i) sigma(z'_i) + beta_i^2 sigma'(z_i) sigma'(z'_i) u.u']``
    (``u = (x, 1)`` when the bias is trained) -- equal to ``h <grad f(x), grad f(x')>``."""
    if not isinstance(model, TwoLayerReLU):
        raise TypeError(f"model must be a TwoLayerReLU (symmetric_init), got {type(model).__name__}")
    with torch.no_grad():
        X1 = _inputs(x1, "x1", model)
        X2 = X1 if x2 is None else _inputs(x2, "x2", model)
        Z1 = X1 @ model.w.T + model.b
        Z2 = X2 @ model.w.T + model.b
        A = torch.relu(Z1) @ torch.relu(Z2).T
        G = ((Z1 > 0).to(DTYPE) * model.beta**2) @ (Z2 > 0).to(DTYPE).T
        U = X1 @ X2.T + (1.0 if model.bias else 0.0)
        return ((A + G * U) / model.h).cpu().numpy()


KRR_WEIGHTS = ("uniform_sphere", "gaussian")


def krr_predict(x_train, y_train, x_test, *, kernel: str = "ntk", ridge: float = 0.0, bias: bool = False,
                weights: str = "uniform_sphere") -> np.ndarray:
    r"""Kernel (ridge) regression ``k(x, X) (K + ridge * mean(diag K) I)^{-1} y`` with the analytic NTK or
    random-feature kernel of :mod:`theory.spherical`; ``ridge = 0`` is the interpolating lazy limit of training.

    ``weights``: the law of the initial weights the NTK is the limit of, which sets the relative weight of its two
    terms (:func:`theory.spherical.ntk`, ``u = x`` or ``(x, 1)``, ``D = dim u``):

    * ``"uniform_sphere"`` (ours): ``(w_i, b_i)`` uniform on S^{D-1}, ``beta_i = +-1`` -- the symmetric
      initialisation of :func:`symmetric_init` that :func:`train` starts from, so this is the kernel of *our* lazy
      networks: :math:`\Theta = k_1/D + \cos\phi\,k_0` (``beta2 = 1``);
    * ``"gaussian"``: ``(w_i, b_i) ~ N(0, I_D)``, ``beta_i ~ N(0, 1)`` -- the kernel of the authors'
      ``pcsl-epfl/regressionsphere`` (``gram_ntk`` in ``dataset/gaussian_random_fields.py``:
      :math:`[(x\cdot y) k_0^\pi + |x||y| k_1^\pi]/(2d)` with their :math:`k^\pi = 2k`), i.e.
      :math:`k_1 + \cos\phi\,k_0`, proportional to ``ntk(..., beta2=1/D)``.  The overall scale cancels in ridge(less)
      regression; the ratio of the terms does not: at d = 3, P = 128 (constant target) our test error is about
      4 times theirs, with the same learning-curve slope (docs/reference-conventions.md).

    The random-feature kernel ``k_1`` alone does not depend on the weight law beyond its scale, so ``weights``
    changes nothing for ``kernel="rf"``.
    """
    if kernel not in ("ntk", "rf"):
        raise ValueError(f"kernel must be 'ntk' or 'rf', got {kernel!r}")
    check_choice(weights, "weights", KRR_WEIGHTS)
    ridge = check_real(ridge, "ridge", 0.0)
    check_flag("bias", bias)
    xt, yt = np.asarray(x_train, dtype=np.float64), np.asarray(y_train, dtype=np.float64)
    if yt.ndim != 1 or xt.ndim != 2 or xt.shape[0] != yt.shape[0] or xt.shape[0] == 0:
        raise ValueError(f"x_train must be (P, D) and y_train (P,) with P >= 1, got {xt.shape} and {yt.shape}")
    if not (np.isfinite(xt).all() and np.isfinite(yt).all()):
        raise ValueError("x_train and y_train must be finite (a NaN or infinite label makes every prediction NaN)")
    if not np.isfinite(np.asarray(x_test, dtype=np.float64)).all():
        raise ValueError("x_test must be finite")
    if kernel == "rf":
        kf = th.rf_kernel
    elif weights == "gaussian":
        D = np.shape(x_train)[-1] + (1 if bias else 0)

        def kf(x1, x2=None, *, bias):
            return th.ntk(x1, x2, bias=bias, beta2=1.0 / D)
    else:
        kf = th.ntk
    K = kf(x_train, bias=bias)
    if ridge > 0:
        K = K + ridge * np.mean(np.diag(K)) * np.eye(K.shape[0])
    a = np.linalg.solve(K, np.asarray(y_train, dtype=np.float64))
    return kf(x_test, x_train, bias=bias) @ a


def network_atoms(model: TwoLayerReLU, x, *, rel_tol: float = 1e-2):
    """Atoms of a trained network: sign-pattern groups on ``x`` of the neurons, weight ``|sum beta_i |u_i||``
    (with ``u_i = (w_i, b_i)``; sigma is 1-homogeneous), see :func:`numerics.atoms.count_atoms`."""
    with torch.no_grad():
        U = torch.cat([model.w, model.b[:, None]], 1) if model.bias else model.w
        U = U.cpu().numpy()
        beta = model.beta.cpu().numpy()
    xx = np.asarray(x, dtype=np.float64)
    if model.bias:
        xx = np.concatenate([xx, np.ones((xx.shape[0], 1))], 1)
    return count_atoms(U, beta * np.linalg.norm(U, axis=1), x=xx, rel_tol=rel_tol)
