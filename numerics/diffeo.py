r"""Maximum-entropy sine diffeomorphisms: sampling, application to images, fold detection.

Petrini, Favero, Geiger, Wyart, "Relative stability toward diffeomorphisms indicates performance in deep
nets", NeurIPS 2021; reference code ``pcsl-epfl/diffeomorphism``. The statistics of the fields (exact lattice
sums, asymptotics, temperature window) are derived in :mod:`theory.diffeo`.

Conventions (pixel coordinates :math:`p_y\in[0,H-1]`, :math:`p_x\in[0,W-1]`, N = max(H, W)):

* each displacement component (0 = vertical, 1 = horizontal) is an independent sine series

  .. math:: D(p_y,p_x) = N\sqrt T\sum_{(i,j)\in\mathcal K(c)} \frac{z_{ij}}{k_{ij}}
            \sin\frac{i\pi p_y}{H-1}\sin\frac{j\pi p_x}{W-1},\qquad z_{ij}\sim\mathcal N(0,1),

  with :math:`k_{ij}^2 = (i/a)^2+(j/b)^2`, :math:`a=(H-1)/(N-1)`, :math:`b=(W-1)/(N-1)`: the cut-off acts on the
  physical wavenumber, so rectangular images are deformed isotropically. For H = W = n this is exactly the
  reference field (grid ``linspace(0, 1, n)``, amplitude n√T, variance T/(i²+j²));
* one independent field per sample of the batch (the reference shares one field across a call);
* the image is pulled back, :math:`\tau x(p) = x(p - D(p))`, with source coordinates clamped to the image
  (bilinear or nearest interpolation). Border pixels never move: the sine tables vanish exactly there.

Numpy input runs a fused numba kernel (synthesis + remap, parallel over the batch); torch input runs on the
tensor's device and is differentiable with respect to the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from numba import njit, prange

from numerics.seeds import generator
from theory import diffeo as _th

INTERPOLATIONS = ("linear", "nearest")
METHODS = ("exact", "paper", "asymptotic")


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
def _check_real(value: Any, name: str, low: float | None = None, low_inclusive: bool = True) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number, got {value!r}") from exc
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        rel = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {rel} {low}, got {value!r}")
    return v


def _check_cutoff(cutoff: str) -> None:
    if cutoff not in _th.CUTOFF_RULES:
        raise ValueError(f"cutoff must be one of {_th.CUTOFF_RULES}, got {cutoff!r}")


def _check_interp(interp: str) -> int:
    if interp not in INTERPOLATIONS:
        raise ValueError(f"interp must be one of {INTERPOLATIONS}, got {interp!r}")
    return INTERPOLATIONS.index(interp)


def _check_size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    return int(value)


def _normal_sampler(seed: Any):
    """A function ``shape -> standard normal float64 array`` drawing from ``seed`` (None, int, numpy Generator,
    or torch.Generator; the torch generator draws on its own device and the result is moved to the host)."""
    if _is_torch(seed):
        torch = _torch()
        return lambda shape: torch.randn(shape, generator=seed, dtype=torch.float64, device=seed.device).cpu().numpy()
    rng = generator(seed)
    return rng.standard_normal


def _shape_lengths(height: int, width: int) -> tuple[Fraction, Fraction, int]:
    n = max(height, width)
    return Fraction(height - 1, n - 1), Fraction(width - 1, n - 1), n


# ----------------------------------------------------------------------------------------------------------
# mode tables
# ----------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=128)
def _mode_table(height: int, width: int, c: Fraction, cutoff: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i-1, j-1, 1/k_ij) for the kept modes of an H×W image (exact cut-off test from :mod:`theory.diffeo`)."""
    a, b, _ = _shape_lengths(height, width)
    modes = _th.kept_modes(c, cutoff, a, b)
    if not modes:
        raise ValueError(f"c={float(c)!r} with cutoff={cutoff!r} keeps no mode for a {height}x{width} image; "
                         "increase c")
    mi = np.array([m[0] - 1 for m in modes], dtype=np.int64)
    mj = np.array([m[1] - 1 for m in modes], dtype=np.int64)
    k2 = np.array([(m[0] / float(a)) ** 2 + (m[1] / float(b)) ** 2 for m in modes])
    for arr in (mi, mj):
        arr.setflags(write=False)
    inv_k = 1.0 / np.sqrt(k2)
    inv_k.setflags(write=False)
    return mi, mj, inv_k


