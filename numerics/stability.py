r"""Stability of a function to diffeomorphisms relative to noise: the estimators :math:`D_f, G_f, R_f`.

Petrini, Favero, Geiger, Wyart, "Relative stability toward diffeomorphisms indicates performance in deep
nets", NeurIPS 2021 (arXiv 2105.02468):

.. math::
    D_f = \frac{\langle|f(\tau x) - f(x)|^2\rangle_{x,\tau}}{\langle|f(x_1) - f(x_2)|^2\rangle_{x_1,x_2}},\qquad
    G_f = \frac{\langle|f(x+\eta) - f(x)|^2\rangle_{x,\eta}}{\langle|f(x_1) - f(x_2)|^2\rangle_{x_1,x_2}},\qquad
    R_f = \frac{D_f}{G_f},

with :math:`\eta` isotropic noise of the norm of the deformation, :math:`|\eta| = |\tau x - x|`.
:math:`|\cdot|` is the Euclidean norm over all output coordinates (all channels and pixels of a layer).

What is computed, from probe points :math:`x_i` and their deformations :math:`\tau x_i` (:math:`i=1..P`):

* noise (:func:`matched_noise`): :math:`\eta_i = r_i\, g_i/|g_i|`, :math:`g_i\sim\mathcal N(0, I)`, with
  ``noise="per_sample"``: :math:`r_i = |\tau x_i - x_i|` (the authors' code), or ``noise="mean"``:
  :math:`r_i = (\frac1P\sum_j|\tau x_j - x_j|^2)^{1/2}` for all i (the slides'
  :math:`|\eta| = \langle|\tau x - x|\rangle`, read as a root mean square so that
  :math:`\langle|\eta|^2\rangle = \langle|\tau x - x|^2\rangle` in both modes);
* ``estimator="mean"``: numerators :math:`\frac1P\sum_i|f(\tau x_i) - f(x_i)|^2` and
  :math:`\frac1P\sum_i|f(x_i+\eta_i) - f(x_i)|^2`; denominator the mean over ordered pairs,
  computed in
  :math:`O(P\cdot\dim)` from :math:`\frac{1}{P(P-1)}\sum_{i\ne j}|a_i - a_j|^2 = \frac{2}{P-1}\sum_i|a_i - \bar a|^2`
  (``exclude_diagonal=True``, an unbiased U-statistic for :math:`2\,\mathrm{tr\,Cov}\,f(x)`) or
  :math:`\frac{1}{P^2}\sum_{i,j} = \frac{2}{P}\sum_i|a_i-\bar a|^2` (``exclude_diagonal=False``, the authors'
  ``cdist(f(x), f(x)).pow(2).mean()``), a factor :math:`(P-1)/P` smaller;
* ``estimator="median"`` (the camera-ready code of ``leonardopetrini/diffeo-sota``): numerators
  :math:`\sum_k \mathrm{median}_i\,(f_k(\tau x_i) - f_k(x_i))^2` -- a median over samples *per output
  coordinate* k, then summed over coordinates; denominator :math:`\mathrm{median}_{(i,j)}|f(x_i)-f(x_j)|^2`
  over the ordered pairs :math:`i\ne j` (or all :math:`P^2` pairs, zeros of the diagonal included, as the
  authors). It needs the :math:`P(P-1)/2` pairwise distances (``scipy.spatial.distance.pdist``, no
  :math:`P\times P\times\dim` intermediate). The per-coordinate median is not invariant to rotations of the
  output space (the mean is). ``median=`` fixes the median of an even number of values: ``"midpoint"`` (ours,
  numpy's: the mean of the two middle values) or ``"lower"`` (the lower middle value, ``torch.median``'s, hence the
  authors' numbers), applied alike to the per-coordinate medians, the pair-distance median and every bootstrap
  replicate; odd counts are the same in both.

Uncertainties (``errors=``): ``"bootstrap"`` resamples the probe points :math:`i` (with their :math:`\tau x_i,
\eta_i`) ``n_boot`` times and recomputes every figure, ratios included, on the resampled set (pairs are formed
inside the resample, duplicates give zero distances); s.e. = s.d. of the replicates, CI = 2.5/97.5 %
percentiles. ``"se"`` (mean estimator only) is the delta method: influence functions
:math:`\psi^A_i = A_i - \bar A` for a mean, :math:`\psi^U_i = s\,(2|a_i - \bar a|^2 - \overline{2|a-\bar a|^2})`
for the pair statistic (:math:`s = P/(P-1)` or 1; Hoeffding projection of the U-statistic), and for a ratio
:math:`N/M`: :math:`\psi = \psi^N/M - N\psi^M/M^2`; s.e. :math:`=(\sum_i\psi_i^2/(P(P-1)))^{1/2}`,
CI = value ± 1.96 s.e. ``None``: s.e. and CI are NaN.

Functions take any callable on numpy arrays, or a ``torch.nn.Module`` / callable on tensors (the inputs are
then tensors on the module's device, in its dtype; everything runs under ``torch.no_grad``).
:func:`layerwise_stability` measures every named layer through forward hooks in one pass;
:func:`rotation_stability` is the spherical analogue :math:`S = \langle|f(x) - f(R_\theta x)|^2\rangle`
(Petrini et al., NeurIPS 2022).
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from numba import njit, prange
from scipy.spatial.distance import pdist

from numerics.rotations import random_planes, random_rotations, rotate
from numerics.seeds import generator
from theory.arguments import check_flag

__all__ = [
    "Estimate",
    "StabilityResult",
    "matched_noise",
    "relative_stability",
    "layerwise_stability",
    "rotation_stability",
    "random_rotations",
]

NOISE_MODES = ("per_sample", "mean")
ESTIMATORS = ("mean", "median")
MEDIANS = ("midpoint", "lower")
ERROR_MODES = ("bootstrap", "se", None)
_Z95 = 1.959963984540054  # standard normal 97.5% quantile


# ----------------------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------------------
def _json_float(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


@dataclass(frozen=True)
class Estimate:
    """A figure with its uncertainty: ``value``, standard error ``se`` (bootstrap s.d. or delta-method s.e.;
    NaN when ``errors=None``) and a 95 % interval ``ci`` (bootstrap percentiles, or value ± 1.96 se)."""

    value: float
    se: float
    ci: tuple[float, float]

    def as_dict(self) -> dict:
        """JSON-serialisable dict; NaN (no uncertainty requested) becomes ``None``."""
        return {"value": _json_float(self.value), "se": _json_float(self.se),
                "ci": [_json_float(self.ci[0]), _json_float(self.ci[1])]}


@dataclass(frozen=True)
class StabilityResult:
    r"""D, G, R and their ingredients. ``diffeo_sensitivity`` :math:`=\langle|f(\tau x)-f(x)|^2\rangle`,
    ``noise_sensitivity`` :math:`=\langle|f(x+\eta)-f(x)|^2\rangle`, ``pair_distance``
    :math:`=\langle|f(x_1)-f(x_2)|^2\rangle`; :math:`D` = diffeo/pair, :math:`G` = noise/pair, :math:`R` = D/G."""

    D: Estimate
    G: Estimate
    R: Estimate
    diffeo_sensitivity: Estimate
    noise_sensitivity: Estimate
    pair_distance: Estimate
    n_samples: int
    estimator: str
    noise: str
    exclude_diagonal: bool
    errors: str | None = None
    n_boot: int = 0
    median: str = "midpoint"

    def as_dict(self) -> dict:
        """JSON-serialisable dict (``json.dumps(r.as_dict(), allow_nan=False)`` works)."""
        out = {k: getattr(self, k).as_dict() for k in
               ("D", "G", "R", "diffeo_sensitivity", "noise_sensitivity", "pair_distance")}
        out.update(n_samples=self.n_samples, estimator=self.estimator, noise=self.noise,
                   exclude_diagonal=self.exclude_diagonal, errors=self.errors, n_boot=self.n_boot,
                   median=self.median)
        return out


# ----------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


def _is_tensor(x: Any) -> bool:
    t = sys.modules.get("torch")
    return t is not None and isinstance(x, t.Tensor)


def _is_module(f: Any) -> bool:
    t = sys.modules.get("torch")
    return t is not None and isinstance(f, t.nn.Module)


def _check_choice(value: Any, allowed: tuple, name: str) -> None:
    if value not in allowed or isinstance(value, bool):
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_options(noise, estimator, exclude_diagonal, errors, n_boot, batch_size, median="midpoint") -> None:
    _check_choice(noise, NOISE_MODES, "noise")
    _check_choice(estimator, ESTIMATORS, "estimator")
    _check_choice(median, MEDIANS, "median")
    _check_choice(errors, ERROR_MODES, "errors")
    check_flag("exclude_diagonal", exclude_diagonal)
    if errors == "bootstrap":
        _check_int(n_boot, "n_boot", 2)
    if errors == "se" and estimator == "median":
        raise ValueError("errors='se' (delta method) is available for estimator='mean' only; "
                         "use errors='bootstrap' with estimator='median'")
    if batch_size is not None:
        _check_int(batch_size, "batch_size", 1)


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def _check_inputs(x: Any, x_diffeo: Any) -> int:
    sx, sd = _shape(x), _shape(x_diffeo)
    if len(sx) < 1:
        raise ValueError(f"x must have shape (P, ...) with P >= 2 probe points, got shape {sx}")
    if sx != sd:
        raise ValueError(f"x_diffeo must have the shape of x {sx}, got {sd}")
    if sx[0] < 2:
        raise ValueError(f"x must hold P >= 2 probe points (first axis), got P = {sx[0]}")
    for arr, name in ((x, "x"), (x_diffeo, "x_diffeo")):
        _check_real(arr, name)
        if not _all_finite(arr):
            raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return int(sx[0])


def _check_real(arr: Any, name: str) -> None:
    """Complex inputs are rejected: casting them to the real dtype of f would drop the imaginary part."""
    if (arr.is_complex() if _is_tensor(arr) else np.iscomplexobj(arr)):
        raise ValueError(f"{name} must be real, got a complex array")


def _all_finite(arr: Any) -> bool:
    if _is_tensor(arr):
        torch = _torch()
        if not (arr.is_floating_point() or arr.is_complex()):
            return True
        return bool(torch.isfinite(arr).all())
    a = np.asarray(arr)
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"inputs must be numeric arrays, got dtype {a.dtype}")
    return bool(np.all(np.isfinite(a)))


# ----------------------------------------------------------------------------------------------------------
# backends: numpy callables, torch modules / callables on tensors
# ----------------------------------------------------------------------------------------------------------
class _NumpyBackend:
    """f is called on numpy arrays (the dtype of x if floating, else float64)."""

    torch = False

    def __init__(self, x: Any):
        a = np.asarray(x)
        self.dtype = a.dtype if np.issubdtype(a.dtype, np.floating) else np.dtype(np.float64)

    def prepare(self, x: Any) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(x, dtype=self.dtype))

    def noise(self, x: np.ndarray, x_diffeo: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
        diff = (x_diffeo.astype(np.float64) - x.astype(np.float64)).reshape(x.shape[0], -1)
        radius = _noise_radius(np.linalg.norm(diff, axis=1), mode)
        g = rng.standard_normal(x.shape).reshape(x.shape[0], -1)
        g *= (radius / np.linalg.norm(g, axis=1))[:, None]
        return g.reshape(x.shape).astype(self.dtype, copy=False)

    @staticmethod
    def to_numpy2d(out: Any, n: int, what: str) -> np.ndarray:
        if _is_tensor(out):
            out = out.detach().cpu().numpy()
        _check_real(out, f"the output of {what}")
        return _as_2d(np.asarray(out, dtype=np.float64), n, what)


class _TorchBackend:
    """f is a torch.nn.Module (inputs moved to its device and dtype) or a callable on tensors (inputs keep
    the device and floating dtype of x)."""

    torch = True

    def __init__(self, f: Any, x: Any):
        torch = _torch()
        self.device = x.device if _is_tensor(x) else torch.device("cpu")
        if _is_tensor(x):
            self.dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        else:
            a = np.asarray(x)
            self.dtype = (torch.from_numpy(np.zeros(1, dtype=a.dtype)).dtype
                          if np.issubdtype(a.dtype, np.floating) else torch.get_default_dtype())
        if _is_module(f):
            tensors = [t for t in list(f.parameters()) + list(f.buffers()) if t.is_floating_point()]
            if tensors:
                self.device = tensors[0].device
                self.dtype = tensors[0].dtype

    def prepare(self, x: Any):
        torch = _torch()
        if not _is_tensor(x):
            x = torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
        return x.detach().to(device=self.device, dtype=self.dtype)

    def noise(self, x, x_diffeo, mode: str, rng: np.random.Generator, generator=None):
        torch = _torch()
        diff = (x_diffeo.to(torch.float64) - x.to(torch.float64)).reshape(x.shape[0], -1)
        radius = _noise_radius(diff.norm(dim=1).cpu().numpy(), mode)
        if generator is None:
            generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        g = torch.randn(tuple(x.shape), generator=generator, dtype=torch.float64).reshape(x.shape[0], -1)
        g *= torch.from_numpy(radius)[:, None] / g.norm(dim=1, keepdim=True)
        return g.reshape(x.shape).to(device=self.device, dtype=self.dtype)

    @staticmethod
    def to_numpy2d(out: Any, n: int, what: str) -> np.ndarray:
        _check_real(out, f"the output of {what}")
        if _is_tensor(out):
            out = out.detach().to("cpu", _torch().float64).numpy()
        return _as_2d(np.asarray(out, dtype=np.float64), n, what)


def _backend(f: Any, x: Any):
    if not callable(f):
        raise ValueError(f"f must be callable (a function or a torch.nn.Module), got {type(f).__name__}")
    if _is_module(f) or _is_tensor(x):
        return _TorchBackend(f, x)
    return _NumpyBackend(x)


def _as_2d(a: np.ndarray, n: int, what: str) -> np.ndarray:
    if a.ndim == 0 or a.shape[0] != n:
        raise ValueError(f"{what} must return an array with the batch on the first axis (length {n}), "
                         f"got shape {a.shape}")
    a = a.reshape(n, -1)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} returned non-finite values (nan or inf)")
    return a


def _noise_radius(norms: np.ndarray, mode: str) -> np.ndarray:
    norms = np.asarray(norms, dtype=np.float64)
    if not np.any(norms > 0):
        raise ValueError("x_diffeo equals x for every probe point: the deformation is the identity, so the "
                         "matched noise has norm zero and R_f = 0/0 is undefined (use T > 0)")
    if mode == "per_sample":
        return norms
    return np.full_like(norms, math.sqrt(float(np.mean(norms**2))))


def _rng_and_generator(seed: Any, backend) -> tuple[np.random.Generator, Any]:
    """One numpy Generator drives everything (noise first, then bootstrap). A torch.Generator as seed is
    used for the torch noise; the bootstrap Generator is then seeded from it."""
    if _is_tensor_generator(seed):
        if not backend.torch:
            raise ValueError("seed: a torch.Generator is accepted only with torch inputs or modules; "
                             "pass an int or a numpy Generator")
        torch = _torch()
        s = int(torch.randint(0, 2**62, (1,), generator=seed))
        return np.random.default_rng(s), seed
    return generator(seed), None


def _is_tensor_generator(seed: Any) -> bool:
    t = sys.modules.get("torch")
    return t is not None and isinstance(seed, t.Generator)


def matched_noise(x: Any, x_diffeo: Any, *, noise: str = "per_sample", seed: Any = None):
    r"""Isotropic noise matched in norm to the deformation: :math:`\eta_i = r_i\,g_i/|g_i|`,
    :math:`g_i\sim\mathcal N(0,I)`, :math:`r_i = |\tau x_i - x_i|` (``noise="per_sample"``) or
    :math:`r_i = \langle|\tau x - x|^2\rangle^{1/2}` (``noise="mean"``). Petrini et al. 2021.

    numpy in, numpy out (dtype of x); tensor in, tensor out (device and dtype of x, drawn on the CPU from a
    ``torch.Generator`` seeded from ``seed``, so identical on every device). Same stream as
    :func:`relative_stability` with the same seed.
    """
    _check_choice(noise, NOISE_MODES, "noise")
    _check_inputs(x, x_diffeo)
    be = _NumpyBackend(x) if not _is_tensor(x) else _TorchBackend(None, x)
    rng, gen = _rng_and_generator(seed, be)
    xs, xd = be.prepare(x), be.prepare(x_diffeo)
    return be.noise(xs, xd, noise, rng, gen) if be.torch else be.noise(xs, xd, noise, rng)


# ----------------------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------------------
@njit(cache=True, parallel=True)
def _boot_median_sum(sv_t, order_t, counts_t, lower):  # pragma: no cover - compiled
    """For each replicate b: sum over columns k of the median of column k resampled with multiplicities
    ``counts_t[:, b]`` (the midpoint of the two middle values, or the lower one with ``lower``). ``sv_t[k]``:
    column k sorted ascending; ``order_t[k]``: the row index of each sorted
    entry; ``counts_t``: (N, n_boot). Columns in parallel; all replicates walk a column together (contiguous
    in b) until every one has passed its middle rank: O(m * N * n_boot) additions at most."""
    m, N = sv_t.shape
    B = counts_t.shape[1]
    total = 0
    for i in range(N):
        total += counts_t[i, 0]
    k1 = (total - 1) // 2
    k2 = total // 2
    per_col = np.zeros((m, B))
    for k in prange(m):
        cum = np.zeros(B, dtype=np.int64)
        lo = np.zeros(B)
        hi = np.zeros(B)
        pending = B
        for i in range(N):
            row = order_t[k, i]
            v = sv_t[k, i]
            for b in range(B):
                c0 = cum[b]
                c1 = c0 + counts_t[row, b]
                cum[b] = c1
                if c0 <= k1 < c1:
                    lo[b] = v
                if c0 <= k2 < c1:
                    hi[b] = v
                    pending -= 1
            if pending == 0:
                break
        for b in range(B):
            per_col[k, b] = lo[b] if lower else 0.5 * (lo[b] + hi[b])
    return per_col.sum(axis=0)


def _boot_median(values: np.ndarray, counts: np.ndarray, median: str = "midpoint") -> np.ndarray:
    """Replicates of sum_k median_i values[i, k] under row multiplicities counts (n_boot, N)."""
    order = np.argsort(values, axis=0, kind="stable")
    sv_t = np.ascontiguousarray(np.take_along_axis(values, order, 0).T)
    # every replicate has the same total count (N draws), as the kernel assumes
    return _boot_median_sum(sv_t, np.ascontiguousarray(order.T, dtype=np.int32),
                            np.ascontiguousarray(counts.T, dtype=np.int32), median == "lower")


def _column_median_sum(values: np.ndarray, median: str) -> float:
    """sum_k median_i values[i, k]: numpy's midpoint median, or the lower middle value (torch.median's)."""
    if median == "midpoint":
        return float(np.sum(np.median(values, axis=0)))
    r = (values.shape[0] - 1) // 2
    return float(np.sum(np.partition(values, r, axis=0)[r]))


class _PairMedian:
    r"""Median of :math:`|a_i - a_j|^2` over ordered pairs of a (re)sample with multiplicities :math:`n_i`.

    The P(P-1)/2 distances are computed once (``pdist``) and sorted once; a resample with counts n gives
    the pair (i<j) the weight :math:`2n_in_j` (both orders) and :math:`\sum_i n_i(n_i-1)` zeros (same source
    point at two positions) plus :math:`\sum_i n_i` diagonal zeros when ``exclude_diagonal=False``.
    """

    def __init__(self, a: np.ndarray):
        P = a.shape[0]
        d = pdist(a, "sqeuclidean")
        order = np.argsort(d, kind="stable")
        self.d = d[order]
        iu, ju = np.triu_indices(P, 1)
        self.i, self.j = iu[order], ju[order]
        self.P = P

    def median(self, counts: np.ndarray, exclude_diagonal: bool, median: str = "midpoint") -> float:
        counts = counts.astype(np.int64)
        w = 2 * counts[self.i] * counts[self.j]
        zeros = int(np.sum(counts * (counts - 1)))
        if not exclude_diagonal:
            zeros += int(np.sum(counts))
        total = zeros + int(np.sum(w))
        cum = np.cumsum(w)

        def stat(k: int) -> float:
            if k < zeros:
                return 0.0
            return float(self.d[np.searchsorted(cum, k - zeros, side="right")])

        if median == "lower":
            return stat((total - 1) // 2)
        return 0.5 * (stat((total - 1) // 2) + stat(total // 2))


def _bootstrap_counts(P: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities (n_boot, P) of P indices drawn with replacement, per replicate."""
    idx = rng.integers(0, P, size=(n_boot, P))
    flat = (np.arange(n_boot)[:, None] * P + idx).ravel()
    return np.bincount(flat, minlength=n_boot * P).reshape(n_boot, P)


