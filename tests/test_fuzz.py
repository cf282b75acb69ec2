"""Fuzz harness (issue 15): malformed values, types, shapes, dtypes and sizes thrown at the public functions.

For every target (a public function with a valid baseline call), hypothesis picks one argument and replaces it by
a malformed value (None, a string, a bool, NaN/inf, negative / zero / huge numbers, complex numbers, arrays of the
wrong shape or dtype -- float16, int8, bool, complex, object, empty --, tensors that require grad, absurd sizes).
Each call runs in a worker process (``tests/fuzz_worker.py``) under a memory cap (``RLIMIT_AS`` = 3 GiB) and a time
limit (:data:`CALL_TIMEOUT` s; a worker that hangs is killed and replaced). The contract:

* the call returns a result whose numbers are all finite (the malformed value happened to be acceptable), or
* it raises a ``TypeError`` or ``ValueError`` whose message names the argument (``FloatingPointError`` naming it
  is accepted too: a detected divergence);

anything else fails: another exception (IndexError, RuntimeError, ZeroDivisionError, MemoryError, ...), a NaN/inf
in the result, a hang past the time limit, or a crashed worker. Examples are derandomised (the same in every run).
"""
from __future__ import annotations

import math
import os
import pickle
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "fuzz_worker.py"
#: seconds one call may take (the slowest valid baseline takes well under 1 s once the worker is warm)
CALL_TIMEOUT = 20.0
#: address-space cap of the worker (torch, numba and scipy loaded take ~1.5 GiB of it)
MEMORY = 3 << 30
#: examples per target: 45 targets x 10 = 450 calls, about a minute on 2 cores
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))


def R(name):
    """An object built in the worker (a callable, a model): see fuzz_worker._refs."""
    return ("__ref__", name)


class Worker:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.proc = None
        self.restarts = 0

    def start(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", OMP_NUM_THREADS="1",
                   NUMBA_NUM_THREADS="2")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), str(MEMORY)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.tmp, env=env)
        ready = self._read(120.0)
        assert ready == {"kind": "ready"}, ready

    def _read(self, timeout):
        fd = self.proc.stdout
        buf = b""
        deadline = time.monotonic() + timeout
        need = 4
        header = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd.fileno(), 1 << 20)
            if not chunk:
                return {"kind": "crashed", "returncode": self.proc.poll()}
            buf += chunk
            if header is None and len(buf) >= 4:
                header = struct.unpack(">I", buf[:4])[0]
                need = 4 + header
            if header is not None and len(buf) >= need:
                return pickle.loads(buf[4:need])

    def call(self, target, args, kwargs, checker):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        data = pickle.dumps((target, args, kwargs, checker))
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return {"kind": "crashed", "returncode": None}
        ans = self._read(CALL_TIMEOUT)
        if ans is None:
            self.stop()
            return {"kind": "hang"}
        if ans.get("kind") == "crashed":
            self.stop()
        return ans

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.restarts += 1


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("fuzz"))
    w.start()
    yield w
    w.stop()


# ------------------------------------------------------------------------------------------------------------------
# malformed values
# ------------------------------------------------------------------------------------------------------------------
SCALARS = [None, "abc", "", b"x", True, False, 0, -1, 1, 2, 3, 2.5, -0.5, 1e-308, 5e-324, 1e308, 10**30, -10**30,
           2**63, math.nan, math.inf, -math.inf, 1 + 1j, np.float16(1.5), np.int8(3), np.bool_(True), np.nan,
           [1, 2], (), {}, R("object"), 10**12, 10**9]
DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int64", "bool", "complex64", "object"]