@lru_cache(maxsize=128)
def _sine_table(kmax: int, length: int) -> np.ndarray:
    """table[k-1, p] = sin(k π p / (length-1)), exactly 0 at p = 0 and p = length-1 (argument reduced mod 2)."""
    p = np.arange(length)
    k = np.arange(1, kmax + 1)[:, None]
    # reduce k*p modulo 2(length-1) in integers so that sin(m π) is exactly 0 at the borders
    m = (k * p) % (2 * (length - 1))
    table = np.sin(np.pi * m / (length - 1))
    table[:, 0] = 0.0
    table[:, -1] = 0.0
    table.setflags(write=False)
    return table


def _as_fraction(c: Any) -> Fraction:
    v = _check_real(c, "c")
    if v < 1:
        raise ValueError(f"c (the cut-off) must be >= 1, got {c!r}")
    return Fraction(c) if isinstance(c, (int, np.integer)) else Fraction(v)


@dataclass(frozen=True)
class SineDiffeo:
    r"""A batch of sampled sine diffeomorphisms (one per sample), in pixel units.

    ``coef[b, comp, m]`` is :math:`N\sqrt T z_{ij}/k_{ij}` for mode ``m = (mi[m]+1, mj[m]+1)``; component 0
    moves rows (vertical), component 1 columns (horizontal).
    """

    coef: np.ndarray  # (B, 2, M) float64
    mi: np.ndarray  # (M,) 0-based vertical mode index
    mj: np.ndarray  # (M,) 0-based horizontal mode index
    height: int
    width: int
    T: float
    c: float
    cutoff: str

    @property
    def batch(self) -> int:
        return self.coef.shape[0]

    def fields(self) -> np.ndarray:
        """Displacement fields on the pixel grid, shape (B, 2, H, W), pixel units."""
        return _synthesize(self.coef, self.mi, self.mj, *self.sine_tables())

    def sine_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(sy, sx): sy[i-1, p_y] = sin(iπ p_y/(H-1)), sx[j-1, p_x] = sin(jπ p_x/(W-1)), exactly 0 on the border."""
        return _sine_table(int(self.mi.max()) + 1, self.height), _sine_table(int(self.mj.max()) + 1, self.width)

    def min_jacobian_det(self, resolution: int = 4) -> np.ndarray:
        r"""Per sample, the minimum over a grid ``resolution`` times finer than the pixels of
        :math:`\det(I - \nabla D)`, the Jacobian of the map :math:`p \mapsto p - D(p)` (exact derivatives
        of the sine series). The map folds (is not a diffeomorphism) where this is <= 0."""
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
            raise ValueError(f"resolution must be an integer >= 1, got {resolution!r}")
        gy = np.linspace(0.0, self.height - 1.0, resolution * (self.height - 1) + 1)
        gx = np.linspace(0.0, self.width - 1.0, resolution * (self.width - 1) + 1)
        ki = np.arange(1, int(self.mi.max()) + 2)[:, None]
        kj = np.arange(1, int(self.mj.max()) + 2)[:, None]
        wy, wx = np.pi / (self.height - 1), np.pi / (self.width - 1)
        sy, cy = np.sin(ki * wy * gy), ki * wy * np.cos(ki * wy * gy)
        sx, cx = np.sin(kj * wx * gx), kj * wx * np.cos(kj * wx * gx)
        return _min_det(self.coef, self.mi, self.mj, sy, cy, sx, cx)

    def folds(self, resolution: int = 4) -> np.ndarray:
        """Boolean mask of the samples whose map folds somewhere (det(I - ∇τ) <= 0)."""
        return self.min_jacobian_det(resolution) <= 0.0


def sample_diffeos(
    batch: int,
    height: int,
    width: int,
    T: float,
    c: float,
    *,
    cutoff: str = "code",
    seed: Any = None,
    resample_folds: bool = False,
    max_tries: int = 100,
    fold_resolution: int = 4,
) -> SineDiffeo:
    r"""Draw ``batch`` independent maximum-entropy diffeomorphisms of an H×W image.

    With ``resample_folds=True`` every sample whose map folds (:math:`\det(I-\nabla\tau)\le0` somewhere) is
    redrawn until none does; this conditions the law on "is a diffeomorphism". ``seed``: None, int, numpy
    Generator or torch.Generator. ``ValueError`` if some sample
    still folds after ``max_tries`` rounds (T far above T_max).
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    height, width = _check_size(height, "height"), _check_size(width, "width")
    T = _check_real(T, "T", 0.0)
    _check_cutoff(cutoff)
    cf = _as_fraction(c)
    if isinstance(max_tries, bool) or not isinstance(max_tries, (int, np.integer)) or max_tries < 1:
        raise ValueError(f"max_tries must be an integer >= 1, got {max_tries!r}")
    normal = _normal_sampler(seed)
    mi, mj, inv_k = _mode_table(height, width, cf, cutoff)
    scale = max(height, width) * math.sqrt(T) * inv_k
    coef = normal((int(batch), 2, mi.size)) * scale
    diffeo = SineDiffeo(coef, mi, mj, height, width, T, float(cf), cutoff)
    if resample_folds and T > 0:
        for _ in range(max_tries):
            bad = np.flatnonzero(diffeo.folds(fold_resolution))
            if bad.size == 0:
                break
            coef[bad] = normal((bad.size, 2, mi.size)) * scale
        else:
            if diffeo.folds(fold_resolution).any():
                raise ValueError(
                    f"T={T!r} is too large for c={float(cf)!r}: samples still fold after max_tries={max_tries} redraws"
                    " (see temperature_range for the usual window)"
                )
    return diffeo


