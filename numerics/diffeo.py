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
* the image is pulled back, :math:`\tau x(p) = x(p - D(p))`, with source coordinates clamped to the image
  (bilinear, nearest or Gaussian interpolation). Border pixels never move: the sine tables vanish exactly there.

**Which axes get their own field** (``batch_dims``). ``x`` has shape ``(*batch, *channels, H, W)`` with
``batch_dims`` batch axes: every index of the batch axes gets its own independent field, shared by all the
other leading axes (channels). ``batch_dims=1`` (default): ``(B, [C...,] H, W)``, one field per ``x[b]``.
``batch_dims=0``: one field for the whole ``[..., H, W]`` array, which is what the reference
``deform(image, T, cut, interp)`` does (one field per call). Sample ``k`` of a :class:`SineDiffeo` deforms the
``k``-th index of the batch axes in C order.

**Dtypes.** float32 and float64 are deformed and returned in their dtype; float16 and bfloat16 are deformed in
float32 and returned in their dtype; uint8 is deformed in float32, rounded half to even, clamped to [0, 255] and
returned as uint8. Other numpy integer arrays are deformed and returned in float64; torch integer tensors other
than uint8 are refused.

**Paths.** Numpy input runs a fused numba kernel (synthesis + remap, parallel over image rows). A CPU torch
tensor that needs no gradient (neither it nor the sine coefficients require grad) runs the same kernel on a
zero-copy view of its memory. Otherwise (a GPU tensor, or autograd) torch operations run on the tensor's device,
differentiable with respect to the image and to the sine coefficients (:meth:`SineDiffeo.to_torch`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from numba import njit, prange

from numerics.seeds import generator
from numerics.torch_optional import import_torch, is_tensor, is_torch_generator
from theory import diffeo as _th
from theory.arguments import ArgumentTypeError, ArgumentValueError, check_flag as _check_flag, check_memory

__all__ = [
    "CUTOFFS", "INTERPOLATIONS", "METHODS", "GAUSSIAN_SIGMA", "GAUSSIAN_RADIUS", "check_real", "check_choice",
    "SineDiffeo", "sample_diffeos", "sample_fields", "remap", "deform", "typical_displacement",
    "temperature_for_displacement", "temperature_range", "single_mode_temperature_range", "EXACT_C_MAX",
]

CUTOFFS = _th.CUTOFF_RULES
INTERPOLATIONS = ("linear", "nearest", "gaussian")
METHODS = ("exact", "paper", "asymptotic")
#: width (pixels) of the Gaussian interpolation kernel, the value hard-coded in the reference
#: ``remap(..., interp='gaussian')`` (pcsl-epfl/diffeomorphism, diff.py; no derivation is given there)
GAUSSIAN_SIGMA = 0.4715
#: taps kept per axis by the Gaussian interpolation: the 2R pixels floor(s)-R+1 .. floor(s)+R around the source
#: coordinate s. A dropped pixel is >= R pixels away, its weight relative to the nearest pixel's (<= 1/2 pixel away)
#: is below exp(-(R² - 1/4)/(2σ²)) = 6.7e-25 for R = 5: far below float64 resolution, so the result is the
#: reference's sum over all pixels up to rounding
GAUSSIAN_RADIUS = 5


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
def check_real(value: Any, name: str, low: float | None = None, low_inclusive: bool = True) -> float:
    """``value`` as a finite float (not a bool), ``>= low`` (``> low`` if not ``low_inclusive``); else ValueError
    naming ``name`` and the allowed range. The real-number rule of this module's arguments (T, c, delta, ...)."""
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


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices`` (e.g. :data:`CUTOFFS`, :data:`INTERPOLATIONS`, :data:`METHODS`), else
    ValueError naming ``name`` and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_cutoff(cutoff: str) -> None:
    check_choice(cutoff, "cutoff", CUTOFFS)


def _check_interp(interp: str) -> int:
    return INTERPOLATIONS.index(check_choice(interp, "interp", INTERPOLATIONS))


def _check_size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    return int(value)


def _check_batch_dims(batch_dims: Any) -> int:
    if isinstance(batch_dims, bool) or not isinstance(batch_dims, (int, np.integer)):
        raise TypeError(f"batch_dims must be an integer >= 0 (the number of leading batch axes), got {batch_dims!r}")
    if batch_dims < 0:
        raise ValueError(f"batch_dims must be an integer >= 0 (the number of leading batch axes), got {batch_dims!r}")
    return int(batch_dims)


def _is_torch(x: Any) -> bool:
    """True for a torch.Tensor (or a subclass of it) or a torch.Generator; torch is not imported for the test."""
    return is_tensor(x) or is_torch_generator(x)


def _normal_sampler(seed: Any):
    """A function ``shape -> standard normal float64 array`` drawing from ``seed`` (None, int, numpy Generator,
    or torch.Generator; the torch generator draws on its own device and the result is moved to the host)."""
    if _is_torch(seed):
        torch = import_torch()
        if not isinstance(seed, torch.Generator):
            raise ValueError(f"seed must be None, an integer >= 0, a numpy Generator or a torch.Generator, "
                             f"got {seed!r}")
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


def _check_resolvable(c: Fraction, height: int, width: int) -> None:
    """Refuse a cut-off beyond what the image resolves: on N = max(H, W) pixels, sin(k pi p / (N-1)) for
    N - 1 < k < 2(N - 1) equals -sin((2(N-1) - k) pi p / (N-1)) at every pixel (an alias of a lower mode), and k = N - 1
    vanishes there, so modes beyond 2(N - 1) only repeat the pattern of lower ones while their number, and the cost,
    grows like c^2 (c = 1000 on 8x8 pixels: 7.9e5 modes, minutes). Up to c = 16 (about 200 modes) the cost is
    negligible and any image takes it (tiny images with small cut-offs are common in tests)."""
    n = max(height, width)
    if c > 2 * (n - 1) and c > 16:
        raise ArgumentValueError("c", f"c={float(c):g} is beyond what a {height}x{width} image resolves: modes above "
                                      f"N - 1 = {n - 1} only alias lower ones on N = {n} pixels, and c <= max(2(N - 1), 16) "
                                      f"= {max(2 * (n - 1), 16)} is allowed (it would keep "
                                      f"~{math.pi / 4 * float(c) ** 2:.2g} modes per field)")


#: the largest cut-off c (times sqrt(a b) for an H x W image) for which ``method="exact"`` sums the exact lattice
#: sums of :mod:`theory.diffeo` (rationals over ~pi c^2/16 odd-odd modes: 1.6 s at c = 200, 19 s at c = 300);
#: the asymptotic law is then within 2e-4 (relative difference ~0.04 / c, measured at c = 50, 100, 200)
EXACT_C_MAX = 200


def _check_exact_c(c: Fraction, a: Fraction, b: Fraction, method: str) -> None:
    if method == "exact" and float(c) * math.sqrt(float(a) * float(b)) > EXACT_C_MAX:
        modes = math.pi / 4 * float(c) ** 2 * float(a * b)
        raise ArgumentValueError("c", f"c={float(c):g} is too large for method='exact' (the exact lattice sum over "
                                      f"~{modes:.2g} modes takes ~20 s at c = 300 and grows faster than c^2; it is "
                                      f"kept for c <= {EXACT_C_MAX}): use method='asymptotic', within 2e-4 of the "
                                      "exact value there")


def _as_fraction(c: Any) -> Fraction:
    v = check_real(c, "c")
    if v < 1:
        raise ValueError(f"c (the cut-off) must be >= 1, got {c!r}")
    return Fraction(c) if isinstance(c, (int, np.integer)) else Fraction(v)


def _per_sample(value: Any, name: str, batch: int, low: float) -> float | np.ndarray:
    """A scalar (checked by :func:`check_real`) or a read-only float64 array of shape (batch,), finite, >= low."""
    if _is_torch(value):  # a tensor (one that requires grad too): its values
        value = value.detach().cpu().numpy() if value.dtype != import_torch().bfloat16 else value.detach().float().numpy()
    if np.ndim(value) == 0:
        return check_real(value, name, low)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real number or a real array of shape (batch,), got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape (batch,) = ({batch},), got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got non-finite entries")
    if (arr < low).any():
        raise ValueError(f"{name} must be >= {low} for every sample, got min {arr.min()!r}")
    arr.setflags(write=False)
    return arr


def _coef_numpy(coef: Any) -> np.ndarray:
    """The coefficients as a float64 numpy array (a torch tensor is detached and moved to the host)."""
    if _is_torch(coef):
        return coef.detach().to("cpu", dtype=import_torch().float64).numpy()
    return coef


@dataclass(frozen=True, eq=False)
class SineDiffeo:
    r"""A batch of sampled sine diffeomorphisms (one per sample), in pixel units.

    ``coef[b, comp, m]`` is :math:`N\sqrt T z_{ij}/k_{ij}` for mode ``m = (mi[m]+1, mj[m]+1)``; component 0
    moves rows (vertical), component 1 columns (horizontal). ``coef`` is a float64 numpy array, or a floating
    torch tensor (:meth:`to_torch`): :func:`deform` of a torch image is then differentiable with respect to it
    (adversarial diffeomorphisms ascend that gradient). ``T`` and ``c`` are floats, or float arrays of shape
    (batch,) when every sample has its own (c, T) (:func:`sample_diffeos` with arrays); a mode beyond a sample's
    cut-off has coefficient exactly 0 for that sample.
    """

    coef: Any  # (B, 2, M): float64 numpy array or floating torch tensor
    mi: np.ndarray  # (M,) 0-based vertical mode index
    mj: np.ndarray  # (M,) 0-based horizontal mode index
    height: int
    width: int
    T: Any
    c: Any
    cutoff: str

    def __post_init__(self) -> None:
        shape = tuple(self.coef.shape)
        if len(shape) != 3 or shape[1] != 2 or shape[2] != len(self.mi) or len(self.mj) != len(self.mi):
            raise ValueError(f"coef must have shape (batch, 2, {len(self.mi)}) (one row per mode), got {shape}")

    @property
    def batch(self) -> int:
        return int(self.coef.shape[0])

    def fields(self) -> Any:
        """Displacement fields on the pixel grid, shape (B, 2, H, W), pixel units: a numpy array, or a torch tensor
        (differentiable, on ``coef``'s device and dtype) when ``coef`` is a tensor."""
        if _is_torch(self.coef):
            return _fields_torch(self, self.coef.device, self.coef.dtype)
        return _synthesize(self.coef, self.mi, self.mj, *self.sine_tables())

    def sine_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(sy, sx): sy[i-1, p_y] = sin(iπ p_y/(H-1)), sx[j-1, p_x] = sin(jπ p_x/(W-1)), exactly 0 on the border."""
        return _sine_table(int(self.mi.max()) + 1, self.height), _sine_table(int(self.mj.max()) + 1, self.width)

    def to_torch(self, device: Any = None, dtype: Any = None, requires_grad: bool = False) -> SineDiffeo:
        """A copy whose ``coef`` is a new torch tensor (default float64 on the CPU), a leaf that requires grad if
        ``requires_grad``: ``d = sample_diffeos(...).to_torch(requires_grad=True)``, ``deform(x, diffeo=d)``,
        then ``d.coef.grad`` after a backward pass."""
        torch = import_torch()
        dtype = torch.float64 if dtype is None else dtype
        if _is_torch(self.coef):
            coef = self.coef.detach().to(device=device, dtype=dtype).clone()
        else:
            coef = torch.tensor(self.coef, device=device, dtype=dtype)
        if not coef.is_floating_point():
            raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype}")
        return dataclasses.replace(self, coef=coef.requires_grad_(bool(requires_grad)))

    def approximate_inverse(self) -> SineDiffeo:
        r"""The diffeomorphism with the opposite coefficients, :math:`D \to -D`: pulling back by it undoes the pull-back
        by ``self`` to first order, :math:`x(p + D(p) - D(p + D(p))) = x(p - O(|D|\,|\nabla D|))`."""
        return dataclasses.replace(self, coef=-self.coef)

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
        return _min_det(np.ascontiguousarray(_coef_numpy(self.coef)), self.mi, self.mj, sy, cy, sx, cx)

    def folds(self, resolution: int = 4) -> np.ndarray:
        """Boolean mask of the samples whose map folds somewhere (det(I - ∇τ) <= 0)."""
        return self.min_jacobian_det(resolution) <= 0.0


def sample_diffeos(
    batch: int,
    height: int,
    width: int,
    T: Any,
    c: Any,
    *,
    cutoff: str = "code",
    seed: Any = None,
    resample_folds: bool = False,
    max_tries: int = 100,
    fold_resolution: int = 4,
) -> SineDiffeo:
    r"""Draw ``batch`` independent maximum-entropy diffeomorphisms of an H×W image.

    ``T`` and ``c``: scalars (one law for the batch), or arrays of shape (batch,) (sample b has temperature
    ``T[b]`` and cut-off ``c[b]``: the mode table is that of max(c), and the coefficients of the modes beyond
    ``c[b]`` are 0). With ``resample_folds=True`` every sample whose map folds (:math:`\det(I-\nabla\tau)\le0`
    somewhere) is redrawn until none does; this conditions the law on "is a diffeomorphism". ``seed``: None,
    int, numpy Generator or torch.Generator. ``ValueError`` if some sample still folds after ``max_tries`` rounds
    (T far above T_max).
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
    batch = int(batch)
    height, width = _check_size(height, "height"), _check_size(width, "width")
    T = _per_sample(T, "T", batch, 0.0)
    _check_cutoff(cutoff)
    if np.ndim(c) == 0:
        cf, c_rows = _as_fraction(c), None
    else:
        c_rows = _per_sample(c, "c", batch, 1.0)
        cf = Fraction(float(c_rows.max()))
    if isinstance(max_tries, bool) or not isinstance(max_tries, (int, np.integer)) or max_tries < 1:
        raise ValueError(f"max_tries must be an integer >= 1, got {max_tries!r}")
    _check_resolvable(cf, height, width)
    normal = _normal_sampler(seed)
    mi, mj, inv_k = _mode_table(height, width, cf, cutoff)
    check_memory(batch * 2 * mi.size * 8.0, "batch", f"the coefficients of {batch} fields x 2 x {mi.size} modes")
    n = max(height, width)
    if c_rows is None and np.ndim(T) == 0:
        scale = n * math.sqrt(T) * inv_k  # (M,): one law for the batch
    else:
        scale = n * np.sqrt(np.broadcast_to(T, (batch,)))[:, None] * inv_k[None, :]
        if c_rows is not None:
            for cu in np.unique(c_rows):
                umi, umj, _ = _mode_table(height, width, Fraction(float(cu)), cutoff)
                kept = set(zip(umi.tolist(), umj.tolist()))
                scale[c_rows == cu] *= np.array([(i, j) in kept for i, j in zip(mi.tolist(), mj.tolist())])
        scale = scale[:, None, :]  # (B, 1, M)
    coef = normal((batch, 2, mi.size)) * scale
    diffeo = SineDiffeo(coef, mi, mj, height, width, T, float(cf) if c_rows is None else c_rows, cutoff)
    resample_folds = _check_flag("resample_folds", resample_folds)
    if resample_folds and np.any(np.asarray(T) > 0):
        for _ in range(max_tries):
            bad = np.flatnonzero(diffeo.folds(fold_resolution))
            if bad.size == 0:
                break
            coef[bad] = normal((bad.size, 2, mi.size)) * (scale if scale.ndim == 1 else scale[bad])
        else:
            if diffeo.folds(fold_resolution).any():
                raise ValueError(
                    f"T={T!r} is too large for c={float(cf)!r}: samples still fold after max_tries={max_tries} redraws"
                    " (see temperature_range for the usual window)"
                )
    return diffeo


def sample_fields(
    batch: int, height: int, width: int, T: Any, c: Any, *, cutoff: str = "code", seed: Any = None
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
def _pull_pixel(img, out, b, y, x, yy, xx, interp, buf):  # pragma: no cover - compiled
    """out[b, :, y, x] = img[b, :] at the source point (yy, xx), clamped to the image; bilinear (0), nearest (1)
    or Gaussian (2; ``buf`` is a (2, 2R) scratch array for the per-axis weights)."""
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
    if interp == 2:
        # normalised Gaussian weights, separable: w(q) = exp(-|s - q|²/2σ²) / Σ_q' exp(-|s - q'|²/2σ²);
        # written as ref + Σ w (x_q - ref) with ref the nearest pixel: a constant image stays exactly constant
        R = GAUSSIAN_RADIUS  # a compile-time constant for numba
        inv = 1.0 / (2.0 * GAUSSIAN_SIGMA * GAUSSIAN_SIGMA)
        ylo = max(y0 - R + 1, 0)
        yhi = min(y0 + R, H - 1)
        xlo = max(x0 - R + 1, 0)
        xhi = min(x0 + R, W - 1)
        sy = 0.0
        for q in range(ylo, yhi + 1):
            e = math.exp(-((yy - q) ** 2) * inv)
            buf[0, q - ylo] = e
            sy += e
        sx = 0.0
        for q in range(xlo, xhi + 1):
            e = math.exp(-((xx - q) ** 2) * inv)
            buf[1, q - xlo] = e
            sx += e
        norm = sy * sx
        yn = int(math.floor(yy + 0.5))
        xn = int(math.floor(xx + 0.5))
        for ch in range(C):
            ref = float(img[b, ch, yn, xn])
            acc = 0.0
            for qy in range(ylo, yhi + 1):
                inner = 0.0
                for qx in range(xlo, xhi + 1):
                    inner += buf[1, qx - xlo] * (float(img[b, ch, qy, qx]) - ref)
                acc += buf[0, qy - ylo] * inner
            out[b, ch, y, x] = ref + acc / norm
        return
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
    """Per sample: synthesise both field components (separable sums) and pull the image back. ``img`` is a
    contiguous (B, C, H, W) float32 or float64 array (the output has its dtype; the field is float64)."""
    B, C, H, W = img.shape
    M = coef.shape[2]
    ki = sy.shape[0]
    acc = np.zeros((B, 2, ki, W))
    for b in prange(B):
        for m in range(M):
            cy = coef[b, 0, m]
            cx = coef[b, 1, m]
            i = mi[m]
            j = mj[m]
            for x in range(W):
                s = sx[j, x]
                acc[b, 0, i, x] += cy * s
                acc[b, 1, i, x] += cx * s
    out = np.empty_like(img)
    rows = B * H
    g = 1 if interp == 2 else 0  # per-row scratch buffers for the Gaussian weights, one shared dummy otherwise
    scratch = np.empty((1 + g * (rows - 1), 2, 2 * GAUSSIAN_RADIUS))
    for r in prange(rows):  # parallel over image rows: one large image uses every thread too
        b = r // H
        y = r - b * H
        buf = scratch[g * r]
        for x in range(W):
            dy = 0.0
            dx = 0.0
            for i in range(ki):
                s = sy[i, y]
                dy += s * acc[b, 0, i, x]
                dx += s * acc[b, 1, i, x]
            _pull_pixel(img, out, b, y, x, y - dy, x - dx, interp, buf)
    return out


@njit(cache=True, parallel=True)
def _remap(img, fields, interp):  # pragma: no cover - compiled
    B, C, H, W = img.shape
    out = np.empty_like(img)
    rows = B * H
    g = 1 if interp == 2 else 0  # per-row scratch buffers for the Gaussian weights, one shared dummy otherwise
    scratch = np.empty((1 + g * (rows - 1), 2, 2 * GAUSSIAN_RADIUS))
    for r in prange(rows):
        b = r // H
        y = r - b * H
        buf = scratch[g * r]
        for x in range(W):
            _pull_pixel(img, out, b, y, x, y - fields[b, 0, y, x], x - fields[b, 1, y, x], interp, buf)
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
# images: shapes, dtypes, paths
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    """How an image array maps to the kernels' (B, C, H, W): B fields, C channels sharing each field."""

    shape: tuple[int, ...]
    batch_dims: int

    @property
    def B(self) -> int:
        return math.prod(self.shape[: self.batch_dims])

    @property
    def C(self) -> int:
        return math.prod(self.shape[self.batch_dims : -2])

    @property
    def HW(self) -> tuple[int, int]:
        return self.shape[-2], self.shape[-1]

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.B, self.C, *self.HW)


def _layout(shape: tuple[int, ...], batch_dims: Any) -> _Layout:
    bd = _check_batch_dims(batch_dims)
    if len(shape) < bd + 2:
        raise ValueError(
            f"x must have shape (*batch, [channels...,] H, W) with batch_dims={bd} batch axes, i.e. ndim >= {bd + 2};"
            f" got shape {shape}"
        )
    if any(s < 1 for s in shape[:bd]) or shape[-1] < 2 or shape[-2] < 2:
        raise ValueError(f"x must have shape (..., H, W) with H, W >= 2 and batch axes of length >= 1, got {shape}")
    return _Layout(tuple(int(s) for s in shape), bd)


def _numpy_dtypes(dt: np.dtype) -> tuple[type, type]:
    """(compute dtype, output dtype) of a numpy image (module docstring, 'Dtypes')."""
    if dt == np.float32 or dt == np.float64:
        return dt.type, dt.type
    if dt == np.float16:
        return np.float32, np.float16
    if dt == np.uint8:
        return np.float32, np.uint8
    return np.float64, np.float64  # other integers (and long double): float64, as before


def _numpy_image(x: Any, batch_dims: Any) -> tuple[np.ndarray, _Layout]:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise ArgumentTypeError("x", f"x must be a real numeric array (float or integer dtype), got dtype {arr.dtype}")
    return arr, _layout(arr.shape, batch_dims)


def _kernel_input(arr: np.ndarray, lay: _Layout, name: str = "x") -> tuple[np.ndarray, type]:
    """Contiguous (B, C, H, W) array in the compute dtype (a view when the dtype and layout allow), checked finite."""
    compute, out_dtype = _numpy_dtypes(arr.dtype)
    img = np.ascontiguousarray(arr.reshape(lay.kernel_shape), dtype=compute)
    if arr.dtype.kind == "f" and not _all_finite(img.reshape(-1)):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return img, out_dtype


def _kernel_output(out: np.ndarray, lay: _Layout, out_dtype: type) -> np.ndarray:
    out = out.reshape(lay.shape)
    if out_dtype is np.uint8:
        return np.clip(np.rint(out, out=out), 0, 255, out=out).astype(np.uint8)
    return out.astype(out_dtype, copy=False)


def _torch_compute_dtype(x: Any, name: str = "x"):
    """The compute dtype of a torch image: float64 for float64, float32 for float32 / float16 / bfloat16 / uint8."""
    torch = import_torch()
    if x.dtype == torch.float64:
        return torch.float64
    if x.is_floating_point() or x.dtype == torch.uint8:
        return torch.float32
    raise ValueError(f"{name} must be a floating-point tensor or a uint8 tensor, got dtype {x.dtype}")


def _check_finite_torch(x: Any, name: str = "x") -> None:
    if x.is_floating_point() and not bool(import_torch().isfinite(x).all()):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")


def _torch_output(out: Any, x: Any) -> Any:
    """``out`` (compute dtype, x's shape) in x's dtype (uint8: rounded and clamped) and tensor subclass."""
    torch = import_torch()
    if x.dtype == torch.uint8 and out.is_floating_point():
        out = out.round().clamp(0, 255).to(torch.uint8)
    elif out.dtype != x.dtype:
        out = out.to(x.dtype)
    if type(out) is not type(x):
        out = out.as_subclass(type(x))
    return out


def _needs_torch_ops(x: Any, *others: Any) -> bool:
    """True when a torch image must run on torch operations: on a GPU, or with a gradient to track."""
    return x.device.type != "cpu" or x.requires_grad or any(_is_torch(o) and o.requires_grad for o in others)


def _numpy_view(x: Any) -> np.ndarray:
    """A numpy array sharing the memory of a CPU tensor that needs no gradient (half precision -> float32 copy)."""
    torch = import_torch()
    t = x.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    return t.resolve_neg().resolve_conj().numpy()


def _from_numpy(out: np.ndarray, x: Any) -> Any:
    return _torch_output(import_torch().from_numpy(out), x)


# ----------------------------------------------------------------------------------------------------------
# applying diffeomorphisms
# ----------------------------------------------------------------------------------------------------------
def _check_field_array(fields: Any, lay: _Layout) -> np.ndarray:
    f = np.asarray(fields, dtype=np.float64)
    shape = (lay.B, 2, *lay.HW)
    if f.shape != shape:
        raise ValueError(f"fields must have shape (batch, 2, H, W) = {shape}, got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("fields contains non-finite values (nan or inf)")
    return np.ascontiguousarray(f)


def remap(x: Any, fields: Any, *, interp: str = "linear", batch_dims: int = 1) -> Any:
    r"""Pull-back :math:`\tau x(p) = x(p - D(p))` by given displacement fields in pixels, with source coordinates
    clamped to the image. ``fields`` has shape (B, 2, H, W), B the number of indices of the ``batch_dims`` batch
    axes of ``x`` (module docstring). Dtypes and paths as :func:`deform`; the torch path is differentiable with
    respect to ``x`` and to ``fields`` when it is a tensor that requires grad. ``ValueError`` for H or W < 2,
    non-finite ``x`` or ``fields``, a wrong ``fields`` shape, or an integer tensor other than uint8."""
    code = _check_interp(interp)
    if _is_torch(x):
        lay = _layout(tuple(x.shape), batch_dims)
        compute = _torch_compute_dtype(x)
        if not _needs_torch_ops(x, fields):
            arr = _numpy_view(x)
            img, out_dtype = _kernel_input(arr, lay)
            f = _check_field_array(_coef_numpy(fields), lay)
            return _from_numpy(_kernel_output(_remap(img, f, code), lay, out_dtype), x)
        _check_finite_torch(x)
        torch = import_torch()
        f = torch.as_tensor(fields, device=x.device, dtype=compute)
        shape = (lay.B, 2, *lay.HW)
        if tuple(f.shape) != shape:
            raise ValueError(f"fields must have shape (batch, 2, H, W) = {shape}, got {tuple(f.shape)}")
        if not bool(torch.isfinite(f).all()):
            raise ValueError("fields contains non-finite values (nan or inf)")
        out = _remap_torch(x.reshape(lay.kernel_shape).to(compute), f, code)
        return _torch_output(out.reshape(lay.shape), x)
    arr, lay = _numpy_image(x, batch_dims)
    img, out_dtype = _kernel_input(arr, lay)
    f = _check_field_array(fields, lay)
    return _kernel_output(_remap(img, f, code), lay, out_dtype)


def _check_diffeo(diffeo: Any, lay: _Layout) -> None:
    if not isinstance(diffeo, SineDiffeo):
        raise ValueError(f"diffeo must be a SineDiffeo from sample_diffeos, got {type(diffeo).__name__}")
    if (diffeo.batch, diffeo.height, diffeo.width) != (lay.B, *lay.HW):
        raise ValueError(
            f"diffeo was sampled for (batch, H, W) = {(diffeo.batch, diffeo.height, diffeo.width)}, "
            f"x has {(lay.B, *lay.HW)} (batch = the number of indices of its batch_dims={lay.batch_dims} batch axes)"
        )
    coef = diffeo.coef
    if _is_torch(coef):
        if not coef.is_floating_point() or not bool(import_torch().isfinite(coef).all()):
            raise ValueError("diffeo.coef must be a finite floating-point tensor")
    elif not np.isfinite(coef).all():
        raise ValueError("diffeo.coef contains non-finite values (nan or inf)")


def _is_zero(coef: Any) -> bool:
    """True if every coefficient is exactly 0 and none needs a gradient (the pull-back is then the identity)."""
    if _is_torch(coef):
        return not coef.requires_grad and not bool(coef.any())
    return not coef.any()


def deform(
    x: Any,
    T: Any = None,
    c: Any = None,
    *,
    batch_dims: int = 1,
    cutoff: str | None = None,
    interp: str = "linear",
    seed: Any = None,
    diffeo: SineDiffeo | None = None,
    resample_folds: bool = False,
) -> Any:
    r"""Deform images by maximum-entropy diffeomorphisms (temperature T, cut-off c): one independent field per
    index of the ``batch_dims`` leading axes, shared by the other leading axes (module docstring).

    ``x``: numpy array or torch tensor of shape ``(*batch, [channels...,] H, W)``; ``batch_dims=1`` (default)
    reads ``(B, [C...,] H, W)`` with one field per ``x[b]``; ``batch_dims=0`` is one field for the whole array,
    like the reference ``deform(image, T, cut, interp)`` (pcsl-epfl/diffeomorphism). Dtypes and compute paths: see
    the module docstring (a CPU tensor without gradient runs the numba kernel; the output has x's dtype, and x's
    tensor subclass).

    ``T``, ``c``: scalars, or arrays with one value per field (see :func:`sample_diffeos`). ``cutoff``: ``"code"``
    (default) or ``"paper"``. ``interp``: ``"linear"`` (bilinear), ``"nearest"`` or ``"gaussian"``: the reference's
    normalised Gaussian average over the pixels q of the image,

    .. math:: \tau x(p) = \frac{\sum_q e^{-|s(p)-q|^2/2\sigma^2}\,x(q)}{\sum_q e^{-|s(p)-q|^2/2\sigma^2}},\qquad
              s(p) = \mathrm{clamp}(p - D(p)),\quad \sigma = 0.4715\ \text{pixel}

    (:data:`GAUSSIAN_SIGMA`, the value of the reference ``remap(..., interp='gaussian')``; computed separably from
    the 2 :data:`GAUSSIAN_RADIUS` = 10 pixels around s(p) per axis, which changes nothing at float64 resolution). With
    ``"gaussian"`` T = 0 is not the identity but the blur the reference applies to its clean images
    (``deform(img, 0, 1, 'gaussian')``). ``seed``: None, int, numpy Generator (same seed -> same fields in every
    path) or ``torch.Generator``. ``diffeo``: apply fields from :func:`sample_diffeos` instead of sampling (its
    ``batch`` must be the number of fields); the sampling arguments (T, c, cutoff, seed, resample_folds) are then
    part of ``diffeo`` and giving any of them raises ``ValueError``. If ``diffeo.coef`` is a torch tensor that
    requires grad (:meth:`SineDiffeo.to_torch`), the output of a torch ``x`` is differentiable with respect to it.
    With ``"linear"`` or ``"nearest"``, T = 0 returns exactly the input (a copy).
    """
    code = _check_interp(interp)
    is_t = _is_torch(x)
    if is_t:
        lay = _layout(tuple(x.shape), batch_dims)
        _torch_compute_dtype(x)
    else:
        arr, lay = _numpy_image(x, batch_dims)
    if diffeo is None:
        for name, value in (("T", T), ("c", c)):
            if value is None:
                raise ValueError(f"{name} must be given (or pass diffeo=sample_diffeos(...))")
        cutoff = "code" if cutoff is None else cutoff
        diffeo = sample_diffeos(lay.B, *lay.HW, T, c, cutoff=cutoff, seed=seed, resample_folds=resample_folds)
    else:
        if not isinstance(diffeo, SineDiffeo):
            raise ValueError(f"diffeo must be a SineDiffeo from sample_diffeos, got {type(diffeo).__name__}")
        given = [k for k, v in dict(T=T, c=c, cutoff=cutoff, seed=seed).items() if v is not None]
        if given or resample_folds:
            raise ValueError(
                f"{(given or ['resample_folds'])[0]} must not be given with diffeo: its fields are already sampled"
                f" (T={diffeo.T!r}, c={diffeo.c!r}, cutoff={diffeo.cutoff!r})"
            )
        _check_diffeo(diffeo, lay)
    if is_t and _needs_torch_ops(x, diffeo.coef):
        _check_finite_torch(x)
        if code != 2 and _is_zero(diffeo.coef):
            return x.clone()
        compute = _torch_compute_dtype(x)
        out = _remap_torch(x.reshape(lay.kernel_shape).to(compute), _fields_torch(diffeo, x.device, compute), code)
        return _torch_output(out.reshape(lay.shape), x)
    if is_t:
        arr = _numpy_view(x)
    if _is_torch(diffeo.coef) and diffeo.coef.requires_grad:
        raise ValueError("diffeo.coef requires grad but x is a numpy array: pass a torch tensor to get a gradient")
    img, out_dtype = _kernel_input(arr, lay)
    coef = np.ascontiguousarray(_coef_numpy(diffeo.coef))
    if code != 2 and not coef.any():
        out = np.array(arr, dtype=out_dtype, copy=True)
    else:
        sy, sx = diffeo.sine_tables()
        out = _kernel_output(_deform_fused(img, coef, diffeo.mi, diffeo.mj, sy, sx, code), lay, out_dtype)
    return _from_numpy(out, x) if is_t else out


# ----------------------------------------------------------------------------------------------------------
# torch path
# ----------------------------------------------------------------------------------------------------------
def _fields_torch(diffeo: SineDiffeo, device, dtype):
    torch = import_torch()
    sy, sx = (torch.tensor(t, device=device, dtype=dtype) for t in diffeo.sine_tables())
    if _is_torch(diffeo.coef):
        coef = diffeo.coef.to(device=device, dtype=dtype)
    else:
        coef = torch.tensor(diffeo.coef, device=device, dtype=dtype)
    mi = torch.tensor(diffeo.mi, device=device)
    mj = torch.tensor(diffeo.mj, device=device)
    onehot = torch.nn.functional.one_hot(mi, sy.shape[0]).to(dtype)  # (M, Ki)
    acc = torch.einsum("bcm,mi,mw->bciw", coef, onehot, sx[mj])
    return torch.einsum("iy,bciw->bcyw", sy, acc)


def _remap_torch(img, f, interp: int):
    """Pull-back of a validated floating-point (B, C, H, W) tensor by fields f (B, 2, H, W) of its dtype and device;
    the same arithmetic as the numba kernel."""
    torch = import_torch()
    B, C, H, W = img.shape
    flat = img.reshape(B, C, H * W)
    gy = torch.arange(H, device=img.device, dtype=img.dtype)[:, None]
    gx = torch.arange(W, device=img.device, dtype=img.dtype)[None, :]
    yy = (gy - f[:, 0]).clamp(0.0, H - 1.0).reshape(B, 1, H * W)
    xx = (gx - f[:, 1]).clamp(0.0, W - 1.0).reshape(B, 1, H * W)

    def gather(yi, xi):
        return torch.gather(flat, 2, (yi * W + xi).expand(B, C, H * W))

    if interp == 1:
        return gather(torch.floor(yy + 0.5).long(), torch.floor(xx + 0.5).long()).reshape(B, C, H, W)
    y0 = torch.floor(yy)
    x0 = torch.floor(xx)
    y0l, x0l = y0.long(), x0.long()
    if interp == 2:
        inv = 1.0 / (2.0 * GAUSSIAN_SIGMA**2)
        offsets = range(1 - GAUSSIAN_RADIUS, GAUSSIAN_RADIUS + 1)

        def weights(s, s0, n):  # per-axis weights of the taps s0 + k (0 outside the image) and their sum
            taps = [s0 + k for k in offsets]
            w = [torch.exp(-((s - q) ** 2) * inv) * ((q >= 0) & (q <= n - 1)) for q in taps]
            total = w[0]
            for wk in w[1:]:
                total = total + wk
            return [q.long().clamp(0, n - 1) for q in taps], w, total

        qys, wys, sy = weights(yy, y0, H)
        qxs, wxs, sx = weights(xx, x0, W)
        ref = gather(torch.floor(yy + 0.5).long(), torch.floor(xx + 0.5).long())
        acc = torch.zeros_like(ref)
        for qy, wy in zip(qys, wys):
            inner = torch.zeros_like(ref)
            for qx, wx in zip(qxs, wxs):
                inner = inner + wx * (gather(qy, qx) - ref)
            acc = acc + wy * inner
        return (ref + acc / (sy * sx)).reshape(B, C, H, W)
    fy = yy - y0
    fx = xx - x0
    y1l, x1l = (y0l + 1).clamp(max=H - 1), (x0l + 1).clamp(max=W - 1)
    out = (
        (1.0 - fy) * (1.0 - fx) * gather(y0l, x0l)
        + (1.0 - fy) * fx * gather(y0l, x1l)
        + fy * (1.0 - fx) * gather(y1l, x0l)
        + fy * fx * gather(y1l, x1l)
    )
    return out.reshape(B, C, H, W)


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
    check_choice(method, "method", METHODS)


def typical_displacement(T: float, c: float, n: Any, *, cutoff: str = "code", method: str = "exact") -> float:
    r"""Rms length (pixels) of the displacement at the image centre.

    ``method="exact"``: :math:`\sqrt{2Tn^2S_{\rm odd}(c)}` (lattice sum, the cut-off rule matters);
    ``"paper"``: :math:`\frac n2\sqrt{\pi T\ln c}`; ``"asymptotic"``: the paper's law with the Sierpinski
    constant, :math:`\frac n2\sqrt{\pi T(\ln c + K/2\pi)}`. ``n`` may be an (H, W) tuple (exact method only).
    """
    _check_method(method)
    _check_cutoff(cutoff)
    T = check_real(T, "T", 0.0)
    big, a, b = _lengths(n)
    cf = _as_fraction(c)
    _check_exact_c(cf, a, b, method)
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
    delta = check_real(delta, "delta", 0.0)
    big, a, b = _lengths(n)
    cf = _as_fraction(c)
    _check_exact_c(cf, a, b, method)
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
    c <= 1 (ln c = 0; the reference raises ZeroDivisionError there; :func:`single_mode_temperature_range` gives
    a window for c = 1) or an empty window (paper: c >= 2n/π). T_max is an order-of-magnitude bound: a
    sizeable fraction of fields fold at T_max (use ``SineDiffeo.folds`` / ``resample_folds``).
    """
    _check_method(method)
    _check_cutoff(cutoff)
    big, a, b = _lengths(n)
    cf = _as_fraction(c)
    _check_exact_c(cf, a, b, method)
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
    if not (float(lo) > 0 and float(hi) > 0 and math.isfinite(float(lo)) and math.isfinite(float(hi))):
        raise ValueError(f"temperature_range(n={n}, c={c}): the window ({float(lo):g}, {float(hi):g}) is not "
                         "representable in float64 (underflow at this n); use a smaller n")
    return float(lo), float(hi)


def single_mode_temperature_range(n: Any, *, cutoff: str = "code") -> tuple[float, float]:
    r"""(T_min, T_max) at c = 1, where :func:`temperature_range` has no window: its criteria contain ln c = 0 (the
    reference ``temperature_range(n, 1)`` divides by zero, although the reference augmentation's default
    ``cutmin=1`` can draw c = 1).

    At c = 1 the code cut-off keeps the single mode (1, 1) per component (the paper rule keeps none: ValueError,
    as for an image so elongated that (1, 1) is cut). Then

    * :math:`T_{\min}`: centre displacement of ½ pixel, exact: :math:`1/(8n^2S_{\rm odd}(1))`, i.e.
      :math:`1/(4n^2)` for a square image (the criterion of ``temperature_range(method="exact")``);
    * :math:`T_{\max}`: :math:`\langle|\nabla\tau|^2\rangle = 1`, i.e. :math:`2/(\pi^2N(1))`, :math:`2/\pi^2` for
      a square image: the exact criterion :math:`2\ln c\,\langle|\nabla\tau|^2\rangle = 1` with the extreme-value
      factor :math:`2\ln c` (the maximum over ~c² patches) set to 1 (one patch). For one mode it is also the T at
      which the rms amplitude reaches the fold threshold: with :math:`D = (A, B)\sin\frac{\pi p_y}{n-1}
      \sin\frac{\pi p_x}{n-1}`, :math:`\min\det(I-\nabla D) = 1 - \frac{\pi}{n-1}\max(|A|, |B|)`, and
      :math:`A, B \sim \mathcal N(0, n^2T/2)`, so at :math:`T_{\max}` a field folds with probability
      :math:`1 - (2\Phi(\frac{n-1}{n}) - 1)^2` (0.55 at n = 32; the paper's T_max folds 10-35 % of the fields for
      c = 3...15).

    ``n``: an int or an (H, W) tuple, as in :func:`temperature_range`.
    """
    _check_cutoff(cutoff)
    big, a, b = _lengths(n)
    if not _th.kept_modes(1, cutoff, a, b):
        hint = " or cutoff='code'" if cutoff == "paper" else " (the image is too elongated for the mode (1, 1))"
        raise ValueError(f"c=1 with cutoff={cutoff!r} keeps no mode for n={n!r}: use c >= 2{hint}")
    lo = float(_th.temperature_for_displacement(Fraction(1, 2), 1, big, cutoff, a, b))
    hi = 1.0 / float(_th.mean_gradient_energy(1, 1, cutoff, a, b))
    if not lo < hi:
        raise ValueError(f"empty temperature window at c=1 for n={n!r}: T_min={lo:.4g} >= T_max={hi:.4g}")
    return lo, hi
