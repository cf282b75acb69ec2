r"""Measure any network on any image data: :math:`D_f, G_f, R_f` at the output and at every layer, over a range of
deformation sizes (Petrini, Favero, Geiger, Wyart, "Relative stability toward diffeomorphisms indicates
performance in deep nets", NeurIPS 2021).

.. code-block:: bash

    python -m verify.measure --model mypkg.nets:make --data mnist5k --out DIR
    python -m verify.measure --model net.pt --checkpoint weights.pt --data folder:~/images --delta 0.5 1 2

Pipeline (the reference order of ``leonardopetrini/diffeo-sota``): the data set (:mod:`verify.datasets`) is
normalised with its train statistics; the probe images are the first ``n_probe`` images of ``split`` (whose order
is a seeded permutation); for deformation size k, each probe gets its own maximum-entropy diffeomorphism
(:func:`numerics.diffeo.sample_diffeos` for all probes at once, applied batch by batch with
:func:`numerics.diffeo.deform`, so the fields do not depend on the batch size); then
:func:`numerics.stability.layerwise_stability` adds the norm-matched noise and evaluates every layer in one pass:

.. math::
    D_f = \frac{\langle|f(\tau x) - f(x)|^2\rangle}{\langle|f(x_1) - f(x_2)|^2\rangle},\quad
    G_f = \frac{\langle|f(x + \eta) - f(x)|^2\rangle}{\langle|f(x_1) - f(x_2)|^2\rangle},\quad
    R_f = D_f / G_f,\quad |\eta_i| = |\tau x_i - x_i|.

Seeds: with ``seed = s``, size k (0-based) draws its fields from ``numpy.random.SeedSequence([s, k, 0])`` and its
noise and bootstrap from ``SeedSequence([s, k, 1])``; so ``deform(x, T_k, c, seed=SeedSequence([s, k, 0]))`` and
``relative_stability(model, x, x_deformed, seed=SeedSequence([s, k, 1]))`` on the same probes give the output's
figures again.

Deformation sizes: by default ``n_sizes`` temperatures log-spaced over the window
``numerics.diffeo.temperature_range(n, c)`` (T_min: a typical displacement of 1/2 pixel at the centre; T_max:
the no-overhang bound), as the 2021 paper's grid between the two bounds; or the typical displacements ``delta``
(pixels, :func:`numerics.diffeo.temperature_for_displacement`) or the temperatures ``T``. Each size records T
and :math:`\delta = ` :func:`numerics.diffeo.typical_displacement`, and the fraction of fields that fold.

Layers: ``"all"`` is every leaf module (no children) whose output is a tensor with the batch on its first axis,
``nn.Identity`` excepted; ``"none"`` the output only; or a list of module names. A TorchScript archive has no
forward hooks: :class:`TorchScriptLayers` rewrites a copy of its inlined graph so that it also returns the value
each leaf module computes (cloned where it is computed, as a hook would see it), under the same names as the
eager module (``conv1``, ``layer1.0.relu``, a second call of a shared module ``name#1``). A leaf that emits no
operation (``nn.Identity``) has no value of its own there, which is why it is left out in both cases.

Output (``out``): ``measure.json`` (written after every size, atomically: a partial file is valid JSON with
``"complete": false``), ``R_layers.png`` (R_k against the layer, one curve per size) and ``DGR_output.png`` (D, G,
R of the output against :math:`\delta`). The test error is measured on the whole test split (argmax for several
outputs, sign for one output and labels in {0, 1} or {-1, 1}). Ctrl-C ends the run early with the finished sizes
(``"interrupted": true``; the command exits with 130).

Several checkpoints (``--checkpoint a.pt b.pt ...``) or ``--executor local|slurm``: one unit of
:mod:`verify.jobs` per checkpoint (:func:`measure_checkpoint`), run in this process, as local subprocess jobs or
as a SLURM job array; each writes its record to ``--out/units/`` as it finishes, a rerun skips the finished ones,
and ``--out/NAME/measure.json`` with its figures (NAME: the checkpoint's stem; ``--out`` itself for one
checkpoint) and the overview ``--out/measure_checkpoints.json`` are built from those files. Job logs:
``--out/logs/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from numerics.diffeo import (deform, sample_diffeos, temperature_for_displacement, temperature_range,
                             typical_displacement)
from numerics.stability import ERROR_MODES, ESTIMATORS, NOISE_MODES, layerwise_stability
from verify.datasets import ImageDataset, load_dataset
from verify.jobs import add_executor_arguments, executor_options
from verify.outputs import atomic_write_json, prepare_out_dir
from verify.specs import SpecError, load_model, parse_kwargs

__all__ = [
    "ArgumentError",
    "SCHEMA",
    "measure",
    "deformation_sizes",
    "TorchScriptLayers",
    "model_layers",
    "plot_layer_stability",
    "plot_size_stability",
    "measure_checkpoint",
    "main",
]

SCHEMA = "diffeostability.measure/1"
JSON_NAME = "measure.json"
FIG_LAYERS = "R_layers.png"
FIG_SIZES = "DGR_output.png"
DEFAULT_N_PROBE = 500


class ArgumentError(ValueError):
    """A bad argument of :func:`measure` found before any work; ``argument`` is its name (``"n_probe"``, ...)."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument
        self.message = message


# ----------------------------------------------------------------------------------------------------------
# deformation sizes
# ----------------------------------------------------------------------------------------------------------
def _image_n(height: int, width: int):
    return int(height) if height == width else (int(height), int(width))


