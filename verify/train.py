r"""Training loop for the verification experiments: SGD + momentum (or Adam) + cosine schedule, hinge, MSE or
cross-entropy loss, α-trick.

Set-up of Tomasini et al. (2022) / Petrini et al. (2021) for CNNs on the scale-detection task: hinge loss
ℓ(F, y) = ReLU(1 - yF) with y ∈ {-1, +1} (or ℓ = ½ (F - y)²), SGD with momentum 0.9, weight decay 5·10⁻⁴ on the
non-bias parameters, learning rate cosine-annealed from ``lr`` to 0 over the run.

Multi-class classification (the image experiments, Petrini et al. 2021): ``loss="cross_entropy"``,
ℓ(F, y) = -log softmax(F)_y with F ∈ R^K the net's K outputs and integer labels y ∈ {0, …, K-1}; the error is then
the fraction of samples with argmax_k F_k ≠ y.  ``optimizer="adam"`` (Kingma & Ba 2015, torch defaults β = (0.9,
0.999); ``momentum`` unused, ``weight_decay`` an L2 term added to the gradient as in ``torch.optim.Adam``) is the
reference code's optimiser for fully-connected nets.

α-trick (Chizat & Bach 2019; Geiger et al. 2020): the predictor is F(w, x) = α (f(w, x) - f(w₀, x)) with f(w₀, ·) a
frozen copy of the initial net, and the loss is ℓ(F, y) / α².  Then gradient descent on w gives function-space
dynamics dF/dt = -lr ℓ'(F) |∇_w f|² independent of α while the weights move by O(1/α): α → ∞ is the lazy (kernel)
regime, α → 0 the feature regime.  (Dividing the loss by α² is the same as keeping ℓ(F, y)/α and scaling the
learning rate by 1/α.)

Device and precision: CUDA when ``torch.cuda.is_available()`` (float32), otherwise CPU in float64.  Everything random
(mini-batch order) uses a seeded ``torch.Generator``.

Ctrl-C: :func:`train` finishes the bookkeeping of the epochs done (history, a last filter checkpoint) and re-raises
the KeyboardInterrupt as :class:`TrainingInterrupted` (a KeyboardInterrupt carrying that partial
:class:`TrainResult` as ``.result``), so that no caller measures a half-trained net by accident;
``train(..., on_interrupt="return")`` returns the partial result with ``interrupted=True`` instead.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from verify.models import as_tensor, conv_filters

__all__ = ["TrainConfig", "TrainResult", "AlphaPredictor", "train", "default_device", "default_dtype",
           "classification_error", "class_labels", "LOSSES", "OPTIMIZERS", "TrainingInterrupted", "ON_INTERRUPT"]


def default_device() -> str:
    """"cuda" when torch sees a GPU, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device) -> torch.dtype:
    """float32 on a GPU (speed), float64 on the CPU (accuracy of the small-difference numerators of D and G)."""
    return torch.float32 if torch.device(device).type == "cuda" else torch.float64


