"""``python -m verify.compare``: theory against trained networks, side by side, with a verdict per row.

Runs the experiments of :mod:`verify.experiments` (trained CNNs on the scale-detection task layer by layer, low-pass
filter learning, the channel-shuffle test, FC vs CNN, the hand-constructed network, the spherical model), prints one
table (experiment, quantity, predicted, measured, tolerance, verdict), writes ``results.json`` and PNG figures in
``--out`` and exits with status 1 if any row fails (2 on bad arguments, 130 if interrupted — what was done is
still written).  Nothing is downloaded: every data set is generated.

    python -m verify.compare --quick              # CPU, small sizes, a few minutes
    python -m verify.compare                      # full sizes, meant for a GPU (used when torch sees one)
    python -m verify.compare --only lowpass --only channel_shuffle --out results/
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

TOOL = "verify.compare"
ROW_KEYS = ("experiment", "quantity", "predicted", "measured", "tolerance", "verdict")
VERDICTS = ("pass", "fail", "info")
COLUMNS = ("experiment", "quantity", "predicted", "measured", "tolerance", "verdict")

__all__ = ["validate_record", "guard_verdicts", "format_table", "exit_code", "run_experiments", "run_experiment_unit",
           "write_results", "main"]


def validate_record(record: dict) -> dict:
    """Check an experiment record against the contract; return it or raise ValueError.

    Contract: ``{"name": str, "rows": [row, ...], "data": JSON-serialisable, "figures": [file name, ...]}``, each row a
    dict with the keys ``ROW_KEYS`` and ``verdict`` in ``VERDICTS`` ("info" rows never fail a run); at least one row
    (an experiment that reports nothing has not checked anything)."""
    if not isinstance(record, dict):
        raise ValueError(f"record must be a dict, got {type(record).__name__}")
    for key in ("name", "rows", "data", "figures"):
        if key not in record:
            raise ValueError(f"record is missing the key {key!r}")
    if not isinstance(record["name"], str) or not record["name"]:
        raise ValueError("record['name'] must be a non-empty string")
    if not isinstance(record["rows"], list) or not isinstance(record["figures"], list):
        raise ValueError("record['rows'] and record['figures'] must be lists")
    if not record["rows"]:
        raise ValueError(f"record {record['name']!r} has no rows")
    for i, row in enumerate(record["rows"]):
        if not isinstance(row, dict):
            raise ValueError(f"row {i} of {record['name']!r} must be a dict")
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"row {i} of {record['name']!r} is missing {missing}")
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"row {i} of {record['name']!r}: verdict must be one of {VERDICTS}, "
                             f"got {row['verdict']!r}")
    try:
        json.dumps(record["data"], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"record['data'] of {record['name']!r} is not JSON-serialisable: {exc}") from None
    return record


def _cell(v, width: int) -> str:
    if v is None:
        s = "-"
    elif isinstance(v, float):
        s = f"{v:.4g}" if math.isfinite(v) else str(v)
    else:
        s = str(v)
    return s if len(s) <= width else s[: width - 1] + "…"


def format_table(rows: Iterable[dict], *, notes: bool = True, max_width: int = 48) -> str:
    """Plain-text table of rows (columns experiment, quantity, predicted, measured, tolerance, verdict); notes
    ("note" keys) are listed under the table, numbered (identical notes share a number). Cells longer than
    ``max_width`` end in "…", except the quantity, which names the claim and is shown whole."""
    rows = list(rows)
    cells = [[_cell(r.get(c), 10**6 if c == "quantity" else max_width) for c in COLUMNS] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(COLUMNS)]
    note_list = []
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)), "  ".join("-" * w for w in widths)]
    for r, row in zip(rows, cells):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
        if notes and r.get("note"):
            if r["note"] not in note_list:  # identical notes share one number
                note_list.append(r["note"])
            line += f"  [{note_list.index(r['note']) + 1}]"
        lines.append(line)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    lines.append(f"{len(rows)} rows: {counts['pass']} pass, {counts['fail']} fail, {counts['info']} info")
    if note_list:
        lines.append("notes:")
        lines += [f"  [{i}] {n}" for i, n in enumerate(note_list, 1)]
    return "\n".join(lines)


def exit_code(rows: Iterable[dict]) -> int:
    """1 if any row's verdict is "fail", else 0."""
    return 1 if any(r["verdict"] == "fail" for r in rows) else 0


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def guard_verdicts(rows: list[dict]) -> list[dict]:
    """A "pass" whose measured value is missing or not finite (NaN/inf, made null in JSON) becomes a "fail": no
    comparison was made.  Returns the rows (modified in place)."""
    for r in rows:
        if r["verdict"] == "pass" and _missing(r["measured"]):
            msg = "measured value missing or not finite: no comparison was made"
            r["verdict"], r["note"] = "fail", (f"{r['note']}; {msg}" if r.get("note") else msg)
    return rows