def sample_fields(
    batch: int, height: int, width: int, T: float, c: float, *, cutoff: str = "code", seed: Any = None
) -> np.ndarray:
    """Displacement fields (B, 2, H, W) in pixels, one independent field per sample (see module docstring)."""
    return sample_diffeos(batch, height, width, T, c, cutoff=cutoff, seed=seed).fields()


# ----------------------------------------------------------------------------------------------------------
# numba kernels
# ----------------------------------------------------------------------------------------------------------
@njit(cache=True, parallel=True)
def _count_nonfinite(flat):  # pragma: no cover - compiled
    bad = 0
    for k in prange(flat.size):
        if not np.isfinite(flat[k]):
            bad += 1
    return bad


def _all_finite(flat: np.ndarray) -> bool:
    """True if every entry is finite (numba reduction: no temporary boolean array)."""
    return _count_nonfinite(flat) == 0


@njit(cache=True, parallel=True)
def _synthesize(coef, mi, mj, sy, sx):  # pragma: no cover - compiled
    B, _, M = coef.shape
    ki, H = sy.shape
    W = sx.shape[1]
    out = np.empty((B, 2, H, W))
    for b in prange(B):
        acc = np.zeros((ki, W))
        for comp in range(2):
            acc[:, :] = 0.0
            for m in range(M):
                cm = coef[b, comp, m]
                i = mi[m]
                j = mj[m]
                for x in range(W):
                    acc[i, x] += cm * sx[j, x]
            for y in range(H):
                for x in range(W):
                    s = 0.0
                    for i in range(ki):
                        s += sy[i, y] * acc[i, x]
                    out[b, comp, y, x] = s
    return out


@njit(cache=True, inline="always")
def _pull_pixel(img, out, b, y, x, yy, xx, interp):  # pragma: no cover - compiled
    """out[b, :, y, x] = img[b, :] at the source point (yy, xx), clamped to the image; bilinear or nearest."""
    C, H, W = img.shape[1], img.shape[2], img.shape[3]
    yy = min(max(yy, 0.0), H - 1.0)
    xx = min(max(xx, 0.0), W - 1.0)
    if interp == 1:
        yi = int(math.floor(yy + 0.5))
        xi = int(math.floor(xx + 0.5))
        for ch in range(C):
            out[b, ch, y, x] = img[b, ch, yi, xi]
        return
    y0 = int(math.floor(yy))
    x0 = int(math.floor(xx))
    fy = yy - y0
    fx = xx - x0
    y1 = min(y0 + 1, H - 1)
    x1 = min(x0 + 1, W - 1)
    w00 = (1.0 - fy) * (1.0 - fx)
    w01 = (1.0 - fy) * fx
    w10 = fy * (1.0 - fx)
    w11 = fy * fx
    for ch in range(C):
        out[b, ch, y, x] = (
            w00 * img[b, ch, y0, x0] + w01 * img[b, ch, y0, x1] + w10 * img[b, ch, y1, x0] + w11 * img[b, ch, y1, x1]
        )


