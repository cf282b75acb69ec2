r"""Sweeps as independent, resumable jobs: in this process, as local subprocesses, or on a SLURM cluster (submitit).

A sweep is a list of :class:`Unit` objects, each ``(name, fn, params)``: ``fn`` is a ``MODULE:CALLABLE`` spec of a
module-level function and ``params`` its JSON keyword arguments; ``fn(**params)`` returns the unit's JSON result.
Everything a unit needs, its seed included, is in ``params``, so a result does not depend on which job ran it, in
which order or next to what. A unit's **key** is its name followed by a hash of ``(fn, params)``; the run's
**configuration** (a JSON dict the caller chooses: what identifies the sweep, not how it is executed) has a hash too.

:func:`run_units` runs the units that have no finished result file under ``out_dir/units/`` and returns a
:class:`RunReport`:

* each unit writes ``out_dir/units/KEY.json`` (``status``, ``result``, its ``params``, the configuration and its
  hash) atomically with :func:`verify.outputs.atomic_write_json`, from inside the job, as soon as it finishes;
* a rerun with the same ``out_dir`` skips the units whose file says ``"done"`` and runs the rest: units that failed,
  whose job died (killed, out of memory, time limit) or that were interrupted;
* ``executor="inline"`` runs the units one after the other in this process; Ctrl-C stops the run, the finished
  units are kept (and a unit that caught the KeyboardInterrupt itself is not recorded: the SIGINT is watched with
  :class:`verify.outputs.InterruptWatch`);
* ``executor="local"`` runs each unit as a :class:`submitit.LocalExecutor` job (a subprocess), at most
  ``array_parallelism`` at once (default: the machine's cores / ``cpus_per_job``); ``executor="slurm"`` submits
  them as one SLURM job array (:class:`submitit.AutoExecutor`, ``cluster="slurm"``) with the partition, time limit,
  CPUs / GPUs per job and array parallelism given. submitit keeps each job's stdout / stderr under
  ``out_dir/logs/``; a job that fails or dies is reported with its log path as that unit's failure, the other
  units still run. Ctrl-C while waiting cancels the jobs still running; the finished units are kept;
* unit files of a different configuration in ``out_dir/units/`` are refused (:class:`verify.specs.SpecError`
  naming ``--out``, before any work, :func:`check_units`): a merge never mixes two configurations;
* ``executor="slurm"`` where SLURM is not available (no ``sbatch`` / ``srun`` on PATH) is a SpecError naming
  ``--executor`` (:func:`check_executor`), which the command-line tools turn into exit status 2.

The results the caller merges are read back from the unit files in every mode (also inline), so a table built from
them is the same, number for number, whichever executor ran the units and however often the run was interrupted.

For the command-line tools, :func:`add_executor_arguments` adds ``--executor``, ``--array-parallelism``,
``--partition``, ``--time-limit``, ``--cpus-per-job``, ``--gpus-per-job``, ``--mem-gb`` and ``--slurm-arg`` to an
argparse parser, and :func:`executor_options` turns them into keyword arguments of :func:`run_units` (checked, a
SpecError naming the flag).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from verify.outputs import InterruptWatch, atomic_write_json, caused_by_interrupt, prepare_out_dir
from verify.specs import SpecError, is_object_spec, load_object, parse_kwargs

__all__ = ["EXECUTORS", "UNITS_DIR", "LOGS_DIR", "UNIT_SCHEMA", "Unit", "UnitOutcome", "RunReport", "config_hash",
           "check_executor", "check_units", "read_unit", "execute_unit", "run_units", "add_executor_arguments",
           "executor_options"]

EXECUTORS = ("inline", "local", "slurm")
UNITS_DIR = "units"
LOGS_DIR = "logs"
UNIT_SCHEMA = "diffeostability.unit/1"
_DEFAULT_TIME_LIMIT = 7 * 24 * 60  # minutes; submitit's local default (2 min) would kill any real unit


def _canonical(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be strict JSON (no NaN/inf, plain types), got {obj!r}: {exc}") from None


def _hash(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def config_hash(config: Mapping) -> str:
    """16 hex digits of the SHA-256 of ``config`` as canonical JSON (sorted keys)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    return _hash(_canonical(dict(config), "config"), 16)


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``load_object(fn)(**params)`` returns its JSON result.

    ``name``: a label (the key starts with it, made file-safe); ``fn``: ``MODULE:CALLABLE`` of a module-level
    function importable in a fresh process; ``params``: JSON keyword arguments, the seed included."""

    name: str
    fn: str
    params: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.fn, str) or not is_object_spec(self.fn):
            raise ValueError(f"fn must be a MODULE:CALLABLE spec of a module-level function, got {self.fn!r}")
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params must be a dict, got {type(self.params).__name__}")
        # a JSON round trip: what a job receives is what the unit file records (tuples become lists)
        object.__setattr__(self, "params", json.loads(_canonical(dict(self.params), f"params of {self.name!r}")))

    @property
    def key(self) -> str:
        """``NAME-HASH``: the name (characters outside ``[A-Za-z0-9._=-]`` become ``_``, at most 60) and 12 hex
        digits of the SHA-256 of ``(fn, params)``; stable across runs, machines and executors."""
        slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", self.name).strip("._")[:60] or "unit"
        return f"{slug}-{_hash(_canonical({'fn': self.fn, 'params': self.params}, 'unit'), 12)}"

    def as_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "fn": self.fn, "params": dict(self.params)}


@dataclass
class UnitOutcome:
    """What became of one unit: ``status`` ``"done"`` (``result`` set; ``reused`` when a previous run made it),
    ``"failed"`` (``error``; ``log``: the job's stderr file, None inline) or ``"not run"`` (interrupted before)."""

    unit: Unit
    status: str
    result: Any = None
    error: str | None = None
    log: str | None = None
    seconds: float | None = None
    reused: bool = False

    @property
    def key(self) -> str:
        return self.unit.key


@dataclass
class RunReport:
    """The outcome of every unit, in the order given, and whether Ctrl-C ended the run."""

    outcomes: list[UnitOutcome]
    interrupted: bool = False
    executor: str = "inline"
    seconds: float = 0.0

    def _count(self, pred) -> int:
        return sum(1 for o in self.outcomes if pred(o))

    @property
    def ran(self) -> int:
        """Units that finished in this run."""
        return self._count(lambda o: o.status == "done" and not o.reused)

    @property
    def reused(self) -> int:
        """Units whose finished file an earlier run had written (not redone)."""
        return self._count(lambda o: o.reused)

    @property
    def failed(self) -> list[UnitOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def not_run(self) -> list[UnitOutcome]:
        return [o for o in self.outcomes if o.status == "not run"]

    @property
    def complete(self) -> bool:
        """Every unit is done."""
        return all(o.status == "done" for o in self.outcomes)

    def results(self) -> dict[str, Any]:
        """``{key: result}`` of the finished units."""
        return {o.key: o.result for o in self.outcomes if o.status == "done"}

    def summary(self) -> str:
        s = (f"{len(self.outcomes)} units ({self.executor}): {self.ran} run, {self.reused} reused, "
             f"{len(self.failed)} failed, {len(self.not_run)} not run")
        return s + (" (interrupted)" if self.interrupted else "")


# ----------------------------------------------------------------------------------------------------------
# checks before any work
# ----------------------------------------------------------------------------------------------------------
def check_executor(executor: str, *, flag: str = "--executor") -> str:
    """``executor`` if it is one of :data:`EXECUTORS` and can run here; SpecError naming ``flag`` otherwise
    (``slurm`` needs ``sbatch`` and ``srun`` on PATH, as submitit's SLURM executor does)."""
    if executor not in EXECUTORS:
        raise SpecError(flag, f"must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor != "inline":
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise SpecError(flag, f"{executor} needs submitit: pip install 'diffeostability[cluster]'") from None
    if executor == "slurm":
        missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
        if missing:
            raise SpecError(flag, f"slurm: no SLURM cluster here ({' and '.join(missing)} not on PATH); run on a "
                                  "cluster's login node, or use --executor local (subprocesses on this machine) "
                                  "or inline")
    return executor


def read_unit(path: Any) -> dict | None:
    """The document of a unit file, or None when it is missing, unreadable or not a unit file."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != UNIT_SCHEMA:
        return None
    return doc


def check_units(out_dir: Any, config: Mapping, *, flag: str = "--out") -> dict[str, dict]:
    """Before any work: the unit files already in ``out_dir/units/`` as ``{key: document}``; SpecError naming
    ``flag`` when one of them was written under a different configuration (the differing entries are named)."""
    want = config_hash(config)
    found: dict[str, dict] = {}
    units = Path(out_dir) / UNITS_DIR
    if not units.is_dir():
        return found
    for p in sorted(units.glob("*.json")):
        doc = read_unit(p)
        if doc is None:
            continue
        if doc.get("config_hash") != want:
            theirs = doc.get("config") if isinstance(doc.get("config"), dict) else {}
            diff = sorted(k for k in set(theirs) | set(config) if theirs.get(k, "<absent>") != config.get(k,
                                                                                                     "<absent>"))
            detail = ", ".join(f"{k}: {theirs.get(k, '<absent>')!r} there, {config.get(k, '<absent>')!r} now"
                               for k in diff[:6]) or f"configuration hash {doc.get('config_hash')!r} != {want!r}"
            raise SpecError(flag, f"{str(out_dir)!r} holds unit results of a different configuration "
                                  f"({p.relative_to(out_dir)}: {detail}); they cannot be merged with this run. Use "
                                  f"another folder, or delete {str(units)!r} to start over")
        found[p.stem] = doc
    return found


# ----------------------------------------------------------------------------------------------------------
# one unit (runs in the job process, or in this one)
# ----------------------------------------------------------------------------------------------------------
def _set_threads(threads: int | None) -> None:
    """In a job: torch's CPU threads (what the command-line tools set in their own process). The numba / BLAS
    thread counts are inherited from the environment, as inline: parallel reductions in numba kernels depend on the
    thread count in the last bits, so a job keeps the inline run's numbers only with the same count (export
    ``NUMBA_NUM_THREADS`` / ``OMP_NUM_THREADS`` before the run to limit them for many parallel jobs)."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(int(threads))


def execute_unit(unit: Mapping, out_dir: str, config: Mapping, *, sys_path: Sequence[str] = (),
                 threads: int | None = None, executor: str = "inline") -> dict:
    """Run one unit (``unit``: :meth:`Unit.as_dict`) and write ``out_dir/units/KEY.json`` atomically with status
    ``"done"``; return ``{"key", "seconds"}``. This is the function a job runs: ``sys_path`` entries of the
    submitting process missing here are appended (its own modules import the same way), ``threads`` sets the
    job's torch threads. Exceptions propagate (the job fails; its log holds the traceback); a SIGINT
    while the unit runs is a KeyboardInterrupt and writes nothing, also when the unit caught it and returned."""
    for p in sys_path:
        if p not in sys.path:
            sys.path.append(p)
    _set_threads(threads)
    u = Unit(unit["name"], unit["fn"], unit["params"])
    fn = load_object(u.fn, "fn")
    t0 = time.perf_counter()
    watch = InterruptWatch()
    with watch:
        result = fn(**u.params)
    if watch.hit:  # the unit caught the KeyboardInterrupt and returned what it had: that is not its result
        raise KeyboardInterrupt(f"unit {u.name} was interrupted (SIGINT): no result recorded")
    seconds = time.perf_counter() - t0
    doc = {"schema": UNIT_SCHEMA, **u.as_dict(), "status": "done", "config": dict(config),
           "config_hash": config_hash(config), "result": result, "error": None, "log": None,
           "seconds": seconds, "executor": executor}
    path = Path(out_dir) / UNITS_DIR / f"{u.key}.json"
    try:
        atomic_write_json(path, doc)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the result of unit {u.name!r} ({u.fn}) is not strict JSON (convert NaN/inf to None and "
                        f"arrays to lists): {exc}") from None
    return {"key": u.key, "seconds": seconds}


def _write_failed(out_dir: Path, unit: Unit, config: Mapping, error: str, log: str | None, executor: str) -> None:
    doc = {"schema": UNIT_SCHEMA, **unit.as_dict(), "status": "failed", "config": dict(config),
           "config_hash": config_hash(config), "result": None, "error": error[-8000:], "log": log,
           "seconds": None, "executor": executor}
    atomic_write_json(out_dir / UNITS_DIR / f"{unit.key}.json", doc)


def _done_outcome(unit: Unit, path: Path, want: str, *, reused: bool) -> UnitOutcome | None:
    doc = read_unit(path)
    if doc is None or doc.get("status") != "done" or doc.get("config_hash") != want or doc.get("key") != unit.key:
        return None
    return UnitOutcome(unit, "done", result=doc["result"], seconds=doc.get("seconds"), reused=reused,
                       log=doc.get("log"))


# ----------------------------------------------------------------------------------------------------------
# the executors
# ----------------------------------------------------------------------------------------------------------
def run_units(units: Sequence[Unit], out_dir: Any, *, config: Mapping, executor: str = "inline",
              array_parallelism: int | None = None, partition: str | None = None, time_limit: float | None = None,
              cpus_per_job: int = 1, gpus_per_job: int = 0, mem_gb: float | None = None,
              slurm_args: Mapping | None = None, threads: int | None = None, progress: bool = True,
              flag: str = "--out", log: Callable[[str], None] | None = None, poll: float = 0.2) -> RunReport:
    """Run the units not finished yet under ``out_dir`` (see the module docstring); return a :class:`RunReport`
    whose outcomes follow ``units``.

    Parameters
    ----------
    units : :class:`Unit` objects with distinct keys.
    out_dir : the output folder (``--out``; created and checked with :func:`verify.outputs.prepare_out_dir`).
    config : JSON dict that identifies the sweep; unit files of another configuration are refused (SpecError
        naming ``flag``, :func:`check_units`).
    executor : ``"inline"`` (this process), ``"local"`` (submitit subprocesses) or ``"slurm"`` (a job array).
    array_parallelism : at most this many jobs at once (local default: cores // cpus_per_job; slurm: no limit).
    partition, time_limit, cpus_per_job, gpus_per_job, mem_gb : SLURM resources per job (``time_limit`` in
        minutes, also the local jobs' time limit; default 7 days); ``slurm_args``: further ``sbatch`` options
        (``{"account": "abc", "qos": "long"}``).
    threads : torch threads in each job (None: torch's default; inline: this process is not changed); see
        :func:`_set_threads` for numba / BLAS.
    log : where progress messages go (default: stderr).
    """
    if log is None:
        def log(msg):
            print(msg, file=sys.stderr, flush=True)
    check_executor(executor)
    units = list(units)
    for u in units:
        if not isinstance(u, Unit):
            raise TypeError(f"units must be Unit objects, got {type(u).__name__}")
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"units must have distinct keys (distinct name or params), repeated: {dup[:5]}")
    for name, v, lo in (("cpus_per_job", cpus_per_job, 1), ("gpus_per_job", gpus_per_job, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if array_parallelism is not None and (isinstance(array_parallelism, bool) or
                                          not isinstance(array_parallelism, int) or array_parallelism < 1):
        raise ValueError(f"array_parallelism must be None or an integer >= 1, got {array_parallelism!r}")
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and 0 < time_limit < float("inf")):
        raise ValueError(f"time_limit must be None or a number of minutes > 0, got {time_limit!r}")
    out_dir = prepare_out_dir(out_dir, flag=flag)
    (out_dir / UNITS_DIR).mkdir(exist_ok=True)
    check_units(out_dir, config, flag=flag)
    config = json.loads(_canonical(dict(config), "config"))
    want = config_hash(config)
    t0 = time.perf_counter()

    outcomes: dict[str, UnitOutcome] = {}
    todo = []
    for u in units:
        o = _done_outcome(u, out_dir / UNITS_DIR / f"{u.key}.json", want, reused=True)
        if o is not None:
            outcomes[u.key] = o
        else:
            todo.append(u)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(units), initial=len(units) - len(todo), desc=f"units ({executor})", unit="unit")
    if len(todo) < len(units):
        log(f"[jobs] {len(units) - len(todo)} of {len(units)} units already done in {out_dir / UNITS_DIR}; "
            f"running {len(todo)}")
    try:
        if executor == "inline":
            interrupted = _run_inline(todo, out_dir, config, want, outcomes, bar, log)
        else:
            interrupted = _run_submitit(todo, out_dir, config, want, outcomes, bar, log, executor=executor,
                                        array_parallelism=array_parallelism, partition=partition,
                                        time_limit=time_limit, cpus_per_job=cpus_per_job,
                                        gpus_per_job=gpus_per_job, mem_gb=mem_gb, slurm_args=slurm_args,
                                        threads=threads, poll=poll)
    finally:
        if bar is not None:
            bar.close()
    final = [outcomes.get(u.key) or UnitOutcome(u, "not run") for u in units]
    for o in final:
        if o.status == "failed":
            log(f"[jobs] unit {o.unit.name} FAILED: {(o.error or '').strip().splitlines()[-1:] or ['?']}"
                + (f"; log: {o.log}" if o.log else ""))
    return RunReport(final, interrupted=interrupted, executor=executor, seconds=time.perf_counter() - t0)


def _run_inline(todo, out_dir, config, want, outcomes, bar, log) -> bool:
    for u in todo:
        try:
            execute_unit(u.as_dict(), str(out_dir), config, executor="inline")
        except (KeyboardInterrupt, SystemError) as exc:  # SystemError: Ctrl-C inside a numba kernel
            if not caused_by_interrupt(exc):
                _fail_inline(u, exc, out_dir, config, outcomes)
            else:
                log(f"[jobs] interrupted during {u.name}: the "
                    f"{sum(o.status == 'done' for o in outcomes.values())} finished units are kept")
                return True
        except Exception as exc:  # the unit fails, the others still run
            _fail_inline(u, exc, out_dir, config, outcomes)
        else:
            o = _done_outcome(u, out_dir / UNITS_DIR / f"{u.key}.json", want, reused=False)
            outcomes[u.key] = o if o is not None else UnitOutcome(u, "failed", error="no unit file was written")
        if bar is not None:
            bar.update(1)
    return False


def _fail_inline(u, exc, out_dir, config, outcomes) -> None:
    err = "".join(traceback.format_exception(exc))
    _write_failed(out_dir, u, config, err, None, "inline")
    outcomes[u.key] = UnitOutcome(u, "failed", error=f"{type(exc).__name__}: {exc}\n{err}")


def _log_tail(path: Path, n: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-n:]


def _make_executor(executor, logs, *, partition, time_limit, cpus_per_job, gpus_per_job, mem_gb, slurm_args,
                   array_parallelism, threads):
    import submitit

    minutes = float(time_limit) if time_limit is not None else float(_DEFAULT_TIME_LIMIT)
    if executor == "local":
        ex = submitit.LocalExecutor(folder=logs)
        ex.update_parameters(timeout_min=minutes, gpus_per_node=gpus_per_job)
        return ex
    ex = submitit.AutoExecutor(folder=logs, cluster="slurm")
    params = dict(timeout_min=int(max(1, round(minutes))), cpus_per_task=cpus_per_job, gpus_per_node=gpus_per_job,
                  nodes=1, tasks_per_node=1, name="diffeostability")
    if partition:
        params["slurm_partition"] = partition
    if mem_gb is not None:
        params["mem_gb"] = mem_gb
    if array_parallelism is not None:
        params["slurm_array_parallelism"] = array_parallelism
    if slurm_args:
        params["slurm_additional_parameters"] = dict(slurm_args)
    ex.update_parameters(**params)
    return ex


def _run_submitit(todo, out_dir, config, want, outcomes, bar, log, *, executor, array_parallelism, partition,
                  time_limit, cpus_per_job, gpus_per_job, mem_gb, slurm_args, threads, poll) -> bool:
    if not todo:
        return False
    logs = out_dir / LOGS_DIR
    logs.mkdir(exist_ok=True)
    ex = _make_executor(executor, logs, partition=partition, time_limit=time_limit, cpus_per_job=cpus_per_job,
                        gpus_per_job=gpus_per_job, mem_gb=mem_gb, slurm_args=slurm_args,
                        array_parallelism=array_parallelism, threads=threads)
    path_list = [p for p in sys.path if p]
    cwd = os.getcwd()
    if cwd not in path_list:  # `python -m` puts the current folder first: a job finds the user's modules there too
        path_list.insert(0, cwd)
    args = dict(sys_path=path_list, threads=threads, executor=executor)
    running: dict[Any, Unit] = {}
    pending = list(todo)
    if executor == "local":
        limit = array_parallelism or max(1, (os.cpu_count() or 1) // cpus_per_job)
    else:
        limit = len(pending)  # one array; SLURM's %array_parallelism throttles it

    def submit_some():
        n = min(len(pending), limit - len(running))
        if n <= 0:
            return
        batch, pending[:] = pending[:n], pending[n:]
        if executor == "slurm":
            with ex.batch():
                jobs = [ex.submit(execute_unit, u.as_dict(), str(out_dir), config, **args) for u in batch]
            log(f"[jobs] submitted {len(jobs)} SLURM jobs (array {jobs[0].job_id.split('_')[0]}); logs in {logs}")
        else:
            jobs = [ex.submit(execute_unit, u.as_dict(), str(out_dir), config, **args) for u in batch]
        for job, u in zip(jobs, batch):
            running[job] = u

    try:
        submit_some()
        while running:
            finished = [job for job in running if job.done()]
            for job in finished:
                u = running.pop(job)
                path = out_dir / UNITS_DIR / f"{u.key}.json"
                o = _done_outcome(u, path, want, reused=False)
                if o is None and executor == "slurm":  # a shared file system may show the file a little later
                    for _ in range(10):
                        time.sleep(1.0)
                        o = _done_outcome(u, path, want, reused=False)
                        if o is not None:
                            break
                stderr = str(job.paths.stderr)
                if o is None:
                    state = getattr(job, "state", "?")
                    tail = _log_tail(job.paths.stderr)
                    err = (f"job {job.job_id} ({state}) ended without a result for unit {u.name}; "
                           f"log: {stderr}\n{tail}")
                    _write_failed(out_dir, u, config, err, stderr, executor)
                    o = UnitOutcome(u, "failed", error=err, log=stderr)
                else:
                    o.log = stderr
                outcomes[u.key] = o
                if bar is not None:
                    bar.update(1)
            submit_some()
            if running and not finished:
                time.sleep(poll)
    except KeyboardInterrupt:
        for job in running:
            try:
                job.cancel(check=False)
            except Exception:  # a job that ended meanwhile  # pragma: no cover
                pass
        # units that finished while we were stopping are kept
        for job, u in running.items():
            o = _done_outcome(u, out_dir / UNITS_DIR / f"{u.key}.json", want, reused=False)
            if o is not None:
                outcomes[u.key] = o
        log(f"[jobs] interrupted: cancelled {len(running)} running job(s); "
            f"{sum(o.status == 'done' for o in outcomes.values())} finished units are kept in {out_dir / UNITS_DIR}")
        return True
    return False


# ----------------------------------------------------------------------------------------------------------
# command-line flags
# ----------------------------------------------------------------------------------------------------------
def add_executor_arguments(parser, *, unit: str = "unit") -> None:
    """Add the executor flags to an argparse ``parser`` (one group, "jobs"); ``unit`` names what one job runs."""
    g = parser.add_argument_group("jobs", f"run each {unit} as a job (resumable: a rerun with the same --out skips "
                                          "the finished ones)")
    g.add_argument("--executor", default="inline", choices=EXECUTORS,
                   help="inline: in this process; local: submitit subprocesses on this machine; slurm: a SLURM job "
                        "array (default: inline)")
    g.add_argument("--array-parallelism", type=int, default=None, metavar="N",
                   help="at most N jobs at once (default: local: cores / --cpus-per-job; slurm: no limit)")
    g.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    g.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="time limit of one job in minutes (default: 7 days)")
    g.add_argument("--cpus-per-job", type=int, default=1, help="CPUs per job (default: 1)")
    g.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per job (default: 0)")
    g.add_argument("--mem-gb", type=float, default=None, help="memory per SLURM job in GB (default: the cluster's)")
    g.add_argument("--slurm-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="further sbatch option, e.g. account=abc or qos=long (repeat) (default: none)")


def executor_options(args) -> dict:
    """Keyword arguments of :func:`run_units` from the flags of :func:`add_executor_arguments`; SpecError naming
    the flag for a bad value (``--executor slurm`` without SLURM included), before any work."""
    check_executor(args.executor)
    if args.array_parallelism is not None and args.array_parallelism < 1:
        raise SpecError("--array-parallelism", f"must be >= 1, got {args.array_parallelism}")
    if args.time_limit is not None and not (0 < args.time_limit < float("inf")):
        raise SpecError("--time-limit", f"must be a number of minutes > 0, got {args.time_limit}")
    if args.cpus_per_job < 1:
        raise SpecError("--cpus-per-job", f"must be >= 1, got {args.cpus_per_job}")
    if args.gpus_per_job < 0:
        raise SpecError("--gpus-per-job", f"must be >= 0, got {args.gpus_per_job}")
    if args.mem_gb is not None and not (0 < args.mem_gb < float("inf")):
        raise SpecError("--mem-gb", f"must be > 0, got {args.mem_gb}")
    extra = parse_kwargs(args.slurm_arg, "--slurm-arg")
    return dict(executor=args.executor, array_parallelism=args.array_parallelism, partition=args.partition,
                time_limit=args.time_limit, cpus_per_job=args.cpus_per_job, gpus_per_job=args.gpus_per_job,
                mem_gb=args.mem_gb, slurm_args=extra or None)
