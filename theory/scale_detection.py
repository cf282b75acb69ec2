"""Exact D_k, G_k, R_k of the hand-constructed scale-detection network, at every layer.

Task and network after Tomasini, Petrini, Cagnetta & Wyart, "How deep convolutional neural
networks lose spatial information with training" (arXiv 2210.01506, 2022), Sec. 4; the exact
finite-n values at every layer are derived here (the paper gives scalings before the two
pixels' receptive fields meet).

The model (all choices explicit; `numerics.scale_detection` and `verify.handcrafted` implement
the same one):

* **Images.** n pixels (dim = 1) or n x n (dim = 2), zero except two active pixels of value 1.
  - stride 1, non-periodic: active pixels anywhere in the interior [1, n-2]^dim (a one-pixel
    margin, so that every diffeo move stays in the frame); the network uses *full* zero padding
    (layer k lives on [-k, n-1+k]^dim), so it is exactly translation-equivariant.
  - stride 1, periodic: pixels anywhere on the torus (Z_n)^dim, circular padding, n >= 2 xi.
  - stride s >= 2: torus, xi = s^k~ (the "block" task: y = +1 iff both pixels in the same
    xi-block); n divisible by s^(layers-1).
  Dataset = all unordered pairs of distinct positions (P of them), each with probability 1/P.
* **Diffeo** tau: each active pixel moves independently by -1/0/+1 (per axis) w.p. 1/3;
  wraps on the torus; two pixels landing on the same site add (value 2).  Other laws
  (``moves="always"``: +-1 per axis, the authors' 1D script; ``"direction"``: a rounded random unit
  step, their 2D code) and, strided, the block-preserving diffeo (``preserve_blocks``) are options
  of every function below (`move_law`, `check_conventions`, docs/reference-conventions.md).
* **Noise** eta: i.i.d. N(0, sigma^2) on all n^dim input pixels, sigma^2 = E_{x,tau}|tau x - x|^2
  / n^dim (exact expectation, `noise_sigma`).  It enters the first ReLU: where the signal is
  zero, layer-1 outputs are rectified *correlated* Gaussians (arc-cosine kernel); where it is
  not, the exact bivariate moments with means (`theory.scale_gauss`).  ``rectify="noise"`` feeds
  x + ReLU(eta) instead (the authors' 1D script): the pooling stage is then linear in the noise.
* **Network, stride 1** (k~ = (xi-1)/2, layers L >= k~+1):
  layers 1..k~: g_k = ReLU(w * g_{k-1}), w the constant 3^dim filter of value 3^-dim, zero
  bias (pure spatial pooling; ReLU inactive on clean inputs, so g_k = A^k x);
  layer k~+1 (the *threshold* layer, 1x1 conv, one bias): g = ReLU(3^(dim k~) g_k~ - 1);
  layers k~+2..L: constant pooling filters again; output (after global average pooling):
  f = ReLU(N_L * GAP(g_L) + 2 xi^dim - 2 * 3^(dim k~)).
  **Theorem.** On every clean input with two unit pixels at displacement Delta (including a
  collision Delta = 0), f = prod_a (xi - |Delta_a|)_+ ; in 1D f = ReLU(xi - d) exactly.
  *Proof.* h = 3^(dim k~) g_k~ = sum_i T~(. - r_i), T~ = (trinomial coefficients)^(x dim) with
  support S = box of side xi around the pixel and T~ >= 1 on S.  Hence h is 0 outside
  U = S1 u S2 and >= 1 on U, so ReLU(h - 1) = h - 1_U and its total mass is
  sum h - |U| = 2*3^(dim k~) - (2 xi^dim - |S1 n S2|).  Constant filters of total weight 1 with
  full (or circular) padding preserve the mass, so N_L GAP(g_L) = that mass, and
  f = |S1 n S2| = prod_a (xi - |Delta_a|)_+ >= 0.  In 1D this is (xi - d)_+.  In 2D f > 0 iff
  max_a |Delta_a| < xi: the 2D network realises the **L-infinity (Chebyshev) distance**
  (periodic per-axis distance on the torus), so labels y = sign(xi - d_inf) are classified
  exactly; with Euclidean labels it errs exactly on the pairs with d_inf < xi <= d_2.
* **Network, stride s** (block sums, filter = stride = s, value 1, zero bias) up to k~ = log_s xi;
  layer k~+1: ReLU(count - 1) (1x1, one bias: positive only where both pixels share the
  xi-block: the *positive interference*); block sums after; f = sum = 1[same xi-block].

Definitions (Petrini et al. 2021; the paper's layer-wise version):
  D_k = E_{x,tau}|f_k(tau x) - f_k(x)|^2 / E_{x1 != x2}|f_k(x1) - f_k(x2)|^2,
  G_k = E_{x,eta}|f_k(x + eta) - f_k(x)|^2 / (same denominator),  R_k = D_k / G_k,
f_k flattened over channels and positions; the denominator averages over ordered pairs of
*distinct* dataset images, = 2 (E|f_k|^2 - |E f_k|^2) P/(P-1) (times (P-1)/P if i = j pairs are
included, `include_diagonal=True`).

Exactness: D_k is exact at every layer (finite sums of trinomial kernels, box indicators and
overlaps); G_k (hence R_k) is exact in closed form for the pooling stage k = 1..k~ (layer-1
Gaussian moments propagated linearly).  After the threshold layer the noise enters a biased
ReLU as a sum of rectified Gaussians:
* k~ = 1 (xi = 3 with stride 1, xi = s strided): the threshold acts on single layer-1 units,
  ReLU(3^dim ReLU(a + g) - 1) = ReLU(c - 1 + 3^dim g), again Gaussian moments with means,
  pooled linearly afterwards; the output ReLU never acts (its argument is
  overlap + sum w >= overlap - sum (c - 1)_+ = 0 since 3^dim = xi^dim): exact at every layer.
* strided, any k~: layer-1 units see disjoint blocks, so they are independent; a threshold unit
  is ReLU(S - 1) with S a sum of M = s^(dim (k~-1)) independent rectified Gaussians, in one of
  four configurations (no pixel, one, two in different / the same layer-1 block), and threshold
  units are independent across xi-blocks.  E z, E z^2 are one-dimensional integrals against the
  convolution of explicit laws, evaluated deterministically to ~1e-12 by `theory.rectified_sums`
  (exact lattice convolution + Richardson); the rest is exact bookkeeping: every layer is exact.
* stride 1, k~ >= 2: the layer-1 units are *correlated* (they share input pixels), so S is a
  sum of 2k~ - 1 rectified correlated Gaussians (dimension 2k~ + 1 in the noise) and the layers
  after it need joint laws of overlapping threshold units; G_k, R_k for k > k~ are returned as
  None there and measured by `numerics.scale_detection`.
* rectified noise (``rectify="noise"``): x + ReLU(eta) >= 0, so no ReLU of the pooling stage acts and
  G_k (k <= k~) is a quadratic form of i.i.d. rectified pixels (closed form); a threshold unit is
  ReLU(h + U - 1) with U a weighted sum of independent rectified pixels, exact unit by unit
  (`theory.rectified_sums.weighted_rectified_moments`); overlapping threshold units share pixels, so for
  stride 1 the layers after the threshold are None (any k~), while strided networks stay exact at every
  layer (disjoint blocks).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

import numpy as np
import sympy as sp

from theory import rectified_sums as _rs
from theory import scale_exact as _ex
from theory.arguments import ArgumentTypeError, ArgumentValueError, check_flag, check_real
from theory.scale_gauss import relu_mean, relu_product_moment, relu_second_moment

__all__ = [
    "MOVES", "RECTIFY", "move_law", "check_conventions",
    "ScaleNetSpec", "check_params", "check_dim", "threshold_layer", "diffeo_input_norm", "noise_sigma",
    "exact_layers", "exact_layers_seconds", "realised_output", "trinomial_kernel", "pooling_D_expression", "evaluate_sums",
    "pooling_limit_expressions",
    "asymptotic_laws", "cli_parser", "add_convention_flags", "cli_error", "main",
]


# ----------------------------------------------------------------------------------------------
# parameters


@dataclass(frozen=True)
class ScaleNetSpec:
    """Validated parameters of the hand-constructed network and its dataset geometry."""
    xi: int
    n: int
    dim: int
    stride: int
    layers: int
    periodic: bool
    kt: int                 # k~: last pooling layer (receptive field xi)

    @property
    def n_positions(self) -> int:
        side = self.n if (self.periodic or self.stride > 1) else self.n - 2
        return side ** self.dim

    @property
    def n_pairs(self) -> int:
        m = self.n_positions
        return m * (m - 1) // 2


def _int(name: str, v, lo: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ArgumentTypeError(name, f"{name} must be an integer, got {v!r}")
    v = int(v)
    if lo is not None and v < lo:
        raise ArgumentValueError(name, f"{name} must be >= {lo}, got {v}")
    return v


def check_dim(v) -> int:
    """Validate the number of image axes: ``dim`` must be 1 or 2 (ValueError otherwise); returns it as int."""
    try:
        ok = not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v in (1, 2)
    except (TypeError, ValueError, RuntimeError):  # an array or a tensor
        ok = False
    if not ok:
        raise ArgumentValueError("dim", f"dim must be 1 or 2, got {v!r}")
    return int(v)


def threshold_layer(xi: int, stride: int = 1) -> int:
    """k~: the layer whose receptive field is the scale xi (2k~+1 = xi, or s^k~ = xi)."""
    stride = _int("stride", stride, 1)
    xi = _int("xi", xi)
    if stride == 1:
        if xi < 3 or xi % 2 == 0:
            raise ArgumentValueError("xi",
                                     f"xi must be an odd integer >= 3 for stride 1 (receptive field 2k+1), got {xi}")
        return (xi - 1) // 2
    kt = round(math.log(xi) / math.log(stride)) if xi >= stride else 0
    if kt < 1 or stride ** kt != xi:
        raise ArgumentValueError("xi", f"xi must be a power stride^k (k >= 1) for stride {stride}, got {xi}")
    return kt


def check_params(xi, n, *, dim=1, stride=1, layers=None, periodic=False) -> ScaleNetSpec:
    """Validate (xi, n, dim, stride, layers, periodic); raise ValueError naming the argument."""
    dim = check_dim(dim)
    periodic = check_flag("periodic", periodic)
    stride = _int("stride", stride, 1)
    kt = threshold_layer(xi, stride)
    n = _int("n", n)
    layers = kt + 1 if layers is None else _int("layers", layers)
    if layers < kt + 1:
        raise ArgumentValueError("layers",
                                 f"layers must be >= k~+1 = {kt + 1} (pooling to the scale xi, then the threshold layer), "
                         f"got {layers}")
    if stride == 1:
        if periodic:
            if n < 2 * xi:
                raise ArgumentValueError("n",
                                         f"n must be >= 2*xi = {2 * xi} on the torus (no wrap-around overlap), got {n}")
        elif n < 5:
            raise ArgumentValueError("n", f"n must be >= 5 (a one-pixel margin around >= 3 positions), got {n}")
    else:
        need = stride ** (layers - 1)
        if n < 2 * xi or n % need:
            raise ArgumentValueError("n", f"n must be a multiple of stride^(layers-1) = {need} and >= 2*xi = {2 * xi} "
                             f"for the strided network, got {n}")
        periodic = True
    return ScaleNetSpec(int(xi), n, int(dim), stride, layers, bool(periodic), kt)


# ----------------------------------------------------------------------------------------------
# conventions: the diffeo's move law, the noise rectification, the block-preserving diffeo

MOVES = ("lazy", "always", "direction")
RECTIFY = ("none", "noise")


def move_law(moves: str = "lazy", dim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The law of one active pixel's move: (vectors (M, dim) int64, integer weights (M,)); P(v) = weight / sum.

    * ``"lazy"`` (ours, the default): each axis independently -1, 0, +1 w.p. 1/3 (E|m|^2 = 2 dim/3); a pixel stays
      put w.p. 3^-dim.  It is the law of the authors' earlier, commented-out 2D code
      (``relativestability:data/__init__.py``, ``torch.randint(3, ...) - 1``) and the one every exact sum of this
      package was first written for.
    * ``"always"``: each axis independently +-1 w.p. 1/2 (E|m|^2 = dim): the authors' 1D script
      (``UmbertoTomasini/scale_detection_1d:diffeo_cluster_mean.py``, ``2 * (randint(2) - 1/2)``), where every pixel
      moves; D is larger by the ratio of E|m|^2, 3/2, at large k.
    * ``"direction"``: a uniformly random unit direction rounded to the lattice (the authors' 2D
      ``load_twopoints(local_translations=1)``: t = randn(2), round(t/|t|)): an axis step w.p. 2/3, a diagonal one
      w.p. 1/3 (E|m|^2 = 4/3, the lazy value); in 1D it is +-1 (= ``"always"``).

    Why lazy is ours: it is the maximum-entropy law on the 3^dim neighbourhood (no preferred axis, moves of every
    axis independent), it keeps the per-axis factorisation that the exact sums use, and with it D and R are those of
    a diffeo that does not always move every feature.  ``ValueError`` for an unknown law or dim."""
    dim = check_dim(dim)
    if moves not in MOVES or isinstance(moves, bool):
        raise ArgumentValueError("moves", f"moves must be one of {MOVES}, got {moves!r}")
    grid = np.array(np.meshgrid(*([[-1, 0, 1]] * dim), indexing="ij")).reshape(dim, -1).T.astype(np.int64)
    if moves == "lazy":
        return grid, np.ones(len(grid), np.int64)
    if moves == "always" or dim == 1:
        v = grid[np.all(grid != 0, axis=1)]
        return v, np.ones(len(v), np.int64)
    v = grid[np.any(grid != 0, axis=1)]
    return v, np.where(np.all(v != 0, axis=1), 1, 2).astype(np.int64)