@njit(cache=True, parallel=True)
def _deform_fused(img, coef, mi, mj, sy, sx, interp):  # pragma: no cover - compiled
    """Per sample: synthesise both field components (separable sums) and pull the image back."""
    B, C, H, W = img.shape
    M = coef.shape[2]
    ki = sy.shape[0]
    out = np.empty_like(img)
    for b in prange(B):
        acc_y = np.zeros((ki, W))
        acc_x = np.zeros((ki, W))
        for m in range(M):
            cy = coef[b, 0, m]
            cx = coef[b, 1, m]
            i = mi[m]
            j = mj[m]
            for x in range(W):
                s = sx[j, x]
                acc_y[i, x] += cy * s
                acc_x[i, x] += cx * s
        for y in range(H):
            for x in range(W):
                dy = 0.0
                dx = 0.0
                for i in range(ki):
                    s = sy[i, y]
                    dy += s * acc_y[i, x]
                    dx += s * acc_x[i, x]
                _pull_pixel(img, out, b, y, x, y - dy, x - dx, interp)
    return out


@njit(cache=True, parallel=True)
def _remap(img, fields, interp):  # pragma: no cover - compiled
    B, C, H, W = img.shape
    out = np.empty_like(img)
    for b in prange(B):
        for y in range(H):
            for x in range(W):
                _pull_pixel(img, out, b, y, x, y - fields[b, 0, y, x], x - fields[b, 1, y, x], interp)
    return out


@njit(cache=True, parallel=True)
def _min_det(coef, mi, mj, sy, cy, sx, cx):  # pragma: no cover - compiled
    """min over the grid of det(I - ∇D), D = Σ coef sin sin; cy, cx hold the derivative tables."""
    B, _, M = coef.shape
    ki, GY = sy.shape
    GX = sx.shape[1]
    out = np.empty(B)
    for b in prange(B):
        # a_s[comp, i, x] = Σ_m coef sx ; a_c[comp, i, x] = Σ_m coef cx   (for the m with mi[m] = i)
        a_s = np.zeros((2, ki, GX))
        a_c = np.zeros((2, ki, GX))
        for comp in range(2):
            for m in range(M):
                cm = coef[b, comp, m]
                i = mi[m]
                j = mj[m]
                for x in range(GX):
                    a_s[comp, i, x] += cm * sx[j, x]
                    a_c[comp, i, x] += cm * cx[j, x]
        best = np.inf
        for y in range(GY):
            for x in range(GX):
                dyy = 0.0  # ∂_y D_y
                dyx = 0.0  # ∂_x D_y
                dxy = 0.0  # ∂_y D_x
                dxx = 0.0  # ∂_x D_x
                for i in range(ki):
                    dyy += cy[i, y] * a_s[0, i, x]
                    dyx += sy[i, y] * a_c[0, i, x]
                    dxy += cy[i, y] * a_s[1, i, x]
                    dxx += sy[i, y] * a_c[1, i, x]
                det = (1.0 - dyy) * (1.0 - dxx) - dyx * dxy
                if det < best:
                    best = det
        out[b] = best
    return out


