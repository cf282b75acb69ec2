"""The spherical model (Petrini, Cagnetta, Vanden-Eijnden & Wyart 2022): its public surface and its command line.

``python -m verify.spherical --out DIR [--quick | --size SIZE] [--executor local|slurm ...]``: the sweep of
:mod:`verify.experiments.spherical` (exponents, atoms, rotation stability S, the NTK and lazy checks, trained networks
in both regimes); exit 0 when every row passes, 1 when one fails, 2 for a bad flag, 130 on Ctrl-C.

The names below are those of :mod:`verify.two_layer` (the network, its training, NTK and kernel regression) and
:mod:`verify.experiments.spherical` (the sweep and the experiment), gathered here.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import torch

from verify.experiments.spherical import (SIZES, TOOL, TRAINED, WINDOWS, Interrupted, exponent_rows, lazy_vs_krr,
                                          ntk_check, regime_fit, run, sweep, sweep_figures, sweep_point,
                                          trained_regimes, window_fit)
from verify.two_layer import (KRR_WEIGHTS, TwoLayerReLU, TwoLayerTrainResult, empirical_ntk, krr_predict,
                              network_atoms, symmetric_init, train_two_layer)

__all__ = ["TwoLayerReLU", "symmetric_init", "TwoLayerTrainResult", "train_two_layer", "empirical_ntk", "krr_predict",
           "KRR_WEIGHTS", "network_atoms", "SIZES", "WINDOWS", "TRAINED", "Interrupted", "sweep", "sweep_point",
           "regime_fit", "window_fit", "exponent_rows", "ntk_check", "lazy_vs_krr", "trained_regimes", "sweep_figures",
           "run", "main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m verify.spherical``: exit 0 (every row passes), 1 (a row fails), 2 (a bad flag, before any work,
    naming it), 130 (Ctrl-C: what finished is in ``spherical.json`` with ``"interrupted"`` naming the stage)."""
    from verify.outputs import check_manifest, finish_outputs, folder_state, prepare_out_dir, written_since
    from verify.specs import SpecError

    ap = argparse.ArgumentParser(prog="python -m verify.spherical",
                                 description="Spherical model sweep: lazy vs feature exponents, atoms, rotation S.")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("spherical_out"),
                    help="output folder (spherical.json, PNGs, manifest.json); default spherical_out")
    ap.add_argument("--quick", action="store_true", help="the quick size (d = 3, 5; P = 64..512; 2 seeds; minutes "
                    "on 2 cores); same as --size quick")
    ap.add_argument("--size", choices=tuple(SIZES), default=None,
                    help="sweep size: full (default; P = 64..4096, 16 seeds: ~3 CPU-hours, meant for --executor), "
                         "quick, tiny (tests), large (d = 3, P = 1024..4096, 8 seeds)")
    ap.add_argument("--seed", type=int, default=0,
                    help="base seed (>= 0); point (d, P, s) draws from SeedSequence([seed, d, P, s]) (default 0)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="torch device of the trained networks and the NTK check (default: cuda if available, "
                         "else cpu)")
    ap.add_argument("--refine", type=int, default=0, help="column-generation rounds (continuous min-L1 limit)")
    from verify.jobs import UNITS_DIR, LOGS_DIR, add_executor_arguments, executor_options

    add_executor_arguments(ap, unit="(d, P, seed) point of the sweep")
    a = ap.parse_args(argv)
    try:  # every flag before any work
        jobs = executor_options(a)
        if a.seed < 0:
            raise SpecError("--seed", f"must be >= 0, got {a.seed}")
        if a.refine < 0:
            raise SpecError("--refine", f"must be >= 0, got {a.refine}")
        try:
            dev = torch.device(a.device)
        except (RuntimeError, ValueError) as exc:
            raise SpecError("--device", f"{a.device!r} is not a torch device ({exc})") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise SpecError("--device", f"{a.device!r}: torch sees no CUDA device (use cpu)")
        out = prepare_out_dir(a.out)
        check_manifest(out, TOOL)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = dict(quick=a.quick, size=a.size, seed=a.seed, device=a.device, refine=a.refine)
    before = folder_state(out)

    def written():  # the unit files and job logs stay out of the manifest: a rerun reuses them
        return [f for f in written_since(out, before) if f.split("/")[0] not in (UNITS_DIR, LOGS_DIR)]

    try:
        rec = run(quick=a.quick, out_dir=out, seed=a.seed, device=a.device, size=a.size, progress=True,
                  refine=a.refine, jobs=None if a.executor == "inline" else jobs)
    except SpecError as exc:  # unit files of another configuration in --out
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # sweep points whose jobs failed
        finish_outputs(out, TOOL, config, written(), complete=False)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        finish_outputs(out, TOOL, config, written(), complete=False)
        where = exc.stage if isinstance(exc, Interrupted) else "the run"
        saved = exc.path if isinstance(exc, Interrupted) else None
        print(f"interrupted (Ctrl-C) during {where}: no verdicts; "
              + (f"what finished is saved in {saved} (\"interrupted\" names the stage)" if saved
                 else "nothing was saved"), file=sys.stderr)
        return 130
    removed = finish_outputs(out, TOOL, config, written())
    for r in rec["rows"]:
        print(f"{r['verdict']:5s} {r['quantity']:48s} predicted={r['predicted']!s:22s} measured={r['measured']!s:14s} "
              f"{r['tolerance'] or ''}")
    print(f"wrote {out / 'spherical.json'} and {', '.join(rec['figures'])}"
          + (f"; removed stale files of the previous run: {', '.join(removed)}" if removed else ""))
    return 1 if any(r["verdict"] == "fail" for r in rec["rows"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
