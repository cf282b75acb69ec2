r"""Data augmentation by maximum-entropy diffeomorphisms (Petrini et al. 2021), torchvision v2 / kornia style.

:class:`RandomDiffeo` is a ``torch.nn.Module`` that takes one tensor (or numpy array):

* **shapes** (torchvision v2): ``(H, W)`` and ``(C, H, W)`` are one image, deformed by one field shared by its
  channels; ``(B, C, H, W)`` is a batch, one independent field per image shared by its channels (kornia's
  ``same_on_batch=False``). Subclasses of ``torch.Tensor`` (``tv_tensors.Image``-like) come back with their type;
* **dtypes**: as :func:`numerics.diffeo.deform` (uint8 in, uint8 out; float16 / bfloat16 deformed in float32);
  a CPU tensor that needs no gradient runs the numba kernel, a GPU tensor or one that requires grad runs torch;
* **parameters**: fixed ``T`` and ``c``, or the reference sampler (``transform.Diffeo`` of
  ``pcsl-epfl/diffeomorphism``) with ``c_range``: a cut-off ``c = floor(c_min + B_c (c_max + 1 - c_min))`` and a
  temperature ``T = T_min + B_T (T_max - T_min)`` inside the window of that cut-off, with
  :math:`B \sim \mathrm{Beta}(\alpha, \beta)`, :math:`\alpha = s r/(r+1)`, :math:`\beta = s/(r+1)` ("peakedness"
  s and "bias towards the maximum" r); one (c, T) per call as in the reference (``draw="call"``) or one per
  sample (``draw="sample"``);
* ``p``: each sample is deformed with probability p (the others are returned unchanged); ``same_on_batch``: one
  decision, one (c, T) and one field for the whole batch (what the reference does to a batch tensor);
* **replay**: ``last_params`` holds the :class:`DiffeoParams` of the last call (applied mask, c, T, the sampled
  :class:`numerics.diffeo.SineDiffeo`); ``t(mask, params=t.last_params)`` or
  ``t.replay(mask, interp="nearest")`` applies the same deformation to another tensor, and
  ``params.approximate_inverse()`` undoes it to first order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from numerics import diffeo as nd
from numerics.seeds import generator
from theory.arguments import check_flag

__all__ = ["DRAWS", "DiffeoParams", "RandomDiffeo"]

#: when (c, T) is drawn: once per call (the reference) or once per sample
DRAWS = ("call", "sample")
_NUMPY_DTYPES = tuple(np.dtype(t) for t in (np.float16, np.float32, np.float64, np.uint8))


def _beta_params(pair, name: str) -> tuple[float, float]:
    """(alpha, beta) = (s r/(r+1), s/(r+1)) from ``pair = (s, r)``, both finite and > 0."""
    try:
        s, r = pair
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a pair (s, r) of Beta parameters, got {pair!r}") from exc
    s, r = (nd.check_real(v, f"{name} ({k})", 0.0, low_inclusive=False) for k, v in (("s", s), ("r", r)))
    return s * r / (r + 1), s / (r + 1)


def _probability(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"p (probability of applying) must be a real number in [0, 1], got {p!r}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p (probability of applying) must be in [0, 1], got {p!r}")
    return float(p)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class DiffeoParams:
    """The random parameters of one :class:`RandomDiffeo` call, replayable on another tensor of the same batch
    size and H×W (kornia's ``params``).

    ``applied[b]``: sample b is deformed (False: returned unchanged); ``c[b]``, ``T[b]``: its cut-off and
    temperature (drawn for every sample, used where ``applied``); ``diffeo``: the fields of the deformed samples
    (``diffeo.batch`` = their number, or 1 with ``same_on_batch``), None if no sample is deformed.
    """

    applied: np.ndarray
    c: np.ndarray
    T: np.ndarray
    diffeo: nd.SineDiffeo | None
    height: int
    width: int
    same_on_batch: bool

    @property
    def batch(self) -> int:
        return int(self.applied.size)

    def approximate_inverse(self) -> DiffeoParams:
        """The same parameters with every field negated (:meth:`numerics.diffeo.SineDiffeo.approximate_inverse`):
        replaying them on the output undoes the deformation to first order in the displacement."""
        inverse = None if self.diffeo is None else self.diffeo.approximate_inverse()
        return dataclasses.replace(self, diffeo=inverse)


class RandomDiffeo(torch.nn.Module):
    """Random maximum-entropy diffeomorphism of an image or a batch (module docstring for the conventions).

    Either give ``T`` and ``c`` (fixed: T >= 0, c >= 1), or ``c_range=(c_min, c_max)`` (integers,
    1 <= c_min <= c_max, no ``T``) with Beta laws ``(s_c, r_c)`` for c and ``(s_T, r_T)`` for the position of T
    inside ``temperature_range(n, c, method=window)`` (n = max(H, W)). Every c of the range must have a non-empty
    window for the image side n (paper window: c_max < 2n/π); this is checked for the whole range the first time
    a side n is seen, so an over-large ``c_range`` raises ``ValueError`` on the first call, whatever c would have
    been drawn. c = 1 (the reference's default ``cutmin=1``) has no ln-c window (the reference divides by
    ln 1 = 0 there); its T is drawn in :func:`numerics.diffeo.single_mode_temperature_range` for every ``window``.

    ``p``: probability that a sample is deformed; ``same_on_batch``: one decision, one (c, T) and one field for the
    whole (B, C, H, W) batch; ``draw``: ``"call"`` (one (c, T) per call, the reference) or ``"sample"`` (one per
    sample; not with ``same_on_batch``). ``cutoff``, ``interp``: as :func:`numerics.diffeo.deform`. ``seed``: an
    int or a numpy Generator seeds the whole sequence of calls (every ``DataLoader`` worker then repeats the same
    sequence); None (default) seeds each call from torch's global generator, so ``torch.manual_seed`` and the
    per-worker seeding of a ``DataLoader`` apply, as for torchvision and kornia transforms.

    The reference ``transform.Diffeo(sT, rT, scut, rcut, cutmin, cutmax)`` on one image is
    ``RandomDiffeo(c_range=(cutmin, cutmax), beta_c=(scut, rcut), beta_T=(sT, rT))``; on a batch tensor the
    reference shares one field across the batch: add ``same_on_batch=True``.
    """

    def __init__(
        self,
        T: float | None = None,
        c: float | None = None,
        *,
        c_range: tuple[int, int] | None = None,
        beta_c: tuple[float, float] = (2.0, 1.0),
        beta_T: tuple[float, float] = (2.0, 1.0),
        p: float = 1.0,
        same_on_batch: bool = False,
        draw: str = "call",
        cutoff: str = "code",
        interp: str = "linear",
        window: str = "paper",
        seed: Any = None,
    ) -> None:
        super().__init__()
        if c_range is None:
            if c is None:
                raise ValueError("c or c_range must be given (exactly one of them)")
            if T is None:
                raise ValueError("T must be given with a fixed c")
            T = nd.check_real(T, "T", 0.0)
            c = nd.check_real(c, "c", 1.0)
        else:
            if c is not None:
                raise ValueError("c_range and c are exclusive: give a fixed c or a range, not both")
            if T is not None:
                raise ValueError("T must not be given with c_range: T is drawn inside the window of the drawn c")
            try:
                lo, hi = c_range
            except (TypeError, ValueError) as exc:
                raise ValueError(f"c_range must be a pair (c_min, c_max), got {c_range!r}") from exc
            ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in (lo, hi))
            if not (ints and 1 <= lo <= hi):
                raise ValueError(f"c_range must be integers 1 <= c_min <= c_max, got {c_range!r}")
            c_range = (int(lo), int(hi))
        self.T, self.c, self.c_range = T, c, c_range
        self._ac, self._bc = _beta_params(beta_c, "beta_c")
        self._aT, self._bT = _beta_params(beta_T, "beta_T")
        self.beta_c, self.beta_T = tuple(beta_c), tuple(beta_T)
        self.p = _probability(p)
        self.same_on_batch = check_flag("same_on_batch", same_on_batch)
        self.draw = nd.check_choice(draw, "draw", DRAWS)
        if self.same_on_batch and draw == "sample":
            raise ValueError("draw='sample' (one (c, T) per sample) contradicts same_on_batch=True (one field for the "
                             "batch): choose one")
        self.cutoff = nd.check_choice(cutoff, "cutoff", nd.CUTOFFS)
        self.interp = nd.check_choice(interp, "interp", nd.INTERPOLATIONS)
        self.window = nd.check_choice(window, "window", nd.METHODS)
        self._rng = None if seed is None else generator(seed)
        self._windows: dict[int, dict[int, tuple[float, float]]] = {}
        self.last_params: DiffeoParams | None = None

    def extra_repr(self) -> str:
        if self.c_range is None:
            law = f"T={self.T!r}, c={self.c!r}"
        else:
            law = (f"c_range={self.c_range!r}, beta_c={self.beta_c!r}, beta_T={self.beta_T!r}, "
                   f"window={self.window!r}, draw={self.draw!r}")
        return (f"{law}, p={self.p!r}, same_on_batch={self.same_on_batch!r}, cutoff={self.cutoff!r}, "
                f"interp={self.interp!r}")

    # ------------------------------------------------------------------------------------------ parameters
    def _windows_for(self, n: int) -> dict[int, tuple[float, float]]:
        """{c: (T_min, T_max)} for every c of the range on images of side n (computed once per n)."""
        if n not in self._windows:
            lo, hi = self.c_range
            windows = {}
            for c in range(lo, hi + 1):
                try:
                    if c == 1:
                        windows[c] = nd.single_mode_temperature_range(n, cutoff=self.cutoff)
                    else:
                        windows[c] = nd.temperature_range(n, c, cutoff=self.cutoff, method=self.window)
                except ValueError as exc:
                    what = "includes c = 1, which has no window" if c == 1 else "is too large"
                    raise ValueError(f"c_range={self.c_range!r} {what} for images of side n={n}: {exc}") from exc
            self._windows[n] = windows
        return self._windows[n]

    def _generator(self) -> np.random.Generator:
        """The seeded generator, or (seed=None) a fresh one seeded from torch's global generator, so that
        ``torch.manual_seed`` and the per-worker seeding of a ``DataLoader`` apply as for torchvision transforms."""
        if self._rng is not None:
            return self._rng
        return np.random.default_rng(int(torch.randint(2**62, (), dtype=torch.int64)))

    def draw_parameters(self, n: int, rng: np.random.Generator | None = None) -> tuple[float, float]:
        """(T, c) for one call on images of side n (the larger side)."""
        if self.c_range is None:
            return self.T, self.c
        rng = self._generator() if rng is None else rng
        windows = self._windows_for(n)
        lo, hi = self.c_range
        c = min(int(lo + rng.beta(self._ac, self._bc) * (hi + 1 - lo)), hi)
        t_min, t_max = windows[c]
        return t_min + rng.beta(self._aT, self._bT) * (t_max - t_min), float(c)

    def _draw_per_sample(self, n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(T, c) arrays of length k: the law of :meth:`draw_parameters`, independently per sample (all c first)."""
        if self.c_range is None:
            return np.full(k, self.T), np.full(k, self.c)
        windows = self._windows_for(n)
        lo, hi = self.c_range
        c = np.minimum((lo + rng.beta(self._ac, self._bc, size=k) * (hi + 1 - lo)).astype(np.int64), hi)
        t_min, t_max = (np.array([windows[int(ci)][e] for ci in c]) for e in (0, 1))
        return t_min + rng.beta(self._aT, self._bT, size=k) * (t_max - t_min), c.astype(np.float64)

    def sample_params(self, batch: int, height: int, width: int) -> DiffeoParams:
        """Draw the parameters of one call on ``batch`` images of height × width (``batch = 1`` for one image).

        Order of the draws from the generator: the p decisions (skipped when p is 0 or 1), then (c, T) as
        :meth:`draw_parameters` (``draw="call"``) or per sample, then one integer seeding the fields."""
        n = max(height, width)
        rng = self._generator()
        if self.p in (0.0, 1.0):
            applied = np.full(batch, self.p == 1.0)
        else:
            applied = np.broadcast_to(rng.random(1 if self.same_on_batch else batch) < self.p, (batch,)).copy()
        if self.draw == "sample":
            T, c = self._draw_per_sample(n, batch, rng)
            per_sample = True
        else:
            T0, c0 = self.draw_parameters(n, rng)
            T, c = np.full(batch, float(T0)), np.full(batch, float(c0))
            per_sample = False
        seed = int(rng.integers(2**63 - 1))
        k = int(applied.sum())
        if k == 0:
            diffeo = None
        elif self.same_on_batch or not per_sample:
            diffeo = nd.sample_diffeos(1 if self.same_on_batch else k, height, width, float(T[0]), float(c[0]),
                                       cutoff=self.cutoff, seed=seed)
        else:
            diffeo = nd.sample_diffeos(k, height, width, T[applied], c[applied], cutoff=self.cutoff, seed=seed)
        return DiffeoParams(_read_only(applied), _read_only(c), _read_only(T), diffeo, height, width,
                            self.same_on_batch)

    # ------------------------------------------------------------------------------------------ applying
    @staticmethod
    def _batch_of(x: Any) -> tuple[int, int, int]:
        """(batch, H, W) of a torchvision-v2 shaped input; one image counts as a batch of 1."""
        if not isinstance(x, (torch.Tensor, np.ndarray)):
            raise TypeError(f"x must be a torch.Tensor or a numpy array, got {type(x).__name__}")
        if isinstance(x, np.ndarray) and x.dtype not in _NUMPY_DTYPES:
            raise ValueError(f"x (a numpy array) must be float16, float32, float64 or uint8 (the dtypes deform keeps), "
                             f"got {x.dtype}")
        if x.ndim not in (2, 3, 4):
            raise ValueError(f"x must have shape (H, W), (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
        return (1 if x.ndim < 4 else int(x.shape[0])), int(x.shape[-2]), int(x.shape[-1])

    def _apply(self, x: Any, params: Any, interp: str) -> Any:
        if not isinstance(params, DiffeoParams):
            raise TypeError(f"params must be the DiffeoParams of a call (last_params), got {type(params).__name__}")
        batch, height, width = self._batch_of(x)
        if (params.batch, params.height, params.width) != (batch, height, width):
            raise ValueError(
                f"params were drawn for {params.batch} image(s) of {params.height}x{params.width}, x has {batch} of "
                f"{height}x{width} (shape {tuple(x.shape)}; one image is (H, W) or (C, H, W), a batch (B, C, H, W))"
            )
        applied = params.applied
        if params.diffeo is None or not applied.any():
            return x
        if x.ndim < 4:
            return nd.deform(x, diffeo=params.diffeo, interp=interp, batch_dims=0)
        batch_dims = 0 if params.same_on_batch else 1
        if applied.all():
            return nd.deform(x, diffeo=params.diffeo, interp=interp, batch_dims=batch_dims)
        mask = torch.tensor(np.array(applied), device=x.device) if isinstance(x, torch.Tensor) else applied
        out = x.clone() if isinstance(x, torch.Tensor) else x.copy()
        out[mask] = nd.deform(x[mask], diffeo=params.diffeo, interp=interp, batch_dims=batch_dims)
        return out

    def forward(self, x: Any, params: DiffeoParams | None = None) -> Any:
        """Deform ``x`` with freshly drawn parameters (kept in ``last_params``), or replay ``params``."""
        if params is None:
            params = self.sample_params(*self._batch_of(x))
            self.last_params = params
        return self._apply(x, params, self.interp)

    def replay(self, x: Any, params: DiffeoParams | None = None, *, interp: str | None = None) -> Any:
        """Apply ``params`` (default: those of the last call) to another tensor of the same batch size and H×W,
        e.g. a segmentation mask with ``interp="nearest"`` (default: this transform's interpolation)."""
        if params is None:
            if self.last_params is None:
                raise ValueError("replay needs params, or a previous call whose last_params it reuses")
            params = self.last_params
        interp = self.interp if interp is None else nd.check_choice(interp, "interp", nd.INTERPOLATIONS)
        return self._apply(x, params, interp)