def deformation_sizes(height: int, width: int, c: float, *, delta: Sequence[float] | None = None,
                      T: Sequence[float] | None = None, n_sizes: int = 5, cutoff: str = "code") -> dict:
    r"""The deformation sizes of a run: ``{"window": [T_min, T_max], "sizes": [{"T", "delta"}, ...]}``.

    Default: ``n_sizes`` temperatures ``numpy.geomspace(T_min, T_max, n_sizes)`` over
    ``numerics.diffeo.temperature_range((H, W), c, cutoff=cutoff)`` (one size: the geometric midpoint);
    ``delta``: typical displacements in pixels, :math:`T = ` ``temperature_for_displacement``; ``T``: given
    temperatures. :math:`\delta = ` ``typical_displacement(T, c, n)`` (exact lattice sum) for every size.
    :class:`ArgumentError` naming ``c`` for an empty window or a cut-off that keeps no mode, ``delta`` / ``T``
    for values <= 0 or both given, ``n_sizes`` for a count < 1.
    """
    if delta is not None and T is not None:
        raise ArgumentError("delta", "give delta or T, not both")
    if isinstance(n_sizes, bool) or not isinstance(n_sizes, (int, np.integer)) or n_sizes < 1:
        raise ArgumentError("n_sizes", f"must be an integer >= 1, got {n_sizes!r}")
    n = _image_n(height, width)
    try:
        t_min, t_max = temperature_range(n, c, cutoff=cutoff)
    except ValueError as exc:
        raise ArgumentError("c", f"no deformation window for {height}x{width} images with c = {c!r}: {exc}") \
            from None
    for name, values in (("delta", delta), ("T", T)):
        if values is None:
            continue
        vals = list(np.atleast_1d(np.asarray(values, dtype=object)))
        if not vals:
            raise ArgumentError(name, "give at least one value")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or \
                    not math.isfinite(float(v)) or float(v) <= 0:
                raise ArgumentError(name, f"every value must be a finite number > 0, got {v!r}")
    if delta is not None:
        Ts = [temperature_for_displacement(float(d), c, n, cutoff=cutoff) for d in np.atleast_1d(delta)]
    elif T is not None:
        Ts = [float(t) for t in np.atleast_1d(T)]
    else:
        Ts = [math.sqrt(t_min * t_max)] if n_sizes == 1 else [float(t) for t in np.geomspace(t_min, t_max, n_sizes)]
    sizes = [{"T": float(t), "delta": float(typical_displacement(t, c, n, cutoff=cutoff))} for t in Ts]
    return {"window": [float(t_min), float(t_max)], "sizes": sizes,
            "rule": "delta" if delta is not None else ("T" if T is not None else "geomspace over the window")}


# ----------------------------------------------------------------------------------------------------------
# layers of eager modules and of TorchScript archives
# ----------------------------------------------------------------------------------------------------------
def _is_leaf(m: nn.Module) -> bool:
    return next(iter(m.children()), None) is None


def model_layers(model: nn.Module, x: torch.Tensor) -> tuple[list[str], dict[str, str]]:
    """The leaf modules of an eager ``model`` that ``layers="all"`` measures, in the order they first run on the
    batch ``x`` (one forward pass), and ``{name: reason}`` for the leaves left out (not a tensor, batch not on the
    first axis, ``nn.Identity``, a TorchScript submodule, never called, or named ``"output"``)."""
    n = x.shape[0]
    order: list[str] = []
    ok: dict[str, bool] = {}
    skipped: dict[str, str] = {}
    handles = []

    def make(name):
        def hook(module, inputs, output):
            if name not in ok:
                order.append(name)
                ok[name] = True
            if not isinstance(output, torch.Tensor):
                ok[name] = False
                skipped[name] = f"returns {type(output).__name__}, not a tensor"
            elif output.ndim == 0 or output.shape[0] != n:
                ok[name] = False
                skipped[name] = f"output shape {tuple(output.shape)} does not have the batch on its first axis"
        return hook

    leaves = [(name, m) for name, m in model.named_modules() if name and _is_leaf(m)]
    try:
        for name, m in leaves:
            if isinstance(m, nn.Identity):
                skipped[name] = "nn.Identity (returns its input)"
                continue
            if name == "output":
                skipped[name] = "named 'output', which is the key of the model output"
                continue
            try:
                handles.append(m.register_forward_hook(make(name)))
            except (RuntimeError, NotImplementedError):
                skipped[name] = "inside a TorchScript submodule (no forward hooks)"
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    for name, _ in leaves:
        if name not in ok and name not in skipped:
            skipped[name] = "never called in the forward pass"
    return [name for name in order if ok[name]], skipped


def _hierarchy_path(hierarchy: str) -> list[str]:
    """Module path of a graph node from ``Node.getModuleHierarchy()`` (``"2(B).c(Conv2d).SELF(Conv2d)"`` ->
    ``["2", "c"]``; the ``SELF`` / ``UNKNOWN_INSTANCE`` segments are calls inside a module, not submodules)."""
    parts = []
    for seg in hierarchy.split(".") if hierarchy else []:
        name = seg.split("(", 1)[0]
        if not name or name in ("SELF", "UNKNOWN_INSTANCE"):
            break
        parts.append(name)
    return parts


def _script_taps(module) -> tuple[list[str], Any]:
    """Rewrite a copy of the inlined forward graph of a TorchScript module to return ``(output, v_1, ..., v_m)``:
    ``v_j`` is a clone, made where it is computed, of a tensor that a leaf module's operations produce and that
    is used outside that leaf (its output). Returns the leaf name of each ``v_j`` and the compiled function
    ``fn(module._c, x)``."""
    graph = module.inlined_graph  # a fresh copy; the module is not modified
    leaves = {name for name, m in module.named_modules() if name and _is_leaf(m)}
    owner: dict[Any, str | None] = {}

    def leaf_of(node) -> str | None:
        parts = _hierarchy_path(node.getModuleHierarchy())
        for k in range(len(parts), 0, -1):
            p = ".".join(parts[:k])
            if p in leaves:
                return p
        return None

    def walk(block):
        for node in block.nodes():
            owner[node] = leaf_of(node)
            for b in node.blocks():
                walk(b)

    walk(graph)
    ret = graph.return_node()
    if ret.inputsSize() != 1:
        raise ValueError("the forward graph must return one value")
    tensor_t = torch._C.TensorType.get()
    taps = []
    for node in list(graph.nodes()):  # the top-level block: values there can become graph outputs
        leaf = owner[node]
        if leaf is None or node.kind() in ("prim::Constant", "prim::GetAttr"):
            continue
        for v in node.outputs():
            if not v.type().isSubtypeOf(tensor_t):
                continue
            if any(u.user is ret or owner.get(u.user) != leaf for u in v.uses()):
                taps.append((leaf, v, node))
    if not taps:
        raise ValueError("no leaf module output found in the graph")
    names, clones = [], []
    for leaf, v, node in taps:
        none = graph.create("prim::Constant")
        none.output().setType(torch._C.NoneType.get())
        none.insertAfter(node)
        clone = graph.create("aten::clone", [v, none.output()])
        clone.output().setType(v.type())
        clone.insertAfter(none)
        names.append(leaf)
        clones.append(clone.output())
    outs = [ret.inputsAt(0)] + clones
    tup = graph.create("prim::TupleConstruct", outs)
    tup.output().setType(torch._C.TupleType([o.type() for o in outs]))
    tup.insertBefore(ret)
    graph.eraseOutput(0)
    graph.registerOutput(tup.output())
    fn = torch._C._create_function_from_graph("forward_with_layers", graph)
    return names, fn


