"""verify.jobs: units as submitit jobs (real subprocesses with the local executor), resumable runs, the refusal of
unit files from another configuration, of SLURM where there is none, failures with their log paths, Ctrl-C."""
from __future__ import annotations

import argparse
import json
import os

import pytest

from verify import jobs
from verify.jobs import Unit, check_executor, check_units, executor_options, run_units
from verify.specs import SpecError

FN = "jobs_units:noisy_square"


def _units(n, **extra):
    return [Unit(f"sq{x}", FN, {"x": x, "seed": 7, **extra}) for x in range(n)]


def _calls(path):
    return sorted(int(v) for v in path.read_text().split()) if path.exists() else []


def test_unit_key_is_stable_and_depends_on_the_parameters_only():
    a = Unit("p 1/2", FN, {"x": 1, "seed": 0, "t": (1, 2)})
    b = Unit("p 1/2", FN, {"t": [1, 2], "seed": 0, "x": 1})  # another order, a tuple as a list: the same unit
    assert a.key == b.key and a.key.startswith("p_1_2-") and len(a.key.split("-")[-1]) == 12
    assert Unit("p 1/2", FN, {"x": 1, "seed": 1, "t": (1, 2)}).key != a.key
    assert Unit("p 1/2", "jobs_units:boom", {"x": 1, "seed": 0, "t": (1, 2)}).key != a.key
    assert jobs.config_hash({"a": 1, "b": 2}) == jobs.config_hash({"b": 2, "a": 1}) != jobs.config_hash({"a": 1})
    with pytest.raises(TypeError, match="params"):
        Unit("u", FN, {"x": float("nan")})
    with pytest.raises(ValueError, match="fn"):
        Unit("u", "not a spec", {})
    with pytest.raises(ValueError, match="distinct keys"):
        run_units([a, b], "unused", config={})


def test_local_jobs_give_exactly_the_inline_results_and_keep_logs(tmp_path):
    units = _units(3)
    inline = run_units(units, tmp_path / "inline", config={"run": 1}, progress=False)
    local = run_units(units, tmp_path / "local", config={"run": 1}, executor="local", progress=False,
                      array_parallelism=2)
    assert inline.complete and local.complete and local.ran == 3 and local.executor == "local"
    assert local.results() == inline.results()  # bit for bit: the same floats, read back from the unit files
    assert [o.result["x"] for o in local.outcomes] == [0, 1, 2]
    for o in local.outcomes:  # real subprocess jobs, each with its own log under --out/logs
        assert o.log and os.path.isfile(o.log) and os.path.dirname(o.log) == str(tmp_path / "local" / "logs")
    assert len({o.log for o in local.outcomes}) == 3
    doc = json.loads((tmp_path / "local" / "units" / f"{units[1].key}.json").read_text())
    assert doc["status"] == "done" and doc["params"] == {"x": 1, "seed": 7} and doc["executor"] == "local"
    assert not (tmp_path / "inline" / "logs").exists()
    # the seed comes from the unit's parameters, not from the job order: one unit alone gives the same result
    alone = run_units(units[2:], tmp_path / "alone", config={"run": 1}, progress=False)
    assert alone.results() == {units[2].key: inline.results()[units[2].key]}


def test_a_killed_job_fails_with_its_log_and_is_redone_on_rerun_nothing_else(tmp_path):
    calls, marker = tmp_path / "calls.txt", tmp_path / "died-once"
    units = _units(2, calls=str(calls)) + [Unit("sq2", FN, {"x": 2, "seed": 7, "calls": str(calls),
                                                            "die_unless": str(marker)})]
    out = tmp_path / "out"
    first = run_units(units, out, config={}, executor="local", progress=False, log=lambda m: None)
    assert not first.complete and first.ran == 2 and [o.unit.name for o in first.failed] == ["sq2"]
    bad = first.failed[0]
    assert bad.log and os.path.isfile(bad.log) and bad.log in bad.error  # reported with its log path
    assert "ended without a result" in bad.error
    assert json.loads((out / "units" / f"{units[2].key}.json").read_text())["status"] == "failed"
    assert _calls(calls) == [0, 1, 2]
    second = run_units(units, out, config={}, executor="local", progress=False, log=lambda m: None)
    assert second.complete and second.reused == 2 and second.ran == 1
    assert _calls(calls) == [0, 1, 2, 2]  # only the unit whose job died ran again
    third = run_units(units, out, config={}, executor="local", progress=False, log=lambda m: None)
    assert third.reused == 3 and _calls(calls) == [0, 1, 2, 2]
    assert second.outcomes[2].result == run_units(units[2:], tmp_path / "ref", config={},
                                                  progress=False).outcomes[0].result


def test_a_failing_unit_does_not_stop_the_others_inline(tmp_path):
    units = [Unit("bad", "jobs_units:boom", {"x": 1})] + _units(2)
    rep = run_units(units, tmp_path, config={}, progress=False, log=lambda m: None)
    assert [o.status for o in rep.outcomes] == ["failed", "done", "done"]
    assert "RuntimeError: boom at x = 1" in rep.failed[0].error and rep.failed[0].log is None
    assert "failed" in rep.summary()


def test_unit_files_of_another_configuration_are_refused(tmp_path):
    units = _units(2)
    run_units(units, tmp_path, config={"size": "quick", "seed": 0}, progress=False)
    assert set(check_units(tmp_path, {"size": "quick", "seed": 0})) == {u.key for u in units}
    with pytest.raises(SpecError, match="different configuration") as info:
        run_units(units, tmp_path, config={"size": "full", "seed": 0}, progress=False)
    assert info.value.flag == "--out" and "size: 'quick' there, 'full' now" in str(info.value)
    with pytest.raises(SpecError, match="different configuration"):  # also before any work, without units
        check_units(tmp_path, {"size": "quick"})


