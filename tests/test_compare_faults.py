"""Faults during CLI runs (issue 15): Ctrl-C, bad --out, atomic result files, stale files of earlier runs.

``verify.compare`` is driven through its ``registry=`` hook (experiments that raise KeyboardInterrupt, swallow a real
SIGINT, or sleep until one arrives) and ``verify.spherical`` through its real stages with one stage replaced."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from verify import outputs
from verify.compare import main as compare_main

ROW = dict(experiment="x", quantity="q", predicted=1.0, measured=1.0, tolerance=0.1, verdict="pass")


def _exp(name, figure=None):
    def run(*, out_dir, **kw):
        figs = []
        if figure:
            (Path(out_dir) / figure).write_bytes(b"png")
            figs = [figure]
        return {"name": name, "rows": [dict(ROW, experiment=name)], "data": {}, "figures": figs}
    return run


def _read(path):
    return json.loads(Path(path).read_text())


def _readonly_folder(tmp_path):
    """A folder nobody may write in: a chmod 555 folder, or for root (who ignores modes) /proc/self."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    return Path("/proc/self")


# ------------------------------------------------------------------------------------------------------------------
# Ctrl-C
# ------------------------------------------------------------------------------------------------------------------
def test_interrupt_writes_valid_results_and_exits_130(tmp_path, capsys):
    def stop(**kw):
        raise KeyboardInterrupt

    reg = {"a": _exp("a", "a.png"), "stop": stop, "later": _exp("later")}
    assert compare_main(["--quick", "--out", str(tmp_path)], registry=reg) == 130
    res = _read(tmp_path / "results.json")
    assert res["meta"]["interrupted"] is True
    assert res["meta"]["experiments"] == {"requested": ["a", "stop", "later"], "finished": ["a"],
                                          "interrupted": "stop", "not_run": ["later"]}
    assert [e["name"] for e in res["experiments"]] == ["a"]
    assert {r["experiment"] for r in res["rows"]} == {"a"}          # no verdict from the interrupted one
    err = capsys.readouterr().err
    assert "during 'stop'" in err and "not run: later" in err
    man = _read(tmp_path / outputs.MANIFEST)
    assert man["complete"] is False and man["files"] == ["a.png", "results.json"]


def test_a_swallowed_sigint_still_ends_the_run_without_verdict(tmp_path):
    """An experiment whose training catches Ctrl-C and returns a 'pass' (the reported bug) gets no record."""
    def swallow(**kw):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        except KeyboardInterrupt:
            pass  # a training loop that stops early and carries on
        return {"name": "swallow", "rows": [dict(ROW, experiment="swallow")], "data": {}, "figures": []}

    reg = {"swallow": swallow, "later": _exp("later")}
    assert compare_main(["--quick", "--out", str(tmp_path)], registry=reg) == 130
    res = _read(tmp_path / "results.json")
    assert res["rows"] == [] and res["meta"]["experiments"]["interrupted"] == "swallow"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handler restored


def test_real_sigint_to_a_compare_process(tmp_path):
    """SIGINT to a running ``verify.compare`` process: exit 130 within seconds, valid results.json."""
    code = f"""
import sys, time
from verify.compare import main
ROW = {ROW!r}
def ok(**kw):
    return {{"name": "ok", "rows": [dict(ROW, experiment="ok")], "data": {{}}, "figures": []}}
def slow(**kw):
    print("SLOW", flush=True)
    time.sleep(60)
sys.exit(main(["--quick", "--out", {str(tmp_path)!r}], registry={{"ok": ok, "slow": slow}}))
"""
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if "SLOW" in line:
            break
    t0 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert time.perf_counter() - t0 < 10
    assert "Traceback" not in err
    res = _read(tmp_path / "results.json")
    assert res["meta"]["interrupted"] is True and [e["name"] for e in res["experiments"]] == ["ok"]


def test_spherical_train_propagates_ctrl_c_and_keeps_the_model():
    import numpy as np
    import torch

    from numerics.sphere import make_dataset
    from verify import spherical as vs

    # a rough target that 500 neurons take far longer than the timer to fit (the constant target stalled in
    # 0.3 s: train returned before the signal); a first short run compiles the kernels
    D = make_dataset(200, 5, target="grf", smoothness=0.5, P_test=10, seed=0)
    m = vs.symmetric_init(500, 5, seed=1)
    vs.train_two_layer(m, D.x, D.y, max_steps=2)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        vs.train_two_layer(m, D.x, D.y, max_steps=10**9, loss_tol=0, patience=10**9)
    timer.cancel()
    with torch.no_grad():
        assert np.all(np.isfinite(m.predict(D.x)))