def _failure_record(name: str, exc: BaseException) -> dict:
    return {"name": name,
            "rows": [{"experiment": name, "quantity": "experiment ran", "predicted": "yes", "measured": "error",
                      "tolerance": None, "verdict": "fail", "note": f"{type(exc).__name__}: {exc}"}],
            "data": {"error": "".join(traceback.format_exception(exc))[-4000:]}, "figures": []}


def run_experiments(names: list[str], *, quick: bool, out_dir: Path, seed: int, device: str | None,
                    registry: dict[str, Callable] | None = None, size: str | None = None,
                    log=None, status: dict | None = None) -> tuple[list[dict], bool]:
    """Run the named experiments in order; an exception becomes a "fail" row, a missing dependency an "info" row.
    Returns (records, interrupted).

    Ctrl-C ends the run: the experiment that was running gets no record (its training did not finish, so no verdict
    is computed from it), also when code inside it caught the KeyboardInterrupt and returned (the SIGINT is watched,
    :class:`verify.outputs.InterruptWatch`). ``status``, if given, is filled with ``interrupted_during`` (that
    experiment or None), ``not_run`` (the experiments after it), ``finished`` and ``files`` (per experiment, the
    files it created or changed in ``out_dir``)."""
    from verify.experiments.common import jsonable
    from verify.outputs import InterruptWatch, folder_state, written_since

    if registry is None:
        from verify.experiments import EXPERIMENTS as registry
    if log is None:
        def log(msg):
            print(msg, file=sys.stderr, flush=True)
    status = {} if status is None else status
    status.update(interrupted_during=None, not_run=[], finished=[], files={})
    records = []
    for k, name in enumerate(names):
        t0 = time.perf_counter()
        log(f"[verify.compare] running {name} …")
        kwargs = dict(quick=quick, out_dir=out_dir, seed=seed, device=device)
        if size is not None:
            kwargs["size"] = size
        tracked = out_dir is not None and Path(out_dir).is_dir()
        before = folder_state(out_dir) if tracked else {}
        watch = InterruptWatch()
        try:
            with watch:
                rec = registry[name](**kwargs)
            if isinstance(rec, dict):  # NaN/inf -> null, numpy scalars -> Python numbers
                rec = {k: (jsonable(v) if k in ("data", "rows") else v) for k, v in rec.items()}
            rec = validate_record(rec)
            guard_verdicts(rec["rows"])
        except KeyboardInterrupt:
            watch.hit = True
        except Exception as exc:  # report, keep going, exit non-zero at the end
            rec = _failure_record(name, exc)
        if tracked:
            status["files"][name] = written_since(out_dir, before)
        if watch.hit:
            status.update(interrupted_during=name, not_run=list(names[k + 1:]),
                          seconds_in=time.perf_counter() - t0)
            return records, True
        rec["seconds"] = time.perf_counter() - t0
        records.append(rec)
        status["finished"].append(name)
    return records, False


def run_experiment_unit(*, name: str, quick: bool, size: str | None, seed: int, device: str, out_dir: str) -> dict:
    """One unit of ``--executor local|slurm`` (:mod:`verify.jobs`): the experiment ``name`` of
    :data:`verify.experiments.EXPERIMENTS` run as :func:`run_experiments` runs it (an exception is a "fail" row, a
    missing dependency an "info" row), its figures written to ``out_dir``; returns its record (strict JSON) with
    ``"files"``, what it wrote in ``out_dir``. Ctrl-C (also one the experiment caught) is a KeyboardInterrupt: an
    unfinished experiment gets no record."""
    from verify.experiments.common import jsonable

    status: dict = {}
    records, interrupted = run_experiments([name], quick=quick, out_dir=Path(out_dir), seed=seed, device=device,
                                           size=size, status=status)
    if interrupted:
        raise KeyboardInterrupt(f"{name} was interrupted")
    rec = records[0]
    rec["files"] = [f for f in status["files"].get(name, []) if f.split("/")[0] not in ("units", "logs")]
    return jsonable(rec)


