"""verify.compare: record validation, table, verdicts and exit code, on synthetic records (no training)."""
import json
import math

import numpy as np
import pytest

from verify.compare import (exit_code, format_table, guard_verdicts, main, run_experiments, validate_record,
                            write_results)
from verify.experiments.common import draw_figure, make_row, power_law_record


def _rec(name, verdicts, data=None):
    rows = [make_row(name, f"q{i}", 1.0, 1.5, 0.1, v, note="why" if v == "info" else None)
            for i, v in enumerate(verdicts)]
    return {"name": name, "rows": rows, "data": data or {"x": [1, 2]}, "figures": []}


def test_table_lists_every_row_and_counts_verdicts():
    rows = _rec("a", ["pass", "fail"])["rows"] + _rec("b", ["info"])["rows"]
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["experiment", "quantity", "predicted", "measured", "tolerance", "verdict"]
    assert sum(line.startswith("a ") for line in lines) == 2 and sum(line.startswith("b ") for line in lines) == 1
    assert "3 rows: 1 pass, 1 fail, 1 info" in text
    assert "[1] why" in text  # notes numbered under the table
    rows2 = _rec("c", ["info", "info"])["rows"]
    assert format_table(rows2).count("why") == 1  # identical notes listed once
    for r in rows:
        assert r["verdict"] in text


def test_table_formats_none_and_long_cells():
    row = make_row("e", "x" * 100, None, float("nan"), "t" * 100, "info")
    text = format_table([row], max_width=20)
    assert "…" in text and " - " in text
    assert "x" * 100 in text and "t" * 100 not in text  # the quantity is shown whole, other long cells are cut


@pytest.mark.parametrize("verdicts,code", [(["pass", "info"], 0), (["pass", "fail"], 1), ([], 0), (["info"], 0)])
def test_exit_code(verdicts, code):
    assert exit_code(_rec("a", verdicts)["rows"]) == code


@pytest.mark.parametrize("mutate,msg", [
    (lambda r: r.pop("rows"), "missing the key"),
    (lambda r: r.update(name=""), "name"),
    (lambda r: r["rows"][0].pop("verdict"), "missing"),
    (lambda r: r["rows"][0].update(verdict="ok"), "verdict must be"),
    (lambda r: r.update(data={"a": object()}), "JSON"),
    (lambda r: r.update(data={"a": float("nan")}), "JSON"),
    (lambda r: r.update(rows="x"), "lists"),
])
def test_validate_record_rejects_bad_records(mutate, msg):
    rec = _rec("a", ["pass"])
    mutate(rec)
    with pytest.raises(ValueError, match=msg):
        validate_record(rec)


def test_make_row_cleans_and_checks():
    row = make_row("e", "q", np.float64(1.0), float("inf"), np.int64(3), "pass")
    assert row["predicted"] == 1.0 and row["measured"] is None and row["tolerance"] == 3
    json.dumps(row, allow_nan=False)
    with pytest.raises(ValueError, match="verdict"):
        make_row("e", "q", verdict="maybe")


def _registry():
    def ok(**kw):
        return _rec("ok", ["pass", "info"])

    def bad(**kw):
        return _rec("bad", ["fail"])

    def boom(**kw):
        raise RuntimeError("exploded")

    def missing(**kw):
        import numerics.no_such_module  # noqa: F401  (an absent module is a failed experiment, not a skip)

    def invalid(**kw):
        return {"name": "invalid"}

    return {"ok": ok, "bad": bad, "boom": boom, "missing": missing, "invalid": invalid}


def test_main_writes_results_and_exit_codes(tmp_path, capsys):
    reg = _registry()
    assert main(["--quick", "--only", "ok", "--out", str(tmp_path)], registry=reg) == 0
    out = capsys.readouterr().out
    assert "ok" in out
    res = json.loads((tmp_path / "results.json").read_text())
    assert [e["name"] for e in res["experiments"]] == ["ok"]
    assert len(res["rows"]) == 2 and res["meta"]["quick"] is True and res["meta"]["device"] == "cpu"
    assert {r["verdict"] for r in res["rows"]} == {"pass", "info"}
    assert main(["--quick", "--only", "ok,missing", "--out", str(tmp_path / "m")], registry=reg) == 1
    assert "ModuleNotFoundError" in capsys.readouterr().out
    assert main(["--quick", "--only", "bad", "--out", str(tmp_path)], registry=reg) == 1