# ----------------------------------------------------------------------------------------------------------
# applying diffeomorphisms
# ----------------------------------------------------------------------------------------------------------
def _is_torch(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch")


def _check_image_numpy(x: Any, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim < 3:
        raise ValueError(f"{name} must have shape (batch, [channels...,] H, W) with ndim >= 3, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[-1] < 2 or arr.shape[-2] < 2:
        raise ValueError(f"{name} needs batch >= 1 and H, W >= 2, got shape {arr.shape}")
    if not (_all_finite(arr.reshape(-1)) if arr.dtype.kind == "f" else True):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return arr


def _check_image_torch(x: Any, name: str = "x") -> None:
    """The torch counterpart of :func:`_check_image_numpy`; integer tensors are refused (the output of a
    bilinear pull-back is not an integer image, and the fields would be truncated to the integer dtype)."""
    shape = tuple(x.shape)
    if x.dim() < 3 or shape[0] < 1 or shape[-1] < 2 or shape[-2] < 2:
        raise ValueError(
            f"{name} must have shape (batch, [channels...,] H, W) with batch >= 1 and H, W >= 2, got {shape}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not bool(_torch().isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")


def _check_fields(fields: Any, batch: int, height: int, width: int) -> np.ndarray:
    f = np.asarray(fields, dtype=np.float64)
    if f.shape != (batch, 2, height, width):
        raise ValueError(f"fields must have shape (batch, 2, H, W) = {(batch, 2, height, width)}, got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("fields contains non-finite values (nan or inf)")
    return f


def remap(x: Any, fields: Any, *, interp: str = "linear") -> Any:
    r"""Pull-back :math:`\tau x(p) = x(p - D(p))` of a batch by given displacement fields (B, 2, H, W) in pixels,
    with source coordinates clamped to the image. Numpy (any real dtype; returns float64) -> numba kernel;
    floating-point torch tensor -> on the tensor's device, differentiable with respect to ``x``. ``ValueError``
    for H or W < 2, non-finite ``x`` or ``fields``, a wrong ``fields`` shape, or an integer tensor."""
    code = _check_interp(interp)
    if _is_torch(x):
        _check_image_torch(x)
        torch = _torch()
        f = torch.as_tensor(fields, device=x.device, dtype=x.dtype)
        shape = (x.shape[0], 2, x.shape[-2], x.shape[-1])
        if tuple(f.shape) != shape:
            raise ValueError(f"fields must have shape (batch, 2, H, W) = {shape}, got {tuple(f.shape)}")
        if not bool(torch.isfinite(f).all()):
            raise ValueError("fields contains non-finite values (nan or inf)")
        return _remap_torch(x, f, code)
    arr = _check_image_numpy(x)
    shape = arr.shape
    img = np.ascontiguousarray(arr.reshape(shape[0], -1, shape[-2], shape[-1]), dtype=np.float64)
    f = _check_fields(fields, shape[0], shape[-2], shape[-1])
    return _remap(img, np.ascontiguousarray(f), code).reshape(shape)


def deform(
    x: Any,
    T: float | None = None,
    c: float | None = None,
    *,
    cutoff: str | None = None,
    interp: str = "linear",
    seed: Any = None,
    diffeo: SineDiffeo | None = None,
    resample_folds: bool = False,
) -> Any:
    r"""Deform every image of a batch by its own maximum-entropy diffeomorphism (temperature T, cut-off c).

    ``x``: numpy array or torch tensor of shape (B, [C...,] H, W). Numpy input runs the fused numba kernel and
    returns float64; torch input runs on ``x.device`` in ``x.dtype`` and is differentiable w.r.t. ``x``.
    ``cutoff``: ``"code"`` (default) or ``"paper"``. ``seed``: None, int, numpy Generator (same seed -> same
    fields in the numpy and torch paths) or ``torch.Generator`` (for either input). ``diffeo``: apply fields
    from :func:`sample_diffeos` instead of sampling; the sampling arguments (T, c, cutoff, seed,
    resample_folds) are then part of ``diffeo`` and giving any of them raises ``ValueError``.
    T = 0 returns exactly the input.
    """
    code = _check_interp(interp)
    is_t = _is_torch(x)
    if is_t:
        _check_image_torch(x)
        shape = tuple(x.shape)
    else:
        arr = _check_image_numpy(x)
        shape = arr.shape
    B, H, W = shape[0], shape[-2], shape[-1]
    if diffeo is None:
        for name, value in (("T", T), ("c", c)):
            if value is None:
                raise ValueError(f"{name} must be given (or pass diffeo=sample_diffeos(...))")
        T = _check_real(T, "T", 0.0)
        cutoff = "code" if cutoff is None else cutoff
        diffeo = sample_diffeos(B, H, W, T, c, cutoff=cutoff, seed=seed, resample_folds=resample_folds)
    else:
        if not isinstance(diffeo, SineDiffeo):
            raise ValueError(f"diffeo must be a SineDiffeo from sample_diffeos, got {type(diffeo).__name__}")
        given = [k for k, v in dict(T=T, c=c, cutoff=cutoff, seed=seed).items() if v is not None]
        if given or resample_folds:
            raise ValueError(
                f"{(given or ['resample_folds'])[0]} must not be given with diffeo: its fields are already sampled"
                f" (T={diffeo.T!r}, c={diffeo.c!r}, cutoff={diffeo.cutoff!r})"
            )
        if (diffeo.batch, diffeo.height, diffeo.width) != (B, H, W):
            raise ValueError(
                f"diffeo was sampled for (batch, H, W) = {(diffeo.batch, diffeo.height, diffeo.width)}, "
                f"x has {(B, H, W)}"
            )
    if is_t:
        return _deform_torch(x, diffeo, code)
    if diffeo.T == 0.0:
        return np.array(arr, dtype=np.float64, copy=True)
    img = np.ascontiguousarray(arr.reshape(B, -1, H, W), dtype=np.float64)
    sy, sx = diffeo.sine_tables()
    out = _deform_fused(img, np.ascontiguousarray(diffeo.coef), diffeo.mi, diffeo.mj, sy, sx, code)
    return out.reshape(shape)


# ----------------------------------------------------------------------------------------------------------
# torch path
# ----------------------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


def _fields_torch(diffeo: SineDiffeo, device, dtype):
    torch = _torch()
    sy, sx = (torch.tensor(t, device=device, dtype=dtype) for t in diffeo.sine_tables())
    coef = torch.tensor(diffeo.coef, device=device, dtype=dtype)
    mi = torch.tensor(diffeo.mi, device=device)
    mj = torch.tensor(diffeo.mj, device=device)
    onehot = torch.nn.functional.one_hot(mi, sy.shape[0]).to(dtype)  # (M, Ki)
    acc = torch.einsum("bcm,mi,mw->bciw", coef, onehot, sx[mj])
    return torch.einsum("iy,bciw->bcyw", sy, acc)


def _remap_torch(x, f, interp: int):
    """Pull-back of a validated floating-point tensor x by fields f (a tensor of x's dtype and device)."""
    torch = _torch()
    shape = tuple(x.shape)
    B, H, W = shape[0], shape[-2], shape[-1]
    img = x.reshape(B, -1, H * W)
    gy = torch.arange(H, device=x.device, dtype=x.dtype)[:, None]
    gx = torch.arange(W, device=x.device, dtype=x.dtype)[None, :]
    yy = (gy - f[:, 0]).clamp(0.0, H - 1.0)
    xx = (gx - f[:, 1]).clamp(0.0, W - 1.0)
    C = img.shape[1]

    def gather(yi, xi):
        idx = (yi * W + xi).reshape(B, 1, H * W).expand(B, C, H * W)
        return torch.gather(img, 2, idx)

    if interp == 1:
        out = gather(torch.floor(yy + 0.5).long(), torch.floor(xx + 0.5).long())
        return out.reshape(shape)
    y0 = torch.floor(yy)
    x0 = torch.floor(xx)
    fy = (yy - y0).reshape(B, 1, H * W)
    fx = (xx - x0).reshape(B, 1, H * W)
    y0l, x0l = y0.long(), x0.long()
    y1l, x1l = (y0l + 1).clamp(max=H - 1), (x0l + 1).clamp(max=W - 1)
    out = (
        (1.0 - fy) * (1.0 - fx) * gather(y0l, x0l)
        + (1.0 - fy) * fx * gather(y0l, x1l)
        + fy * (1.0 - fx) * gather(y1l, x0l)
        + fy * fx * gather(y1l, x1l)
    )
    return out.reshape(shape)


def _deform_torch(x, diffeo: SineDiffeo, interp: int):
    if diffeo.T == 0.0:
        return x.clone()
    return _remap_torch(x, _fields_torch(diffeo, x.device, x.dtype), interp)


# ----------------------------------------------------------------------------------------------------------
# temperature window and typical displacement (floats; exact values from theory.diffeo)
# ----------------------------------------------------------------------------------------------------------
def _lengths(n: Any) -> tuple[int, Fraction, Fraction]:
    if isinstance(n, tuple):
        if len(n) != 2:
            raise ValueError(f"n must be an int or an (H, W) tuple, got {n!r}")
        h, w = _check_size(n[0], "n[0] (height)"), _check_size(n[1], "n[1] (width)")
        a, b, big = _shape_lengths(h, w)
        return big, a, b
    return _check_size(n, "n"), Fraction(1), Fraction(1)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def typical_displacement(T: float, c: float, n: Any, *, cutoff: str = "code", method: str = "exact") -> float:
    r"""Rms length (pixels) of the displacement at the image centre.

    ``method="exact"``: :math:`\sqrt{2Tn^2S_{\rm odd}(c)}` (lattice sum, the cut-off rule matters);
    ``"paper"``: :math:`\frac n2\sqrt{\pi T\ln c}`; ``"asymptotic"``: the paper's law with the Sierpinski
    constant, :math:`\frac n2\sqrt{\pi T(\ln c + K/2\pi)}`. ``n`` may be an (H, W) tuple (exact method only).
    """
    _check_method(method)
    _check_cutoff(cutoff)
    T = _check_real(T, "T", 0.0)
    big, a, b = _lengths(n)
    cf = _as_fraction(c)
    if method == "exact":
        return float(_th.typical_displacement(T, cf, big, cutoff, a, b))
    if (a, b) != (1, 1):
        raise ValueError(f"method={method!r} is defined for square images only; use method='exact'")
    if method == "paper":
        return float(_th.typical_displacement_paper(T, cf, big))
    return float(_th.typical_displacement_asymptotic(T, cf, big))


def temperature_for_displacement(
    delta: float, c: float, n: Any, *, cutoff: str = "code", method: str = "exact"
) -> float:
    r"""Inverse of :func:`typical_displacement`: the T whose centre displacement has rms ``delta`` pixels.
    ``"exact"``: :math:`\delta^2/(2n^2S_{\rm odd})`; ``"paper"``: :math:`4\delta^2/(\pi n^2\ln c)`;
    ``"asymptotic"``: :math:`4\delta^2/(\pi n^2(\ln c+K/2\pi))`."""
    _check_method(method)
    _check_cutoff(cutoff)
    delta = _check_real(delta, "delta", 0.0)
    big, a, b = _lengths(n)
    cf = _as_fraction(c)
    if method == "exact":
        return float(_th.temperature_for_displacement(delta, cf, big, cutoff, a, b))
    if (a, b) != (1, 1):
        raise ValueError(f"method={method!r} is defined for square images only; use method='exact'")
    unit = typical_displacement(1.0, c, big, cutoff=cutoff, method=method)
    if unit == 0.0:
        raise ValueError(f"c must be > 1 for method={method!r} (ln c = 0)")
    return (delta / unit) ** 2


def temperature_range(n: Any, c: float, *, cutoff: str = "code", method: str = "exact") -> tuple[float, float]:
    r"""(T_min, T_max): T_min gives a centre displacement of ½ pixel, T_max is the no-overhang heuristic
    :math:`2\ln c\,\langle|\nabla\tau|^2\rangle = 1`.

    ``method="paper"`` returns the reference values :math:`1/(\pi n^2\ln c)`, :math:`4/(\pi^3c^2\ln c)`;
    ``"exact"`` evaluates both criteria with exact lattice sums (:mod:`theory.diffeo`). ``ValueError`` for
    c <= 1 (ln c = 0) or an empty window (paper: c >= 2n/π). T_max is an order-of-magnitude bound: a
    sizeable fraction of fields fold at T_max (use ``SineDiffeo.folds`` / ``resample_folds``).
    """
    _check_method(method)
    _check_cutoff(cutoff)
    big, a, b = _lengths(n)
    cf = _as_fraction(c)
    if method == "exact":
        lo, hi = _th.temperature_range_exact(big, cf, cutoff, a, b)
    else:
        if (a, b) != (1, 1):
            raise ValueError(f"method={method!r} is defined for square images only; use method='exact'")
        lo, hi = _th.temperature_range_paper(big, cf)
        if method == "asymptotic":
            # delta = 1/2 with the Sierpinski-corrected sum S_odd ~ (pi/8) ln c + K/16
            lo = 1 / (8 * big**2 * _th.odd_lattice_sum_asymptotic(cf))
            if not float(lo) < float(hi):
                raise ValueError(f"empty temperature window for n={n}, c={c} (method='asymptotic'): lower c")
    return float(lo), float(hi)