def _run_jobs(args, names: list[str], device: str, jobs_opts: dict, threads: int | None) -> tuple[list, bool, dict]:
    """``--executor local|slurm``: one unit per experiment (its training seeds run inside it, seeded by --seed);
    records read back from ``--out/units/`` in the order of ``names``. Returns (records, interrupted, status) like
    :func:`run_experiments`; a job that died gives its experiment a "fail" row naming the job's log."""
    from verify.jobs import Unit, run_units

    size = args.size
    config = {"tool": TOOL, "quick": args.quick, "size": size or ("quick" if args.quick else "full"),
              "seed": args.seed, "device": device}
    units = [Unit(n, "verify.compare:run_experiment_unit",
                  dict(name=n, quick=args.quick, size=size, seed=args.seed, device=device,
                       out_dir=str(Path(args.out).resolve()))) for n in names]
    report = run_units(units, args.out, config=config, threads=threads, **jobs_opts)
    records, status = [], {"finished": [], "files": {}, "not_run": [], "interrupted_during": None}
    for o in report.outcomes:
        name = o.unit.params["name"]
        if o.status == "done":
            rec = dict(o.result)
            status["files"][name] = rec.pop("files", [])
        elif o.status == "failed":
            rec = {"name": name, "figures": [], "data": {"error": (o.error or "")[-4000:], "log": o.log},
                   "rows": [{"experiment": name, "quantity": "experiment ran", "predicted": "yes",
                             "measured": "job failed", "tolerance": None, "verdict": "fail",
                             "note": f"the job ended without a result; log: {o.log}"}]}
        else:
            status["not_run"].append(name)
            continue
        records.append(rec)
        status["finished"].append(name)
    status["jobs"] = report.summary()
    print(f"[verify.compare] {report.summary()}", file=sys.stderr)
    return records, report.interrupted, status


def write_results(records: list[dict], out_dir: Path, meta: dict) -> Path:
    """Write ``out_dir/results.json`` atomically: {"meta": …, "rows": [all rows], "experiments": [records]}."""
    from verify.outputs import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for rec in records for r in rec["rows"]]
    path = out_dir / "results.json"

    from verify.experiments.common import jsonable  # NaN/inf -> null, numpy -> Python; text is never rewritten

    text = json.dumps(jsonable({"meta": meta, "rows": rows, "experiments": records}), indent=1, allow_nan=False,
                      default=str)
    atomic_write_text(path, text)
    return path