def test_slurm_without_a_cluster_is_refused_naming_executor(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    with pytest.raises(SpecError, match="no SLURM") as info:
        check_executor("slurm")
    assert info.value.flag == "--executor"
    with pytest.raises(SpecError, match="no SLURM"):
        run_units(_units(1), tmp_path / "out", config={}, executor="slurm", progress=False)
    assert not (tmp_path / "out").exists()  # refused before any work
    with pytest.raises(SpecError) as info:
        check_executor("cluster")
    assert info.value.flag == "--executor"


def test_executor_flags():
    p = argparse.ArgumentParser()
    jobs.add_executor_arguments(p)
    opts = executor_options(p.parse_args(["--executor", "local", "--array-parallelism", "3", "--slurm-arg",
                                          "account=abc"]))
    assert opts["executor"] == "local" and opts["array_parallelism"] == 3 and opts["slurm_args"] == {"account": "abc"}
    for argv, flag in ((["--array-parallelism", "0"], "--array-parallelism"), (["--time-limit", "-1"], "--time-limit"),
                       (["--cpus-per-job", "0"], "--cpus-per-job"), (["--slurm-arg", "x"], "--slurm-arg")):
        with pytest.raises(SpecError) as info:
            executor_options(p.parse_args(argv))
        assert info.value.flag == flag


def test_ctrl_c_inline_keeps_the_finished_units(tmp_path):
    calls = tmp_path / "calls.txt"
    out = tmp_path / "out"
    rep = run_units(_units(4, calls=str(calls), interrupt_at=2), out, config={}, progress=False, log=lambda m: None)
    assert rep.interrupted and [o.status for o in rep.outcomes] == ["done", "done", "not run", "not run"]
    assert sorted(p.stem for p in (out / "units").glob("*.json")) == sorted(u.key for u in _units(2, calls=str(
        calls), interrupt_at=2))
    # a unit that catches the SIGINT and returns is not recorded either
    rep = run_units(_units(4, calls=str(calls), swallow_at=0), tmp_path / "swallow", config={}, progress=False,
                    log=lambda m: None)
    assert rep.interrupted and rep.outcomes[0].status == "not run"
    assert not list((tmp_path / "swallow" / "units").glob("*.json"))


# ----------------------------------------------------------------------------------------------------------
# the command-line tools
# ----------------------------------------------------------------------------------------------------------
def test_compare_local_jobs_give_the_inline_rows_and_rerun_redoes_nothing(tmp_path, capsys):
    from verify.compare import main

    argv = ["--size", "tiny", "--only", "handcrafted"]
    assert main([*argv, "--out", str(tmp_path / "inline")]) == 0
    assert main([*argv, "--executor", "local", "--out", str(tmp_path / "local")]) == 0
    a = json.loads((tmp_path / "inline" / "results.json").read_text())
    b = json.loads((tmp_path / "local" / "results.json").read_text())
    assert a["rows"] == b["rows"] and a["experiments"][0]["data"] == b["experiments"][0]["data"]
    assert b["meta"]["executor"] == "local" and "1 run" in b["meta"]["jobs"]
    assert list((tmp_path / "local" / "logs").glob("*_log.err"))  # the job's log under --out
    assert sorted(b["experiments"][0]["figures"]) == sorted(a["experiments"][0]["figures"])
    assert all((tmp_path / "local" / f).is_file() for f in b["experiments"][0]["figures"])
    unit = next((tmp_path / "local" / "units").glob("handcrafted-*.json"))
    stamp = unit.stat().st_mtime_ns
    capsys.readouterr()
    assert main([*argv, "--executor", "local", "--out", str(tmp_path / "local")]) == 0
    assert "0 run, 1 reused" in capsys.readouterr().err and unit.stat().st_mtime_ns == stamp
    c = json.loads((tmp_path / "local" / "results.json").read_text())
    assert c["rows"] == a["rows"]
    # another seed in the same folder: refused, exit 2 naming --out
    assert main([*argv, "--seed", "1", "--executor", "local", "--out", str(tmp_path / "local")]) == 2
    assert "--out" in capsys.readouterr().err


def test_compare_and_measure_refuse_slurm_without_a_cluster(tmp_path, capsys, monkeypatch):
    from verify.compare import main

    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["--only", "handcrafted", "--executor", "slurm", "--out", str(tmp_path / "o")]) == 2
    assert "--executor: slurm: no SLURM cluster here" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_spherical_sweep_points_as_local_jobs_give_bit_identical_exponents(tmp_path):
    from verify.spherical import sweep

    kw = dict(ds=(3,), Ps=(16, 32, 64), seeds=1, P_test=200, progress=False)
    inline = sweep(**kw)
    local = sweep(**kw, jobs={"executor": "local", "progress": False}, out_dir=tmp_path)
    assert local["fits"] == inline["fits"]  # exponents, intervals, S fits: bit for bit
    drop = lambda recs: [{k: v for k, v in r.items() if k != "lp_seconds"} for r in recs]  # noqa: E731
    assert drop(local["records"]) == drop(inline["records"])
    assert len(list((tmp_path / "units").glob("d3_P*_s0-*.json"))) == 3 and list((tmp_path / "logs").glob("*.err"))
    again = sweep(**kw, jobs={"executor": "local", "progress": False, "log": lambda m: None}, out_dir=tmp_path)
    assert again["fits"] == inline["fits"]
