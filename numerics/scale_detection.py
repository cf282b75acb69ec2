"""Scale-detection task: data, perturbations, and a numba simulator of the hand-constructed net.

Task (Tomasini, Petrini, Cagnetta & Wyart 2022, arXiv 2210.01506): images with two active
pixels; y = sign(xi - delta).  The model, the network and the exact theory are documented in
`theory.scale_detection`; this module samples the same quantities:

  D_k = E_{x,tau}|f_k(tau x) - f_k(x)|^2 / E_{x1 != x2}|f_k(x1) - f_k(x2)|^2,   G_k likewise with
  x + eta, R_k = D_k / G_k,

with x uniform over the dataset, x1 != x2 uniform over ordered pairs of distinct images, one
tau and one eta per sample; standard errors by the delta method on the per-sample terms.

CLI: python -m numerics.scale_detection --xi 7 --n 32 --dim 1 --stride 1 --layers 10 \
        --samples 100000 --seed 0 --json
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numba import njit, prange

from numerics.seeds import generator
from theory.arguments import ArgumentTypeError, ArgumentValueError, check_memory
from theory import scale_exact as _ex
from theory.scale_detection import (add_convention_flags, cli_error, cli_parser, check_conventions, check_dim,
                                    check_params, move_law, noise_sigma)

__all__ = [
    "ScaleDetectionData", "make_dataset", "sample_moves", "move_positions", "diffeo_moves", "pixel_noise",
    "NetGeometry", "forward", "simulate_layers", "brute_force_layers", "main", "OneClassWarning",
]


class OneClassWarning(RuntimeWarning):
    """:func:`make_dataset` built a data set with one class only (every pair distance on the same side of xi): a
    classification task without a second class. The stability figures D, G, R need no labels, so the simulations of
    this module build such sets on purpose (and silence this warning); filter it the same way when that is meant."""

METRICS = ("euclidean", "linf", "periodic", "periodic_linf", "block")
SITES = ("margin", "all", "off_diagonal")
GAP_MEASURES = ("width", "half_width")
NOISE_RECTIFY = ("none", "noise", "input")


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class ScaleDetectionData:
    """A scale-detection dataset: `positions` (P, 2) in 1D or (P, 2, 2) in 2D (pixel 1 before
    pixel 2 in row-major order), `delta` (P,) distances, `y` (P,) in {-1, +1}; `x` is the dense
    float64 image array (P, n) or (P, n, n), built on first access."""
    n: int
    xi: float
    dim: int
    metric: str
    gap: float
    positions: np.ndarray
    delta: np.ndarray
    y: np.ndarray
    periodic: bool = field(default=False)
    sites: str = field(default="margin")

    @cached_property
    def x(self) -> np.ndarray:
        return positions_to_images(self.positions, self.n, self.dim)

    def __len__(self) -> int:
        return len(self.y)


def positions_to_images(positions: np.ndarray, n: int, dim: int) -> np.ndarray:
    """Dense images with unit pixels at `positions` (values add on collisions)."""
    pos = np.asarray(positions)
    P = len(pos)
    if dim == 1:
        x = np.zeros((P, n))
        np.add.at(x, (np.repeat(np.arange(P), 2), pos.reshape(P, 2).ravel()), 1.0)
    else:
        x = np.zeros((P, n, n))
        p = pos.reshape(P, 2, 2)
        np.add.at(x, (np.repeat(np.arange(P), 2), p[:, :, 0].ravel(), p[:, :, 1].ravel()), 1.0)
    return x


def _distance(pos: np.ndarray, n: int, dim: int, metric: str, xi) -> np.ndarray:
    d = np.abs(pos[:, 1] - pos[:, 0]).reshape(len(pos), dim).astype(float)
    if metric in ("periodic", "periodic_linf"):
        d = np.minimum(d, n - d)
    if metric in ("linf", "periodic_linf"):
        return d.max(axis=1)
    if metric == "block":
        return d.max(axis=1)
    return np.sqrt((d ** 2).sum(axis=1))


def _unlabelled_dataset(n, xi, **kw) -> "ScaleDetectionData":
    """:func:`make_dataset` for the stability simulations, which use the pairs and not their labels (a one-class
    set is then no defect: :class:`OneClassWarning` silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OneClassWarning)
        return make_dataset(n, xi, **kw)