class TorchScriptLayers(nn.Module):
    """A TorchScript module whose leaf-module outputs are visible to forward hooks.

    The module's inlined forward graph is copied and made to return every leaf's output as well
    (:func:`_script_taps`); :meth:`forward` runs it once and passes each leaf output through an ``nn.Identity``
    registered under the leaf's own name (``"conv1"``, ``"layer1.0.relu"``), so
    ``numerics.stability.layerwise_stability(TorchScriptLayers(m), ..., layers=...layer_names())`` sees the same
    keys as on the eager module. Uses TorchScript graph internals (``torch._C``); ``ValueError`` or
    ``RuntimeError`` when a graph cannot be rewritten (then measure the output only).
    """

    def __init__(self, script_module):
        super().__init__()
        if not isinstance(script_module, torch.jit.ScriptModule):
            raise ValueError(f"script_module must be a torch.jit.ScriptModule, got {type(script_module).__name__}")
        object.__setattr__(self, "script", script_module)  # not a child: its module names would clash with the taps
        self._calls, self._fn = _script_taps(script_module)
        self._names = list(dict.fromkeys(self._calls))
        for name in self._names:
            parent = self
            *path, last = name.split(".")
            for part in path:
                if part not in parent._modules:
                    parent.add_module(part, nn.Module())
                parent = parent._modules[part]
            parent.add_module(last, nn.Identity())
        like = [t for t in list(script_module.parameters()) + list(script_module.buffers()) if t.is_floating_point()]
        ref = like[0] if like else torch.zeros(0)
        self.register_buffer("_dtype_device", torch.zeros(0, dtype=ref.dtype, device=ref.device), persistent=False)

    def layer_names(self) -> list[str]:
        """Leaf names in the order they run (a shared leaf once; its later calls are ``name#1``, ... in hooks)."""
        return list(self._names)

    def forward(self, x):
        outs = self._fn(self.script._c, x)
        for name, value in zip(self._calls, outs[1:]):
            self.get_submodule(name)(value)
        return outs[0]


# ----------------------------------------------------------------------------------------------------------
# test error
# ----------------------------------------------------------------------------------------------------------
def _test_error(model, data: ImageDataset, *, batch_size: int, device, dtype, progress: bool) -> dict:
    from tqdm.auto import tqdm

    if not data.labelled:
        return {"value": None, "reason": "the data set has no labels"}
    preds, labels, width = [], [], None
    n_batches = math.ceil(data.n_test / batch_size)
    with torch.no_grad():
        for x, y in tqdm(data.batches("test", batch_size=batch_size), total=n_batches, desc="test error",
                         unit="batch", disable=not progress, leave=False):
            out = model(x.to(device=device, dtype=dtype))
            if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != x.shape[0]:
                return {"value": None, "reason": "the model output is not a tensor with the batch on its first axis"}
            out = out.reshape(out.shape[0], -1).to("cpu", torch.float64)
            width = out.shape[1]
            preds.append(out.argmax(dim=1) if width > 1 else out[:, 0])
            labels.append(y)
    y = torch.cat(labels).numpy()
    p = torch.cat(preds).numpy()
    n = int(y.size)
    if width > 1:
        if y.min() < 0 or y.max() >= width:
            return {"value": None, "reason": f"labels span [{int(y.min())}, {int(y.max())}] but the model has "
                                             f"{width} outputs (argmax rule)"}
        return {"value": float(np.mean(p != y)), "n": n, "rule": "argmax", "split": "test"}
    values = set(np.unique(y).tolist())
    if values <= {0, 1}:
        guess = np.where(p > 0, 1, 0)
    elif values <= {-1, 1}:
        guess = np.where(p > 0, 1, -1)
    else:
        return {"value": None, "reason": f"one output and {len(values)} label values: the sign rule needs labels "
                                         "in {0, 1} or {-1, 1}"}
    return {"value": float(np.mean(guess != y)), "n": n, "rule": "sign", "split": "test"}


# ----------------------------------------------------------------------------------------------------------
# JSON and figures
# ----------------------------------------------------------------------------------------------------------
def _check_out(out) -> Path:
    """The output folder, created and proven writable (:func:`verify.outputs.prepare_out_dir`)."""
    p = Path(os.path.expanduser(str(out)))
    if p.exists() and not p.is_dir():
        raise ArgumentError("out", f"{str(p)!r} exists and is not a directory")
    try:
        return prepare_out_dir(p)
    except SpecError as exc:
        raise ArgumentError("out", exc.message) from None


