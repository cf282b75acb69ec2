"""The worker process of ``tests/test_fuzz.py`` (not a test module): reads calls from stdin, runs each under a memory
cap, and writes what happened to stdout. Run as ``python tests/fuzz_worker.py MEMORY_BYTES``.

Protocol: a call is a 4-byte big-endian length and a pickle of ``(target, args, kwargs, checker)``; ``target`` is
``"module:qualname"``; in args and kwargs a tuple ``("__ref__", name)`` stands for an object built here (a callable,
a torch model, ...). The answer (same framing) is a dict: ``{"kind": "ok"}`` for a checked finite result,
``{"kind": "nonfinite", "detail"}`` for a result holding NaN/inf, or ``{"kind": "raised", "type", "mro", "message"}``.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import os
import pickle
import resource
import struct
import sys
import warnings


def _refs():
    import numpy as np
    import torch

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    lin3 = torch.nn.Linear(3, 2).double()
    return {
        "np_tanh": lambda z: np.tanh(np.asarray(z) @ np.ones((np.shape(z)[-1], 3))) + np.asarray(z)[..., :1] ** 2,
        "np_sq": lambda z: np.asarray(z) ** 2,
        "sphere_f": lambda z: np.asarray(z)[:, 0] * np.asarray(z)[:, 1],
        "torch_mlp": mlp,
        "torch_lin3": lin3,
        "object": object(),
        "lambda_nan": lambda z: np.full((len(z), 2), np.nan),
        "lambda_scalar": lambda z: 1.0,
        "sym_model": None,  # built on demand (verify.spherical.symmetric_init)
        "sd_data": None,    # a scale-detection data set
    }


def _resolve(v, refs):
    if isinstance(v, tuple) and len(v) == 2 and v[0] == "__ref__":
        name = v[1]
        if name == "sym_model":
            from verify.two_layer import symmetric_init

            return symmetric_init(20, 3, seed=1)
        if name == "sd_data":
            from numerics.scale_detection import make_dataset

            return make_dataset(12, 3, seed=0)
        return refs[name]
    if isinstance(v, list):
        return [_resolve(u, refs) for u in v]
    if isinstance(v, dict):
        return {k: _resolve(u, refs) for k, u in v.items()}
    return v


def _finite(obj, depth=0) -> str | None:
    """None when every number in ``obj`` is finite, else where the first non-finite one is."""
    import numpy as np

    if depth > 6 or obj is None or isinstance(obj, (str, bytes, bool)):
        return None
    t = sys.modules.get("torch")
    if t is not None and isinstance(obj, t.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            return None if bool(t.isfinite(obj.detach()).all()) else "tensor"
        return None
    if t is not None and isinstance(obj, t.nn.Module):
        return None
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc":
            return None if np.all(np.isfinite(obj)) else f"array {obj.shape}"
        return None
    if isinstance(obj, (int, np.integer)):
        return None
    if isinstance(obj, (float, np.floating, complex, np.complexfloating)):
        return None if np.isfinite(obj) else repr(obj)
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            bad = _finite(getattr(obj, f.name), depth + 1)
            if bad:
                return f"{f.name}: {bad}"
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad = _finite(v, depth + 1)
            if bad:
                return f"{k}: {bad}"
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj[:1000]):
            bad = _finite(v, depth + 1)
            if bad:
                return f"[{i}]: {bad}"
        return None
    try:  # sympy numbers and expressions that evaluate to a number
        import sympy as sp

        if isinstance(obj, sp.Basic):
            if obj.free_symbols:
                return None
            v = complex(obj.evalf())
            return None if math.isfinite(v.real) and math.isfinite(v.imag) else repr(obj)
    except (TypeError, ValueError):
        return None
    return None


def _check(result, checker: str):
    if checker == "estimates":  # StabilityResult / Estimate / dict of them: the values (se/ci are NaN by design
        # with errors=None)
        vals = []
        items = result.values() if isinstance(result, dict) else [result]
        for r in items:
            if hasattr(r, "D"):
                vals += [getattr(r, k).value for k in ("D", "G", "R", "diffeo_sensitivity", "noise_sensitivity",
                                                       "pair_distance")]
            elif hasattr(r, "value"):
                vals.append(r.value)
        bad = [v for v in vals if not math.isfinite(v)]
        return "value: nan/inf" if bad else None
    return _finite(result)


def _read(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    return pickle.loads(stream.read(n))


def _write(stream, obj):
    data = pickle.dumps(obj)
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def main() -> None:
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, os.getcwd())
    warnings.simplefilter("ignore")
    import numpy  # noqa: F401  (imports paid once, before the first call)
    import torch

    torch.set_num_threads(1)
    refs = _refs()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a function that prints must not corrupt the protocol
    _write(out, {"kind": "ready"})
    while True:
        call = _read(inp)
        if call is None:
            return
        target, args, kwargs, checker = call
        mod, _, qual = target.partition(":")
        try:
            fn = importlib.import_module(mod)
            for part in qual.split("."):
                fn = getattr(fn, part)
            result = fn(*_resolve(list(args), refs), **_resolve(dict(kwargs), refs))
            bad = _check(result, checker)
            answer = {"kind": "ok"} if bad is None else {"kind": "nonfinite", "detail": bad}
        except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                answer = {"kind": "raised", "type": type(exc).__name__, "mro": [type(exc).__name__],
                          "message": str(exc)}
            else:
                answer = {"kind": "raised", "type": type(exc).__name__,
                          "mro": [c.__name__ for c in type(exc).__mro__], "message": str(exc)[:2000]}
        _write(out, answer)


if __name__ == "__main__":
    main()