LOSSES = ("hinge", "mse", "cross_entropy")
OPTIMIZERS = ("sgd", "adam")
ON_INTERRUPT = ("raise", "return")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train` (with ``on_interrupt="raise"``, the default).  A KeyboardInterrupt, so callers
    that stop on Ctrl-C still stop; ``result`` is the partial :class:`TrainResult` (``interrupted=True``, the
    epochs done, their history and checkpoints; the model keeps its weights of the last finished step)."""

    def __init__(self, result: "TrainResult"):
        super().__init__(f"training interrupted after {result.epochs_done} epoch(s)")
        self.result = result


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train` (defaults: the paper's scale-detection runs, shorter)."""

    loss: str = "hinge"  # "hinge": ReLU(1 - yF);  "mse": ½ (F - y)²;  "cross_entropy": -log softmax(F)_y, y in 0..K-1
    optimizer: str = "sgd"  # "sgd" (momentum) or "adam" (momentum unused)
    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on weights only, not on biases
    schedule: str = "cosine"  # "cosine" (lr → 0 over the run) or "constant"
    alpha: float | None = None  # α-trick: F = α (f - f₀), loss / α²
    checkpoint_every: int | None = None  # save conv filters every this many epochs (plus epoch 0 and the end)
    eval_every: int = 10  # test error every this many epochs (and at the end)
    stop_loss: float | None = None  # stop after the first epoch whose mean training loss is <= this (None: never)
    seed: int = 0
    device: str | None = None  # None: default_device()
    dtype: str | None = None  # None: default_dtype(device) (float32 on GPU, float64 on CPU); or "float32"/"float64"
    progress: bool = True

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ValueError(f"{name} must be a number, got {v!r}")
        for name in ("epochs", "batch_size", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.checkpoint_every is not None and (isinstance(self.checkpoint_every, bool)
                                                  or not isinstance(self.checkpoint_every, (int, np.integer))
                                                  or self.checkpoint_every < 1):
            raise ValueError(f"checkpoint_every must be None or an integer >= 1, got {self.checkpoint_every!r}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        if self.stop_loss is not None and (isinstance(self.stop_loss, bool)
                                           or not isinstance(self.stop_loss, (int, float, np.integer, np.floating))
                                           or not np.isfinite(self.stop_loss) or self.stop_loss < 0):
            raise ValueError(f"stop_loss must be None or a finite number >= 0, got {self.stop_loss!r}")
        if self.alpha is not None and not (np.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha must be None or a finite number > 0, got {self.alpha!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as exc:
                raise ValueError(f"device must be None or a torch device string such as 'cpu' or 'cuda', "
                                 f"got {self.device!r}") from exc


class AlphaPredictor(nn.Module):
    """F(x) = α (f(w, x) - f(w₀, x)) with f(w₀, ·) frozen (α-trick).  ``net`` is the trained net f(w, ·).

    The copy f(w₀, ·) stays in eval mode whatever ``train()`` is called with, so that batch norm uses its stored
    statistics and f(w₀, ·) is one fixed function (in train mode it would depend on the batch)."""

    def __init__(self, net: nn.Module, alpha: float):
        super().__init__()
        self.net = net
        self.init = copy.deepcopy(net)
        for p in self.init.parameters():
            p.requires_grad_(False)
        self.init.eval()
        self.alpha = float(alpha)

    def train(self, mode: bool = True) -> "AlphaPredictor":
        super().train(mode)
        self.init.eval()
        return self

    def forward(self, x):
        return self.alpha * (self.net(x) - self.init(x))


@dataclass
class TrainResult:
    """What :func:`train` returns.  ``predictor`` is what was fitted (the net, or its α-trick wrapper)."""

    model: nn.Module
    predictor: nn.Module
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, lr, loss, train_err, [test_err]
    checkpoints: list[dict] = field(default_factory=list)  # {"epoch": e, "filters": {name: array}}
    epochs_done: int = 0
    interrupted: bool = False
    stopped_early: bool = False  # stopped by ``stop_loss``
    seconds: float = 0.0
    device: str = "cpu"
    dtype: str = "float64"

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    def summary(self) -> dict:
        """JSON-serialisable summary (no weights)."""
        return {"epochs_done": self.epochs_done, "interrupted": self.interrupted,
                "stopped_early": self.stopped_early, "seconds": self.seconds,
                "device": self.device, "dtype": self.dtype, "final": self.final,
                "n_checkpoints": len(self.checkpoints)}


def _loss(kind: str, F: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return torch.relu(1 - y * F).mean()
    if kind == "cross_entropy":
        return nn.functional.cross_entropy(F, y)
    return 0.5 * ((F - y) ** 2).mean()


def class_labels(y, *, device=None, name: str = "y") -> torch.Tensor:
    """Integer class labels 0, 1, … as an int64 tensor (P,); integer-valued floats are accepted, anything else
    (negative, fractional, non-finite) is a ValueError naming ``name``."""
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).reshape(-1)
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or not bool((t == t.round()).all()):
            raise ValueError(f"{name} must hold integer class labels 0, 1, …, got non-integer values")
    elif t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must hold integer class labels 0, 1, …, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.int64)
    if len(t) and int(t.min()) < 0:
        raise ValueError(f"{name} must hold integer class labels 0, 1, …, got {int(t.min())}")
    return t


def _check_outputs(F: torch.Tensor, y: torch.Tensor, name: str = "y") -> None:
    """Multi-class outputs (P, K), K >= 2, with every label of ``y`` below K."""
    if F.dim() != 2 or F.shape[1] < 2:
        raise ValueError(f"cross-entropy needs a predictor with K >= 2 outputs per sample, got outputs of shape "
                         f"{tuple(F.shape)}")
    if len(y) and int(y.max()) >= F.shape[1]:
        raise ValueError(f"{name} holds the label {int(y.max())} but the predictor has only {F.shape[1]} outputs")


@torch.no_grad()
def classification_error(predictor: nn.Module, x, y, *, batch_size: int = 4096) -> float:
    """Classification error of the predictor F on (x, y).

    One output per sample: the fraction of samples with sign(F(x)) ≠ y (y ∈ {-1, +1}; F = 0 and a non-finite F
    count as errors).  K >= 2 outputs: the fraction with argmax_k F_k(x) ≠ y (y integer labels in 0 … K-1; a sample
    with a non-finite output counts as an error).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    p = next(predictor.parameters())
    x = as_tensor(x, device=p.device, dtype=p.dtype)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"x and y must have the same non-zero length, got {len(x)} and {len(y)}")
    F0 = predictor(x[:batch_size])
    if F0.dim() == 2 and F0.shape[1] > 1:  # multi-class: argmax
        y = class_labels(y, device=p.device)
        _check_outputs(F0, y)
        wrong = 0
        for i in range(0, len(x), batch_size):
            F = F0 if i == 0 else predictor(x[i:i + batch_size])
            bad = ~torch.isfinite(F).all(dim=1)
            wrong += int(((F.argmax(dim=1) != y[i:i + batch_size]) | bad).sum())
        return wrong / len(x)
    y = as_tensor(y, device=p.device, dtype=p.dtype).reshape(-1)
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("y must hold labels in {-1, +1}")
    wrong = 0
    for i in range(0, len(x), batch_size):
        F = (F0 if i == 0 else predictor(x[i:i + batch_size])).reshape(-1)
        wrong += int((~(F * y[i:i + batch_size] > 0)).sum())   # NaN > 0 is False: a NaN output is an error
    return wrong / len(x)


def train(model: nn.Module, x, y, config: TrainConfig | None = None, *, x_test=None, y_test=None,
          on_interrupt: str = "raise") -> TrainResult:
    """Train ``model`` in place on (x, y) with mini-batch SGD; see the module docstring for the exact set-up.

    x : (P, …) inputs (numpy or tensor); y : (P,) labels in {-1, +1} (hinge), real targets (mse) or integer class
    labels 0 … K-1 (cross_entropy, for a predictor with K outputs).
    Returns a :class:`TrainResult`; conv filters are saved at epoch 0, every ``checkpoint_every`` epochs and at the
    end when ``config.checkpoint_every`` is set.

    on_interrupt : ``"raise"`` (default) or ``"return"``.  On Ctrl-C (KeyboardInterrupt) the epochs done are
        recorded and the filters saved as a last checkpoint; then ``"raise"`` raises :class:`TrainingInterrupted`
        (a KeyboardInterrupt whose ``.result`` is the partial result), ``"return"`` returns the partial result with
        ``interrupted=True`` (for a caller that handles unfinished training itself).
    """
    if not isinstance(on_interrupt, str):
        raise TypeError(f"on_interrupt must be a str, one of {ON_INTERRUPT}, got {type(on_interrupt).__name__}")
    if on_interrupt not in ON_INTERRUPT:
        raise ValueError(f"on_interrupt must be one of {ON_INTERRUPT}, got {on_interrupt!r}")
    cfg = config or TrainConfig()
    device = torch.device(cfg.device or default_device())
    dtype = default_dtype(device) if cfg.dtype is None else getattr(torch, cfg.dtype)
    model.to(device=device, dtype=dtype)
    x = as_tensor(x, device=device, dtype=dtype)
    multiclass = cfg.loss == "cross_entropy"
    y = class_labels(y, device=device) if multiclass else as_tensor(y, device=device, dtype=dtype).reshape(-1)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must have the same non-zero length, got {len(x)} and {len(y)}")
    if not (torch.isfinite(x).all() and (multiclass or torch.isfinite(y).all())):
        raise ValueError("x and y must be finite")
    if cfg.loss == "hinge" and not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("hinge loss needs labels y in {-1, +1}")
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test must be given together")
    has_test = x_test is not None
    if has_test:
        x_test = as_tensor(x_test, device=device, dtype=dtype)
        y_test = (class_labels(y_test, device=device, name="y_test") if multiclass
                  else as_tensor(y_test, device=device, dtype=dtype).reshape(-1))
        if len(x_test) != len(y_test) or len(x_test) == 0:
            raise ValueError(f"x_test and y_test must have the same non-zero length, got {len(x_test)} and "
                             f"{len(y_test)}")
        if not multiclass and not bool(((y_test == 1) | (y_test == -1)).all()):
            raise ValueError("y_test must hold labels in {-1, +1} (the test error is a classification error)")

    predictor = AlphaPredictor(model, cfg.alpha) if cfg.alpha is not None else model
    scale = 1.0 / cfg.alpha**2 if cfg.alpha is not None else 1.0
    decay = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith("bias")]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and n.endswith("bias")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=cfg.lr)
    else:
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.schedule == "cosine"
             else None)
    gen = torch.Generator()
    gen.manual_seed(int(cfg.seed))

    result = TrainResult(model=model, predictor=predictor, device=str(device), dtype=str(dtype).replace("torch.", ""))
    if cfg.checkpoint_every is not None:
        result.checkpoints.append({"epoch": 0, "filters": conv_filters(model)})
    P = len(x)
    t0 = time.perf_counter()
    try:
        from tqdm.auto import tqdm
        bar = tqdm(range(1, cfg.epochs + 1), desc="train", disable=not cfg.progress, leave=False)
    except ImportError:  # pragma: no cover
        bar = range(1, cfg.epochs + 1)
    try:
        for epoch in bar:
            model.train()
            perm = torch.randperm(P, generator=gen).to(device)
            tot_loss, wrong = 0.0, 0
            for i in range(0, P, cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                F = predictor(x[idx])
                if multiclass:
                    if i == 0 and epoch == 1:
                        _check_outputs(F, y)
                else:
                    F = F.reshape(-1)
                loss = _loss(cfg.loss, F, y[idx])
                opt.zero_grad(set_to_none=True)
                (loss * scale).backward()
                opt.step()
                tot_loss += float(loss.detach()) * len(idx)
                if multiclass:
                    wrong += int((F.detach().argmax(dim=1) != y[idx]).sum())
                else:
                    wrong += int((torch.sign(F.detach()) != torch.sign(y[idx])).sum())
            lr_now = opt.param_groups[0]["lr"]
            if sched is not None:
                sched.step()
            row = {"epoch": epoch, "lr": lr_now, "loss": tot_loss / P, "train_err": wrong / P}
            if has_test and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                model.eval()
                row["test_err"] = classification_error(predictor, x_test, y_test)
            result.history.append(row)
            result.epochs_done = epoch
            if cfg.checkpoint_every is not None and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs):
                result.checkpoints.append({"epoch": epoch, "filters": conv_filters(model)})
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{row['loss']:.3g}", err=f"{row['train_err']:.3f}")
            if not np.isfinite(row["loss"]):
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss {row['loss']}); lower lr")
            if cfg.stop_loss is not None and row["loss"] <= cfg.stop_loss:
                result.stopped_early = True
                break
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        if hasattr(bar, "close"):
            bar.close()
    model.eval()
    if (result.interrupted or result.stopped_early) and cfg.checkpoint_every is not None and result.epochs_done and \
            result.checkpoints[-1]["epoch"] != result.epochs_done:
        result.checkpoints.append({"epoch": result.epochs_done, "filters": conv_filters(model)})
    result.seconds = time.perf_counter() - t0
    if result.interrupted and on_interrupt == "raise":
        raise TrainingInterrupted(result)  # the test error is not computed: the user asked to stop
    if has_test and result.history and "test_err" not in result.history[-1]:
        result.history[-1]["test_err"] = classification_error(predictor, x_test, y_test)
    result.seconds = time.perf_counter() - t0
    return result