def test_exceptions_become_fail_rows_and_the_run_goes_on(tmp_path):
    records, interrupted = run_experiments(["boom", "invalid", "ok"], quick=True, out_dir=tmp_path, seed=0,
                                           device="cpu", registry=_registry(), log=lambda m: None)
    assert not interrupted
    assert [r["name"] for r in records] == ["boom", "invalid", "ok"]
    assert records[0]["rows"][0]["verdict"] == "fail" and "exploded" in records[0]["rows"][0]["note"]
    assert records[1]["rows"][0]["verdict"] == "fail" and "missing the key" in records[1]["rows"][0]["note"]
    assert exit_code([r for rec in records for r in rec["rows"]]) == 1


def test_interrupt_keeps_partial_results(tmp_path):
    def stop(**kw):
        raise KeyboardInterrupt

    reg = {"ok": _registry()["ok"], "stop": stop, "later": _registry()["bad"]}
    assert main(["--quick", "--out", str(tmp_path)], registry=reg) == 130
    res = json.loads((tmp_path / "results.json").read_text())
    assert [e["name"] for e in res["experiments"]] == ["ok"] and res["meta"]["interrupted"] is True


def test_bad_arguments(tmp_path, capsys):
    assert main(["--only", "nope", "--out", str(tmp_path)], registry=_registry()) == 2
    assert main(["--threads", "0", "--only", "ok", "--out", str(tmp_path)], registry=_registry()) == 2
    assert main(["--seed", "-1", "--only", "ok", "--out", str(tmp_path)], registry=_registry()) == 2
    assert main(["--device", "blah", "--only", "ok", "--out", str(tmp_path)], registry=_registry()) == 2
    if not __import__("torch").cuda.is_available():
        assert main(["--device", "cuda", "--only", "ok", "--out", str(tmp_path)], registry=_registry()) == 2
    assert main(["--list"], registry=_registry()) == 0
    assert "boom" in capsys.readouterr().out


def test_real_registry_is_complete():
    from verify.experiments import EXPERIMENTS
    assert list(EXPERIMENTS) == ["cnn_layers", "lowpass", "channel_shuffle", "fc_vs_cnn", "handcrafted", "spherical",
                                 "architectures", "fc_regimes"]


def test_power_law_record_exact_and_interval():
    k = np.arange(1, 9)
    f = power_law_record(k, 3.0 * k ** -1.5)
    assert f["exponent"] == pytest.approx(-1.5, abs=1e-12) and f["prefactor"] == pytest.approx(3.0)
    # noisy data with known per-point s.e.: the 95% interval covers the true exponent in most replicates
    rng = np.random.default_rng(0)
    cover = 0
    for _ in range(200):
        y = 2.0 * k ** 0.5 * np.exp(rng.normal(0, 0.05, len(k)))
        g = power_law_record(k, y, se=0.05 * y)
        cover += g["ci"][0] <= 0.5 <= g["ci"][1]
    assert cover >= 180  # nominal 95%: 190 expected; binomial s.d. ≈ 3
    with pytest.raises(ValueError):
        power_law_record([1, 2], [1.0, -1.0])
    with pytest.raises(ValueError):
        power_law_record([1], [1.0])


def test_power_law_record_is_the_numerics_fit():
    # the record carries numerics.fitting.fit_power_law (growth convention) unchanged; two points: the line
    # through them, no interval
    from numerics.fitting import fit_power_law

    k, y, se = np.array([1.0, 2, 3, 5]), np.array([1.0, 0.6, 0.45, 0.2]), np.array([0.1, 0.05, 0.05, 0.02])
    f, g = power_law_record(k, y, se), fit_power_law(k, y, se, decay=False)
    assert (f["exponent"], f["se"], f["prefactor"], f["ci"]) == (g.exponent, g.se, g.prefactor, list(g.ci))
    assert f["k"] == k.tolist()
    assert power_law_record(k, y, [0.1, 0.0, 0.05, 0.02])["se"] == fit_power_law(k, y, decay=False).se
    two = power_law_record([2, 4], [8.0, 2.0])
    assert two["exponent"] == pytest.approx(-2.0) and two["prefactor"] == pytest.approx(32.0)
    assert all(math.isnan(c) for c in two["ci"]) and math.isnan(two["se"])