def make_dataset(n: int, xi, *, dim: int = 1, metric: str = "euclidean", gap: float = 0.0,
                 balance: bool = False, n_pairs: int | None = None, seed=None, sites: str | None = None,
                 gap_measure: str = "width") -> ScaleDetectionData:
    """All pairs (or `n_pairs` random ones) of the scale-detection task.

    metric: "euclidean" | "linf" (non-periodic frame), "periodic" | "periodic_linf" (torus, per-axis
    periodic differences, L2 or L-infinity norm), "block" (torus; y = +1 iff both pixels lie in
    the same xi-block on every axis: the task of the strided network).
    sites: the pixel positions a pair is drawn from.  "margin" ([1, n-2]^dim, a one-pixel margin so that
    diffeo moves stay inside the frame: ours, the default of the non-periodic metrics and the set of the exact
    theory), "all" ([0, n-1]^dim; the default on the torus; the authors' 1D ``create_dataset.py``) or
    "off_diagonal" (2D only: every (i, j) with i != j, the set of the authors' 2D
    ``diffeo-sota:datasets/twopoints.py``, ``combinations(permutations(range(d), 2), 2)``: 756 of the 784 pixels
    at d = 28, 256,164 labelled pairs at xi = 14, gap 2 against our 203,154).
    Labels (gap_measure="width", ours and the authors' 2D code): y = +1 if delta < xi - gap/2, y = -1 if
    delta >= xi + gap/2, an excluded band of width gap; gap_measure="half_width" (the authors' 1D ``gap_dist``):
    y = +1 if delta < xi - gap, y = -1 if delta >= xi + gap.  Pairs in the band are dropped.
    balance=True subsamples the larger class to the size of the smaller.
    """
    if metric not in METRICS:
        raise ArgumentValueError("metric", f"metric must be one of {METRICS}, got {metric!r}")
    if gap_measure not in GAP_MEASURES or isinstance(gap_measure, bool):
        raise ArgumentValueError("gap_measure", f"gap_measure must be one of {GAP_MEASURES}, got {gap_measure!r}")
    dim = check_dim(dim)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ArgumentTypeError("n", f"n must be an integer, got {n!r}")
    periodic = metric in ("periodic", "periodic_linf", "block")
    if n < (3 if periodic else 4):
        raise ArgumentValueError("n", f"n must be >= {3 if periodic else 4} for metric {metric!r}, got {n}")
    if not isinstance(xi, (int, float, np.integer, np.floating)) or isinstance(xi, bool) or not math.isfinite(xi) \
            or xi <= 0:
        raise ArgumentValueError("xi", f"xi must be a positive finite number, got {xi!r}")
    if not isinstance(gap, (int, float, np.integer, np.floating)) or not math.isfinite(gap) or gap < 0:
        raise ArgumentValueError("gap", f"gap must be a finite number >= 0, got {gap!r}")
    if metric == "block":
        if int(xi) != xi or n % int(xi) or xi >= n:
            raise ArgumentValueError("xi",
                                     f"xi must be an integer divisor of n smaller than n for metric 'block', got {xi!r}")
        if gap != 0:
            raise ArgumentValueError("gap", "gap must be 0 for metric 'block'")
    if sites is None:
        sites = "all" if periodic else "margin"
    if sites not in SITES or isinstance(sites, bool):
        raise ArgumentValueError("sites", f"sites must be one of {SITES}, got {sites!r}")
    if sites == "margin" and periodic:
        raise ArgumentValueError("sites",
                                 f"sites must be 'all' or 'off_diagonal' on the torus (metric {metric!r}), got 'margin'")
    if sites == "off_diagonal" and dim != 2:
        raise ArgumentValueError("sites",
                                 "sites must be 'margin' or 'all' in 1D ('off_diagonal' drops the 2D diagonal i = j)")
    rng = generator(seed)
    lo, hi = (1, n - 2) if sites == "margin" else (0, n - 1)
    side = np.arange(lo, hi + 1)
    if dim == 1:
        grid = side[:, None]
    else:
        grid = np.stack(np.meshgrid(side, side, indexing="ij"), axis=-1).reshape(-1, 2)
        if sites == "off_diagonal":
            grid = grid[grid[:, 0] != grid[:, 1]]
    G = len(grid)  # all pairs are built, then filtered: triu indices, positions, distances, labels, masks
    check_memory(G * (G - 1) / 2 * (16 + 16 * dim + 8 + 8 + 3), "n", f"the {G * (G - 1) // 2} pairs of the "
                 f"{G} sites of a {n}{'x' + str(n) if dim == 2 else ''} frame")
    i, j = np.triu_indices(G, k=1)
    pos = np.stack([grid[i], grid[j]], axis=1)          # (P, 2, dim)
    if metric == "block":
        same = np.all(pos[:, 0] // int(xi) == pos[:, 1] // int(xi), axis=1)
        delta = _distance(pos, n, dim, "periodic_linf", xi)
        y = np.where(same, 1, -1)
        keep = np.ones(len(y), bool)
    else:
        delta = _distance(pos, n, dim, metric, xi)
        half = gap / 2 if gap_measure == "width" else gap
        close = delta < xi - half
        far = delta >= xi + half
        keep = close | far
        y = np.where(close, 1, -1)
    pos, delta, y = pos[keep], delta[keep], y[keep]
    if len(y) == 0 or (gap > 0 and (np.all(y == 1) or np.all(y == -1))):
        raise ArgumentValueError("gap", f"gap must leave both classes non-empty, got gap={gap} for n={n}, xi={xi}")
    if np.all(y == 1) or np.all(y == -1):  # a warning: D, G, R need no labels, the simulations use such sets
        warnings.warn(f"xi={xi!r} leaves one class only for n={n} (every pair distance is "
                      f"{'below' if np.all(y == 1) else 'at or above'} xi, largest {float(delta.max()):g}): "
                      "choose xi between the smallest and the largest pair distance", OneClassWarning, stacklevel=2)
    if balance:
        a, b = np.flatnonzero(y == 1), np.flatnonzero(y == -1)
        m = min(len(a), len(b))
        if m == 0:
            raise ValueError("balance=True needs both classes non-empty, but one is empty")
        sel = np.sort(np.concatenate([rng.choice(a, m, replace=False), rng.choice(b, m, replace=False)]))
        pos, delta, y = pos[sel], delta[sel], y[sel]
    if n_pairs is not None:
        if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or not 1 <= n_pairs <= len(y):
            raise ArgumentValueError("n_pairs", f"n_pairs must be an integer in [1, {len(y)}], got {n_pairs!r}")
        sel = np.sort(rng.choice(len(y), int(n_pairs), replace=False))
        pos, delta, y = pos[sel], delta[sel], y[sel]
    if dim == 1:
        pos = pos[:, :, 0]
    return ScaleDetectionData(n=int(n), xi=xi, dim=dim, metric=metric, gap=float(gap), positions=pos.astype(np.int64),
                              delta=delta, y=y.astype(np.int64), periodic=periodic, sites=sites)


# ----------------------------------------------------------------------------------------------
# perturbations


def _draw_moves(rng: np.random.Generator, shape: tuple, dim: int, moves: str) -> np.ndarray:
    """Independent per-pixel moves of law ``moves`` (`theory.scale_detection.move_law`), shape ``shape + (dim,)``.
    "lazy" draws ``rng.integers(-1, 2)`` per axis (the stream of every earlier release)."""
    if moves == "lazy":
        return rng.integers(-1, 2, size=shape + (dim,))
    if moves == "always":
        return 2 * rng.integers(0, 2, size=shape + (dim,)) - 1
    v, w = move_law(moves, dim)
    return v[rng.choice(len(v), size=shape, p=w / w.sum())]


def sample_moves(P: int, dim: int, rng, *, moves: str = "lazy") -> np.ndarray:
    """(P, 2, dim) independent moves of the two pixels of P images (P an integer >= 0, dim 1 or 2).

    moves: "lazy" (ours: each axis -1/0/+1 w.p. 1/3), "always" (each axis +-1 w.p. 1/2, the authors' 1D script)
    or "direction" (a rounded uniform unit step, the authors' 2D ``load_twopoints``); `theory.scale_detection.move_law`
    has the laws and the reasons for the default."""
    if isinstance(P, bool) or not isinstance(P, (int, np.integer)) or P < 0:
        raise ValueError(f"P must be an integer >= 0, got {P!r}")
    dim = check_dim(dim)
    check_conventions(moves)
    rng = generator(rng)
    return _draw_moves(rng, (int(P), 2), dim, moves)


def move_positions(positions: np.ndarray, moves: np.ndarray, n: int, periodic: bool,
                   block: int | None = None) -> np.ndarray:
    """Moved positions: wrap on the torus, clamp to the frame otherwise; with ``block`` (an integer >= 1) a pixel
    whose move would take it to another block x block cell (on any axis, after wrapping/clamping) stays put: the
    authors' label-preserving diffeo of the block task (``scale_detection_1d:diffeo_cluster_mean.py``,
    ``adding_diffeo``, which clamps first as here)."""
    pos0 = np.asarray(positions).reshape(moves.shape)
    pos = pos0 + moves
    pos = pos % n if periodic else np.clip(pos, 0, n - 1)
    if block is not None:
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
            raise ArgumentValueError("block", f"block must be None or an integer >= 1, got {block!r}")
        stay = np.any(pos // block != pos0 // block, axis=-1)
        pos[stay] = pos0[stay]
    return pos


def diffeo_moves(x_or_data, *, seed=None, periodic: bool | None = None, moves: str = "lazy",
                 block: int | None = None) -> np.ndarray:
    """Apply the scale-detection diffeo: every active pixel moves independently by a step of law ``moves`` ("lazy",
    ours: -1/0/+1 per axis w.p. 1/3; "always": +-1 per axis; "direction": a rounded unit step; see
    `sample_moves`).  ``block``: undo a move that leaves the pixel's block x block cell (the authors'
    label-preserving diffeo of the block task; pass ``block=data.xi`` for ``metric="block"``).

    x_or_data: a `ScaleDetectionData` (its geometry is used) or dense images (P, n) / (P, n, n)
    (every non-zero pixel moves, carrying its value; `periodic` wraps, otherwise moves are
    clamped to the frame).  Pixels landing on the same site add.  Returns dense images."""
    rng = generator(seed)
    check_conventions(moves)
    if isinstance(x_or_data, ScaleDetectionData):
        d = x_or_data
        mv = sample_moves(len(d), d.dim, rng, moves=moves)
        new = move_positions(d.positions, mv, d.n, d.periodic, block)
        return positions_to_images(new.reshape(d.positions.shape), d.n, d.dim)
    x = np.asarray(x_or_data, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ArgumentValueError("x", f"x must have shape (P, n) or (P, n, n), got {x.shape}")
    per = bool(periodic)
    out = np.zeros_like(x)
    idx = np.nonzero(x)
    vals = x[idx]
    coords = np.stack(idx[1:], axis=1)
    mv = _draw_moves(rng, coords.shape[:1], coords.shape[1], moves)
    n = x.shape[1]
    new = move_positions(coords, mv, n, per, block)
    np.add.at(out, (idx[0],) + tuple(new.T), vals)
    return out


def _rectify(x: np.ndarray, eta: np.ndarray, rectify: str) -> np.ndarray:
    if rectify == "noise":
        return np.maximum(eta, 0.0)
    if rectify == "input":
        return np.maximum(x + eta, 0.0) - x
    return eta


def pixel_noise(x, x_diffeo, *, per_sample: bool = False, seed=None, sigma: float | None = None,
                rectify: str = "none") -> np.ndarray:
    """I.i.d. Gaussian pixel noise at the diffeo's variance (the noise of the exact theory, whose G_k assumes
    independent Gaussian pixels; :func:`numerics.stability.matched_noise` instead draws a random direction of exactly
    the matched norm): N(0, sigma^2) on every pixel with
    n_pixels sigma^2 = <|tau x - x|^2> over the batch (or the given `sigma`, e.g. the exact
    `theory.scale_detection.noise_sigma`); per_sample=True rescales each draw to
    |eta_i| = |tau x_i - x_i| exactly.

    rectify: "none" (ours: eta as drawn; the network's first ReLU rectifies it after pooling), "noise" (returns
    ReLU(eta), so x + ReLU(eta) is fed: the authors' 1D ``perturb``, sigma^2 the per-pixel mean square of
    tau x - x over the batch, as here) or "input" (returns ReLU(x + eta) - x: the authors' constant-filter
    notebook, ``noisy_batch1d(x, xd).relu()``).  Rectification follows the scaling, so E|ReLU(eta)|^2 =
    E|eta|^2 / 2."""
    x = np.asarray(x, dtype=np.float64)
    xd = np.asarray(x_diffeo, dtype=np.float64)
    if x.shape != xd.shape:
        raise ValueError(f"x and x_diffeo must have the same shape, got {x.shape} and {xd.shape}")
    check_conventions(rectify=rectify, rectify_allowed=NOISE_RECTIFY)
    rng = generator(seed)
    g = rng.standard_normal(x.shape)
    P = x.shape[0]
    npix = int(np.prod(x.shape[1:]))
    norms = np.sqrt(((xd - x) ** 2).reshape(P, -1).sum(axis=1))
    if per_sample:
        gn = np.sqrt((g ** 2).reshape(P, -1).sum(axis=1))
        return _rectify(x, g * (norms / gn).reshape((P,) + (1,) * (x.ndim - 1)), rectify)
    if sigma is None:
        sigma = math.sqrt(np.mean(norms ** 2) / npix)
    elif not (sigma >= 0 and math.isfinite(sigma)):
        raise ArgumentValueError("sigma", f"sigma must be a finite number >= 0, got {sigma!r}")
    return _rectify(x, sigma * g, rectify)


# ----------------------------------------------------------------------------------------------
# the network as a numba forward pass


@dataclass(frozen=True)
class NetGeometry:
    """Layer shapes of the hand-constructed network (k = 0 is the input)."""
    xi: int
    n: int
    dim: int
    stride: int
    layers: int
    periodic: bool
    kt: int
    H: np.ndarray
    W: np.ndarray
    off: np.ndarray
    out_const: float

    @classmethod
    def build(cls, xi, n, *, dim=1, stride=1, layers=None, periodic=False) -> "NetGeometry":
        spec = check_params(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic)
        L, kt = spec.layers, spec.kt
        sizes = [spec.n]
        for k in range(1, L + 1):
            if k == kt + 1:
                sizes.append(sizes[-1])
            elif spec.stride > 1:
                sizes.append(sizes[-1] // spec.stride)
            elif spec.periodic:
                sizes.append(spec.n)
            else:
                sizes.append(sizes[-1] + 2)
        W = np.array(sizes, dtype=np.int64)
        H = W.copy() if spec.dim == 2 else np.ones(L + 1, np.int64)
        off = np.concatenate([[0], np.cumsum(H * W)]).astype(np.int64)
        if spec.stride == 1:
            out_const = 2.0 * spec.xi ** spec.dim - 2.0 * 3.0 ** (kt * spec.dim)
        else:
            out_const = 0.0
        return cls(spec.xi, spec.n, spec.dim, spec.stride, L, spec.periodic, kt, H, W, off, out_const)

    def args(self):
        return (self.n, self.dim, self.stride, self.periodic, self.kt, self.layers, self.H, self.W, self.off,
                self.out_const)


@njit(cache=True)
def _conv_axis1(src, h, w, dst_w, stride, periodic, relu):
    """1D pooling along the last axis: (1,1,1)/3 full/circular, or block sums of size stride."""
    dst = np.empty((h, dst_w))
    for r in range(h):
        if stride > 1:
            for i in range(dst_w):
                s = 0.0
                for t in range(stride):
                    s += src[r, stride * i + t]
                dst[r, i] = s
        elif periodic:
            for i in range(dst_w):
                dst[r, i] = (src[r, (i - 1) % w] + src[r, i] + src[r, (i + 1) % w]) / 3.0
        else:
            for i in range(dst_w):
                s = 0.0
                for t in range(i - 2, i + 1):
                    if 0 <= t < w:
                        s += src[r, t]
                dst[r, i] = s / 3.0
    if relu:
        for r in range(h):
            for i in range(dst_w):
                if dst[r, i] < 0.0:
                    dst[r, i] = 0.0
    return dst


@njit(cache=True)
def _forward(img, n, dim, stride, periodic, kt, L, H, W, off, out_const, buf):
    """Forward pass of one image (H[0] x W[0], flattened) into buf; returns the output f."""
    for i in range(H[0] * W[0]):
        buf[off[0] + i] = img[i]
    thr = 3.0 ** (kt * dim) if stride == 1 else 1.0
    for k in range(1, L + 1):
        h0, w0, h1, w1 = H[k - 1], W[k - 1], H[k], W[k]
        src = buf[off[k - 1]: off[k - 1] + h0 * w0].reshape((h0, w0))
        dst = buf[off[k]: off[k] + h1 * w1].reshape((h1, w1))
        if k == kt + 1:
            for r in range(h1):
                for c in range(w1):
                    v = (thr * src[r, c] - 1.0) if stride == 1 else (src[r, c] - 1.0)
                    dst[r, c] = v if v > 0.0 else 0.0
        else:
            t1 = _conv_axis1(src, h0, w0, w1, stride, periodic, dim == 1)
            if dim == 2:
                t2 = _conv_axis1(t1.T.copy(), w1, h0, h1, stride, periodic, True)
                dst[:, :] = t2.T
            else:
                dst[:, :] = t1
    s = 0.0
    for i in range(H[L] * W[L]):
        s += buf[off[L] + i]
    f = s + out_const
    return f if f > 0.0 else 0.0


def forward(images: np.ndarray, geom: NetGeometry) -> list[np.ndarray]:
    """All representations [g_1, ..., g_L, f] of a batch of dense images (P, n) / (P, n, n) (numba forward pass)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != geom.dim + 1 or x.shape[1:] != (geom.n,) * geom.dim:
        raise ArgumentValueError("images",
                                 f"images must have shape (P{', n' * geom.dim}) with n = {geom.n}, got {x.shape}")
    P = x.shape[0]
    args = geom.args()
    reps = [np.empty((P, geom.H[k], geom.W[k])) for k in range(1, geom.layers + 1)]
    out = np.empty(P)
    buf = np.empty(geom.off[-1])
    for p in range(P):
        out[p] = _forward(np.ascontiguousarray(x[p]).ravel(), *args, buf)
        for k in range(1, geom.layers + 1):
            reps[k - 1][p] = buf[geom.off[k]: geom.off[k + 1]].reshape(geom.H[k], geom.W[k])
    if geom.dim == 1:
        reps = [r[:, 0, :] for r in reps]
    return reps + [out]


# ----------------------------------------------------------------------------------------------
# simulator


@njit(cache=True)
def _place(pos, n, dim, img):
    img[:] = 0.0
    for i in range(2):
        if dim == 2:
            img[pos[i, 0] * n + pos[i, 1]] += 1.0
        else:
            img[pos[i, 0]] += 1.0


@njit(cache=True)
def _sq_layers(bufa, bufb, fa, fb, H, W, off, L, out):
    for k in range(1, L + 1):
        s = 0.0
        for i in range(off[k], off[k] + H[k] * W[k]):
            d = bufa[i] - bufb[i]
            s += d * d
        out[k - 1] = s
    out[L] = (fa - fb) ** 2


@njit(parallel=True, cache=True)
def _simulate(pos_x, pos_t, pos_y, noise, n, dim, stride, periodic, kt, L, H, W, off, out_const):
    S = pos_x.shape[0]
    nD = np.zeros((S, L + 1))
    nG = np.zeros((S, L + 1))
    den = np.zeros((S, L + 1))
    npix = H[0] * W[0]
    tot = off[L + 1]
    for s in prange(S):
        img = np.empty(npix)
        bx = np.empty(tot)
        bo = np.empty(tot)
        _place(pos_x[s], n, dim, img)
        fx = _forward(img, n, dim, stride, periodic, kt, L, H, W, off, out_const, bx)
        _place(pos_t[s], n, dim, img)
        fo = _forward(img, n, dim, stride, periodic, kt, L, H, W, off, out_const, bo)
        _sq_layers(bo, bx, fo, fx, H, W, off, L, nD[s])
        _place(pos_y[s], n, dim, img)
        fo = _forward(img, n, dim, stride, periodic, kt, L, H, W, off, out_const, bo)
        _sq_layers(bo, bx, fo, fx, H, W, off, L, den[s])
        _place(pos_x[s], n, dim, img)
        for i in range(npix):
            img[i] += noise[s, i]
        fo = _forward(img, n, dim, stride, periodic, kt, L, H, W, off, out_const, bo)
        _sq_layers(bo, bx, fo, fx, H, W, off, L, nG[s])
    return nD, nG, den


@njit(cache=True)
def _pool_lin_into(src, h0, w0, h1, w1, dim, periodic, tmp, dst):
    """dst[:h1, :w1] = constant (1,1,1)/3 pooling of src[:h0, :w0] (separable, no ReLU, no
    temporaries); returns the squared norm of the result."""
    third = 1.0 / 3.0
    for r in range(h0):
        for c in range(w1):
            if periodic:
                tmp[r, c] = (src[r, (c - 1) % w0] + src[r, c] + src[r, (c + 1) % w0]) * third
            else:
                acc = 0.0
                for t in range(c - 2, c + 1):
                    if 0 <= t < w0:
                        acc += src[r, t]
                tmp[r, c] = acc * third
    sq = 0.0
    if dim == 1:
        for c in range(w1):
            dst[0, c] = tmp[0, c]
            sq += tmp[0, c] * tmp[0, c]
        return sq
    for r in range(h1):
        for c in range(w1):
            if periodic:
                v = (tmp[(r - 1) % h0, c] + tmp[r, c] + tmp[(r + 1) % h0, c]) * third
            else:
                acc = 0.0
                for t in range(r - 2, r + 1):
                    if 0 <= t < h0:
                        acc += tmp[t, c]
                v = acc * third
            dst[r, c] = v
            sq += v * v
    return sq


@njit(cache=True)
def _place_patch(dst, patch, pos, kt, off_grid, n_grid, dim, periodic, scale):
    """dst += scale * patch centred at the two pixels of `pos` (grid coordinate = pos + off_grid)."""
    w = patch.shape[1]
    hh = patch.shape[0]
    for i in range(2):
        for a in range(hh):
            for b in range(w):
                if dim == 2:
                    c0 = pos[i, 0] + a - kt + off_grid
                    c1 = pos[i, 1] + b - kt + off_grid
                else:
                    c0 = 0
                    c1 = pos[i, 0] + b - kt + off_grid
                if periodic:
                    c1 = c1 % n_grid
                    if dim == 2:
                        c0 = c0 % n_grid
                dst[c0, c1] += scale * patch[a, b]


@njit(cache=True)
def _sparse_one(s, pos_x, pos_t, pos_y, noise, n, dim, periodic, kt, L, H, W, kap, F1, F2, R, patch1, patchk,
                nD, nG, den):
    """Stride-1 simulator: clean differences from exact kernel inner products of the sparse
    inputs (two pixels: trinomial points, boxes, overlaps; `theory.scale_exact` atoms), and
    *one* dense pass per sample for the noise: u_1 = ReLU(A(x + eta)) - A x, then u_k = A u_{k-1}
    (both maps are non-negative, so pooling acts linearly on the difference) up to k~; at the
    threshold layer the clean map is placed from its trinomial patch, and the difference
    w = ReLU(c(z + u) - 1) - ReLU(c z - 1) is again pooled linearly; the output difference is
    ReLU(overlap + sum w_L) - overlap."""
    kts = np.zeros(2, np.int64)
    xis = np.ones(2, np.int64)
    for a in range(dim):
        kts[a] = kt
        xis[a] = 2 * kt + 1
    thr = 3.0 ** (kt * dim)
    types = np.zeros(10, np.int64)
    coords = np.zeros((10, 4), np.int64)
    coefs = np.zeros(10)
    pts = np.zeros((4, 2), np.int64)
    pc = np.array([1.0, 1.0, -1.0, -1.0])
    px = pos_x[s]
    ovx = _ex.overlap(px[0], px[1], xis, n, periodic)
    for which in range(2):
        q = pos_t[s] if which == 0 else pos_y[s]
        out = nD[s] if which == 0 else den[s]
        pts[0, 0] = q[0, 0]
        pts[0, 1] = q[0, 1]
        pts[1, 0] = q[1, 0]
        pts[1, 1] = q[1, 1]
        pts[2, 0] = px[0, 0]
        pts[2, 1] = px[0, 1]
        pts[3, 0] = px[1, 0]
        pts[3, 1] = px[1, 1]
        for k in range(1, kt + 1):
            acc = 0.0
            for i in range(4):
                for i2 in range(4):
                    acc += pc[i] * pc[i2] * _ex.kprod(kap, 2 * k, pts[i], pts[i2], n, periodic, R)
            out[k - 1] = acc
        na1 = _ex.config_atoms(q[0], q[1], kts, n, periodic, 1.0, types, coords, coefs, 0)
        na2 = _ex.config_atoms(px[0], px[1], kts, n, periodic, -1.0, types, coords, coefs, na1)
        for j in range(0, L - kt):
            out[kt + j] = _ex.quad_atoms(kap, F1, F2, R, kts, j, types, coords, coefs, na1 + na2)
        dov = _ex.overlap(q[0], q[1], xis, n, periodic) - ovx
        out[L] = dov * dov
    # ---- noise: one dense pass
    off = 0 if periodic else 1
    img = noise[s].reshape((H[0], W[0])).copy()
    pre = _conv_axis1(img, H[0], W[0], W[1], 1, periodic, False)
    if dim == 2:
        pre = _conv_axis1(pre.T.copy(), W[1], H[0], H[1], 1, periodic, False).T.copy()
    a1 = np.zeros((H[1], W[1]))
    _place_patch(a1, patch1, px, 1, off, W[1], dim, periodic, 1.0)
    u = np.empty((H[1], W[1]))
    for r in range(H[1]):
        for c in range(W[1]):
            v = pre[r, c] + a1[r, c]
            u[r, c] = (v if v > 0.0 else 0.0) - a1[r, c]
    nG[s, 0] = np.sum(u * u)
    hm = H[L]
    wm = W[L]
    bufa = np.zeros((hm, wm))
    bufb = np.zeros((hm, wm))
    tmp = np.zeros((hm, wm))
    bufa[: H[1], : W[1]] = u
    for k in range(2, kt + 1):
        nG[s, k - 1] = _pool_lin_into(bufa, H[k - 1], W[k - 1], H[k], W[k], dim, periodic, tmp, bufb)
        bufa, bufb = bufb, bufa
    u = bufa[: H[kt], : W[kt]]
    z = np.zeros((H[kt], W[kt]))
    _place_patch(z, patchk, px, kt, (0 if periodic else kt), W[kt], dim, periodic, 1.0)
    w = np.empty((H[kt], W[kt]))
    for r in range(H[kt]):
        for c in range(W[kt]):
            a = thr * z[r, c] - 1.0
            b = thr * (z[r, c] + u[r, c]) - 1.0
            w[r, c] = (b if b > 0.0 else 0.0) - (a if a > 0.0 else 0.0)
    nG[s, kt] = np.sum(w * w)
    bufa[: H[kt], : W[kt]] = w
    for k in range(kt + 2, L + 1):
        nG[s, k - 1] = _pool_lin_into(bufa, H[k - 1], W[k - 1], H[k], W[k], dim, periodic, tmp, bufb)
        bufa, bufb = bufb, bufa
    mass = 0.0
    for r in range(H[L]):
        for c in range(W[L]):
            mass += bufa[r, c]
    f = ovx + mass
    f = f if f > 0.0 else 0.0
    nG[s, L] = (f - ovx) ** 2


@njit(parallel=True, cache=True)
def _simulate_sparse(pos_x, pos_t, pos_y, noise, n, dim, periodic, kt, L, H, W, kap, F1, F2, R, patch1, patchk):
    """Parallel driver of `_sparse_one` (one call per sample)."""
    S = pos_x.shape[0]
    nD = np.zeros((S, L + 1))
    nG = np.zeros((S, L + 1))
    den = np.zeros((S, L + 1))
    for s in prange(S):
        _sparse_one(s, pos_x, pos_t, pos_y, noise, n, dim, periodic, kt, L, H, W, kap, F1, F2, R, patch1, patchk,
                    nD, nG, den)
    return nD, nG, den


def _ratio(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Ratio of means and its delta-method standard error (per-sample paired terms)."""
    S = len(a)
    ma, mb = a.mean(), b.mean()
    if mb == 0:
        return float("nan"), float("nan")
    r = ma / mb
    c = np.cov(a, b) if S > 1 else np.zeros((2, 2))
    var = (c[0, 0] - 2 * r * c[0, 1] + r * r * c[1, 1]) / (S * mb * mb)
    return float(r), float(math.sqrt(max(var, 0.0)))


def _as3(pos: np.ndarray, dim: int) -> np.ndarray:
    P = len(pos)
    out = np.zeros((P, 2, 2), np.int64)
    out[:, :, :dim] = pos.reshape(P, 2, dim)
    return out


def _sparse_tables(geom: "NetGeometry"):
    L, kt = geom.layers, geom.kt
    R = geom.n + 2 * geom.xi + 2 * L + 12
    kap, F1, F2 = _ex.all_tables(geom.n, geom.dim, geom.periodic, 2 * L + 2, R)
    k1 = np.array([1.0, 1.0, 1.0]) / 3.0
    kk = np.ones(1)
    for _ in range(kt):
        kk = np.convolve(kk, np.ones(3))
    kk = kk / 3.0 ** kt                                     # kappa_kt on [-kt, kt]
    if geom.dim == 2:
        patch1, patchk = np.outer(k1, k1), np.outer(kk, kk)
    else:
        patch1, patchk = k1[None, :], kk[None, :]
    return kap, F1, F2, R, patch1, patchk


def sample_terms(xi, n, *, dim=1, stride=1, layers=10, periodic=False, samples=10000, seed=None,
                 noise="matched", chunk=20000, sparse=True, moves="lazy", rectify="none", preserve_blocks=False):
    """Per-sample terms (numD, numG, den), each (samples, layers + 1), of the Monte Carlo.

    sparse=True (stride 1): clean differences from exact inner products of the sparse inputs and
    one dense noise pass per sample (`_simulate_sparse`); sparse=False: four dense forward passes
    per sample (x, tau x, x', x + eta), the reference implementation.  moves, rectify ("none", "noise",
    "input"), preserve_blocks: the conventions of `simulate_layers`."""
    geom = NetGeometry.build(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic)
    moves, rectify, preserve_blocks = check_conventions(moves, rectify, preserve_blocks, stride=geom.stride,
                                                        rectify_allowed=NOISE_RECTIFY)
    use_sparse = sparse and geom.stride == 1
    tables = _sparse_tables(geom) if use_sparse else None
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ArgumentValueError("samples", f"samples must be an integer >= 2, got {samples!r}")
    if noise not in ("matched", "per_sample"):
        raise ArgumentValueError("noise", f"noise must be 'matched' or 'per_sample', got {noise!r}")
    rng = generator(seed)
    per = geom.periodic
    metric = "block" if geom.stride > 1 else ("periodic_linf" if per else "linf")
    data = _unlabelled_dataset(geom.n, geom.xi, dim=geom.dim, metric=metric)
    P = len(data)
    sigma = noise_sigma(geom.xi, geom.n, dim=geom.dim, stride=geom.stride, periodic=per, moves=moves,
                        preserve_blocks=preserve_blocks)
    npix = geom.n ** geom.dim
    parts = []
    done = 0
    while done < samples:
        m = min(chunk, samples - done)
        ix = rng.integers(0, P, m)
        iy = (ix + 1 + rng.integers(0, P - 1, m)) % P
        px = _as3(data.positions[ix], geom.dim)
        mv = np.zeros((m, 2, 2), np.int64)
        mv[:, :, : geom.dim] = sample_moves(m, geom.dim, rng, moves=moves)
        pt = px + mv
        pt = pt % geom.n if per else np.clip(pt, 0, geom.n - 1)
        if geom.dim == 1:
            pt[:, :, 1] = 0
        if preserve_blocks:                      # undo the moves that leave their xi-block (torus: n % xi == 0)
            stay = np.any(pt // geom.xi != px // geom.xi, axis=2)
            pt[stay] = px[stay]
        py = _as3(data.positions[iy], geom.dim)
        g = rng.standard_normal((m, npix))
        if noise == "matched":
            eta = sigma * g
        else:
            dn = np.sqrt(_move_norms(px, pt, geom.dim))
            eta = g * (dn / np.sqrt((g ** 2).sum(axis=1)))[:, None]
        if rectify != "none":
            raw = eta
            eta = np.maximum(raw, 0.0)
            if rectify == "input":   # ReLU(x + eta) - x, x = 1 on the two (distinct) pixels of x and 0 elsewhere
                flat = px[:, :, 0] * geom.n + px[:, :, 1] if geom.dim == 2 else px[:, :, 0]
                rows = np.arange(m)[:, None]
                eta[rows, flat] = np.maximum(raw[rows, flat], -1.0)
        if use_sparse:
            kap, F1, F2, R, p1, pk = tables
            parts.append(_simulate_sparse(px, pt, py, eta, geom.n, geom.dim, geom.periodic, geom.kt, geom.layers,
                                          geom.H, geom.W, kap, F1, F2, R, p1, pk))
        else:
            parts.append(_simulate(px, pt, py, eta, *geom.args()))
        done += m
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3)), geom


def _move_norms(px, pt, dim):
    """|tau x - x|^2 per sample (sparse: four points)."""
    pts = np.concatenate([pt, px], axis=1)  # (m, 4, 2)
    co = np.array([1.0, 1.0, -1.0, -1.0])
    eq = np.all(pts[:, :, None, :] == pts[:, None, :, :], axis=-1)
    return np.einsum("i,j,mij->m", co, co, eq.astype(float))


def simulate_layers(xi, n, *, dim=1, stride=1, layers=10, periodic=False, samples=10000, seed=None,
                    noise="matched", moves="lazy", rectify="none", preserve_blocks=False) -> list[dict]:
    """Monte-Carlo D_k, G_k, R_k with standard errors at every layer and the output.

    noise="matched": the model of the theory (i.i.d. N(0, sigma^2), sigma from
    `theory.scale_detection.noise_sigma`); "per_sample": |eta_i| = |tau x_i - x_i| exactly.
    Conventions (defaults ours, docs/reference-conventions.md): ``moves`` "lazy" | "always" | "direction"
    (`theory.scale_detection.move_law`); ``rectify`` "none" | "noise" (x + ReLU(eta)) | "input" (ReLU(x + eta));
    ``preserve_blocks`` (strided only): moves leaving their xi-block are undone."""
    (nD, nG, den), geom = sample_terms(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic,
                                       samples=samples, seed=seed, noise=noise, moves=moves, rectify=rectify,
                                       preserve_blocks=preserve_blocks)
    rows = []
    for k in range(geom.layers + 1):
        kk = k + 1
        name = ("pool" if kk <= geom.kt else "threshold" if kk == geom.kt + 1 else
                "output" if kk == geom.layers + 1 else "pool_after")
        D, Dse = _ratio(nD[:, k], den[:, k])
        G, Gse = _ratio(nG[:, k], den[:, k])
        R, Rse = _ratio(nD[:, k], nG[:, k])
        rows.append({"k": kk, "name": name, "D": D, "G": G, "R": R, "D_se": Dse, "G_se": Gse, "R_se": Rse})
    return rows


# ----------------------------------------------------------------------------------------------
# brute force (all pairs, all moves): exact D_k and denominators from dense forward passes


def brute_force_layers(xi, n, *, dim=1, stride=1, layers=None, periodic=False, moves="lazy",
                       preserve_blocks=False) -> dict:
    """Exact numerators of D_k and denominators by enumeration with dense forward passes.

    Returns {"D_num", "den", "D", "input_norm"} arrays over k = 1..L, output.  Independent of the
    closed forms of `theory.scale_detection` (it never uses their algebra).  ``moves`` / ``preserve_blocks``: the
    diffeo's conventions (`simulate_layers`); every pair of moves is weighted by its probability."""
    geom = NetGeometry.build(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic)
    moves, _, preserve_blocks = check_conventions(moves, "none", preserve_blocks, stride=geom.stride)
    metric = "block" if geom.stride > 1 else ("periodic_linf" if geom.periodic else "linf")
    data = _unlabelled_dataset(geom.n, geom.xi, dim=geom.dim, metric=metric)
    reps = forward(data.x, geom)
    flat = [r.reshape(len(data), -1) for r in reps[:-1]] + [reps[-1].reshape(-1, 1)]
    P = len(data)
    den = np.array([2.0 * (np.mean((f ** 2).sum(1)) - (f.mean(0) ** 2).sum()) * P / (P - 1) for f in flat])
    vecs, wts = move_law(moves, geom.dim)
    block = geom.xi if preserve_blocks else None
    num = np.zeros(len(flat))
    inp = 0.0
    for m1, w1 in zip(vecs, wts):
        for m2, w2 in zip(vecs, wts):
            mv = np.broadcast_to(np.stack([m1, m2]), (P, 2, geom.dim))
            newpos = move_positions(data.positions, mv, geom.n, geom.periodic, block).reshape(data.positions.shape)
            xt = positions_to_images(newpos, geom.n, geom.dim)
            inp += int(w1 * w2) * np.mean(((xt - data.x) ** 2).reshape(P, -1).sum(1))
            rt = forward(xt, geom)
            for k, (a, b) in enumerate(zip(rt, reps)):
                num[k] += int(w1 * w2) * np.mean(((a - b) ** 2).reshape(P, -1).sum(1))
    tot = int(wts.sum()) ** 2
    num /= tot
    return {"D_num": num, "den": den, "D": num / den, "input_norm": inp / tot}


# ----------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:

    p = cli_parser()
    p.prog = "python -m numerics.scale_detection"
    p.description = "Monte-Carlo D_k, G_k, R_k of the hand-constructed scale-detection net."
    p.add_argument("--samples", type=int, default=100000, help="Monte-Carlo samples per layer (default 100000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, moves and noise (>= 0, default 0)")
    p.add_argument("--noise", choices=["matched", "per_sample"], default="matched",
                   help="matched: i.i.d. pixels with n sigma^2 = <|tau x - x|^2> over the batch; per_sample: "
                        "|eta_i| = |tau x_i - x_i| exactly (default matched)")
    add_convention_flags(p, NOISE_RECTIFY)
    a = p.parse_args(argv)
    try:
        rows = simulate_layers(a.xi, a.n, dim=a.dim, stride=a.stride, layers=a.layers, periodic=a.periodic,
                               samples=a.samples, seed=a.seed, noise=a.noise, moves=a.moves, rectify=a.rectify,
                               preserve_blocks=a.preserve_blocks)
    except ValueError as e:
        return cli_error(p, a, e)
    if a.json:
        print(json.dumps({"layers": rows}))
    else:
        print(f"{'k':>3} {'name':>10} {'D':>22} {'G':>22} {'R':>22}")
        for r in rows:
            print(f"{r['k']:>3} {r['name']:>10} {r['D']:>12.5g} ± {r['D_se']:<7.2g} {r['G']:>12.5g} ± "
                  f"{r['G_se']:<7.2g} {r['R']:>12.5g} ± {r['R_se']:<7.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
