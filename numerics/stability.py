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
inside the resample between positions whose source points differ: two copies of one point are not a pair of
independent probe points, and their zero distance would bias the resampled denominators low); s.e. = s.d. of the
replicates, CI = 2.5/97.5 % percentiles. Replicates with a zero denominator are dropped with a warning, unless a
one-sided binomial test (level 1 %) shows that more than 2.5 % of resamples are degenerate: then ValueError. ``"se"`` (mean estimator only) is the delta method: influence functions
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

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from numba import njit, prange
from scipy.spatial.distance import pdist

from numerics.rotations import random_planes, random_rotations, rotate
from numerics.seeds import generator
from numerics.torch_optional import import_torch, is_module, is_tensor, is_torch_generator
from theory.arguments import check_choice, check_flag, check_int, check_memory

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
def _check_options(noise, estimator, exclude_diagonal, errors, n_boot, batch_size, median="midpoint") -> None:
    check_choice(noise, "noise", NOISE_MODES)
    check_choice(estimator, "estimator", ESTIMATORS)
    check_choice(median, "median", MEDIANS)
    check_choice(errors, "errors", ERROR_MODES)
    check_flag("exclude_diagonal", exclude_diagonal)
    if errors == "bootstrap":
        check_int(n_boot, "n_boot", 2)
    if errors == "se" and estimator == "median":
        raise ValueError("errors='se' (delta method) is available for estimator='mean' only; "
                         "use errors='bootstrap' with estimator='median'")
    if batch_size is not None:
        check_int(batch_size, "batch_size", 1)


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
        if not _all_finite(arr, name):
            raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return int(sx[0])


def _check_real(arr: Any, name: str) -> None:
    """Complex inputs are rejected: casting them to the real dtype of f would drop the imaginary part."""
    if (arr.is_complex() if is_tensor(arr) else np.iscomplexobj(arr)):
        raise ValueError(f"{name} must be real, got a complex array")


def _all_finite(arr: Any, name: str = "x") -> bool:
    if is_tensor(arr):
        torch = import_torch()
        if not (arr.is_floating_point() or arr.is_complex()):
            return True
        return bool(torch.isfinite(arr).all())
    a = np.asarray(arr)
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be a numeric array, got dtype {a.dtype}")
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
        """The matched noise of every row at once (the rule of :class:`_NoiseStream`)."""
        P = _shape(x)[0]
        return _NoiseStream(self, x, x_diffeo, mode, rng, None, [slice(0, P)]).take(self.prepare(x), 0, P)

    @staticmethod
    def to_numpy2d(out: Any, n: int, what: str) -> np.ndarray:
        if is_tensor(out):
            out = out.detach().cpu().numpy()
        _check_real(out, f"the output of {what}")
        return _as_2d(np.asarray(out, dtype=np.float64), n, what)


class _TorchBackend:
    """f is a torch.nn.Module (inputs moved to its device and dtype) or a callable on tensors (inputs keep
    the device and floating dtype of x)."""

    torch = True

    def __init__(self, f: Any, x: Any):
        torch = import_torch()
        self.device = x.device if is_tensor(x) else torch.device("cpu")
        if is_tensor(x):
            self.dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        else:
            a = np.asarray(x)
            self.dtype = (torch.from_numpy(np.zeros(1, dtype=a.dtype)).dtype
                          if np.issubdtype(a.dtype, np.floating) else torch.get_default_dtype())
        if is_module(f):
            tensors = [t for t in list(f.parameters()) + list(f.buffers()) if t.is_floating_point()]
            if tensors:
                self.device = tensors[0].device
                self.dtype = tensors[0].dtype

    def prepare(self, x: Any):
        torch = import_torch()
        if not is_tensor(x):
            x = torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
        return x.detach().to(device=self.device, dtype=self.dtype)

    @staticmethod
    def to_numpy2d(out: Any, n: int, what: str) -> np.ndarray:
        _check_real(out, f"the output of {what}")
        if is_tensor(out):
            out = out.detach().to("cpu", import_torch().float64).numpy()
        return _as_2d(np.asarray(out, dtype=np.float64), n, what)