def test_a_pass_without_a_finite_measurement_fails():
    rows = [make_row("e", "nan", 1.0, float("nan"), 0.1, "pass"), make_row("e", "none", 1.0, None, 0.1, "pass"),
            dict(experiment="e", quantity="inf", predicted=1.0, measured=float("inf"), tolerance=0.1, verdict="pass"),
            make_row("e", "text", "> 1", "3 vs 2", None, "pass"), make_row("e", "info", None, None, None, "info")]
    guard_verdicts(rows)
    assert [r["verdict"] for r in rows] == ["fail", "fail", "fail", "pass", "info"]
    assert "no comparison" in rows[0]["note"]
    # through the runner: the record's pass row becomes a fail and the exit code says so
    reg = {"nanpass": lambda **kw: {"name": "nanpass", "rows": [make_row("nanpass", "q", 1.0, float("nan"), 0.1,
                                                                         "pass")], "data": {}, "figures": []}}
    records, _ = run_experiments(["nanpass"], quick=True, out_dir=None, seed=0, device="cpu", registry=reg,
                                 log=lambda m: None)
    assert exit_code(records[0]["rows"]) == 1


def test_an_experiment_without_rows_fails(tmp_path):
    reg = {"empty": lambda **kw: {"name": "empty", "rows": [], "data": {}, "figures": []}}
    records, _ = run_experiments(["empty"], quick=True, out_dir=tmp_path, seed=0, device="cpu", registry=reg,
                                 log=lambda m: None)
    assert [r["verdict"] for r in records[0]["rows"]] == ["fail"] and "no rows" in records[0]["rows"][0]["note"]


def test_results_json_is_strict_and_text_is_kept(tmp_path):
    rec = _rec("t", ["pass"], data={"v": float("nan"), "w": np.float64(2.5), "a": np.arange(3), "b": np.bool_(True),
                                    "t": (1, float("-inf"))})
    rec["rows"][0]["note"] = "value was NaN; range -Infinity..Infinity"
    path = write_results([rec], tmp_path, {"x": float("inf")})
    text = path.read_text()
    res = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert res["rows"][0]["note"] == "value was NaN; range -Infinity..Infinity"
    assert res["experiments"][0]["data"] == {"v": None, "w": 2.5, "a": [0, 1, 2], "b": True, "t": [1, None]}
    assert res["meta"] == {"x": None}


def test_a_broken_import_inside_an_experiment_is_a_fail_row(tmp_path, monkeypatch):
    (tmp_path / "broken_mod_for_test.py").write_text("raise ImportError('a real bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def broken(**kw):
        import broken_mod_for_test  # noqa: F401

    records, _ = run_experiments(["broken"], quick=True, out_dir=tmp_path, seed=0, device="cpu",
                                 registry={"broken": broken}, log=lambda m: None)
    assert [r["verdict"] for r in records[0]["rows"]] == ["fail"] and "a real bug" in records[0]["rows"][0]["note"]


def test_a_figure_that_cannot_be_drawn_is_a_fail_row(tmp_path):
    rows, figures = [], []
    draw_figure("e", "plot_layers", {"not": "layer data"}, tmp_path / "x.png", title="t", rows=rows, figures=figures)
    assert figures == [] and [r["verdict"] for r in rows] == ["fail"] and rows[0]["quantity"] == "figure x.png written"
    rows = []
    draw_figure("e", "no_such_plot", {}, tmp_path / "y.png", title="t", rows=rows, figures=figures)
    assert rows[0]["verdict"] == "fail" and "no_such_plot" in rows[0]["note"]