def _from_replicates(value: float, reps: np.ndarray, label: str) -> Estimate:
    ok = np.isfinite(reps)
    if ok.sum() < 2:
        raise ValueError(f"bootstrap of {label}: fewer than 2 replicates have a non-zero denominator; "
                         "use more probe points P")
    if not ok.all():
        warnings.warn(f"bootstrap of {label}: {int((~ok).sum())} of {reps.size} replicates had a zero "
                      "denominator (resample with all points equal in f) and were dropped", RuntimeWarning,
                      stacklevel=4)
    r = reps[ok]
    lo, hi = np.percentile(r, [2.5, 97.5])
    return Estimate(float(value), float(np.std(r, ddof=1)), (float(lo), float(hi)))


def _from_influence(value: float, psi: np.ndarray) -> Estimate:
    P = psi.shape[0]
    se = math.sqrt(float(np.sum(psi**2)) / (P * (P - 1)))
    return Estimate(float(value), se, (value - _Z95 * se, value + _Z95 * se))


def _no_errors(value: float) -> Estimate:
    return Estimate(float(value), math.nan, (math.nan, math.nan))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)
    out[~(np.asarray(den) > 0)] = np.nan
    return out


def _summaries(a: np.ndarray, A: np.ndarray, C: np.ndarray, *, estimator: str, exclude_diagonal: bool,
               errors: str | None, counts: np.ndarray | None, noise: str, label: str = "f",
               median: str = "midpoint") -> StabilityResult:
    """D, G, R from f(x) = ``a`` (P, m) and the squared differences ``A`` (diffeo) and ``C`` (noise): shape
    (P,) (summed over coordinates) for the mean estimator, (P, m) (per coordinate) for the median."""
    P = a.shape[0]
    if estimator == "mean":
        c = a - a.mean(axis=0)
        sq = np.einsum("ij,ij->i", c, c)
        scale = P / (P - 1) if exclude_diagonal else 1.0
        num_a, num_c = float(A.mean()), float(C.mean())
        pair = float(scale * 2.0 * sq.mean())
    else:
        num_a = _column_median_sum(A, median)
        num_c = _column_median_sum(C, median)
        pm = _PairMedian(a)
        pair = pm.median(np.ones(P, dtype=np.int64), exclude_diagonal, median)

    if not pair > 0:
        why = ("f takes the same value at every probe point (constant output)" if estimator == "mean" else
               "at least half of the pairs of probe points have |f(x1)-f(x2)| = 0 (e.g. constant or "
               "quantised outputs); use estimator='mean'")
        raise ValueError(f"pair distance <|f(x1)-f(x2)|^2> of {label} is zero: {why}, so D_f and G_f "
                         "(which divide by it) are undefined")
    if not num_c > 0:
        raise ValueError(f"noise sensitivity <|f(x+eta)-f(x)|^2> of {label} is zero ({estimator}): f does not "
                         "respond to the noise, so R_f = D_f/G_f is undefined")
    D, G, R = num_a / pair, num_c / pair, num_a / num_c

    if errors is None:
        ests = [_no_errors(v) for v in (D, G, R, num_a, num_c, pair)]
    elif errors == "se":
        ia = A - num_a
        ic = C - num_c
        ip = scale * 2.0 * (sq - sq.mean())
        ests = [
            _from_influence(D, ia / pair - num_a * ip / pair**2),
            _from_influence(G, ic / pair - num_c * ip / pair**2),
            _from_influence(R, ia / num_c - num_a * ic / num_c**2),
            _from_influence(num_a, ia),
            _from_influence(num_c, ic),
            _from_influence(pair, ip),
        ]
    else:
        B = counts.shape[0]
        if estimator == "mean":
            W = counts / P
            ra, rc = W @ A, W @ C
            second = W @ sq
            first2 = np.zeros(B)
            step = max(1, (1 << 22) // max(B, 1))
            for k in range(0, c.shape[1], step):
                m = W @ c[:, k:k + step]
                first2 += np.einsum("ij,ij->i", m, m)
            rp = scale * 2.0 * (second - first2)
            rp[rp < 0] = 0.0  # rounding: a resample of identical points has zero spread
        else:
            ra, rc = _boot_median(A, counts, median), _boot_median(C, counts, median)
            rp = np.array([pm.median(counts[b], exclude_diagonal, median) for b in range(B)])
        ests = [
            _from_replicates(D, _safe_div(ra, rp), f"D of {label}"),
            _from_replicates(G, _safe_div(rc, rp), f"G of {label}"),
            _from_replicates(R, _safe_div(ra, rc), f"R of {label}"),
            _from_replicates(num_a, ra, f"diffeo sensitivity of {label}"),
            _from_replicates(num_c, rc, f"noise sensitivity of {label}"),
            _from_replicates(pair, rp, f"pair distance of {label}"),
        ]
    return StabilityResult(*ests, n_samples=P, estimator=estimator, noise=noise,
                           exclude_diagonal=bool(exclude_diagonal), errors=errors,
                           n_boot=0 if counts is None else int(counts.shape[0]), median=median)


# ----------------------------------------------------------------------------------------------------------
# streaming evaluation
# ----------------------------------------------------------------------------------------------------------
class _Accumulator:
    """Per output (layer): f(x) rows, and the squared differences for τx and x+η (summed over coordinates
    for the mean estimator, per coordinate for the median)."""

    def __init__(self, per_coordinate: bool):
        self.per_coordinate = per_coordinate
        self.fx: list[np.ndarray] = []
        self.A: list[np.ndarray] = []
        self.C: list[np.ndarray] = []

    def _sqdiff(self, y, y0):
        d = y - y0
        if _is_tensor(d):
            r = d * d if self.per_coordinate else (d * d).sum(dim=1)
            return r.cpu().numpy()
        return d * d if self.per_coordinate else np.einsum("ij,ij->i", d, d)

    def add(self, y0, yt, ye) -> None:
        self.fx.append(y0.cpu().numpy() if _is_tensor(y0) else y0)
        self.A.append(self._sqdiff(yt, y0))
        self.C.append(self._sqdiff(ye, y0))

    def arrays(self):
        return np.concatenate(self.fx), np.concatenate(self.A), np.concatenate(self.C)


def _run(forward: Callable, xs, xd, xe, batch_size: int | None, per_coordinate: bool) -> dict[str, _Accumulator]:
    """Call ``forward(batch) -> {name: (n, m) float64 array or tensor}`` on x, τx and x+η batch by batch."""
    P = xs.shape[0]
    bs = P if batch_size is None else batch_size
    acc: dict[str, _Accumulator] = {}
    for start in range(0, P, bs):
        sl = slice(start, min(P, start + bs))
        y0, yt, ye = forward(xs[sl]), forward(xd[sl]), forward(xe[sl])
        if not (y0.keys() == yt.keys() == ye.keys()):
            raise ValueError("the set of layers called differs between forward passes on x, tau x and x + eta")
        for name in y0:
            acc.setdefault(name, _Accumulator(per_coordinate)).add(y0[name], yt[name], ye[name])
    return acc


def _prepare(f, x, x_diffeo, noise, seed, batch_size):
    P = _check_inputs(x, x_diffeo)
    be = _backend(f, x)
    rng, gen = _rng_and_generator(seed, be)
    xs, xd = be.prepare(x), be.prepare(x_diffeo)
    eta = be.noise(xs, xd, noise, rng, gen) if be.torch else be.noise(xs, xd, noise, rng)
    return P, be, rng, xs, xd, xs + eta


def relative_stability(f: Any, x: Any, x_diffeo: Any, *, noise: str = "per_sample", estimator: str = "mean",
                       exclude_diagonal: bool = True, errors: str | None = "bootstrap", n_boot: int = 200,
                       seed: Any = None, batch_size: int | None = None, median: str = "midpoint") -> StabilityResult:
    r"""Relative stability :math:`R_f = D_f/G_f` of ``f`` to the deformation ``x -> x_diffeo`` (Petrini et al.,
    NeurIPS 2021), with :math:`D_f, G_f` and their numerators/denominator, each with an uncertainty.

    Parameters
    ----------
    f : callable on numpy arrays ``(n, ...) -> (n, ...)``, or ``torch.nn.Module`` / callable on tensors.
        The batch is the first axis of input and output; outputs are flattened per sample.
    x, x_diffeo : arrays or tensors of the same shape ``(P, ...)``, P >= 2: probe points and their
        deformations :math:`\tau x_i` (one independent τ per sample, e.g. ``numerics.diffeo.deform``).
    noise : ``"per_sample"`` (:math:`|\eta_i| = |\tau x_i - x_i|`) or ``"mean"`` (rms over samples).
    estimator : ``"mean"`` or ``"median"`` (camera-ready definition, see the module docstring).
    exclude_diagonal : pair denominator over the :math:`P(P-1)` ordered pairs i != j (True) or all
        :math:`P^2` pairs including i = i (False, the authors' ``cdist().mean()``).
    errors : ``"bootstrap"``, ``"se"`` (delta method, mean estimator) or None.
    n_boot : bootstrap replicates (>= 2).
    seed : int, ``numpy.random.Generator`` (or ``torch.Generator`` for torch inputs) or None. The noise is
        drawn first, then the bootstrap indices.
    batch_size : evaluate f on at most this many inputs at a time (None: all P at once).
    median : the median of an even count, for ``estimator="median"``: ``"midpoint"`` (numpy's, ours) or
        ``"lower"`` (the lower middle value, ``torch.median``'s, as in the authors' ``relative_distance``); used for
        the per-coordinate medians, the pair median and the bootstrap alike. We keep numpy's: it is the symmetric
        convention (the median of -v is minus the median of v) and the one of every earlier release.

    Raises ``ValueError`` on mismatched shapes, P < 2, non-finite inputs or outputs, unknown options,
    n_boot < 2, an identity deformation (zero noise norm), a zero pair distance (constant f) or a zero
    noise sensitivity (R undefined).
    """
    _check_options(noise, estimator, exclude_diagonal, errors, n_boot, batch_size, median)
    P, be, rng, xs, xd, xe = _prepare(f, x, x_diffeo, noise, seed, batch_size)

    if be.torch:
        torch = _torch()

        def forward(batch):
            with torch.no_grad():
                out = f(batch)
            return {"output": be.to_numpy2d(out, batch.shape[0], "f")}
    else:
        def forward(batch):
            return {"output": be.to_numpy2d(f(batch), batch.shape[0], "f")}

    acc = _run(forward, xs, xd, xe, batch_size, estimator == "median")["output"]
    counts = _bootstrap_counts(P, n_boot, rng) if errors == "bootstrap" else None
    a, A, C = acc.arrays()
    return _summaries(a, A, C, estimator=estimator, exclude_diagonal=exclude_diagonal, errors=errors,
                      counts=counts, noise=noise, median=median)


def layerwise_stability(model: Any, x: Any, x_diffeo: Any, *, layers: Sequence[str] | None = None,
                        include_output: bool = True, noise: str = "per_sample", estimator: str = "mean",
                        exclude_diagonal: bool = True, errors: str | None = "bootstrap", n_boot: int = 200,
                        seed: Any = None, batch_size: int | None = None,
                        median: str = "midpoint") -> dict[str, StabilityResult]:
    r""":func:`relative_stability` of the representation of every layer of a torch model, in one pass.

    Forward hooks on ``layers`` (default: every named leaf module, i.e. without children) record each layer's
    output for x, τx and x+η (one shared noise draw and one shared set of bootstrap resamples, so layers are
    compared on the same probe points); ``"output"`` is the model's output. Keys follow the order in which
    layers run; a module called k > 1 times per forward pass (e.g. a shared ReLU) gives the keys ``name``,
    ``name#1``, ..., ``name#{k-1}``. Default-listed leaves that never run are omitted; a requested one that
    never runs raises. The model's train/eval mode is left unchanged (call ``model.eval()`` first if
    BatchNorm should use running statistics). Memory: f(x) of every layer is kept (P x dim, float64); the
    median estimator also keeps the per-coordinate squared differences. Other arguments as in
    :func:`relative_stability`.
    """
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_options(noise, estimator, exclude_diagonal, errors, n_boot, batch_size, median)
    modules = dict(model.named_modules())
    if layers is None:
        names = [n for n, m in modules.items() if n and next(iter(m.children()), None) is None]
        strict = False
    else:
        if isinstance(layers, str):
            raise ValueError("layers must be a list of module names (not a single string)")
        names = list(layers)
        unknown = [n for n in names if n not in modules or n == ""]
        if unknown:
            raise ValueError(f"layers: unknown module names {unknown}; available: {[n for n in modules if n]}")
        strict = True
    if not names and not include_output:
        raise ValueError("layers: nothing to measure (no layer selected and include_output=False); name at least "
                         "one module or pass include_output=True")
    if include_output and "output" in names:
        raise ValueError("layers: a module named 'output' clashes with the key of the model output; "
                         "pass include_output=False or rename it")
    P, be, rng, xs, xd, xe = _prepare(model, x, x_diffeo, noise, seed, batch_size)

    captured: dict[str, Any] = {}
    calls: dict[str, int] = {}

    def make_hook(name):
        def hook(module, inputs, output):
            if not _is_tensor(output):
                raise ValueError(f"layer {name!r} returned {type(output).__name__}, not a tensor; "
                                 "exclude it with layers=[...]")
            _check_real(output, f"the output of layer {name!r}")
            k = calls.get(name, 0)
            calls[name] = k + 1
            # copy now: a later in-place op (ReLU(inplace=True)) would otherwise overwrite it
            captured[name if k == 0 else f"{name}#{k}"] = output.detach().to(torch.float64, copy=True)
        return hook

    def forward(batch):
        captured.clear()
        calls.clear()
        with torch.no_grad():
            out = model(batch)
        n = batch.shape[0]
        res = {}
        for key, t in captured.items():
            if t.ndim == 0 or t.shape[0] != n:
                raise ValueError(f"layer {key!r} output has shape {tuple(t.shape)}: its first axis is not the "
                                 f"batch ({n}); exclude it with layers=[...]")
            t = t.reshape(n, -1)
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"layer {key!r} returned non-finite values (nan or inf)")
            res[key] = t
        if include_output:
            if not _is_tensor(out):
                raise ValueError(f"model returned {type(out).__name__}, not a tensor; use include_output=False")
            _check_real(out, "the model output")
            if out.ndim == 0 or out.shape[0] != n:
                raise ValueError(f"model output has shape {tuple(out.shape)}: its first axis is not the batch ({n})")
            o = out.detach().reshape(n, -1).to(torch.float64, copy=True)
            if not bool(torch.isfinite(o).all()):
                raise ValueError("model returned non-finite values (nan or inf)")
            res["output"] = o
        return res

    handles = [modules[n].register_forward_hook(make_hook(n)) for n in names]
    try:
        accs = _run(forward, xs, xd, xe, batch_size, estimator == "median")
    finally:
        for h in handles:
            h.remove()
    if strict:
        missing = [n for n in names if n not in accs]
        if missing:
            raise ValueError(f"layers {missing} were never called in the forward pass")
    counts = _bootstrap_counts(P, n_boot, rng) if errors == "bootstrap" else None
    out = {}
    for key, acc in accs.items():
        a, A, C = acc.arrays()
        out[key] = _summaries(a, A, C, estimator=estimator, exclude_diagonal=exclude_diagonal, errors=errors,
                              counts=counts, noise=noise, label=f"layer {key!r}", median=median)
    return out