@st.composite
def arrays(draw):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(DTYPES))
    fill = draw(st.sampled_from(["random", "nan", "inf", "zero", "huge"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = rng.standard_normal(shape)
    if fill == "nan" and a.size:
        a.flat[0] = np.nan
    elif fill == "inf" and a.size:
        a.flat[-1] = np.inf
    elif fill == "zero":
        a[...] = 0
    elif fill == "huge":
        a = a * 1e200
    with np.errstate(all="ignore"):
        if dtype == "object":
            return a.astype(object)
        if dtype == "bool":
            return a > 0
        if dtype.startswith(("int", "uint")):
            return np.nan_to_num(a, posinf=0, neginf=0).astype(dtype)
        return a.astype(dtype)


@st.composite
def tensors(draw):
    import torch

    a = draw(arrays())
    if a.dtype == object or a.dtype == np.uint16:
        a = a.astype(np.float64)
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.is_floating_point() and draw(st.booleans()):
        t.requires_grad_(True)
    return t


def like(base):
    """Malformed variants of a valid value: the baseline with another shape or dtype, or a NaN in it."""
    if isinstance(base, np.ndarray) and base.size:
        variants = [base[:1], base[..., :1], base.reshape(-1), base[None], base.astype(np.float16),
                    base.astype(np.complex128), base.astype(object), np.where(np.arange(base.size).reshape(base.shape)
                                                                              == 0, np.nan, base)]
        return st.sampled_from(variants)
    return st.nothing()


def bad_values(base):
    return st.one_of(st.sampled_from(SCALARS), arrays(), tensors(), like(base))


# ------------------------------------------------------------------------------------------------------------------
# targets: (module:function, positional args, keyword args, names of the positional args, checker)
# ------------------------------------------------------------------------------------------------------------------
_rng = np.random.default_rng(0)
X = _rng.standard_normal((12, 4))
XD = X + 0.1 * _rng.standard_normal(X.shape)
S3 = _rng.standard_normal((12, 3))
S3 /= np.linalg.norm(S3, axis=1, keepdims=True)
DIRS = _rng.standard_normal((30, 3))
DIRS /= np.linalg.norm(DIRS, axis=1, keepdims=True)
IMG = _rng.random((2, 8, 8))
U = np.array([[1.0, 0, 0], [0, 1.0, 0]])
V = np.array([[0, 1.0, 0], [0, 0, 1.0]])

TARGETS = [
    # numerics.stability
    ("numerics.stability:relative_stability", [R("np_tanh"), X, XD], dict(n_boot=10, seed=0),
     ["f", "x", "x_diffeo"], "estimates"),
    ("numerics.stability:layerwise_stability", [R("torch_mlp"), X, XD], dict(n_boot=10, seed=0),
     ["model", "x", "x_diffeo"], "estimates"),
    ("numerics.stability:rotation_stability", [R("np_tanh"), S3, 0.3], dict(n_boot=10, seed=0),
     ["f", "x", "theta"], "estimates"),
    ("numerics.stability:matched_noise", [X, XD], dict(seed=0), ["x", "x_diffeo"], "finite"),
    # numerics.diffeo
    ("numerics.diffeo:deform", [IMG, 1e-3, 3], dict(seed=0), ["x", "T", "c"], "finite"),
    ("numerics.diffeo:remap", [IMG, np.zeros((2, 2, 8, 8))], {}, ["x", "fields"], "finite"),
    ("numerics.diffeo:sample_diffeos", [2, 8, 8, 1e-3, 3], dict(seed=0), ["batch", "height", "width", "T", "c"],
     "finite"),
    ("numerics.diffeo:sample_fields", [2, 8, 8, 1e-3, 3], dict(seed=0), ["batch", "height", "width", "T", "c"],
     "finite"),
    ("numerics.diffeo:typical_displacement", [1e-3, 3, 16], {}, ["T", "c", "n"], "finite"),
    ("numerics.diffeo:temperature_for_displacement", [0.5, 3, 16], {}, ["delta", "c", "n"], "finite"),
    ("numerics.diffeo:temperature_range", [16, 3], {}, ["n", "c"], "finite"),
    ("numerics.diffeo:single_mode_temperature_range", [16], {}, ["n"], "finite"),
    # numerics.atoms
    ("numerics.atoms:min_l1_interpolant", [S3[:5], np.ones(5), DIRS], {}, ["x", "y", "directions"], "finite"),
    ("numerics.atoms:count_atoms", [DIRS, np.ones(30)], dict(x=S3), ["directions", "weights"], "finite"),
    ("numerics.atoms:relu_features", [S3, DIRS], {}, ["x", "directions"], "finite"),
    # numerics.sphere
    ("numerics.sphere:sample_sphere", [10, 3], dict(seed=0), ["P", "d"], "finite"),
    ("numerics.sphere:sample_gaussian", [10, 3], dict(seed=0), ["P", "d"], "finite"),
    ("numerics.sphere:sample_ball", [10, 3], dict(seed=0), ["P", "d"], "finite"),
    ("numerics.sphere:sample_inputs", [10, 3, "sphere"], dict(seed=0), ["P", "d", "distribution"], "finite"),
    ("numerics.sphere:make_teacher", [3, 1.5], dict(width=10, seed=0), ["d", "smoothness"], "finite"),
    ("numerics.sphere:make_dataset", [10, 3], dict(target="grf", smoothness=1.5, P_test=5, seed=0), ["P", "d"],
     "finite"),
    # numerics.rotations
    ("numerics.rotations:random_planes", [3, 4], dict(seed=0), ["d", "n"], "finite"),
    ("numerics.rotations:rotate", [S3[:2], U, V, 0.3], {}, ["x", "u", "v", "theta"], "finite"),
    ("numerics.rotations:rotation_matrices", [U, V, 0.3], {}, ["u", "v", "theta"], "finite"),
    ("numerics.rotations:random_rotations", [3, 0.3, 4], dict(seed=0), ["d", "theta", "n"], "finite"),
    ("numerics.rotations:geodesic_rotate", [S3, 0.3], dict(seed=0), ["x", "theta"], "finite"),
    ("numerics.rotations:linear_rotation_sensitivity", [np.ones((2, 3)), 0.3], {}, ["weight", "theta"], "finite"),
    # numerics.scale_detection
    ("numerics.scale_detection:make_dataset", [12, 3], dict(seed=0), ["n", "xi"], "finite"),
    ("numerics.scale_detection:simulate_layers", [3, 8], dict(layers=2, samples=50, seed=0),
     ["xi", "n"], "finite"),
    ("numerics.scale_detection:brute_force_layers", [3, 6], dict(layers=2), ["xi", "n"], "finite"),
    ("numerics.scale_detection:diffeo_moves", [R("sd_data")], dict(seed=0), ["x"], "finite"),  # its message names
    # the images x (x_or_data)
    # numerics.perturbations
    ("numerics.perturbations:temperature_sweep", [IMG, [2, 3]], dict(n_T=3, seed=0), ["x", "cs"], "finite"),
    # theory
    ("theory.scale_detection:exact_layers", [3, 8], dict(layers=2), ["xi", "n"], "finite"),
    ("theory.diffeo:typical_displacement", [1e-3, 3, 16], {}, ["T", "c", "n"], "finite"),
    ("theory.spherical:ntk", [S3], {}, ["x1"], "finite"),
    ("theory.spherical:rf_kernel", [S3], {}, ["x1"], "finite"),
    ("theory.spherical:beta_lazy", [3], {}, ["d"], "finite"),
    ("theory.spherical:beta_feature", [3], {}, ["d"], "finite"),
    ("theory.spherical:predicted_atoms", [10, "feature"], {}, ["P", "regime"], "finite"),
    # verify.two_layer (the spherical model's network)
    ("verify.two_layer:symmetric_init", [20, 3], dict(seed=0), ["h", "d"], "finite"),
    ("verify.two_layer:train_two_layer", [R("sym_model"), S3, np.ones(12)], dict(max_steps=30), ["model", "x", "y"],
     "finite"),
    ("verify.two_layer:krr_predict", [S3, np.ones(12), S3[:3]], {}, ["x_train", "y_train", "x_test"], "finite"),
    ("verify.two_layer:empirical_ntk", [R("sym_model"), S3], {}, ["model", "x1"], "finite"),
    # verify.transforms
    ("verify.transforms:RandomDiffeo", [], dict(T=1e-3, c=3, seed=0), [], "finite"),
    # verify.outputs
    ("verify.outputs:prepare_out_dir", ["out"], {}, ["path"], "finite"),
]


def _kwarg_names(target):
    """Keyword arguments of the target that the fuzzer may corrupt: those of the baseline plus every keyword-only
    parameter with a default (read from the signature in this process)."""
    import importlib
    import inspect

    mod, _, qual = target.partition(":")
    fn = importlib.import_module(mod)
    for part in qual.split("."):
        fn = getattr(fn, part)
    sig = inspect.signature(fn)
    return [n for n, p in sig.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in ("progress",)]


def _names_argument(message: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


def _verdict(ans, name):
    kind = ans["kind"]
    if kind == "ok":
        return None
    if kind in ("hang", "crashed"):
        return f"{kind} ({ans})"
    if kind == "nonfinite":
        return f"returned a non-finite result: {ans['detail']}"
    mro = ans["mro"]
    if not any(c in mro for c in ("TypeError", "ValueError", "FloatingPointError")):
        return f"raised {ans['type']}: {ans['message'][:300]}"
    if not _names_argument(ans["message"], name):
        return f"raised {ans['type']} not naming {name!r}: {ans['message'][:300]}"
    return None


@pytest.mark.parametrize("target,args,kwargs,names,checker", TARGETS, ids=[t[0].split(":")[1] + "@" +
                                                                             t[0].split(":")[0].split(".")[-1]
                                                                             for t in TARGETS])
def test_malformed_arguments_are_refused_by_name(worker, target, args, kwargs, names, checker):
    kw_names = _kwarg_names(target)
    slots = [("pos", i, n) for i, n in enumerate(names)] + [("kw", n, n) for n in kw_names]
    assert slots, target
    # the baseline call itself is valid and finite
    base = worker.call(target, args, kwargs, checker)
    assert base["kind"] == "ok", f"baseline {target}: {base}"

    failures = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data):
        kind, key, name = data.draw(st.sampled_from(slots), label="argument")
        a, k = list(args), dict(kwargs)
        base_value = a[key] if kind == "pos" else k.get(key)
        value = data.draw(bad_values(base_value if isinstance(base_value, np.ndarray) else None), label="value")
        if kind == "pos":
            a[key] = value
        else:
            k[key] = value
        ans = worker.call(target, a, k, checker)
        why = _verdict(ans, name)
        if why is not None:
            failures.append(f"{target}({name}={_short(value)}): {why}")

    run()
    assert not failures, "\n".join(failures)


def _short(v):
    if isinstance(v, np.ndarray):
        return f"array(shape={v.shape}, dtype={v.dtype})"
    t = sys.modules.get("torch")
    if t is not None and isinstance(v, t.Tensor):
        return f"tensor(shape={tuple(v.shape)}, dtype={v.dtype}, requires_grad={v.requires_grad})"
    r = repr(v)
    return r if len(r) < 60 else r[:57] + "..."


def test_the_harness_catches_hangs_crashes_and_unnamed_errors(worker):
    """The harness itself: a hang is killed within the time limit, a foreign exception and an error that does not
    name the argument are failures, a finite result and a named ValueError are not."""
    assert _verdict({"kind": "raised", "type": "IndexError", "mro": ["IndexError", "Exception"],
                     "message": "x"}, "x") is not None
    assert _verdict({"kind": "raised", "type": "ValueError", "mro": ["ValueError"], "message": "bad input"},
                    "n_boot") is not None
    assert _verdict({"kind": "raised", "type": "ValueError", "mro": ["ValueError"], "message": "n_boot must be"},
                    "n_boot") is None
    assert not _names_argument("x_diffeo must be", "x") and _names_argument("x must be", "x")
    ans = worker.call("numerics.stability:relative_stability", [R("lambda_nan"), X, XD], dict(seed=0), "estimates")
    assert ans["kind"] == "raised" and "non-finite" in ans["message"]
    t0 = time.monotonic()
    old = globals()["CALL_TIMEOUT"]
    globals()["CALL_TIMEOUT"] = 1.0
    try:
        ans = worker.call("time:sleep", [30], {}, "finite")
    finally:
        globals()["CALL_TIMEOUT"] = old
    assert ans == {"kind": "hang"} and time.monotonic() - t0 < 5
    ans = worker.call("numpy:ones", [10**10], {}, "finite")   # 80 GB: the memory cap turns it into a MemoryError
    assert ans["kind"] == "raised" and ans["type"] == "MemoryError"
    assert _verdict(ans, "shape") is not None