def _parser(names: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m verify.compare",
                                description="Theory vs trained networks: prediction, measurement and verdict per row.")
    p.add_argument("--quick", action="store_true", help="CPU, small sizes (a few minutes on 2 cores)")
    p.add_argument("--only", action="append", default=None, metavar="NAME",
                   help=f"run only these experiments (repeat or comma-separate); one of {', '.join(names)}")
    p.add_argument("--out", type=Path, default=Path("verify_results"), help="output folder (results.json, PNGs)")
    p.add_argument("--seed", type=int, default=0,
                   help="base seed (>= 0): training seeds seed, seed + 1, ... of every experiment (default 0)")
    p.add_argument("--device", default=None,
                   help="torch device; default: cpu with --quick, else cuda when available, else cpu")
    p.add_argument("--size", default=None, choices=("tiny", "quick", "full"), help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads; default 1 with --quick on the CPU (the small convolutions of the quick "
                        "sizes gain nothing from more, and oversubscribed cores slow them down 10-40x), else "
                        "torch's default")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    from verify.jobs import add_executor_arguments

    add_executor_arguments(p, unit="experiment")
    return p


def main(argv: list[str] | None = None, *, registry: dict[str, Callable] | None = None) -> int:
    if registry is None:
        from verify.experiments import EXPERIMENTS as registry
    names_all = list(registry)
    args = _parser(names_all).parse_args(argv)
    if args.list:
        print("\n".join(names_all))
        return 0
    from verify.outputs import check_manifest, prepare_out_dir
    from verify.specs import SpecError

    from verify.jobs import executor_options

    try:  # before any work: a bad --out must not cost a run
        args.jobs = executor_options(args)
        args.out = prepare_out_dir(args.out)
        check_manifest(args.out, TOOL)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = names_all
    if args.only:
        names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in names if n not in registry]
        if unknown:
            print(f"error: unknown experiment(s) {unknown}; choose from {names_all}", file=sys.stderr)
            return 2
    import torch

    if args.device is not None:
        device = args.device
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            print(f"error: --device {device!r}: {exc}", file=sys.stderr)
            return 2
        if dev.type == "cuda" and not torch.cuda.is_available() and args.executor != "slurm":  # slurm: the jobs'
            print(f"error: --device {device!r}: torch sees no CUDA device (use cpu)", file=sys.stderr)
            return 2
    elif args.executor == "slurm" and args.gpus_per_job > 0 and not args.quick:
        device = "cuda"  # the jobs' GPUs, not this (login) machine's
    else:
        device = "cpu" if args.quick else ("cuda" if torch.cuda.is_available() else "cpu")
    if args.seed < 0:
        print(f"error: --seed must be >= 0, got {args.seed}", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    threads_before = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif args.quick and torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        return _main(args, names, device, registry, argv)
    finally:
        torch.set_num_threads(threads_before)


def _main(args, names, device, registry, argv) -> int:
    import torch

    meta = {"command": "python -m verify.compare " + " ".join(argv if argv is not None else sys.argv[1:]),
            "quick": args.quick, "size": args.size or ("quick" if args.quick else "full"), "seed": args.seed,
            "device": device, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    t0 = time.perf_counter()
    status: dict = {}
    meta["executor"] = args.executor
    if args.executor == "inline":
        records, interrupted = run_experiments(names, quick=args.quick, out_dir=args.out, seed=args.seed,
                                               device=device, registry=registry, size=args.size, status=status)
    else:
        from verify.specs import SpecError

        # each job's torch threads: --threads, else what an inline run uses (1 with --quick on the CPU), else
        # --cpus-per-job
        quick_cpu = args.quick and torch.device(device).type == "cpu"
        threads = args.threads if args.threads is not None else (1 if quick_cpu else args.jobs["cpus_per_job"])
        try:
            records, interrupted, status = _run_jobs(args, names, device, args.jobs, threads)
        except SpecError as exc:  # unit files of another configuration in --out
            print(f"error: {exc}", file=sys.stderr)
            return 2
        meta["jobs"] = status["jobs"]
    meta["seconds"] = time.perf_counter() - t0
    meta["interrupted"] = interrupted
    meta["experiments"] = {"requested": list(names), "finished": status["finished"],
                           "interrupted": status["interrupted_during"], "not_run": status["not_run"]}
    files = sorted({f for fs in status["files"].values() for f in fs} | {"results.json"})
    if interrupted:
        meta["partial_files"] = status["files"].get(status["interrupted_during"], [])
    rows = [r for rec in records for r in rec["rows"]]
    print(format_table(rows))
    path = write_results(records, args.out, meta)
    from verify.outputs import finish_outputs

    config = {k: meta[k] for k in ("command", "quick", "size", "seed", "device")} | {"experiments": list(names)}
    removed = finish_outputs(args.out, TOOL, config, files, complete=not interrupted)
    figs = [str(Path(args.out) / f) for rec in records for f in rec["figures"]]
    print(f"wrote {path}" + (f" and {len(figs)} figures" if figs else "") + f" in {meta['seconds']:.0f} s"
          + (f"; removed {len(removed)} stale file(s) of the previous run: {', '.join(removed)}" if removed else ""))
    if interrupted:
        print(f"interrupted (Ctrl-C) during {status['interrupted_during']!r} after "
              f"{status.get('seconds_in', 0.0):.0f} s: it has no verdict; finished: "
              f"{', '.join(status['finished']) or 'none'}; not run: {', '.join(status['not_run']) or 'none'}. "
              f"The finished results are in {path} (meta.interrupted = true)", file=sys.stderr)
        return 130
    return exit_code(rows)


if __name__ == "__main__":
    sys.exit(main())
