r"""Command-line specs: ``MODULE:CALLABLE`` objects, ``KEY=VALUE`` keyword arguments, and models from anywhere.

* ``KEY=VALUE`` (one per ``--model-arg`` / ``--data-arg`` flag, repeated for several): KEY a Python identifier,
  VALUE read with :func:`ast.literal_eval` (numbers, ``True``/``False``/``None``, quoted strings, tuples, lists,
  dicts), anything that is not a Python literal is kept as the string itself: ``root=/data/cifar10`` is the
  string ``"/data/cifar10"``, ``num_classes=10`` the int 10, ``size=(32,32)`` a tuple, ``name='10'`` the string
  ``"10"``. One flag holds one pair, so values may contain commas and ``=``.
* ``MODULE:CALLABLE``: ``importlib.import_module(MODULE)`` (the current directory is on ``sys.path`` under
  ``python -m``), then ``CALLABLE`` looked up on it, dots allowed (``pkg.mod:Class.method``).
* Models (:func:`load_model`): an existing file is a TorchScript archive (``torch.jit.load``); a name of
  :data:`PROJECT_MODELS` builds the project's own net (``verify.models``) sized for the data (``in_channels``,
  ``dim=2`` or ``input_shape`` filled in unless given); ``MODULE:CALLABLE`` calls a factory with the keyword
  arguments. ``checkpoint`` loads a state dict strictly (:func:`load_checkpoint`).

Bad specs raise :class:`SpecError`, a ``ValueError`` that names the command-line flag it came from.
"""
from __future__ import annotations

import ast
import importlib
import keyword
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

from theory.arguments import ArgumentValueError

__all__ = [
    "SpecError",
    "parse_value",
    "parse_kwargs",
    "is_object_spec",
    "load_object",
    "PROJECT_MODELS",
    "load_model",
    "load_checkpoint",
]

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class SpecError(ArgumentValueError):
    """A bad command-line spec or flag value; ``flag`` (also ``argument``, as for every
    :class:`theory.arguments.ArgumentError`) is the flag it came from (``"--model"``, ``"--data-arg"``, ...)."""

    def __init__(self, flag: str, message: str):
        super().__init__(flag, f"{flag}: {message}")
        self.flag = flag
        self.message = message


def _flag(name: str) -> str:
    return name if name.startswith("--") else f"--{name}"


def parse_value(text: str) -> Any:
    """``ast.literal_eval(text)``, or ``text`` itself when it is not a Python literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_kwargs(items: Sequence[str] | None, flag: str = "--model-arg") -> dict:
    """``["k=v", ...]`` -> ``{k: parse_value(v)}``; a missing ``=``, a key that is not an identifier or a repeated
    key raises :class:`SpecError` naming ``flag``."""
    out: dict = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep:
            raise SpecError(flag, f"expected KEY=VALUE, got {item!r}")
        if not key.isidentifier() or keyword.iskeyword(key):
            raise SpecError(flag, f"KEY must be a Python identifier, got {key!r} in {item!r}")
        if key in out:
            raise SpecError(flag, f"{key!r} is given twice")
        out[key] = parse_value(value)
    return out


def is_object_spec(spec: str) -> bool:
    """True for ``MODULE:ATTR`` with a dotted module name and a dotted attribute name."""
    mod, sep, attr = spec.partition(":")
    return bool(sep) and bool(_DOTTED.match(mod)) and bool(_DOTTED.match(attr))


def load_object(spec: str, flag: str = "--model") -> Any:
    """The object ``MODULE:ATTR`` names. :class:`SpecError` (naming ``flag``) for a malformed spec, a module that
    does not exist, a module that fails to import, or a missing attribute."""
    flag = _flag(flag)
    if not isinstance(spec, str) or not is_object_spec(spec):
        raise SpecError(flag, f"expected MODULE:CALLABLE (e.g. torchvision.models:resnet18), got {spec!r}")
    mod_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing == mod_name or mod_name.startswith(missing + ".") or not missing:
            raise SpecError(flag, f"unknown module {mod_name!r} in {spec!r} (not importable from {os.getcwd()}; "
                                  "install it or run from the folder that holds it)") from None
        raise SpecError(flag, f"module {mod_name!r} failed to import: {exc}") from exc
    except Exception as exc:
        raise SpecError(flag, f"module {mod_name!r} failed to import: {type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(flag, f"module {mod_name!r} has no attribute {attr!r} (in {spec!r})")
        obj = getattr(obj, part)
    return obj


# ----------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------
def _project_models() -> dict:
    from verify.models import ConvNet, FCNet, VGGNet

    return {"convnet": ConvNet, "fcnet": FCNet, "vggnet": VGGNet}


PROJECT_MODELS = ("convnet", "fcnet", "vggnet")


def _project_defaults(name: str, shape: Sequence[int] | None) -> dict:
    """Keyword arguments that size the project's net for images of ``shape`` (C, H, W)."""
    if shape is None:
        return {}
    C = int(shape[0])
    if name == "convnet":
        return {"dim": 2, "in_channels": C}
    if name == "vggnet":
        return {"in_channels": C}
    return {"input_shape": tuple(int(s) for s in shape)}