def _write_json(record: dict, path: Path) -> None:
    """Strict JSON, written atomically (:func:`verify.outputs.atomic_write_json`: a reader never sees half a file)."""
    atomic_write_json(path, record)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_ticks(ax, x: bool = True, y: bool = True) -> None:
    """Log axes labelled with plain numbers at the major ticks only (minor labels overlap)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())


def _bars(est: dict):
    v = est["value"]
    lo, hi = est.get("ci") or [None, None]
    return v, (0.0 if lo is None else max(v - lo, 0.0)), (0.0 if hi is None else max(hi - v, 0.0))


def plot_layer_stability(record: dict, path) -> Path:
    """R_k against the layer (log scale; the output last), one curve per deformation size, 95 % intervals."""
    plt = _plt()
    sizes = record["sizes"]
    names = [d["name"] for d in sizes[0]["layers"]] + ["output"]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(names) + 2), 3.8))
    cmap = plt.get_cmap("viridis")
    for i, s in enumerate(sizes):
        ests = [d["R"] for d in s["layers"]] + [s["output"]["R"]]
        v, lo, hi = zip(*(_bars(e) for e in ests))
        ax.errorbar(np.arange(1, len(names) + 1), v, yerr=[lo, hi], marker="o", ms=3, capsize=2,
                    color=cmap(i / max(1, len(sizes) - 1)), label=f"δ = {s['delta']:.3g} px")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(names) + 1))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("$R_k = D_k / G_k$")
    _plain_ticks(ax, x=False)
    ax.set_title(f"{record['model'].get('spec') or record['model'].get('class')} on {record['data']['spec']}",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_size_stability(record: dict, path) -> Path:
    """D, G and R of the output against the typical displacement δ (log-log), 95 % intervals."""
    plt = _plt()
    sizes = record["sizes"]
    delta = [s["delta"] for s in sizes]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, q, label in zip(axes, ("D", "G", "R"), ("$D_f$", "$G_f$", "$R_f$")):
        v, lo, hi = zip(*(_bars(s["output"][q]) for s in sizes))
        ax.errorbar(delta, v, yerr=[lo, hi], marker="o", capsize=2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("δ (pixels)")
        ax.set_ylabel(label)
        _plain_ticks(ax)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"output of {record['model'].get('spec') or record['model'].get('class')} on "
                 f"{record['data']['spec']}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------
# the measurement
# ----------------------------------------------------------------------------------------------------------
def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ArgumentError(name, f"must be an integer >= {low}, got {value!r}")
    return int(value)


def _resolve_device(model: nn.Module, device):
    if device is None:
        ts = [t for t in list(model.parameters()) + list(model.buffers())]
        return ts[0].device if ts else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ArgumentError("device", f"{device!r} is not a torch device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("device", f"{device!r}: torch sees no CUDA device (use cpu)")
    return dev


def _deform_probes(x: torch.Tensor, diffeo, interp: str, batch_size: int) -> torch.Tensor:
    """τx for the probes ``x``: the fields of ``diffeo`` (one per probe) applied in batches (float64 numba path),
    stored in x's dtype."""
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], batch_size):
        sl = slice(start, min(x.shape[0], start + batch_size))
        part = dataclasses.replace(diffeo, coef=diffeo.coef[sl])
        xd = deform(x[sl].to(torch.float64).numpy(), interp=interp, diffeo=part)
        out[sl] = torch.from_numpy(xd).to(x.dtype)
    return out