def _move_table(moves: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """`move_law` as the (M, 2) int64 / (M,) float64 arrays of the numba sums (second column 0 in 1D)."""
    v, w = move_law(moves, dim)
    mv = np.zeros((len(v), 2), np.int64)
    mv[:, :dim] = v
    return mv, w.astype(np.float64)


def check_conventions(moves: str = "lazy", rectify: str = "none", preserve_blocks: bool = False, *,
                      stride: int = 1, rectify_allowed: tuple = RECTIFY) -> tuple[str, str, bool]:
    """Validate the convention options of the theory and the simulator (ValueError naming the argument).

    ``moves``: one of `MOVES` (`move_law`); ``rectify``: one of ``rectify_allowed`` -- ``"none"`` (ours: eta is
    added as drawn, the first ReLU rectifies the pooled noise) or ``"noise"`` (x + ReLU(eta), the authors' 1D
    ``perturb``; the simulator also has ``"input"``, ReLU(x + eta), the authors' constant-filter notebook);
    ``preserve_blocks``: the label-preserving diffeo of the block task (a pixel's move is undone when it would leave
    its xi-block, the authors' 1D ``adding_diffeo``), strided networks only."""
    if moves not in MOVES or isinstance(moves, bool):
        raise ArgumentValueError("moves", f"moves must be one of {MOVES}, got {moves!r}")
    if rectify not in rectify_allowed or isinstance(rectify, bool):
        raise ArgumentValueError("rectify", f"rectify must be one of {rectify_allowed}, got {rectify!r}")
    preserve_blocks = check_flag("preserve_blocks", preserve_blocks)
    if preserve_blocks and stride == 1:
        raise ArgumentValueError("preserve_blocks",
                                 "preserve_blocks must be False for stride 1: the block-preserving diffeo belongs to the "
                         "block task of the strided network (stride >= 2)")
    return moves, rectify, preserve_blocks


# ----------------------------------------------------------------------------------------------
# inputs


def diffeo_input_norm(n: int, *, dim: int = 1, periodic: bool = False, moves: str = "lazy") -> float:
    """E_{x,tau}|tau x - x|^2 exactly, over all pairs and the moves of both pixels (law ``moves``, `move_law`).

    |tau x - x|^2 = sum over the four points (moved pixels with +1, original with -1) of
    c_i c_j [p_i = p_j]; depends only on the displacement Delta (translation invariance).
    ``n`` must be an integer >= 3 on the torus (``periodic``) and >= 4 otherwise (two positions at least, with a
    one-pixel margin), ``dim`` 1 or 2."""
    dim = check_dim(dim)
    n = _int("n", n, 3 if periodic else 4)
    side = n if periodic else n - 2
    if periodic:
        ds = [np.arange(n)] * dim
        ws = [np.ones(n)] * dim
    else:
        ds = [np.arange(-(side - 1), side)] * dim
        ws = [side - np.abs(ds[0]).astype(float)] * dim
    grids = np.meshgrid(*ds, indexing="ij")
    w = np.ones_like(grids[0], dtype=float)
    for a in range(dim):
        w = w * np.meshgrid(*ws, indexing="ij")[a]
    delta = np.stack([g.ravel() for g in grids], axis=1)
    w = w.ravel()
    keep = np.any(delta != 0, axis=1)
    delta, w = delta[keep], w[keep]
    mvs, mw = move_law(moves, dim)
    total = 0.0
    for m1, w1 in zip(mvs, mw):
        for m2, w2 in zip(mvs, mw):
            pts = [np.broadcast_to(m1, delta.shape), delta + m2, np.zeros_like(delta), delta]
            co = [1.0, 1.0, -1.0, -1.0]
            acc = np.zeros(len(delta))
            for i in range(4):
                for j in range(4):
                    eq = pts[i] - pts[j]
                    if periodic:
                        eq = eq % n
                    acc += co[i] * co[j] * np.all(eq == 0, axis=1)
            total += int(w1 * w2) * np.sum(w * acc)
    return float(total / (int(mw.sum()) ** 2 * w.sum()))


def _block_input_norm(n: int, xi: int, dim: int, moves: str) -> float:
    """E_{x,tau}|tau x - x|^2 on the torus with the block-preserving diffeo (a move leaving the pixel's xi-block is
    undone): not translation invariant, so every unordered pair and every pair of moves is enumerated."""
    mvs, mw = move_law(moves, dim)
    sites = np.stack(np.meshgrid(*([np.arange(n)] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    i, j = np.triu_indices(len(sites), k=1)
    r1, r2 = sites[i], sites[j]

    def moved(r, m):
        q = (r + m) % n
        stay = np.any(q // xi != r // xi, axis=1)
        q[stay] = r[stay]
        return q

    total = 0.0
    for m1, w1 in zip(mvs, mw):
        q1 = moved(r1, m1)
        for m2, w2 in zip(mvs, mw):
            q2 = moved(r2, m2)
            pts, co = (q1, q2, r1, r2), (1.0, 1.0, -1.0, -1.0)
            acc = np.zeros(len(r1))
            for a in range(4):
                for b in range(4):
                    acc += co[a] * co[b] * np.all(pts[a] == pts[b], axis=1)
            total += int(w1 * w2) * float(acc.sum())
    return total / (int(mw.sum()) ** 2 * len(r1))


def noise_sigma(xi: int, n: int, *, dim: int = 1, stride: int = 1, periodic: bool = False, moves: str = "lazy",
                preserve_blocks: bool = False) -> float:
    """sigma with n^dim sigma^2 = E|eta|^2 = E_{x,tau}|tau x - x|^2 (exact), for the diffeo with move law ``moves``
    (`move_law`) and, strided only, ``preserve_blocks`` (`check_conventions`).  The noise of ``rectify="noise"``
    uses the same sigma before rectification (the authors' 1D ``perturb``), so E|ReLU(eta)|^2 = E|eta|^2/2."""
    spec = check_params(xi, n, dim=dim, stride=stride, layers=None, periodic=periodic)
    moves, _, preserve_blocks = check_conventions(moves, "none", preserve_blocks, stride=spec.stride)
    if preserve_blocks:
        norm = _block_input_norm(spec.n, spec.xi, spec.dim, moves)
    else:
        norm = diffeo_input_norm(spec.n, dim=spec.dim, periodic=spec.periodic, moves=moves)
    return math.sqrt(norm / spec.n ** spec.dim)


def realised_output(delta, xi: int, *, stride: int = 1, positions=None) -> np.ndarray:
    """Clean network output: prod_a (xi - |Delta_a|)_+ (stride 1; integer displacements `delta` of
    shape (P,) or (P, dim), periodic ones already reduced), or 1[same xi-block] for stride > 1 (needs
    integer `positions` of shape (P, 2) or (P, 2, dim); `delta` is then ignored).  ``xi`` must be a
    valid scale for ``stride`` (`threshold_layer`)."""
    threshold_layer(xi, stride)
    if stride == 1:
        d = np.asarray(delta)
        if d.ndim not in (1, 2) or not np.issubdtype(d.dtype, np.integer):
            raise ArgumentValueError("delta",
                                     f"delta must be an integer array of shape (P,) or (P, dim), got {d.dtype} {d.shape}")
        d = np.abs(d).reshape(len(d), -1)
        return np.prod(np.clip(xi - d, 0, None), axis=1).astype(float)
    pos = None if positions is None else np.asarray(positions)
    if pos is None or pos.ndim not in (2, 3) or pos.shape[1] != 2 or not np.issubdtype(pos.dtype, np.integer):
        raise ArgumentValueError("positions",
                                 f"positions must be an integer array of shape (P, 2) or (P, 2, dim) for stride > 1, got "
                         f"{None if pos is None else (pos.dtype, pos.shape)}")
    pos = pos.reshape(len(pos), 2, -1)
    return np.all(pos[:, 0] // xi == pos[:, 1] // xi, axis=-1).astype(float)


# ----------------------------------------------------------------------------------------------
# exact layers


def _relu_tables(sigma: float, dim: int, threshold: bool = False):
    """U1[c, nv] = E ReLU(a + g); T2[cp, cq, nvp, nvq, nov] = E ReLU(a_p+g_p) ReLU(a_q+g_q).

    Pooling stage: a = c/3^dim, std(g) = sigma sqrt(nv)/3^dim.  threshold=True (the layer after a
    single pooling layer, xi = 3): ReLU(3^dim (a + g) - 1), i.e. mean c - 1, std sigma sqrt(nv)."""
    scale = 3.0 ** (-dim)
    shift = 0.0
    if threshold:
        scale, shift = 1.0, -1.0          # 3^dim (c/3^dim + g) - 1 = c - 1 + g', std(g') = sigma sqrt(nv)
    U1 = np.zeros((3, 10))
    T2 = np.full((3, 3, 10, 10, 10), np.nan)
    for nv in range(1, 10):
        sd = sigma * math.sqrt(nv) * scale
        for c in range(3):
            U1[c, nv] = sd * relu_mean((c * scale + shift) / sd)
    idx = []
    for cp in range(3):
        for cq in range(3):
            for nvp in range(1, 10):
                for nvq in range(1, 10):
                    for nov in range(0, min(nvp, nvq) + 1):
                        rho = nov / math.sqrt(nvp * nvq)
                        if rho > 0.95 and not (nov == nvp == nvq):
                            continue
                        if nov == nvp == nvq and cp != cq:
                            continue
                        idx.append((cp, cq, nvp, nvq, nov))
    idx = np.array(idx)
    cp, cq, nvp, nvq, nov = idx.T
    sdp = sigma * np.sqrt(nvp) * scale
    sdq = sigma * np.sqrt(nvq) * scale
    rho = nov / np.sqrt(nvp * nvq)
    rho = np.where(nov == 0, 0.0, rho)
    vals = sdp * sdq * relu_product_moment((cp * scale + shift) / sdp, (cq * scale + shift) / sdq, rho)
    T2[cp, cq, nvp, nvq, nov] = vals
    return U1, T2


def _mean_map_sq_stride1(spec: ScaleNetSpec, kap, R: int, ov_mean: float) -> np.ndarray:
    """|E_x g_k(x)|^2 for k = 0..L+1 (stride 1)."""
    n, dim, L, kt, xi = spec.n, spec.dim, spec.layers, spec.kt, spec.xi
    out = np.zeros(L + 2)
    P = spec.n_pairs
    if spec.periodic:
        N = n ** dim
        out[: kt + 1] = 4.0 / N
        c = (2.0 * (3.0 ** (kt * dim) - xi ** dim) + ov_mean) / N
        out[kt + 1: L + 1] = N * c * c
        out[L + 1] = ov_mean ** 2
        return out
    Npos = spec.n_positions
    t = np.arange(-R, R + 1)
    interior = ((t >= 1) & (t <= n - 2)).astype(float)

    def quad(X, Y, m):  # sum_{s,t} X_s Y_t kappa_m(s - t) on one active axis
        K = kap[0, m]
        conv = np.convolve(Y, K, mode="same")
        return float(X @ conv)

    for k in range(kt + 1):
        out[k] = (2.0 / Npos) ** 2 * quad(interior, interior, 2 * k) ** dim
    Ttil = (3.0 ** kt) * kap[0, kt]                    # trinomial T~ centred at 0
    tau = np.convolve(interior, Ttil, mode="same")
    box = ((t >= -kt) & (t <= kt)).astype(float)
    c = np.convolve(interior, box, mode="same")
    vecs = [tau, c, c * c]
    coef = [2.0 / Npos, -2.0 / Npos - 1.0 / (2 * P), 1.0 / (2 * P)]
    for j in range(L - kt):
        s = 0.0
        for A in range(3):
            for B in range(3):
                s += coef[A] * coef[B] * quad(vecs[A], vecs[B], 2 * j) ** dim
        out[kt + 1 + j] = s
    out[L + 1] = ov_mean ** 2
    return out


def _noise_numerators_stride1(spec: ScaleNetSpec, sigma: float, kap, R: int, threshold: bool = False) -> np.ndarray:
    """E_{x,eta}|g_k(x + eta) - g_k(x)|^2, exact.

    threshold=False: pooling layers k = 1..k~ (entry k).  threshold=True (xi = 3 only, the
    threshold acts on layer-1 units, each a function of one Gaussian): entries j = 0..L-k~-1 for
    the layers k~+1+j, then the output, whose ReLU never acts (see `exact_layers`)."""
    n, dim, kt = spec.n, spec.dim, spec.kt
    U1, T2 = _relu_tables(sigma, dim, threshold=threshold)
    Aval = np.array([0.0, 0.0, 1.0]) if threshold else np.arange(3) * 3.0 ** (-dim)
    lo, hi = (0, n - 1) if spec.periodic else (1, n - 2)
    epsbar, W, dC, C0, _ = _ex.noise_sums(n, dim, spec.periodic, U1, T2, Aval, lo, hi)
    G0, G1 = epsbar.shape
    grids = []
    for a in range(2):
        trivial = a >= dim
        Ga = G0 if a == 0 else G1
        off = 0 if (trivial or spec.periodic) else -1
        grids.append((Ga, off, trivial))
    # window sizes per axis (nv of a unit = product over axes)
    nv_axes = []
    for Ga, off, trivial in grids:
        if trivial:
            nv_axes.append(np.ones(1))
        elif spec.periodic:
            nv_axes.append(np.full(Ga, 3.0))
        else:
            c = np.arange(Ga) + off
            nv_axes.append((np.minimum(c + 1, n - 1) - np.maximum(c - 1, 0) + 1).astype(float))
    if threshold:
        orders = [2 * j for j in range(spec.layers - kt)] + [None]        # None: all-ones kernel
    else:
        orders = [None] + [2 * (k - 1) for k in range(1, kt + 1)]
    out = np.zeros(len(orders))
    for k, m in enumerate(orders):
        if m is None and not threshold:
            continue
        if m is None:
            Ks = [np.ones((Ga, Ga)) for Ga, _, _ in grids]
        else:
            Ks = []
            for a, (Ga, off, trivial) in enumerate(grids):
                i = np.arange(Ga)
                Ks.append(kap[a, m][(i[:, None] - i[None, :]) + R])
        mu = U1[0][np.outer(nv_axes[0], nv_axes[1]).astype(np.int64)]     # no-signal mean per unit
        Kmu = Ks[0] @ mu @ Ks[1].T
        total = float(np.sum(mu * Kmu)) + 2.0 * float(np.sum(epsbar * Kmu))
        # sum_delta W(delta) K(delta)
        if spec.periodic:
            d0 = np.arange(W.shape[0])
            d1 = np.arange(W.shape[1])
        else:
            d0 = np.arange(W.shape[0]) - (G0 - 1)
            d1 = np.arange(W.shape[1]) - (G1 - 1)
        if m is None:
            total += float(np.sum(W)) + float(np.sum(C0 + dC))
        else:
            Kd = np.outer(kap[0, m][d0 + R], kap[1, m][d1 + R])
            total += float(np.sum(W * Kd))
            e = np.arange(-2, 3)
            Ke = np.outer(kap[0, m][e + R], kap[1, m][e + R])
            total += float(np.sum((C0 + dC) * Ke))
        out[k] = total
    return out


_MU1 = 1.0 / math.sqrt(2.0 * math.pi)          # E ReLU(g), g ~ N(0, 1)
_VAR1 = 0.5 - 0.5 / math.pi                    # Var ReLU(g)


def _rectified_pooling_stride1(spec: ScaleNetSpec, sigma: float, kap, R: int) -> np.ndarray:
    """E|g_k(x + r) - g_k(x)|^2, k = 1..k~, for rectified input noise r = ReLU(eta) (``rectify="noise"``), exact.

    x + r >= 0, so no ReLU of the pooling stage acts and g_k(x + r) - g_k(x) = A^k r, a linear map of i.i.d.
    pixels of mean mu = sigma/sqrt(2 pi) and variance v = sigma^2 (1/2 - 1/(2 pi)); with full (or circular)
    padding sum_u A^k_{up} A^k_{uq} = K_2k(p - q) (`theory.scale_exact`), so
    E|A^k r|^2 = v N K_2k(0) + mu^2 sum_{p,q} K_2k(p - q), both products over the axes: the signal never enters."""
    n, dim, kt = spec.n, spec.dim, spec.kt
    mu2, v = (sigma * _MU1) ** 2, sigma * sigma * _VAR1
    d = np.arange(-(n - 1), n)
    out = np.full(kt + 1, np.nan)
    for k in range(1, kt + 1):
        k0 = kap[0, 2 * k, R]
        pair = float(np.sum((n - np.abs(d)) * kap[0, 2 * k, d + R]))
        out[k] = v * n ** dim * k0 ** dim + mu2 * pair ** dim
    return out


def _rectified_threshold_stride1(spec: ScaleNetSpec, sigma: float) -> float:
    """E|g_{k~+1}(x + r) - g_{k~+1}(x)|^2 for rectified input noise (stride 1), exact up to the lattice sums of
    `theory.rectified_sums.weighted_rectified_moments` (~1e-12).

    A threshold unit u computes ReLU(h_u + U_u - 1) with h_u = 3^(dim k~) (A^k~ x)_u = sum_i T~(u - r_i) (an
    integer, >= 1 on the union of the two xi-boxes and 0 outside) and U_u = sum_p T~(u - p) r_p >= 0 (T~ the
    integer trinomial weights, truncated at the frame).  Inside the union the ReLU never acts: the difference is U_u
    exactly (E U_u^2 closed form); outside it is ReLU(U_u - 1).  A unit lies outside for a fraction
    C(Npos - b_u, 2) / C(Npos, 2) of the pairs, b_u the number of allowed pixel positions in its xi-box."""
    n, dim, kt = spec.n, spec.dim, spec.kt
    T = np.ones(1)
    for _ in range(kt):
        T = np.convolve(T, np.ones(3))                   # T~ on [-kt, kt] (integers)
    per = spec.periodic
    units = np.arange(n) if per else np.arange(-kt, n + kt)
    lo, hi = (0, n - 1) if per else (1, n - 2)
    profiles, boxes = [], []
    for u in units:
        p = np.arange(n)
        dd = (p - u + n // 2) % n - n // 2 if per else p - u
        inside = np.abs(dd) <= kt
        profiles.append(np.sort(T[dd[inside] + kt]))
        r = np.arange(lo, hi + 1)
        dr = (r - u + n // 2) % n - n // 2 if per else r - u
        boxes.append(int(np.sum(np.abs(dr) <= kt)))
    Npos = spec.n_positions
    pairs = Npos * (Npos - 1) / 2.0
    mu, v = sigma * _MU1, sigma * sigma * _VAR1
    cache: dict = {}
    total = 0.0
    for idx in np.ndindex(*(len(units),) * dim):
        w = profiles[idx[0]]
        b = boxes[idx[0]]
        if dim == 2:
            w = np.outer(w, profiles[idx[1]]).ravel()
            b *= boxes[idx[1]]
        key = tuple(np.sort(w))
        if key not in cache:
            ez, ez2, _ = _rs.weighted_rectified_moments(w, sigma, 1.0)
            m, s2 = mu * float(w.sum()), v * float(w @ w)
            cache[key] = (s2 + m * m, ez2)
        inside2, outside2 = cache[key]
        q = (Npos - b) * (Npos - b - 1) / 2.0 / pairs
        total += (1.0 - q) * inside2 + q * outside2
    return total


def _strided(spec: ScaleNetSpec, moves: str = "lazy", rectify: str = "none", preserve_blocks: bool = False):
    n, s, dim, kt, L = spec.n, spec.stride, spec.dim, spec.kt, spec.layers
    mv_, mw_ = _move_table(moves, dim)
    numD, normsq, same_frac, npairs = _ex.strided_sums(n, s, dim, kt, L, mv_, mw_, preserve_blocks)
    N = n ** dim
    sigma = math.sqrt(numD[0] / N)
    # mean maps
    mean_sq = np.zeros(L + 2)
    q = normsq[L + 1]
    mean_sq[0] = 4.0 / N
    for l in range(1, L + 1):
        if l <= kt:
            mean_sq[l] = 4.0 * s ** (l * dim) / N
        else:
            b = s ** kt if l == kt + 1 else s ** (l - 1)
            mean_sq[l] = q * q / (n // b) ** dim
    mean_sq[L + 1] = q * q
    # noise: independent layer-1 units (block sums of s^dim pixels), g ~ N(0, s^dim sigma^2)
    sd = sigma * math.sqrt(s ** dim)
    Npix = n ** dim
    fA = (s ** dim - 1) / (Npix - 1)            # both pixels in the same layer-1 block

    def moments(shift):
        def m_(c):   # E[u] for a unit with c active pixels, u = ReLU(c + shift + g) - ReLU(c + shift)
            return sd * float(relu_mean((c + shift) / sd)) - max(c + shift, 0.0)

        def v_(c):
            e1 = sd * float(relu_mean((c + shift) / sd))
            return sd * sd * float(relu_second_moment((c + shift) / sd)) - e1 * e1
        return m_, v_

    def num(M, Nl, b, m_, v_):
        """sum over Nl output units, each summing M independent layer-1 units; b = block side."""
        fsame = (b ** dim - 1) / (Npix - 1)
        fB, fC = fsame - fA, 1.0 - fsame
        mu, v0 = m_(0), v_(0)
        base = Nl * (M * M * mu * mu + M * v0)
        cA = (mu * (M - 1) + m_(2)) ** 2 - (M * mu) ** 2 + v_(2) - v0
        cB = ((M - 2) * mu + 2 * m_(1)) ** 2 - (M * mu) ** 2 + 2 * (v_(1) - v0) if M >= 2 else 0.0
        cC = 2 * (((M - 1) * mu + m_(1)) ** 2 - (M * mu) ** 2 + v_(1) - v0)
        return base + fA * cA + fB * cB + fC * cC

    numG = np.full(L + 2, np.nan)
    m0, v0_ = moments(0.0)
    for l in range(1, kt + 1):
        if rectify == "noise":   # block sums of x + ReLU(eta): no ReLU acts; N / s^(l dim) sums of s^(l dim) pixels
            numG[l] = N * sigma * sigma * _VAR1 + N * s ** (l * dim) * (sigma * _MU1) ** 2
        else:
            numG[l] = num(s ** ((l - 1) * dim), (n // s ** l) ** dim, s ** l, m0, v0_)
    # Threshold layer and after: each threshold unit z = ReLU(S - 1) sums the M = s^(dim (k~-1)) independent
    # layer-1 units of its xi-block, so threshold units are independent across blocks; per block only four
    # configurations occur (no active pixel; one; two in different layer-1 blocks; two in the same one).  Their
    # mean shift mu = E z' - z and variance v are exact for M = 1 (Gaussian moments) and a deterministic
    # lattice convolution for M >= 2 (`theory.rectified_sums`).  The output ReLU never acts: f is the sum of the
    # non-negative threshold units.
    xi = s ** kt
    M = s ** ((kt - 1) * dim)
    clean = {"none": 0.0, "one": 0.0, "two_apart": 1.0, "two_same": 1.0}
    signal = {"none": [], "one": [1.0], "two_apart": [1.0, 1.0], "two_same": [2.0]}
    mv = {}
    if rectify == "noise":
        # z = ReLU(c + S - 1), S the sum of the xi^dim rectified pixels of the block: c >= 1 leaves the ReLU
        # inactive (shift S exactly), c = 0 needs the law of S below 1 (`theory.rectified_sums`)
        nxi = xi ** dim
        e1, e2, _ = _rs.weighted_rectified_moments(np.ones(nxi), sigma, 1.0)
        mS, vS = nxi * sigma * _MU1, nxi * sigma * sigma * _VAR1
        mv = {"none": (e1, e2 - e1 * e1), "one": (mS, vS), "two_apart": (mS, vS), "two_same": (mS, vS)}
        signal = {}
    for cfg, cs in signal.items():
        if cfg == "two_apart" and M < 2:
            continue
        if M == 1:
            c = cs[0] if cs else 0.0
            e1 = sd * float(relu_mean((c - 1.0) / sd))
            e2 = sd * sd * float(relu_second_moment((c - 1.0) / sd))
        else:
            e1, e2, _ = _rs.biased_relu_moments(cs, M - len(cs), sd, 1.0)
        mv[cfg] = (e1 - clean[cfg], e2 - e1 * e1)
    mv.setdefault("two_apart", (0.0, 0.0))
    f_xi = (xi ** dim - 1) / (Npix - 1)        # both pixels in the same xi-block
    for l in range(kt + 1, L + 2):
        b = n if l == L + 1 else (xi if l == kt + 1 else s ** (l - 1))
        Mb, Nl = (b // xi) ** dim, (n // b) ** dim
        f_b = (b ** dim - 1) / (Npix - 1)
        (mu0, v0), (mu1, v1), (mu11, v11), (mu2, v2) = (mv[c] for c in ("none", "one", "two_apart", "two_same"))
        base = Nl * ((Mb * mu0) ** 2 + Mb * v0)

        def one_block(mu, v):   # one unit whose blocks are all empty but one, of mean shift mu and variance v
            return ((Mb - 1) * mu0 + mu) ** 2 - (Mb * mu0) ** 2 + v - v0
        c_same = ((Mb - 2) * mu0 + 2 * mu1) ** 2 - (Mb * mu0) ** 2 + 2 * (v1 - v0) if Mb >= 2 else 0.0
        numG[l] = (base + fA * one_block(mu2, v2) + (f_xi - fA) * one_block(mu11, v11)
                   + (f_b - f_xi) * c_same + (1.0 - f_b) * 2 * one_block(mu1, v1))
    return numD, normsq, mean_sq, numG, sigma


def exact_layers_seconds(xi: int, n: int, *, dim: int = 1, stride: int = 1, layers: int = 10) -> float:
    """Estimated seconds of :func:`exact_layers` (2 cores): ``11 (n R / 1856)^2`` with ``R = n + 2 xi + 2 layers +
    12`` in 2D with stride 1 (measured 0.8, 1.2, 4.2, 11 and 117 s at n = 12, 16, 24, 32 (xi = 3, layers = 4) and 64;
    the model gives 0.7, 1.2, 4.6, 11 and 107 s); 0 otherwise (the 1D and strided sums take well under a second)."""
    if dim != 2 or stride != 1:
        return 0.0
    R = n + 2 * xi + 2 * layers + 12
    return 11.0 * (n * R / 1856.0) ** 2


def exact_layers(xi: int, n: int, *, dim: int = 1, stride: int = 1, layers: int = 10, periodic: bool = False,
                 include_diagonal: bool = False, with_numerators: bool = False, moves: str = "lazy",
                 rectify: str = "none", preserve_blocks: bool = False,
                 max_seconds: float | None = 60.0) -> list[dict]:
    """Exact D_k, G_k, R_k at every layer k = 1..layers and at the output (k = layers + 1).

    Cost: in 2D with stride 1 the exact sums take about :func:`exact_layers_seconds` (``(n R)^2`` with
    ``R = n + 2 xi + 2 layers + 12``, 11 s at n = 32, 117 s at n = 64 on 2 cores); when that estimate exceeds
    ``max_seconds`` the call is refused up front (ValueError naming n, with the estimate); ``max_seconds=None``
    runs it anyway.

    Returns one dict per layer: k, name ("pool", "threshold", "pool_after", "output"), D, G, R
    (floats; G and R are None after the threshold layer for stride 1 with k~ >= 2, see the
    module docstring) and, with
    `with_numerators`, the numerators D_num, G_num and the denominator den.

    Conventions (defaults ours; `check_conventions`, docs/reference-conventions.md): ``moves`` the per-pixel move
    law of the diffeo (`move_law`: "lazy" -1/0/+1, "always" +-1 per axis, "direction" a rounded unit step);
    ``rectify="noise"`` feeds x + ReLU(eta) (sigma from the same `noise_sigma`): exact in the pooling stage and at
    the threshold layer for stride 1 (None after it: overlapping threshold units see correlated sums of rectified
    pixels, with no closed-form joint law) and at every layer for strided networks; ``preserve_blocks`` (strided
    only) undoes a move that leaves the pixel's xi-block, so D_k = 0 for k >= k~.
    """
    spec = check_params(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic)
    include_diagonal = check_flag("include_diagonal", include_diagonal)
    with_numerators = check_flag("with_numerators", with_numerators)
    moves, rectify, preserve_blocks = check_conventions(moves, rectify, preserve_blocks, stride=spec.stride)
    if max_seconds is not None:
        limit = check_real(max_seconds, "max_seconds", 0.0, low_inclusive=False)
        est = exact_layers_seconds(spec.xi, spec.n, dim=spec.dim, stride=spec.stride, layers=spec.layers)
        if est > limit:
            raise ArgumentValueError("n", f"n is too large for the exact 2D sums: n={spec.n} (xi={spec.xi}, "
                                          f"layers={spec.layers}) takes about {est:.0f} s (cost ~ (n R)^2, "
                                          f"R = n + 2 xi + 2 layers + 12), more than max_seconds={limit:g}; pass "
                                          "max_seconds=None to run it anyway, or use a smaller n")
    L, kt = spec.layers, spec.kt
    if spec.stride == 1:
        R = spec.n + 2 * spec.xi + 2 * L + 12
        kap, F1, F2 = _ex.all_tables(spec.n, spec.dim, spec.periodic, 2 * L + 2, R)
        mv, mw = _move_table(moves, spec.dim)
        numD, normsq, ov_mean, _ = _ex.clean_sums(spec.n, kt, spec.dim, spec.periodic, L, kap, F1, F2, R, mv, mw)
        mean_sq = _mean_map_sq_stride1(spec, kap, R, ov_mean)
        sigma = math.sqrt(numD[0] / spec.n ** spec.dim)
        numG = np.full(L + 2, np.nan)
        if rectify == "noise":
            numG[1: kt + 1] = _rectified_pooling_stride1(spec, sigma, kap, R)[1:]
            numG[kt + 1] = _rectified_threshold_stride1(spec, sigma)
        else:
            numG[1: kt + 1] = _noise_numerators_stride1(spec, sigma, kap, R)[1:]
            if kt == 1:
                numG[kt + 1:] = _noise_numerators_stride1(spec, sigma, kap, R, threshold=True)
    else:
        numD, normsq, mean_sq, numG, sigma = _strided(spec, moves, rectify, preserve_blocks)
    P = spec.n_pairs
    factor = 1.0 if include_diagonal else P / (P - 1.0)
    den = 2.0 * (normsq - mean_sq) * factor
    rows = []
    for k in range(1, L + 2):
        name = "pool" if k <= kt else ("threshold" if k == kt + 1 else ("output" if k == L + 1 else "pool_after"))
        D = float(numD[k] / den[k])
        G = None if np.isnan(numG[k]) else float(numG[k] / den[k])
        row = {"k": k, "name": name, "D": D, "G": G, "R": (None if G is None else D / G)}
        if with_numerators:
            row.update(D_num=float(numD[k]), G_num=(None if G is None else float(numG[k])), den=float(den[k]),
                       sigma=sigma)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# sympy: kernels, n -> infinity limits of the pooling stage, asymptotics

k_sym, d_sym, j_sym = sp.symbols("k d j", integer=True, nonnegative=True)


def trinomial_kernel(m, d):
    """kappa_m(d) = T(m, d)/3^m, T(m, d) = sum_j m!/(j!(j+|d|)!(m-2j-|d|)!) (coefficient of x^d in
    (1 + x + 1/x)^m): the m-layer response of the filter (1,1,1)/3 to a unit pixel.  ``m`` (an integer >= 0) and
    ``d`` (an integer) may be sympy expressions."""
    if not isinstance(m, sp.Basic):
        m = _int("m", m, 0)
    d = sp.Abs(d) if isinstance(d, sp.Basic) else abs(_int("d", d))
    j = sp.Dummy("j", integer=True, nonnegative=True)
    return sp.Sum(sp.factorial(m) / (sp.factorial(j) * sp.factorial(j + d) * sp.factorial(m - 2 * j - d)),
                  (j, 0, sp.floor((m - d) / 2))) / 3 ** m


def pooling_D_expression():
    """D_k in the pooling stage (k <= k~), 1D, non-periodic frame, as a sympy expression in k, n.

    With kappa = kappa_2k (`trinomial_kernel`), N1 = n - 2 interior sites, ordered pairs at
    displacement Delta weighted by (N1 - |Delta|) out of W = N1 (N1 - 1), and the four points
    p = (m1, Delta + m2, 0, Delta) with weights c = (1, 1, -1, -1):
      num_k = (2/W) sum_{Delta=1}^{N1-1} (N1 - Delta) (1/9) sum_{m1,m2} sum_{ij} c_i c_j kappa(p_i - p_j)
      E|g_k|^2 = 2 kappa(0) + (2/W) sum_{Delta=1}^{N1-1} 2 (N1 - Delta) kappa(Delta)
      |E g_k|^2 = (2/N1)^2 [N1 kappa(0) + 2 sum_{d=1}^{N1-1} (N1 - d) kappa(d)]
      D_k = num_k / (2 (E|g_k|^2 - |E g_k|^2) P/(P - 1)),  P = W/2.
    (The sum over Delta < 0 equals the one over Delta > 0 by reflection.)  Substitute integers
    for k and n and apply `evaluate_sums` to get the exact rational value."""
    k, n = sp.symbols("k n", integer=True, positive=True)
    D = sp.Symbol("Delta", integer=True, positive=True)
    N1 = n - 2
    W = N1 * (N1 - 1)
    P = W / 2

    def kap(x):
        return trinomial_kernel(2 * k, x)

    Q = 0
    for m1 in (-1, 0, 1):
        for m2 in (-1, 0, 1):
            pts = [m1, D + m2, 0, D]
            co = [1, 1, -1, -1]
            for i in range(4):
                for j in range(4):
                    Q += co[i] * co[j] * kap(pts[i] - pts[j])
    num = 2 / W * sp.Sum((N1 - D) * Q / 9, (D, 1, N1 - 1))
    norm = 2 * kap(0) + 2 / W * sp.Sum(2 * (N1 - D) * kap(D), (D, 1, N1 - 1))
    mean = (2 / N1) ** 2 * (N1 * kap(0) + 2 * sp.Sum((N1 - D) * kap(D), (D, 1, N1 - 1)))
    return {"k": k, "n": n, "D": num / (2 * (norm - mean) * P / (P - 1))}


def evaluate_sums(expr):
    """Exact value of an expression with nested *finite* sympy Sums once every limit is an
    integer (expands innermost-last, term by term; much faster than Sum.doit here).  A sum whose upper limit is
    below its lower one is empty (0; sympy's Sum.doit uses Karr's convention instead, under which such a sum is
    minus the sum over the gap, so the kernels of `pooling_D_expression` need this function).  A limit that is
    not an integer after substitution raises ValueError."""
    if isinstance(expr, sp.Sum):
        *inner, (var, lo, hi) = expr.limits            # sympy merges nested Sums; the last limit is the outermost
        lo, hi = (evaluate_sums(b) for b in (lo, hi))
        if not (lo.is_integer and hi.is_integer and lo.is_number and hi.is_number):
            raise ArgumentValueError("expr",
                                     f"expr must have integer summation limits after substitution, got {var} in [{lo}, {hi}]")
        body = sp.Sum(expr.function, *inner) if inner else expr.function
        return sp.Add(*[evaluate_sums(body.subs(var, v)) for v in range(int(lo), int(hi) + 1)])
    if expr.args:
        return expr.func(*[evaluate_sums(a) for a in expr.args])
    return expr


def _kappa_exact(m: int, d: int) -> sp.Rational:
    d = abs(d)
    s = sum(math.factorial(m) // (math.factorial(j) * math.factorial(j + d) * math.factorial(m - 2 * j - d))
            for j in range(0, (m - d) // 2 + 1)) if d <= m else 0
    return sp.Rational(s, 3 ** m)


def _law_rationals(moves: str, dim: int):
    """(move vectors, exact probabilities as sympy Rationals, P(stay) as a Rational) of `move_law`."""
    v, w = move_law(moves, dim)
    tot = int(w.sum())
    probs = [sp.Rational(int(x), tot) for x in w]
    stay = sum((p for m, p in zip(v, probs) if not np.any(m)), sp.Integer(0))
    return [tuple(int(c) for c in m) for m in v], probs, stay


def pooling_limit_expressions(dim: int = 1, stride: int = 1, *, moves: str = "lazy", rectify: str = "none") -> dict:
    """n -> infinity limits (at fixed E|eta|^2) of D_k, G_k in the pooling stage, as sympy.

    Stride 1 (two far-apart pixels dominate the pair average, kappa_2k(m) product over axes):
      D_k = E_m[1 - K_2k(m)/K_2k(0)],  m of law ``moves`` (`move_law`; uniform in {-1,0,1}^dim by default);
      G_k = V [1/(2 pi 3^dim) + sum_{|e|<=2} c(e) K_{2k-2}(e)] / (4 K_2k(0)),
      V = 4 P(m != 0) = E|eta|^2 (4 (1 - 3^-dim) for lazy moves), c(e) the normalised layer-1 covariance
      (arc-cosine kernel minus 1/(2 pi), correlation rho = prod_a (3-|e_a|)/3, variance 3^-dim);
      with ``rectify="noise"`` (x + ReLU(eta): the pooling stage is linear, `exact_layers`)
      G_k = V/(8 pi K_2k(0)) + V (pi - 1)/(8 pi)  (pixel mean sigma/sqrt(2 pi) preserved by the pooling, variance
      sigma^2 (1/2 - 1/(2 pi)) reduced by K_2k(0)).
    Returned as callables k -> exact sympy number (finite sums of rationals and arc-cosines), k an
    integer >= 1; the strided limits are simple enough to read off directly (`asymptotic_laws`).
    """
    dim = check_dim(dim)
    if _int("stride", stride, 1) != 1:
        raise ArgumentValueError("stride",
                                 f"stride must be 1 (the strided limits are in asymptotic_laws), got {stride}")
    moves, rectify, _ = check_conventions(moves, rectify)
    mvs, probs, stay = _law_rationals(moves, dim)
    V = 4 * (1 - stay)

    def K(m, e):
        out = sp.Integer(1)
        for a in range(dim):
            out *= _kappa_exact(m, e[a])
        return out

    def D(k: int):
        k = _int("k", k, 1)
        if moves == "lazy":
            return sum((1 - K(2 * k, m) / K(2 * k, (0,) * dim)) for m in mvs) / len(mvs)
        return sum(p * (1 - K(2 * k, m) / K(2 * k, (0,) * dim)) for m, p in zip(mvs, probs))

    def c(e):
        rho = sp.Integer(1)
        for a in range(dim):
            rho *= sp.Rational(max(0, 3 - abs(e[a])), 3)
        t = sp.acos(rho)
        return (sp.sin(t) + (sp.pi - t) * rho) / (2 * sp.pi) / 3 ** dim - 1 / (2 * sp.pi * 3 ** dim)

    es = [tuple(v) for v in np.array(np.meshgrid(*([range(-2, 3)] * dim), indexing="ij")).reshape(dim, -1).T]

    def G(k: int):
        k = _int("k", k, 1)
        if rectify == "noise":
            return V / (8 * sp.pi * K(2 * k, (0,) * dim)) + V * (sp.pi - 1) / (8 * sp.pi)
        return V * (1 / (2 * sp.pi * 3 ** dim) + sum(c(e) * K(2 * k - 2, e) for e in es)) / (4 * K(2 * k, (0,) * dim))

    return {"D": D, "G": G, "V": V}


def asymptotic_laws(dim: int = 1, stride: int = 1, *, moves: str = "lazy", rectify: str = "none") -> dict:
    """Leading large-k laws (n -> infinity first) with constants, as sympy expressions in k.

    Stride 1: kappa_2k(m)/kappa_2k(0) = 1 - m^2 3/(8k) + O(k^-2) (variance 4k/3 of 2k steps), and
    K_2k(0) ~ (8 pi k/3)^(-dim/2), so
      D_k ~ E|m|^2 * 3/(8k) = 1/(4k) (1D), 1/(2k) (2D);
      G_k ~ V (8 pi k/3)^(dim/2) / (8 pi 3^dim): (1/(9 pi)) sqrt(8 pi k/3) (1D), 32 k/243 (2D);
      R_k = D_k/G_k ~ k^(-3/2) (1D), k^(-2) (2D).
    G_next adds the O(1) term (V/4) sum_e c(e) (pooled layer-1 fluctuations), which makes the
    1D law accurate at moderate k (the leading term alone converges like k^(-1/2)).
    Stride s (block sums): a move of one step (probability 2/3 per axis) leaves its s^k block w.p. s^-k,
    so a pixel changes block w.p. 1 - (1 - (2/3) s^-k)^dim, which is D_k as n -> infinity at every k
    (``D_limit``; the two pixels in distinct blocks, |f(tau x) - f(x)|^2 = 2 per pixel that changes block
    against E|f(x1) - f(x2)|^2 = 4), with leading term D_k ~ (2/3) dim s^-k;  layer-k units sum
    s^(k-1) dim independent rectified units of mean sigma s^(dim/2)/sqrt(2 pi), so
    G_k ~ V s^((k-1) dim)/(8 pi):  s^k (1D), s^(2k) (2D);  R_k ~ s^-(dim+1)k.
    Other conventions (`check_conventions`): ``moves`` replaces E|m|^2 = 2 dim/3 by that of the law (dim for
    "always", 4/3 for "direction" in 2D), V = 4 P(m != 0) (4 for both), and the block-leaving probability by
    E_m prod_a (1 - |m_a| s^-k); ``rectify="noise"`` makes the pooled mean that of the rectified pixels
    (sigma/sqrt(2 pi), not the first layer's sigma 3^(-dim/2)/sqrt(2 pi)): G_k ~ V (8 pi k/3)^(dim/2)/(8 pi)
    (stride 1), V s^(k dim)/(8 pi) (strided), both with the next-order term V (pi - 1)/(8 pi) (pixel variance left
    after pooling), i.e. 3^dim (s^dim) times the default's leading G.
    ``dim`` must be 1 or 2 and ``stride`` an integer >= 1 (ValueError otherwise).
    """
    dim = check_dim(dim)
    stride = _int("stride", stride, 1)
    moves, rectify, _ = check_conventions(moves, rectify)
    k = sp.Symbol("k", positive=True)
    mvs, probs, stay = _law_rationals(moves, dim)
    V = 4 * (1 - sp.Rational(1, 3 ** dim)) if moves == "lazy" else 4 * (1 - stay)
    if stride == 1:
        Em2 = sp.Rational(2 * dim, 3) if moves == "lazy" else sum(p * sum(c * c for c in m)
                                                                  for m, p in zip(mvs, probs))
        D = Em2 * sp.Rational(3, 8) / k
        if rectify == "noise":
            G = V * (8 * sp.pi * k / 3) ** sp.Rational(dim, 2) / (8 * sp.pi)
            return {"k": k, "D": sp.simplify(D), "G": G, "G_next": G + V * (sp.pi - 1) / (8 * sp.pi),
                    "R": sp.simplify(D / G)}
        G = V * (8 * sp.pi * k / 3) ** sp.Rational(dim, 2) / (8 * sp.pi * 3 ** dim)
        # next order: the layer-1 fluctuations, pooled, tend to a constant (sum of covariances)
        es = np.array(np.meshgrid(*([range(-2, 3)] * dim), indexing="ij")).reshape(dim, -1).T
        csum = sp.Integer(0)
        for e in es:
            rho = sp.Integer(1)
            for a in range(dim):
                rho *= sp.Rational(max(0, 3 - abs(int(e[a]))), 3)
            t = sp.acos(rho)
            csum += ((sp.sin(t) + (sp.pi - t) * rho) / (2 * sp.pi) - 1 / (2 * sp.pi)) / 3 ** dim
        G_const = sp.nsimplify(V / 4) * csum
        return {"k": k, "D": sp.simplify(D), "G": G, "G_next": G + G_const, "R": sp.simplify(D / G)}
    else:
        s = sp.Integer(stride)
        if moves == "lazy":
            D = sp.Rational(2, 3) * dim * s ** (-k)
            D_limit = 1 - (1 - sp.Rational(2, 3) * s ** (-k)) ** dim
        else:
            D = sum(p * sum(abs(c) for c in m) for m, p in zip(mvs, probs)) * s ** (-k)
            D_limit = 1 - sum(p * sp.Mul(*[(1 - abs(c) * s ** (-k)) for c in m]) for m, p in zip(mvs, probs))
        G = V * s ** ((k - 1) * dim) / (8 * sp.pi) if rectify == "none" else V * s ** (k * dim) / (8 * sp.pi)
        # next order: the unpooled variance of the (n/s)^dim rectified layer-1 units (or of the rectified pixels)
        return {"k": k, "D": sp.simplify(D), "D_limit": D_limit, "G": sp.simplify(G),
                "G_next": G + V * (sp.pi - 1) / (8 * sp.pi), "R": sp.simplify(D / G)}


# ----------------------------------------------------------------------------------------------
# CLI


def cli_parser() -> argparse.ArgumentParser:
    """The geometry flags shared by ``python -m theory.scale_detection`` and ``python -m numerics.scale_detection``."""
    p = argparse.ArgumentParser(prog="python -m theory.scale_detection",
                                description="Exact D_k, G_k, R_k of the hand-constructed scale-detection network.")
    p.add_argument("--xi", type=int, default=7,
                   help="the scale xi: y = +1 iff the two active pixels are closer than xi (default 7)")
    p.add_argument("--n", type=int, default=32, help="pixels per side of the input (default 32)")
    p.add_argument("--dim", type=int, default=1, choices=(1, 2), help="1D line or 2D image (default 1)")
    p.add_argument("--stride", type=int, default=1,
                   help="stride s of the network; s >= 2 is the block task on the torus (default 1)")
    p.add_argument("--layers", type=int, default=10,
                   help="depth L of the network; every layer k = 1..L is reported (default 10)")
    p.add_argument("--periodic", action="store_true",
                   help="pixels on the torus, circular padding (default: open frame, one-pixel margin)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def add_convention_flags(p: argparse.ArgumentParser, rectify_choices: tuple = RECTIFY) -> None:
    """The convention flags shared by the two CLIs (defaults ours; docs/reference-conventions.md)."""
    p.add_argument("--moves", choices=list(MOVES), default="lazy",
                   help="per-pixel move law of the diffeo: lazy = -1/0/+1 per axis w.p. 1/3 (default), always = +-1 "
                        "per axis (the authors' 1D script), direction = a rounded random unit step (their 2D code)")
    p.add_argument("--rectify", choices=list(rectify_choices), default="none",
                   help="noise rectification: none = x + eta (default), noise = x + ReLU(eta) (the authors' 1D "
                        "script)" + (", input = ReLU(x + eta) (their constant-filter notebook)"
                                     if "input" in rectify_choices else ""))
    p.add_argument("--preserve-blocks", action="store_true",
                   help="strided networks: undo a move that leaves the pixel's xi-block (the authors' "
                        "label-preserving diffeo of the block task)")


def cli_error(p: argparse.ArgumentParser, args: argparse.Namespace, e: ValueError) -> int:
    """Report a ValueError of the library as argparse does for the matching flag, "prog: error: argument --name:
    ..." on stderr (underscores as dashes); returns the exit status 2. The argument is ``e.argument``
    (:class:`theory.arguments.ArgumentError`); a ValueError without one is reported without a flag."""
    msg = str(e)
    name = getattr(e, "argument", None) or ""
    flag = name.replace("_", "-")
    print(f"{p.prog}: error: {f'argument --{flag}: ' if name in vars(args) else ''}{msg}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    p = cli_parser()
    add_convention_flags(p)
    args = p.parse_args(argv)
    try:
        rows = exact_layers(args.xi, args.n, dim=args.dim, stride=args.stride, layers=args.layers,
                            periodic=args.periodic, moves=args.moves, rectify=args.rectify,
                            preserve_blocks=args.preserve_blocks)
    except ValueError as e:
        return cli_error(p, args, e)
    if args.json:
        print(json.dumps({"layers": rows}))
    else:
        print(f"{'k':>3} {'name':>10} {'D':>12} {'G':>12} {'R':>12}")
        for r in rows:
            g = "-" if r["G"] is None else f"{r['G']:.6g}"
            rr = "-" if r["R"] is None else f"{r['R']:.6g}"
            print(f"{r['k']:>3} {r['name']:>10} {r['D']:>12.6g} {g:>12} {rr:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