def load_model(spec: str, *, kwargs: dict | None = None, checkpoint: str | os.PathLike | None = None,
               input_shape: Sequence[int] | None = None, flag: str = "--model") -> tuple[Any, dict]:
    """Build or load the model ``spec`` names; return ``(model, info)`` with ``info`` a JSON-serialisable record.

    ``spec``: a path to a TorchScript archive, one of :data:`PROJECT_MODELS` (``input_shape`` (C, H, W) fills in
    the input size unless ``kwargs`` set it) or ``MODULE:CALLABLE`` (called with ``kwargs``). The model is put in
    eval mode. :class:`SpecError` names ``flag`` (``--model``), ``--model-arg`` or ``--checkpoint``.
    """
    import torch

    flag = _flag(flag)
    kwargs = dict(kwargs or {})
    if not isinstance(spec, str) or not spec:
        raise SpecError(flag, f"expected a TorchScript file, one of {PROJECT_MODELS} or MODULE:CALLABLE, got {spec!r}")
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        if kwargs:
            raise SpecError("--model-arg", f"a TorchScript archive takes no keyword arguments (got {sorted(kwargs)})")
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            hint = (" (a state dict or a pickled model? pass the architecture as --model MODULE:CALLABLE and the "
                    "weights as --checkpoint FILE)")
            raise SpecError(flag, f"{str(path)!r} is not a TorchScript archive: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}{hint}") from None
        info = {"spec": spec, "source": "torchscript", "file": str(path), "kwargs": {}}
    elif spec.lower() in PROJECT_MODELS:
        cls = _project_models()[spec.lower()]
        full = {**_project_defaults(spec.lower(), input_shape), **kwargs}
        model = _call(cls, full, spec, flag)
        info = {"spec": spec, "source": "project", "callable": f"verify.models:{cls.__name__}",
                "kwargs": _jsonable_kwargs(full)}
    elif ":" in spec:
        fn = load_object(spec, flag)
        if not callable(fn):
            raise SpecError(flag, f"{spec!r} is not callable (got {type(fn).__name__})")
        model = _call(fn, kwargs, spec, flag)
        info = {"spec": spec, "source": "factory", "callable": spec, "kwargs": _jsonable_kwargs(kwargs)}
    else:
        raise SpecError(flag, f"{spec!r} is not an existing file, not one of the project's nets {PROJECT_MODELS} "
                              "and not MODULE:CALLABLE")
    if not isinstance(model, torch.nn.Module):
        raise SpecError(flag, f"{spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is not None:
        info["checkpoint"] = load_checkpoint(model, checkpoint)
    else:
        info["checkpoint"] = None
    model.eval()
    info["class"] = type(model).__name__ if not isinstance(model, torch.jit.ScriptModule) else \
        getattr(model, "original_name", type(model).__name__)
    info["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
    return model, info


def _call(fn, kwargs: dict, spec: str, flag: str):
    try:
        return fn(**kwargs)
    except TypeError as exc:
        raise SpecError("--model-arg" if kwargs else flag, f"{spec}(**{kwargs!r}) raised TypeError: {exc}") from exc
    except Exception as exc:
        raise SpecError(flag, f"{spec}(**{kwargs!r}) raised {type(exc).__name__}: {exc}") from exc


def _jsonable_kwargs(kwargs: dict) -> dict:
    def conv(v):
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else repr(v)
        if isinstance(v, (list, tuple)):
            return [conv(u) for u in v]
        if isinstance(v, dict):
            return {str(k): conv(u) for k, u in v.items()}
        return repr(v)

    return {str(k): conv(v) for k, v in kwargs.items()}


def load_checkpoint(model, path: str | os.PathLike, *, flag: str = "--checkpoint") -> dict:
    """Load a state dict into ``model`` strictly; return a record ``{"file", "entry", "stripped_prefix"}``.

    The file (``torch.load(weights_only=True)``) holds a state dict, or a dict with a ``"state_dict"`` or
    ``"model"`` entry that is one. A ``"module."`` prefix on every key (``DataParallel``) is stripped when the
    model's keys lack it. Missing or unexpected keys, or shape mismatches, raise :class:`SpecError` naming them.
    """
    import torch

    flag = _flag(flag)
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise SpecError(flag, f"file {str(p)!r} does not exist")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SpecError(flag, f"cannot read {str(p)!r} as a torch state dict (torch.load, weights_only=True): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    entry = None
    if isinstance(obj, dict) and not _is_state_dict(obj):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict) and _is_state_dict(obj[key]):
                obj, entry = obj[key], key
                break
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise SpecError(flag, f"{str(p)!r} holds no state dict (a dict of tensors, or a dict with a 'state_dict' or "
                              f"'model' entry); got {type(obj).__name__}")
    own = set(model.state_dict().keys())
    stripped = None
    if own and not any(k.startswith("module.") for k in own) and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
        stripped = "module."
    missing = sorted(own - set(obj))
    unexpected = sorted(set(obj) - own)
    if missing or unexpected:
        def show(keys):
            return ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")

        parts = ([f"missing keys: {show(missing)}"] if missing else []) + \
                ([f"unexpected keys: {show(unexpected)}"] if unexpected else [])
        raise SpecError(flag, f"{str(p)!r} does not match the model ({'; '.join(parts)})")
    try:
        model.load_state_dict(obj, strict=True)
    except Exception as exc:
        raise SpecError(flag, f"{str(p)!r} does not match the model: {exc}") from None
    return {"file": str(p), "entry": entry, "stripped_prefix": stripped}


def _is_state_dict(d: dict) -> bool:
    import torch

    return bool(d) and all(isinstance(k, str) for k in d) and all(isinstance(v, torch.Tensor) for v in d.values())