def test_spherical_cli_interrupted_in_a_stage_saves_what_finished(tmp_path, monkeypatch, capsys):
    from verify import spherical as vs
    from verify.experiments import spherical as es

    def stop(**kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(es, "ntk_check", stop)
    assert vs.main(["--size", "tiny", "--out", str(tmp_path), "--device", "cpu"]) == 130
    data = _read(tmp_path / "spherical.json")
    assert data["interrupted"] == "the NTK check" and len(data["sweep"]["records"]) == 6
    assert "during the NTK check" in capsys.readouterr().err
    assert _read(tmp_path / outputs.MANIFEST)["complete"] is False


def test_spherical_cli_interrupted_in_the_sweep(tmp_path, monkeypatch):
    from verify import spherical as vs
    from verify.experiments import spherical as es

    calls = []
    real = es.min_l1_interpolant

    def lp(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(es, "min_l1_interpolant", lp)
    assert vs.main(["--size", "tiny", "--out", str(tmp_path), "--device", "cpu"]) == 130
    data = _read(tmp_path / "spherical.json")
    assert data["interrupted"].startswith("the sweep, after 2 of 6")
    assert len(data["sweep_partial"]["records"]) == 2 and "sweep" not in data


# ------------------------------------------------------------------------------------------------------------------
# --out
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "readonly"])
def test_bad_out_exits_2_before_any_work(tmp_path, kind, capsys):
    from verify import spherical as vs

    bad = tmp_path / "f.txt" if kind == "file" else _readonly_folder(tmp_path)
    if kind == "file":
        bad.write_text("x")
    ran = []
    reg = {"a": lambda **kw: ran.append(1)}
    t0 = time.perf_counter()
    assert compare_main(["--quick", "--out", str(bad)], registry=reg) == 2
    assert vs.main(["--size", "tiny", "--out", str(bad)]) == 2
    assert time.perf_counter() - t0 < 3 and ran == []
    err = capsys.readouterr().err
    assert err.count("--out") == 2


def test_bad_out_subprocess_is_fast(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for mod in ("verify.compare", "verify.spherical"):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", mod, "--quick", "--out", str(f)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr
        assert time.perf_counter() - t0 < 15   # interpreter + torch import; no work


def test_other_tool_folder_is_refused(tmp_path, capsys):
    outputs.finish_outputs(tmp_path, "verify.spherical", {}, [])
    assert compare_main(["--quick", "--out", str(tmp_path)], registry={"a": _exp("a")}) == 2
    assert "verify.spherical" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------------
# atomic writes, stale files
# ------------------------------------------------------------------------------------------------------------------
def test_concurrent_atomic_writes_are_always_whole(tmp_path):
    """Two writers replace the same file 300 times each with documents of different sizes while a reader parses it:
    every read is one whole document (a plain write_text gave invalid JSON in 4 of 1000 trials)."""
    path = tmp_path / "results.json"
    outputs.atomic_write_json(path, {"w": -1})
    stop = threading.Event()
    bad = []

    def writer(k):
        for i in range(300):
            outputs.atomic_write_json(path, {"w": k, "i": i, "pad": "x" * (1000 * (i % 7) * (k + 1))})

    def reader():
        while not stop.is_set():
            try:
                json.loads(path.read_text())
            except ValueError as exc:
                bad.append(str(exc))

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert bad == []
    assert not [p for p in tmp_path.iterdir() if p.name != "results.json"]   # no temporary file left


def test_stale_files_of_an_earlier_run_are_removed(tmp_path, capsys):
    reg = {"a": _exp("a", "a.png"), "b": _exp("b", "b.png")}
    (tmp_path / "mine.txt").write_text("the user's")
    assert compare_main(["--quick", "--out", str(tmp_path)], registry=reg) == 0
    assert (tmp_path / "a.png").exists() and (tmp_path / "b.png").exists()
    assert compare_main(["--quick", "--only", "b", "--out", str(tmp_path)], registry=reg) == 0
    assert not (tmp_path / "a.png").exists() and (tmp_path / "b.png").exists()
    assert (tmp_path / "mine.txt").read_text() == "the user's"           # never listed, never touched
    man = _read(tmp_path / outputs.MANIFEST)
    assert man["files"] == ["b.png", "results.json"] and man["config"]["experiments"] == ["b"]
    assert "removed 1 stale file" in capsys.readouterr().out


def test_manifest_names_outside_the_folder_are_ignored(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / outputs.MANIFEST).write_text(json.dumps({"tool": "t", "files": ["../victim.txt", str(victim)]}))
    assert outputs.finish_outputs(out, "t", {}, []) == [] and victim.read_text() == "keep"