# ----------------------------------------------------------------------------------------------------------
# rotation stability on the sphere
# ----------------------------------------------------------------------------------------------------------
def rotation_stability(f: Any, x: Any, theta: float, *, n_rotations: int = 1, estimator: str = "mean",
                       errors: str | None = "bootstrap", n_boot: int = 200, seed: Any = None,
                       sphere_tol: float = 1e-5, median: str = "midpoint") -> Estimate:
    r"""Rotation stability :math:`S = \langle|f(x) - f(R_\theta x)|^2\rangle_{x,R}` (Petrini, Cagnetta,
    Vanden-Eijnden, Wyart, "Learning sparse features can lead to overfitting in neural networks", NeurIPS 2022).

    ``x``: real, shape (P, d), rows on the unit sphere :math:`S^{d-1}` (:math:`||x_i| - 1| \le` ``sphere_tol``,
    a finite number >= 0), P >= 2, d >= 2. Each :math:`x_i` is rotated ``n_rotations`` times by the angle
    ``theta`` in :math:`[0,\pi]` in independent uniformly random 2-planes (:func:`numerics.rotations.rotate`,
    O(d) per rotation). ``estimator="mean"`` averages over points and rotations; ``"median"`` takes, per output
    coordinate, the median over all (point, rotation) values and sums over coordinates. Bootstrap
    resamples points (with all their rotations); ``errors="se"`` (mean only) uses the per-point averages
    over rotations. ``seed``: None, an int, a numpy Generator (or a torch.Generator with a torch ``f``/``x``).
    Not normalised: divide by a pair distance (see :func:`relative_stability`) for the authors' normalised
    variant. ``median``: the even-count median convention of :func:`relative_stability`.
    """
    _check_choice(estimator, ESTIMATORS, "estimator")
    _check_choice(median, MEDIANS, "median")
    _check_choice(errors, ERROR_MODES, "errors")
    if errors == "bootstrap":
        _check_int(n_boot, "n_boot", 2)
    if errors == "se" and estimator == "median":
        raise ValueError("errors='se' is available for estimator='mean' only; use errors='bootstrap'")
    n_rot = _check_int(n_rotations, "n_rotations", 1)
    try:
        th = float(theta)
    except (TypeError, ValueError):
        raise ValueError(f"theta must be a real number in [0, pi], got {theta!r}") from None
    if not (math.isfinite(th) and 0.0 <= th <= math.pi):
        raise ValueError(f"theta must be in [0, pi], got {theta!r}")
    shape = _shape(x)
    if len(shape) != 2 or shape[1] < 2 or shape[0] < 2:
        raise ValueError(f"x must have shape (P, d) with P >= 2 points and d >= 2, got shape {shape}")
    _check_real(x, "x")
    if not _all_finite(x):
        raise ValueError("x contains non-finite values (nan or inf)")
    if isinstance(sphere_tol, bool) or not (isinstance(sphere_tol, (int, float, np.integer, np.floating))
                                            and math.isfinite(sphere_tol) and sphere_tol >= 0):
        raise ValueError(f"sphere_tol must be a finite number >= 0, got {sphere_tol!r}")
    xn = x.detach().to("cpu", _torch().float64).numpy() if _is_tensor(x) else np.asarray(x, dtype=np.float64)
    radius = np.linalg.norm(xn, axis=1)
    worst = float(np.max(np.abs(radius - 1.0)))
    if worst > sphere_tol:
        raise ValueError(f"x must lie on the unit sphere S^(d-1): max ||x_i| - 1| = {worst:.3g} > "
                         f"sphere_tol = {sphere_tol:g}; normalise the rows (x / |x|)")
    P, d = xn.shape
    be = _backend(f, x)
    rng = _rng_and_generator(seed, be)[0]
    u, v = random_planes(d, P * n_rot, rng)
    xr = rotate(np.repeat(xn, n_rot, axis=0), u, v, th)

    def call(arr):
        inp = be.prepare(arr)
        if be.torch:
            with _torch().no_grad():
                return be.to_numpy2d(f(inp), arr.shape[0], "f")
        return be.to_numpy2d(f(inp), arr.shape[0], "f")

    y0 = call(xn)
    yr = call(xr)
    diff = yr - np.repeat(y0, n_rot, axis=0)
    sq = diff * diff  # (P*n_rot, m)
    if estimator == "mean":
        per_point = sq.sum(axis=1).reshape(P, n_rot).mean(axis=1)
        value = float(per_point.mean())
    else:
        value = _column_median_sum(sq, median)
    if errors is None:
        return _no_errors(value)
    if errors == "se":
        return _from_influence(value, per_point - value)
    counts = _bootstrap_counts(P, n_boot, rng)
    if estimator == "mean":
        reps = (counts / P) @ per_point
    else:
        reps = _boot_median(sq, np.repeat(counts, n_rot, axis=1), median)
    return _from_replicates(value, reps, "rotation stability")