def _backend(f: Any, x: Any):
    if not callable(f):
        raise ValueError(f"f must be callable (a function or a torch.nn.Module), got {type(f).__name__}")
    if is_module(f) or is_tensor(x):
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
    if is_torch_generator(seed):
        if not backend.torch:
            raise ValueError("seed: a torch.Generator is accepted only with torch inputs or modules; "
                             "pass an int or a numpy Generator")
        torch = import_torch()
        s = int(torch.randint(0, 2**62, (1,), generator=seed))
        return np.random.default_rng(s), seed
    return generator(seed), None


def matched_noise(x: Any, x_diffeo: Any, *, noise: str = "per_sample", seed: Any = None):
    r"""Isotropic noise matched in norm to the deformation: :math:`\eta_i = r_i\,g_i/|g_i|`,
    :math:`g_i\sim\mathcal N(0,I)`, :math:`r_i = |\tau x_i - x_i|` (``noise="per_sample"``) or
    :math:`r_i = \langle|\tau x - x|^2\rangle^{1/2}` (``noise="mean"``). Petrini et al. 2021.

    numpy in, numpy out (dtype of x); tensor in, tensor out (device and dtype of x, drawn on the CPU from a
    ``torch.Generator`` seeded from ``seed``, so identical on every device). Same stream as
    :func:`relative_stability` with the same seed.
    """
    check_choice(noise, "noise", NOISE_MODES)
    _check_inputs(x, x_diffeo)
    be = _NumpyBackend(x) if not is_tensor(x) else _TorchBackend(None, x)
    rng, gen = _rng_and_generator(seed, be)
    x, x_diffeo = _as_indexable(x), _as_indexable(x_diffeo)
    P = _shape(x)[0]
    xs = be.prepare(x)
    return _NoiseStream(be, x, x_diffeo, noise, rng, gen, [slice(0, P)]).take(xs, 0, P)


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
    r"""Median of :math:`|a_i - a_j|^2` over the pairs of a (re)sample with multiplicities :math:`n_i`.

    The P(P-1)/2 distances are computed once (``pdist``) and sorted once. The pairs of a resample are the ordered
    pairs of positions whose source points differ: the pair (i<j) has the weight :math:`2n_in_j` (both orders);
    with ``exclude_diagonal=False`` the :math:`\sum_i n_i = P` diagonal positions add as many zeros, as in the
    point estimate. Two copies of the same source point are not a pair (module docstring, 'Uncertainties'): their
    zero distance is not a draw of :math:`|f(x_1) - f(x_2)|^2` for independent probe points.
    """

    def __init__(self, a: np.ndarray, label: str = "f"):
        P = a.shape[0]
        d = pdist(a, "sqeuclidean")
        if not np.all(np.isfinite(d)):
            raise ValueError(_overflow_message(label, a))
        order = np.argsort(d, kind="stable")
        self.d = d[order]
        iu, ju = np.triu_indices(P, 1)
        self.i, self.j = iu[order], ju[order]
        self.P = P

    def median(self, counts: np.ndarray, exclude_diagonal: bool, median: str = "midpoint") -> float:
        counts = counts.astype(np.int64)
        w = 2 * counts[self.i] * counts[self.j]
        zeros = 0 if exclude_diagonal else int(np.sum(counts))
        total = zeros + int(np.sum(w))
        if total == 0:  # every draw is a copy of one point: no pair
            return 0.0
        cum = np.cumsum(w)

        def stat(k: int) -> float:
            if k < zeros:
                return 0.0
            return float(self.d[np.searchsorted(cum, k - zeros, side="right")])

        if median == "lower":
            return stat((total - 1) // 2)
        return 0.5 * (stat((total - 1) // 2) + stat(total // 2))


def _resample_pairs(counts: np.ndarray, exclude_diagonal: bool) -> np.ndarray:
    """Number of pairs of each resample (rows of ``counts``): ordered pairs of positions with different source
    points, :math:`P^2 - \\sum_i n_i^2`, plus the P diagonal positions when ``exclude_diagonal=False``."""
    P = counts.shape[1]
    n2 = np.einsum("bi,bi->b", counts, counts, dtype=np.float64)
    return float(P) * P - n2 + (0.0 if exclude_diagonal else float(P))


def _bootstrap_counts(P: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities (n_boot, P) of P indices drawn with replacement, per replicate."""
    idx = rng.integers(0, P, size=(n_boot, P))
    flat = (np.arange(n_boot)[:, None] * P + idx).ravel()
    return np.bincount(flat, minlength=n_boot * P).reshape(n_boot, P)


#: the fraction of bootstrap replicates that may have a zero denominator: dropping them conditions the bootstrap on
#: the non-degenerate resamples, harmless only while that fraction is small against the 2.5 % in each tail of a
#: 95 % percentile interval
MAX_DEGENERATE = 0.025
#: level of the one-sided binomial test of "the degenerate fraction exceeds MAX_DEGENERATE" (see _from_replicates)
DEGENERATE_TEST_LEVEL = 0.01


def _too_degenerate(bad: int, n: int) -> bool:
    r"""Whether ``bad`` zero-denominator replicates out of ``n`` show that the probability :math:`p` of a degenerate
    resample exceeds :data:`MAX_DEGENERATE`: the one-sided binomial test rejects :math:`p \le p_0 = 0.025` at level
    :data:`DEGENERATE_TEST_LEVEL`, i.e. :math:`\Pr[\mathrm{Bin}(n, p_0) \ge bad] < 0.01`. A fixed threshold on the
    observed fraction would refuse a single degenerate replicate out of 10 (10 %, though it happens with probability
    :math:`1 - 0.975^{10} = 22\%` when p = 2.5 %); the test refuses from 3 of 10, 11 of 200 (5.5 %), and a large
    n_boot then refuses fractions just above 2.5 %."""
    if bad == 0:
        return False
    from scipy.stats import binom

    return float(binom.sf(bad - 1, n, MAX_DEGENERATE)) < DEGENERATE_TEST_LEVEL


def _from_replicates(value: float, reps: np.ndarray, label: str, why: str = "") -> Estimate:
    """Bootstrap s.e. and percentile interval. Replicates with a zero denominator (NaN) are dropped with a
    warning unless they show a degenerate fraction above :data:`MAX_DEGENERATE` (:func:`_too_degenerate`) or fewer
    than 2 remain; then the bootstrap is refused (ValueError)."""
    if not np.all(np.isfinite(reps) | np.isnan(reps)) or not math.isfinite(value):
        raise ValueError(f"bootstrap of {label}: a replicate or the estimate is infinite: the squared outputs "
                         "overflow float64; rescale the outputs of f")
    ok = np.isfinite(reps)
    bad = int((~ok).sum())
    if ok.sum() < 2 or _too_degenerate(bad, reps.size):
        raise ValueError(
            f"bootstrap of {label}: {bad} of {reps.size} resamples of the probe points have a zero denominator"
            f"{why}; that many show that more than {MAX_DEGENERATE:.1%} of resamples are degenerate (binomial "
            f"test at level {DEGENERATE_TEST_LEVEL:g}), so an interval from the others would be biased. The "
            "estimator is degenerate on these probe points: use estimator='mean', more (or more varied) probe "
            "points, or errors=None")
    if bad:
        warnings.warn(f"bootstrap of {label}: {bad} of {reps.size} replicates had a zero "
                      f"denominator{why} and were dropped", RuntimeWarning, stacklevel=4)
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


def _overflow_message(label: str, a: Any) -> str:
    big = float(np.max(np.abs(a))) if np.size(a) else math.nan
    return (f"the outputs of {label} are too large (max |output| = {big:.3g}): their squared distances overflow "
            "float64 (max 1.8e308), so D, G and R would be NaN; rescale the outputs")


def _summaries(acc: "_Accumulator", *, estimator: str, exclude_diagonal: bool, errors: str | None,
               counts: np.ndarray | None, noise: str, label: str = "f", median: str = "midpoint") -> StabilityResult:
    """D, G, R from an accumulator: per sample, the squared differences ``A`` (diffeo) and ``C`` (noise), summed
    over coordinates for the mean estimator (with the centred squared norms of f(x)), per coordinate for the
    median (with f(x) itself)."""
    P = acc.n
    A, C = acc.A_all(), acc.C_all()
    if estimator == "mean":
        sq = acc.sq_all()
        scale = P / (P - 1) if exclude_diagonal else 1.0
        num_a, num_c = float(A.mean()), float(C.mean())
        if acc.batches == 1:  # one batch: centred on its mean exactly, as every earlier release
            pair = float(scale * 2.0 * sq.mean())
        else:  # centred on the first batch's mean mu: sum |a - abar|^2 = sum |a - mu|^2 - P |abar - mu|^2
            delta = acc.S1 / P
            pair = float(scale * 2.0 * (float(sq.sum()) - P * float(delta @ delta)) / P)
            pair = max(pair, 0.0)
    else:
        num_a = _column_median_sum(A, median)
        num_c = _column_median_sum(C, median)
        pm = _PairMedian(acc.fx_all(), label)
        pair = pm.median(np.ones(P, dtype=np.int64), exclude_diagonal, median)
    if not all(math.isfinite(v) for v in (num_a, num_c, pair)):
        raise ValueError(_overflow_message(label, [acc.max_abs]))

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
        ip = scale * 2.0 * (sq - sq.mean())   # sq is centred on the exact mean here (see _stream)
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
        W = counts / P
        if estimator == "mean":
            ra, rc = W @ A, W @ C
            second = W @ sq
            first2 = np.einsum("ij,ij->i", acc.Mw, acc.Mw)
            # pairs of positions with different source points only (shift invariant: any centring mu works)
            rp = 2.0 * P * P * (second - first2) / _resample_pairs(counts, exclude_diagonal)
            rp[rp < 0] = 0.0  # rounding: a resample of identical points has zero spread
        else:
            ra, rc = _boot_median(A, counts, median), _boot_median(C, counts, median)
            rp = np.array([pm.median(counts[b], exclude_diagonal, median) for b in range(B)])
        zero_pair = " (the pair distance is 0 in those resamples)"
        zero_noise = (" (the noise sensitivity is 0 in those resamples" +
                      (": at least half of their probe points see no change of some output under the noise, "
                       "e.g. a region where f is constant)" if estimator == "median" else ")"))
        ests = [
            _from_replicates(D, _safe_div(ra, rp), f"D of {label}", zero_pair),
            _from_replicates(G, _safe_div(rc, rp), f"G of {label}", zero_pair),
            _from_replicates(R, _safe_div(ra, rc), f"R of {label}", zero_noise),
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
#: the torch noise is drawn in blocks of about this many numbers: ``max(1, NOISE_BLOCK // row_size)`` rows per
#: ``torch.randn`` call, in order (a torch draw depends on how it is split; numpy's does not, see _NoiseStream)
NOISE_BLOCK = 1 << 22


def _row_slices(P: int, batch_size: int | None):
    bs = P if batch_size is None else batch_size
    return [slice(s, min(P, s + bs)) for s in range(0, P, bs)]


def _diff_norms(be, x, x_diffeo, slices) -> np.ndarray:
    """|tau x_i - x_i| of the prepared inputs (the dtype f sees), batch by batch."""
    out = []
    for sl in slices:
        xs, xd = be.prepare(x[sl]), be.prepare(x_diffeo[sl])
        if be.torch:
            torch = import_torch()
            out.append((xd.to(torch.float64) - xs.to(torch.float64)).reshape(xs.shape[0], -1).norm(dim=1).cpu()
                       .numpy())
        else:
            out.append(np.linalg.norm((xd.astype(np.float64) - xs.astype(np.float64)).reshape(xs.shape[0], -1),
                                      axis=1))
    return np.concatenate(out)


class _NoiseStream:
    r"""The matched noise :math:`\eta_i` of rows ``[s, e)`` on demand, rows taken in order.

    Seeding rule (the noise does not depend on ``batch_size``): numpy inputs draw one standard normal vector per
    probe point, in probe order, from the numpy Generator (one ``standard_normal((P, ...))`` call and any split
    into consecutive rows give the same numbers); torch inputs draw from the torch.Generator in blocks of
    ``K = max(1, NOISE_BLOCK // row_size)`` rows, one ``torch.randn((K, ...))`` per block, in order (a single call
    for every input of at most NOISE_BLOCK numbers, as before streaming). Radii: :func:`_noise_radius` of all
    the norms |tau x_i - x_i| (a pass over the inputs, no forward pass)."""

    def __init__(self, be, x, x_diffeo, mode: str, rng, gen, slices):
        self.be = be
        self.P = _shape(x)[0]
        self.row_shape = tuple(_shape(x)[1:])
        self.row = max(1, math.prod(self.row_shape))
        self.radius = _noise_radius(_diff_norms(be, x, x_diffeo, slices), mode)
        self.next = 0
        if be.torch:
            torch = import_torch()
            self.gen = gen if gen is not None else torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
            self.block_rows = max(1, NOISE_BLOCK // self.row)
            self.block = None
            self.block_start = 0
        else:
            self.rng = rng

    def _torch_rows(self, s: int, e: int):
        torch = import_torch()
        parts = []
        while s < e:
            if self.block is None or s >= self.block_start + self.block.shape[0]:
                self.block_start = 0 if self.block is None else self.block_start + self.block.shape[0]
                k = min(self.block_rows, self.P - self.block_start)
                self.block = torch.randn((k,) + self.row_shape, generator=self.gen, dtype=torch.float64
                                         ).reshape(k, -1)
            stop = min(e, self.block_start + self.block.shape[0])
            parts.append(self.block[s - self.block_start: stop - self.block_start])
            s = stop
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def take(self, xs, s: int, e: int):
        if s != self.next:
            raise RuntimeError("noise rows must be taken in order")  # internal invariant
        self.next = e
        r = self.radius[s:e]
        if self.be.torch:
            torch = import_torch()
            g = self._torch_rows(s, e).clone()
            g *= torch.from_numpy(np.ascontiguousarray(r))[:, None] / g.norm(dim=1, keepdim=True)
            return g.reshape(xs.shape).to(device=self.be.device, dtype=self.be.dtype)
        g = self.rng.standard_normal((e - s,) + self.row_shape).reshape(e - s, -1)
        g *= (r / np.linalg.norm(g, axis=1))[:, None]
        return g.reshape(xs.shape).astype(self.be.dtype, copy=False)


def _skip_normals(rng: np.random.Generator, count: int, chunk: int = 1 << 20) -> None:
    """Advance ``rng`` past ``count`` standard normals (the state after drawing the numpy noise in one call)."""
    while count > 0:
        k = min(chunk, count)
        rng.standard_normal(k)
        count -= k


class _Accumulator:
    """Per output (layer), streamed batch by batch. Always: the squared differences for tau x and x + eta (summed
    over coordinates for the mean estimator, per coordinate for the median). Mean estimator: the squared norms
    ``sq_i = |f(x_i) - mu|^2`` about the first batch's mean mu (or a given exact mean), their sum of
    ``f(x_i) - mu`` and, for the bootstrap, ``W @ (f(x) - mu)`` with ``W = counts / P`` (n_boot x m): memory
    O(P + n_boot m), f(x) itself is not kept. Median: f(x) rows are kept (the pair median needs every pair)."""

    def __init__(self, per_coordinate: bool, label: str, counts: np.ndarray | None = None, mean=None):
        self.per_coordinate = per_coordinate
        self.label = label
        self.counts = counts
        self.mu = mean
        self.fx: list[np.ndarray] = []
        self.A: list[np.ndarray] = []
        self.C: list[np.ndarray] = []
        self.sq: list[np.ndarray] = []
        self.S1 = None
        self.Mw = None
        self.batches = 0
        self.n = 0
        self.max_abs = 0.0

    def _sqdiff(self, y, y0):
        d = y - y0
        if is_tensor(d):
            r = d * d if self.per_coordinate else (d * d).sum(dim=1)
            return r.cpu().numpy()
        with np.errstate(over="ignore"):  # an overflow is reported by add()
            return d * d if self.per_coordinate else np.einsum("ij,ij->i", d, d)

    def add(self, sl: slice, y0, yt, ye) -> None:
        A, C = self._sqdiff(yt, y0), self._sqdiff(ye, y0)
        a = y0.cpu().numpy() if is_tensor(y0) else y0
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(C))):
            raise ValueError(_overflow_message(self.label, [np.max(np.abs(a)), _max_abs(yt), _max_abs(ye)]))
        self.A.append(A)
        self.C.append(C)
        self.batches += 1
        self.n += a.shape[0]
        self.max_abs = max(self.max_abs, float(np.max(np.abs(a))) if a.size else 0.0)
        if self.per_coordinate:
            self.fx.append(a)
            return
        if self.mu is None:
            self.mu = a.mean(axis=0)
        c = a - self.mu
        sq = np.einsum("ij,ij->i", c, c)
        if not np.all(np.isfinite(sq)):
            raise ValueError(_overflow_message(self.label, a))
        self.sq.append(sq)
        self.S1 = c.sum(axis=0) if self.S1 is None else self.S1 + c.sum(axis=0)
        if self.counts is not None:
            W = self.counts[:, sl] / self.counts.shape[1]
            m = W @ c
            self.Mw = m if self.Mw is None else self.Mw + m

    def A_all(self):
        return np.concatenate(self.A)

    def C_all(self):
        return np.concatenate(self.C)

    def sq_all(self):
        return np.concatenate(self.sq)

    def fx_all(self):
        return np.concatenate(self.fx)


def _max_abs(y) -> float:
    if is_tensor(y):
        return float(y.abs().max()) if y.numel() else 0.0
    return float(np.max(np.abs(y))) if np.size(y) else 0.0


_LIBC: list = []


def _trim_heap() -> None:
    """Return the freed pages of the C heap to the system (glibc ``malloc_trim``; a no-op elsewhere). Between
    batches the freed per-batch tensors (tens of MB, under glibc's dynamic mmap threshold) otherwise stay mapped
    as a fragmented heap: measured on 20000 images of 1x28x28 in batches of 500, the resident size grew by ~40 MB
    per batch without it and stays flat with it."""
    if not _LIBC:
        try:
            import ctypes

            lib = ctypes.CDLL(None)
            _LIBC.append(lib.malloc_trim if hasattr(lib, "malloc_trim") else None)
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            _LIBC.append(None)
    if _LIBC[0] is not None:
        _LIBC[0](0)


def _as_indexable(x: Any) -> Any:
    return x if (is_tensor(x) or isinstance(x, np.ndarray)) else np.asarray(x)


def _stream(make_forward: Callable, f: Any, x: Any, x_diffeo: Any, *, noise: str, seed: Any,
            batch_size: int | None, estimator: str, errors: str | None, n_boot: int, label: Callable[[str], str]):
    """Evaluate ``forward = make_forward(backend)``, ``forward(batch) -> {name: (n, m) float64 array or tensor}``,
    on x, tau x and x + eta batch by
    batch (inputs prepared, noise drawn and x + eta formed per batch), accumulating per output name. Returns
    ``(accumulators, counts)``. Random stream (unchanged by streaming): the noise first, then the bootstrap
    counts; for errors='se' with several batches a first pass over x gives each output's exact mean."""
    P = _check_inputs(x, x_diffeo)
    x, x_diffeo = _as_indexable(x), _as_indexable(x_diffeo)
    be = _backend(f, x)
    forward = make_forward(be)
    rng, gen = _rng_and_generator(seed, be)
    slices = _row_slices(P, batch_size)
    if be.torch:
        stream = _NoiseStream(be, x, x_diffeo, noise, rng, gen, slices)
    else:
        # numpy: the noise comes from a copy of the stream; the stream itself skips it, then draws the counts
        noise_rng = copy.deepcopy(rng)
        stream = _NoiseStream(be, x, x_diffeo, noise, noise_rng, None, slices)
        if errors == "bootstrap" or not (seed is None or isinstance(seed, (int, np.integer))):
            _skip_normals(rng, P * stream.row)
    if errors == "bootstrap":  # the draws and the counts (n_boot x P int64 each) and W = counts / P (float64)
        check_memory(3 * 8.0 * n_boot * P, "n_boot", f"{n_boot} bootstrap resamples of {P} probe points")
    counts = _bootstrap_counts(P, n_boot, rng) if errors == "bootstrap" else None
    per_coordinate = estimator == "median"
    means = {}
    if errors == "se" and len(slices) > 1:  # exact means first: the influence functions are centred on them
        sums: dict[str, np.ndarray] = {}
        for sl in slices:
            for name, y in forward(be.prepare(x[sl])).items():
                a = y.cpu().numpy() if is_tensor(y) else y
                sums[name] = a.sum(axis=0) if name not in sums else sums[name] + a.sum(axis=0)
        means = {k: v / P for k, v in sums.items()}
    acc: dict[str, _Accumulator] = {}
    for sl in slices:
        xs, xd = be.prepare(x[sl]), be.prepare(x_diffeo[sl])
        xe = xs + stream.take(xs, sl.start, sl.stop)
        y0, yt, ye = forward(xs), forward(xd), forward(xe)
        if not (y0.keys() == yt.keys() == ye.keys()):
            raise ValueError("the set of layers called differs between forward passes on x, tau x and x + eta")
        for name in y0:
            if name not in acc:
                if sl.start != 0:
                    raise ValueError(f"{label(name)} was not called on the first batch: every batch must call the "
                                     "same layers")
                acc[name] = _Accumulator(per_coordinate, label(name), counts, means.get(name))
            acc[name].add(sl, y0[name], yt[name], ye[name])
        del xs, xd, xe, y0, yt, ye
        if len(slices) > 1:
            _trim_heap()
    for name, a in acc.items():
        if a.n != P:
            raise ValueError(f"{label(name)} was not called on every batch: every batch must call the same layers")
    return acc, counts


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

    def make_forward(be):
        if be.torch:
            torch = import_torch()

            def forward(batch):
                with torch.no_grad():
                    out = f(batch)
                return {"output": be.to_numpy2d(out, batch.shape[0], "f")}
        else:
            def forward(batch):
                return {"output": be.to_numpy2d(f(batch), batch.shape[0], "f")}
        return forward

    accs, counts = _stream(make_forward, f, x, x_diffeo, noise=noise, seed=seed, batch_size=batch_size,
                           estimator=estimator, errors=errors, n_boot=n_boot, label=lambda name: "f")
    return _summaries(accs["output"], estimator=estimator, exclude_diagonal=exclude_diagonal, errors=errors,
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
    BatchNorm should use running statistics). Memory: the inputs are streamed ``batch_size`` probe points at a
    time (x, tau x and x + eta are built per batch; the noise does not depend on the batch size); the mean
    estimator keeps O(P) numbers per layer (plus n_boot x dim for the bootstrap), the median estimator keeps f(x)
    and the per-coordinate squared differences of every layer (3 x P x dim, float64). ``batch_size=None`` is one
    batch of all P. Other arguments as in :func:`relative_stability`.
    """
    torch = import_torch()
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
    captured: dict[str, Any] = {}
    calls: dict[str, int] = {}

    def make_hook(name):
        def hook(module, inputs, output):
            if not is_tensor(output):
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
            if not is_tensor(out):
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
        accs, counts = _stream(lambda be: forward, model, x, x_diffeo, noise=noise, seed=seed,
                               batch_size=batch_size, estimator=estimator, errors=errors, n_boot=n_boot,
                               label=lambda name: f"layer {name!r}" if name != "output" else "the model output")
    finally:
        for h in handles:
            h.remove()
    if strict:
        missing = [n for n in names if n not in accs]
        if missing:
            raise ValueError(f"layers {missing} were never called in the forward pass")
    out = {}
    for key, acc in accs.items():
        out[key] = _summaries(acc, estimator=estimator, exclude_diagonal=exclude_diagonal, errors=errors,
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
    check_choice(estimator, "estimator", ESTIMATORS)
    check_choice(median, "median", MEDIANS)
    check_choice(errors, "errors", ERROR_MODES)
    if errors == "bootstrap":
        check_int(n_boot, "n_boot", 2)
    if errors == "se" and estimator == "median":
        raise ValueError("errors='se' is available for estimator='mean' only; use errors='bootstrap'")
    n_rot = check_int(n_rotations, "n_rotations", 1)
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
    xn = x.detach().to("cpu", import_torch().float64).numpy() if is_tensor(x) else np.asarray(x, dtype=np.float64)
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
            with import_torch().no_grad():
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