def measure(model: nn.Module, data: ImageDataset | str, *, split: str = "test", n_probe: int | None = None,
            c: float = 3, cutoff: str = "code", interp: str = "linear", delta: Sequence[float] | None = None,
            T: Sequence[float] | None = None, n_sizes: int = 5, layers: str | Sequence[str] | None = "all",
            noise: str = "per_sample", estimator: str = "mean", exclude_diagonal: bool = True,
            errors: str | None = "bootstrap", n_boot: int = 200, seed: int = 0, batch_size: int = 256,
            device=None, test_error: bool = True, out=None, figures: bool = True, progress: bool = True,
            model_info: dict | None = None) -> dict:
    r"""D, G, R of ``model`` at its output and at every layer, for each deformation size, on probe images of
    ``data``; the record is returned (and written to ``out``/measure.json with the PNGs when ``out`` is given).

    Parameters
    ----------
    model : ``torch.nn.Module`` or TorchScript module; evaluated in eval mode (its train/eval flags are
        restored afterwards), under ``torch.no_grad``, on ``device`` (None: where it is).
    data : an :class:`verify.datasets.ImageDataset` or a spec for :func:`verify.datasets.load_dataset`.
    split, n_probe : probes are the first ``n_probe`` images of ``split`` (default: 500, or the whole split when
        it is smaller).
    c, cutoff, interp : cut-off, cut-off rule and interpolation of the diffeomorphisms (:mod:`numerics.diffeo`).
    delta, T, n_sizes : deformation sizes, see :func:`deformation_sizes`.
    layers : ``"all"``, ``"none"`` (output only) or module names (see the module docstring).
    noise, estimator, exclude_diagonal, errors, n_boot, batch_size : as in
        :func:`numerics.stability.layerwise_stability` (``batch_size`` also sets the deformation and
        test-error batches).
    seed : int >= 0; the seeds of size k are ``SeedSequence([seed, k, 0])`` (fields) and ``[seed, k, 1]``
        (noise, bootstrap).
    test_error : measure the error on the test split when the data are labelled.
    out : folder for ``measure.json`` (rewritten after every size) and the figures (``figures=True``).
    model_info : extra entries for the record's ``"model"`` (the CLI passes the spec).

    Returns
    -------
    dict (strict JSON): ``schema``, ``complete``, ``interrupted``, ``model``, ``data``, ``settings``, ``window``,
    ``layers`` (names and the leaves left out), ``test_error``, ``sizes`` (per size: ``T``, ``delta``,
    ``seeds``, ``fold_fraction``, ``rms_deformation``, ``output`` and ``layers``: ``D``, ``G``, ``R``,
    sensitivities, each ``{"value", "se", "ci"}``), ``figures``, ``environment``.

    Raises :class:`ArgumentError` (a ``ValueError`` naming the argument) for bad arguments, before any work.
    """
    t_start = time.perf_counter()
    # ---- validation, before any work -------------------------------------------------------------------
    if not isinstance(model, nn.Module):
        raise ArgumentError("model", f"must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(data, str):
        data = load_dataset(data)
    if not isinstance(data, ImageDataset):
        raise ArgumentError("data", f"must be an ImageDataset or a data set spec, got {type(data).__name__}")
    if split not in ("train", "test"):
        raise ArgumentError("split", f"must be 'train' or 'test', got {split!r}")
    for name, value, allowed in (("noise", noise, NOISE_MODES), ("estimator", estimator, ESTIMATORS),
                                 ("errors", errors, ERROR_MODES), ("interp", interp, ("linear", "nearest")),
                                 ("cutoff", cutoff, ("code", "paper"))):
        if value not in allowed or isinstance(value, bool):
            raise ArgumentError(name, f"must be one of {allowed}, got {value!r}")
    if errors == "se" and estimator == "median":
        raise ArgumentError("errors", "'se' (delta method) needs estimator='mean'; use 'bootstrap'")
    if errors == "bootstrap":
        _check_int(n_boot, "n_boot", 2)
    seed = _check_int(seed, "seed", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    for name, flag in (("exclude_diagonal", exclude_diagonal), ("test_error", test_error), ("figures", figures),
                       ("progress", progress)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ArgumentError(name, f"must be True or False, got {flag!r}")
    available = data.size_of(split)
    if n_probe is None:
        n_probe = min(DEFAULT_N_PROBE, available)
    n_probe = _check_int(n_probe, "n_probe", 2)
    if n_probe > available:
        raise ArgumentError("n_probe", f"{n_probe} probes requested but the {split} split holds {available} images")
    out_dir = None if out is None else _check_out(out)
    C, H, W = data.shape
    plan = deformation_sizes(H, W, c, delta=delta, T=T, n_sizes=n_sizes, cutoff=cutoff)
    dev = _resolve_device(model, device)

    training = {m: m.training for m in model.modules()}
    model.to(dev)
    model.eval()
    try:
        return _measure(model, data, plan, dev, split=split, n_probe=n_probe, c=c, cutoff=cutoff, interp=interp,
                        layers=layers, noise=noise, estimator=estimator, exclude_diagonal=bool(exclude_diagonal),
                        errors=errors, n_boot=n_boot, seed=seed, batch_size=batch_size, test_error=test_error,
                        out_dir=out_dir, figures=figures, progress=progress, model_info=model_info,
                        t_start=t_start)
    finally:
        for m, flag in training.items():
            m.train(flag)


def _measure(model, data, plan, dev, *, split, n_probe, c, cutoff, interp, layers, noise, estimator,
             exclude_diagonal, errors, n_boot, seed, batch_size, test_error, out_dir, figures, progress, model_info,
             t_start) -> dict:
    from tqdm.auto import tqdm

    floats = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    dtype = floats[0].dtype if floats else torch.float32
    x = data.images(split, indices=np.arange(n_probe), batch_size=batch_size).to(dtype)

    # ---- layers ------------------------------------------------------------------------------------------
    scripted = isinstance(model, torch.jit.ScriptModule)
    net, note, skipped = model, None, {}
    if scripted:
        try:
            net = TorchScriptLayers(model)
            available = net.layer_names()
        except Exception as exc:  # graph internals differ: measure the output only
            net, available = model, []
            note = f"the TorchScript graph could not be rewritten to expose its layers ({type(exc).__name__}: {exc})"
    if layers == "all":
        if scripted:
            names = available
        else:
            names, skipped = model_layers(model, x[:min(3, n_probe)].to(dev))
    elif layers is None or layers == "none" or (not isinstance(layers, str) and len(layers) == 0):
        names = []
    elif isinstance(layers, str):
        raise ArgumentError("layers", f"must be 'all', 'none' or a list of module names, got {layers!r}")
    else:
        names = [str(n) for n in layers]
        known = set(available) if scripted else {n for n, _ in model.named_modules() if n}
        unknown = [n for n in names if n not in known]
        if unknown:
            where = "the layers this TorchScript archive exposes" if scripted else "the model's modules"
            raise ArgumentError("layers", f"unknown names {unknown}; {where}: "
                                          f"{sorted(known)[:50]}{' ...' if len(known) > 50 else ''}")
    if scripted and note and names:
        raise ArgumentError("layers", note)
    if scripted and note is None and not names and layers == "all":
        note = "no leaf module output found"

    info = {"spec": None, "source": "object", "class": type(model).__name__,
            "n_parameters": int(sum(p.numel() for p in model.parameters()))}
    info.update(model_info or {})
    info.update(dtype=str(dtype).replace("torch.", ""), device=str(dev), torchscript=scripted,
                layers_note=note)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "complete": False,
        "interrupted": False,
        "model": info,
        "data": {**data.describe(), "probe_split": split, "n_probe": n_probe,
                 "probes": f"the first {n_probe} images of the {split} split (seeded order)"},
        "settings": {"c": float(c), "cutoff": cutoff, "interp": interp, "noise": noise, "estimator": estimator,
                     "exclude_diagonal": exclude_diagonal, "errors": errors,
                     "n_boot": n_boot if errors == "bootstrap" else 0, "seed": seed, "batch_size": batch_size,
                     "size_rule": plan["rule"],
                     "seed_rule": "fields of size k: SeedSequence([seed, k, 0]); noise and bootstrap: "
                                  "SeedSequence([seed, k, 1])"},
        "window": {"T_min": plan["window"][0], "T_max": plan["window"][1],
                   "delta_min": typical_displacement(plan["window"][0], c, _image_n(data.shape[1], data.shape[2]),
                                                     cutoff=cutoff),
                   "delta_max": typical_displacement(plan["window"][1], c, _image_n(data.shape[1], data.shape[2]),
                                                     cutoff=cutoff)},
        "layers": {"requested": layers if isinstance(layers, str) or layers is None else list(layers),
                   "measured": names, "skipped": skipped},
        "test_error": {"value": None, "reason": "not requested" if not test_error else "not measured yet"},
        "sizes": [],
        "figures": [],
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": None},
    }
    path = None if out_dir is None else out_dir / JSON_NAME

    def save():
        record["environment"]["seconds"] = time.perf_counter() - t_start
        if path is not None:
            _write_json(record, path)

    save()
    H, W = data.shape[1], data.shape[2]
    try:
        if test_error:
            record["test_error"] = _test_error(model, data, batch_size=batch_size, device=dev, dtype=dtype,
                                               progress=progress)
            save()
        bar = tqdm(list(enumerate(plan["sizes"])), desc="diffeo sizes", unit="size", disable=not progress)
        for k, size in bar:
            ss_fields = np.random.SeedSequence([seed, k, 0])
            ss_noise = np.random.SeedSequence([seed, k, 1])
            diffeo = sample_diffeos(n_probe, H, W, size["T"], c, cutoff=cutoff, seed=ss_fields)
            xd = _deform_probes(x, diffeo, interp, batch_size)
            res = layerwise_stability(net, x, xd, layers=names, include_output=True, noise=noise,
                                      estimator=estimator, exclude_diagonal=exclude_diagonal, errors=errors,
                                      n_boot=n_boot, seed=ss_noise, batch_size=batch_size)
            diff = (xd.to(torch.float64) - x.to(torch.float64)).reshape(n_probe, -1)
            entry = {
                "index": k, "T": size["T"], "delta": size["delta"],
                "seeds": {"fields": [seed, k, 0], "noise": [seed, k, 1]},
                "fold_fraction": float(np.mean(diffeo.folds())),
                "rms_deformation": float(diff.pow(2).sum(dim=1).mean().sqrt()),
                "output": res["output"].as_dict(),
                "layers": [{"name": key, "k": i + 1, **r.as_dict()}
                           for i, (key, r) in enumerate((kk, rr) for kk, rr in res.items() if kk != "output")],
            }
            record["sizes"].append(entry)
            bar.set_postfix(delta=f"{size['delta']:.2g}", R=f"{res['output'].R.value:.3g}")
            save()
        record["complete"] = True
    except KeyboardInterrupt:
        record["interrupted"] = True
        if record["test_error"].get("reason") == "not measured yet":
            record["test_error"] = {"value": None, "reason": "interrupted"}
    if out_dir is not None and figures and record["sizes"]:
        plot_layer_stability(record, out_dir / FIG_LAYERS)
        plot_size_stability(record, out_dir / FIG_SIZES)
        record["figures"] = [FIG_LAYERS, FIG_SIZES]
    save()
    return record


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------
_FLAGS = {"n_probe": "--n-probe", "n_sizes": "--n-sizes", "n_boot": "--n-boot", "batch_size": "--batch-size",
          "delta": "--delta", "T": "--T", "c": "--c", "layers": "--layers", "split": "--split", "out": "--out",
          "device": "--device", "seed": "--seed", "noise": "--noise", "estimator": "--estimator",
          "errors": "--errors", "interp": "--interp", "cutoff": "--cutoff", "model": "--model", "data": "--data"}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default: "(required)", "(default: off)" for switches, "(default: none)"
    when unset, else the value; a help text that states its default already is left as it is."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.help is argparse.SUPPRESS or "(default" in text or action.dest == "help":
            return text
        if action.required:
            return text + " (required)"
        if isinstance(action, argparse._StoreTrueAction):
            return text + " (default: off)"
        if action.default is None or action.default == []:
            return text + " (default: none)"
        return text + " (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m verify.measure",
        description="D_f, G_f, R_f of a network at its output and at every layer, over deformation sizes, on "
                    "image data (Petrini et al. 2021). Writes measure.json and PNGs to --out. Exit status: 0 done, "
                    "1 failed during the measurement, 2 bad arguments, 130 interrupted (partial JSON kept).",
        formatter_class=_HelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True,
                   help="a TorchScript file, one of the project's nets (convnet, fcnet, vggnet; sized for the data), "
                        "or MODULE:CALLABLE (e.g. torchvision.models:resnet18, mypkg.nets:make)")
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument of the model factory, one per flag (repeat); VALUE is a Python literal "
                        "(10, 0.5, True, (3, 3), 'text') or else a string")
    g.add_argument("--checkpoint", default=None, metavar="FILE", nargs="+",
                   help="state dict to load strictly (a dict of tensors, or with a 'state_dict' / 'model' entry); "
                        "several files: one measurement (one job, see --executor) per checkpoint, each in "
                        "--out/NAME (NAME: the file's stem)")
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True,
                   help="mnist5k, digits, npz:PATH, folder:ROOT or MODULE:CALLABLE (a torch Dataset or (x, y) "
                        "arrays, e.g. torchvision.datasets:CIFAR10)")
    g.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument of a MODULE:CALLABLE data set, one per flag (repeat), e.g. "
                        "--data-arg root=/data/cifar10 --data-arg download=False")
    g.add_argument("--data-test-arg", action="append", default=None, metavar="KEY=VALUE",
                   help="call the data factory a second time with these keyword arguments for the test split "
                        "(e.g. train=False) (default: none: a seeded split of one call)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split")
    g.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of the test split when the data have no split of their own")
    g.add_argument("--normalise", default="train", metavar="train|none|MEAN/STD",
                   help="per-channel normalisation: train-split statistics, none, or given values such as "
                        "0.485,0.456,0.406/0.229,0.224,0.225")
    g.add_argument("--resize", default=None, metavar="N|HxW",
                   help="resize every image (bilinear, antialiased) (default: none, keep the size)")
    g.add_argument("--channels-last", action="store_true",
                   help="arrays are (N, H, W, C) instead of (N, C, H, W)")
    g.add_argument("--color", default="auto", choices=("auto", "L", "RGB"),
                   help="folder images as grey levels (L) or RGB; auto: from the first file")
    g = p.add_argument_group("measurement")
    g.add_argument("--split", default="test", choices=("train", "test"), help="split the probes come from")
    g.add_argument("--n-probe", type=int, default=None,
                   help=f"number of probe images (default: {DEFAULT_N_PROBE}, or the whole split if smaller)")
    g.add_argument("--c", type=float, default=3.0, help="cut-off of the diffeomorphisms")
    g.add_argument("--cutoff", default="code", choices=("code", "paper"),
                   help="cut-off rule: code (sqrt(i^2+j^2) < c + 1/2) or paper (i^2+j^2 <= c^2)")
    g.add_argument("--interp", default="linear", choices=("linear", "nearest"), help="interpolation of tau x")
    sizes = g.add_mutually_exclusive_group()
    sizes.add_argument("--delta", type=float, nargs="+", default=None, metavar="PIXELS",
                       help="typical displacements (pixels) to measure at (default: none: --n-sizes temperatures "
                            "log-spaced over the cut-off's window [T_min, T_max])")
    sizes.add_argument("--T", type=float, nargs="+", default=None, metavar="T",
                       help="temperatures to measure at (instead of --delta)")
    g.add_argument("--n-sizes", type=int, default=5, help="number of default sizes across the window")
    g.add_argument("--layers", default="all",
                   help="all (every leaf module returning a tensor), none (output only), or comma-separated "
                        "module names")
    g.add_argument("--noise", default="per_sample", choices=NOISE_MODES,
                   help="noise norm: |eta_i| = |tau x_i - x_i| (per_sample) or the rms over probes (mean)")
    g.add_argument("--estimator", default="mean", choices=ESTIMATORS,
                   help="mean, or median per output coordinate (the camera-ready code)")
    g.add_argument("--errors", default="bootstrap", choices=("bootstrap", "se", "none"),
                   help="uncertainties: bootstrap over probes, delta-method se (mean only), or none")
    g.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates")
    g.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    g.add_argument("--seed", type=int, default=0, help="seed of the fields, the noise and the bootstrap")
    g.add_argument("--no-test-error", action="store_true", help="skip the test-error pass")
    g = p.add_argument_group("run")
    g.add_argument("--device", default=None,
                   help="torch device (default: cuda when torch sees one, else cpu)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    g.add_argument("--out", default="measure_out", help="output folder (measure.json, R_layers.png, DGR_output.png)")
    g.add_argument("--no-figures", action="store_true", help="write measure.json only, no PNGs")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_arguments(p, unit="checkpoint")
    return p


def _error(flag: str, message: str) -> int:
    print(f"error: {flag}: {message}", file=sys.stderr)
    return 2


def _parse_normalise(text: str):
    if text in ("train", "none"):
        return text
    mean, sep, std = text.partition("/")
    try:
        if not sep:
            raise ValueError
        return ([float(v) for v in mean.split(",")], [float(v) for v in std.split(",")])
    except ValueError:
        raise SpecError("--normalise", f"expected train, none or MEAN/STD (comma-separated per channel), "
                                       f"got {text!r}") from None


def _parse_resize(text: str | None):
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        vals = [int(v) for v in parts]
    except ValueError:
        vals = []
    if len(vals) not in (1, 2) or min(vals) < 2:
        raise SpecError("--resize", f"expected N or HxW with integers >= 2, got {text!r}")
    return vals[0] if len(vals) == 1 else tuple(vals)


def main(argv: list[str] | None = None) -> int:
    """``python -m verify.measure``; returns the exit status (0, 1, 2 or 130)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a malformed command line (2)
        return int(exc.code or 0)
    for flag, value, low in (("--n-probe", args.n_probe, 2), ("--n-sizes", args.n_sizes, 1),
                             ("--n-boot", args.n_boot, 2), ("--batch-size", args.batch_size, 1),
                             ("--seed", args.seed, 0), ("--split-seed", args.split_seed, 0),
                             ("--threads", args.threads, 1)):
        if value is not None and value < low:
            return _error(flag, f"must be >= {low}, got {value}")
    if not (0.0 < args.test_fraction < 1.0):
        return _error("--test-fraction", f"must be in (0, 1), got {args.test_fraction}")
    for flag, values in (("--delta", args.delta), ("--T", args.T)):
        if values is not None and not all(math.isfinite(v) and v > 0 for v in values):
            return _error(flag, f"every value must be a finite number > 0, got {values}")
    if not (math.isfinite(args.c) and args.c >= 1):
        return _error("--c", f"the cut-off must be a number >= 1, got {args.c}")
    try:
        args.jobs = executor_options(args)
    except SpecError as exc:
        return _error(exc.flag, exc.message)
    try:
        out_dir = _check_out(args.out)
    except ArgumentError as exc:
        return _error("--out", exc.message)
    device = args.device if args.device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        return _error("--device", f"{device!r} is not a torch device: {exc}")
    if dev.type == "cuda" and not torch.cuda.is_available() and args.executor != "slurm":  # slurm: the jobs' GPUs
        return _error("--device", f"{device!r}: torch sees no CUDA device (use cpu)")
    layers: Any = args.layers
    if layers not in ("all", "none"):
        layers = [n.strip() for n in layers.split(",") if n.strip()]
        if not layers:
            return _error("--layers", "give all, none or module names")
    threads_before = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, out_dir, dev, layers, argv)
    finally:
        torch.set_num_threads(threads_before)


def _run(args, out_dir: Path, dev, layers, argv) -> int:
    c = int(args.c) if float(args.c).is_integer() else args.c
    try:
        model_kwargs = parse_kwargs(args.model_arg, "--model-arg")
        data_kwargs = parse_kwargs(args.data_arg, "--data-arg")
        test_kwargs = None if args.data_test_arg is None else parse_kwargs(args.data_test_arg, "--data-test-arg")
        normalise = _parse_normalise(args.normalise)
        size = _parse_resize(args.resize)
    except SpecError as exc:
        return _error(exc.flag, exc.message)
    try:
        data = load_dataset(args.data, kwargs=data_kwargs or None, test_kwargs=test_kwargs,
                            split_seed=args.split_seed, test_fraction=args.test_fraction, normalise=normalise,
                            size=size, channels_last=args.channels_last, color=args.color)
    except SpecError as exc:
        return _error(exc.flag, exc.message)
    except (ValueError, TypeError, ImportError, OSError) as exc:
        return _error("--data", f"{args.data}: {exc}")
    checkpoints = list(args.checkpoint or [])
    try:
        for ck in checkpoints[1:]:  # every file before any work; the first one is loaded below
            if not Path(os.path.expanduser(ck)).is_file():
                raise SpecError("--checkpoint", f"file {ck!r} does not exist")
        model, info = load_model(args.model, kwargs=model_kwargs, checkpoint=checkpoints[0] if checkpoints else None,
                                 input_shape=data.shape)
    except SpecError as exc:
        return _error(exc.flag, exc.message)
    command = "python -m verify.measure " + " ".join(argv if argv is not None else sys.argv[1:])
    info["command"] = command
    if len(checkpoints) > 1 or args.executor != "inline":
        return _run_jobs(args, out_dir, str(dev) if args.device is not None or args.executor != "slurm" else None,
                         layers, checkpoints, command)
    try:
        record = measure(model, data, split=args.split, n_probe=args.n_probe, c=c, cutoff=args.cutoff,
                         interp=args.interp, delta=args.delta, T=args.T, n_sizes=args.n_sizes, layers=layers,
                         noise=args.noise, estimator=args.estimator,
                         errors=None if args.errors == "none" else args.errors, n_boot=args.n_boot,
                         seed=args.seed, batch_size=args.batch_size, device=dev,
                         test_error=not args.no_test_error, out=out_dir, figures=not args.no_figures,
                         progress=not args.no_progress,
                         model_info=info)
    except ArgumentError as exc:
        return _error(_FLAGS.get(exc.argument, "--" + exc.argument.replace("_", "-")), exc.message)
    except (ValueError, RuntimeError) as exc:
        print(f"error: the measurement failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if (out_dir / JSON_NAME).exists():
            print(f"partial results: {out_dir / JSON_NAME}", file=sys.stderr)
        return 1
    _summary(record, out_dir)
    return 130 if record["interrupted"] else 0


# ----------------------------------------------------------------------------------------------------------
# one job per checkpoint (verify.jobs)
# ----------------------------------------------------------------------------------------------------------
SUMMARY_NAME = "measure_checkpoints.json"


def measure_checkpoint(*, model: str, model_args: list, checkpoint: str | None, data: str, data_args: list,
                       data_test_args: list | None, split_seed: int, test_fraction: float, normalise: str,
                       resize: str | None, channels_last: bool, color: str, settings: dict,
                       device: str | None) -> dict:
    """One unit of ``python -m verify.measure`` with several checkpoints or ``--executor local|slurm``: load the
    data and the model (``checkpoint`` loaded strictly) from the command-line values, then
    ``measure(model, data, **settings, device=device)`` without output folder; returns the record (what
    ``measure.json`` holds). ``device`` None: cuda when torch sees one, else cpu (decided in the job)."""
    ds = load_dataset(data, kwargs=parse_kwargs(data_args, "--data-arg") or None,
                      test_kwargs=None if data_test_args is None else parse_kwargs(data_test_args, "--data-test-arg"),
                      split_seed=split_seed, test_fraction=test_fraction, normalise=_parse_normalise(normalise),
                      size=_parse_resize(resize), channels_last=channels_last, color=color)
    net, info = load_model(model, kwargs=parse_kwargs(model_args, "--model-arg"), checkpoint=checkpoint,
                           input_shape=ds.shape)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    record = measure(net, ds, **settings, device=device, out=None, figures=False, progress=False, model_info=info)
    if record["interrupted"]:
        raise KeyboardInterrupt("the measurement was interrupted")
    return record


def _labels(checkpoints: list[str]) -> list[str]:
    """Output folder name per checkpoint: its file stem (``-2``, ``-3``, ... appended to repeated stems)."""
    stems = [Path(c).stem or "checkpoint" for c in checkpoints]
    out = []
    for i, s in enumerate(stems):
        n = stems[:i].count(s)
        out.append(s if n == 0 and stems.count(s) == 1 else f"{s}-{n + 1}")
    return out


def _run_jobs(args, out_dir: Path, device: str | None, layers, checkpoints: list[str], command: str) -> int:
    """Several checkpoints or ``--executor local|slurm``: one unit per checkpoint (:mod:`verify.jobs`); each
    record is written from its unit file, to ``--out`` (one checkpoint or none) or ``--out/NAME`` (several), and a
    summary of all of them to ``--out/measure_checkpoints.json``."""
    from verify.jobs import Unit, run_units

    c = int(args.c) if float(args.c).is_integer() else args.c
    settings = dict(split=args.split, n_probe=args.n_probe, c=c, cutoff=args.cutoff, interp=args.interp,
                    delta=args.delta, T=args.T, n_sizes=args.n_sizes, layers=layers, noise=args.noise,
                    estimator=args.estimator, errors=None if args.errors == "none" else args.errors,
                    n_boot=args.n_boot, seed=args.seed, batch_size=args.batch_size,
                    test_error=not args.no_test_error)
    model = args.model
    if Path(os.path.expanduser(model)).is_file():  # a TorchScript archive: the same file from any job's folder
        model = str(Path(os.path.expanduser(model)).resolve())
    common = dict(model=model, model_args=list(args.model_arg), data=args.data, data_args=list(args.data_arg),
                  data_test_args=None if args.data_test_arg is None else list(args.data_test_arg),
                  split_seed=args.split_seed, test_fraction=args.test_fraction, normalise=args.normalise,
                  resize=args.resize, channels_last=args.channels_last, color=args.color, settings=settings,
                  device=device)
    config = {"tool": "verify.measure", **common}
    files = [None] if not checkpoints else [str(Path(os.path.expanduser(ck)).resolve()) for ck in checkpoints]
    labels = ["model"] if not checkpoints else _labels(checkpoints)
    units = [Unit(label, "verify.measure:measure_checkpoint", {**common, "checkpoint": ck})
             for label, ck in zip(labels, files)]
    opts = dict(args.jobs)
    # torch threads of each job: --threads, else --cpus-per-job (parallel jobs do not oversubscribe the cores);
    # inline, the units run in this process with its threads
    threads = args.threads if args.threads is not None else opts["cpus_per_job"]
    try:
        report = run_units(units, out_dir, config=config, threads=threads, progress=not args.no_progress, **opts)
    except SpecError as exc:
        return _error(exc.flag, exc.message)
    single = len(units) == 1
    summary = {"schema": "diffeostability.measure-checkpoints/1", "command": command, "complete": report.complete,
               "interrupted": report.interrupted, "executor": report.executor, "checkpoints": []}
    for label, ck, o in zip(labels, files, report.outcomes):
        entry = {"name": label, "checkpoint": ck, "status": o.status, "folder": None, "error": o.error,
                 "log": o.log, "test_error": None, "R_output": None}
        if o.status == "done":
            record = o.result
            record["model"]["command"] = command
            folder = out_dir if single else out_dir / label
            folder.mkdir(parents=True, exist_ok=True)
            if not args.no_figures and record["sizes"]:
                plot_layer_stability(record, folder / FIG_LAYERS)
                plot_size_stability(record, folder / FIG_SIZES)
                record["figures"] = [FIG_LAYERS, FIG_SIZES]
            _write_json(record, folder / JSON_NAME)
            entry.update(folder=str(folder.relative_to(out_dir)) if not single else ".",
                         test_error=record["test_error"]["value"],
                         R_output=[s["output"]["R"]["value"] for s in record["sizes"]],
                         delta=[s["delta"] for s in record["sizes"]])
            print(f"[{label}]", end=" ")
            _summary(record, folder)
        elif o.status == "failed":
            print(f"[{label}] FAILED" + (f" (log: {o.log})" if o.log else "") + ": "
                  + ((o.error or "").strip().splitlines() or ["?"])[-1], file=sys.stderr)
        summary["checkpoints"].append(entry)
    _write_json(summary, out_dir / SUMMARY_NAME)
    print(f"{report.summary()}; wrote {out_dir / SUMMARY_NAME}")
    if report.interrupted:
        return 130
    return 1 if report.failed else 0


def _summary(record: dict, out_dir: Path) -> None:
    err = record["test_error"]
    print(f"{record['model'].get('spec')} on {record['data']['spec']}: {record['data']['n_probe']} probes, "
          f"test error {'-' if err['value'] is None else format(err['value'], '.4f')}"
          + ("" if err["value"] is not None else f" ({err.get('reason')})"))
    for s in record["sizes"]:
        o = s["output"]
        print(f"  delta {s['delta']:7.3f} px  T {s['T']:.3e}  D {o['D']['value']:.3e}  G {o['G']['value']:.3e}  "
              f"R {o['R']['value']:.3e}")
    status = "complete" if record["complete"] else "interrupted: partial results"
    print(f"{status}; wrote {out_dir / JSON_NAME}" + (f" and {len(record['figures'])} figures" if record["figures"]
                                                      else ""))


if __name__ == "__main__":
    sys.exit(main())
