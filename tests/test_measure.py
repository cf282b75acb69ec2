"""verify.measure: `python -m verify.measure` and `measure()` on every model source (a factory in a test module, a
TorchScript archive, a checkpoint, the project's nets) and data source, the JSON record, agreement with a direct
`relative_stability` call, bad specs (exit 2 naming the flag), interruption."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import measure_factory as mf
from numerics.diffeo import deform, temperature_range, typical_displacement
from numerics.stability import relative_stability
from verify import measure as vm
from verify.datasets import load_dataset
from verify.measure import ArgumentError, deformation_sizes, main, measure

@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small convolutions on 2 shared cores: one torch thread (as tests/test_verify_train.py); oversubscribed
    threads slow them down by an order of magnitude."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


FAST = ["--n-probe", "40", "--n-sizes", "2", "--n-boot", "20", "--no-progress"]
QUIET = ["--no-test-error", "--no-figures"]
STAT_KEYS = ("D", "G", "R", "diffeo_sensitivity", "noise_sensitivity", "pair_distance")


def _strict_load(path):
    def bad(token):
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(path.read_text(), parse_constant=bad)


def _run(tmp_path, name, *argv):
    out = tmp_path / name
    code = main([*argv, "--out", str(out)])
    return code, out


def _estimates(rec):
    """{(size index, key): {D, G, R, ...}} for the output and every layer of a record."""
    got = {}
    for s in rec["sizes"]:
        got[(s["index"], "output")] = {q: s["output"][q] for q in STAT_KEYS}
        for layer in s["layers"]:
            got[(s["index"], layer["name"])] = {q: layer[q] for q in STAT_KEYS}
    return got


def _check_schema(rec):
    """The record's contract (what downstream code may rely on)."""
    assert rec["schema"] == vm.SCHEMA
    for key in ("complete", "interrupted", "model", "data", "settings", "window", "layers", "test_error", "sizes",
                "figures", "environment"):
        assert key in rec, key
    assert isinstance(rec["complete"], bool) and isinstance(rec["interrupted"], bool)
    for key in ("spec", "source", "class", "n_parameters", "dtype", "device", "torchscript", "layers_note"):
        assert key in rec["model"], key
    for key in ("spec", "shape", "n_train", "n_test", "split", "normalisation", "n_probe", "probe_split"):
        assert key in rec["data"], key
    for key in ("c", "cutoff", "interp", "noise", "estimator", "errors", "n_boot", "seed", "batch_size"):
        assert key in rec["settings"], key
    assert set(rec["window"]) == {"T_min", "T_max", "delta_min", "delta_max"}
    assert set(rec["layers"]) == {"requested", "measured", "skipped"}
    assert "value" in rec["test_error"]
    if rec["test_error"]["value"] is None:
        assert isinstance(rec["test_error"]["reason"], str)
    else:
        assert 0 <= rec["test_error"]["value"] <= 1 and rec["test_error"]["rule"] in ("argmax", "sign")
    for k, s in enumerate(rec["sizes"]):
        assert s["index"] == k and s["T"] > 0 and s["delta"] > 0 and 0 <= s["fold_fraction"] <= 1
        assert s["seeds"] == {"fields": [rec["settings"]["seed"], k, 0], "noise": [rec["settings"]["seed"], k, 1]}
        # keys: the measured module names in the order they first run; a second call of one module is name#1
        base = [layer["name"].split("#")[0] for layer in s["layers"]]
        assert list(dict.fromkeys(base)) == rec["layers"]["measured"]
        assert [layer["k"] for layer in s["layers"]] == list(range(1, len(s["layers"]) + 1))
        for est in [s["output"]] + s["layers"]:
            for q in STAT_KEYS:
                e = est[q]
                assert set(e) == {"value", "se", "ci"} and e["value"] > 0
                if rec["settings"]["errors"] == "bootstrap":
                    assert e["se"] > 0 and e["ci"][0] <= e["ci"][1]
            assert math.isclose(est["R"]["value"], est["D"]["value"] / est["G"]["value"], rel_tol=1e-9)


# ----------------------------------------------------------------------------------------------------------
# Done when: a user's factory and the same net as TorchScript give the same D, G, R, with errors, JSON and PNG
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["script", "trace"])
def test_factory_and_torchscript_give_the_same_figures(tmp_path, kind):
    net = mf.make_net()
    ts = torch.jit.script(net) if kind == "script" else torch.jit.trace(net, torch.randn(2, 1, 28, 28))
    torch.jit.save(ts, str(tmp_path / "net.pt"))
    code_a, out_a = _run(tmp_path, "factory", "--model", "measure_factory:make_net", "--data", "mnist5k", *FAST)
    code_b, out_b = _run(tmp_path, "torchscript", "--model", str(tmp_path / "net.pt"), "--data", "mnist5k", *FAST)
    assert code_a == code_b == 0
    a, b = _strict_load(out_a / "measure.json"), _strict_load(out_b / "measure.json")
    for rec in (a, b):
        _check_schema(rec)
        assert rec["complete"] and rec["figures"] == ["R_layers.png", "DGR_output.png"]
        for fig in rec["figures"]:
            assert (out_a if rec is a else out_b).joinpath(fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert a["model"]["source"] == "factory" and b["model"]["source"] == "torchscript" and b["model"]["torchscript"]
    # every leaf of the net is measured, in the order it runs, under the same names
    assert a["layers"]["measured"] == b["layers"]["measured"] == ["conv1", "act1", "conv2", "act2", "pool", "flat",
                                                                  "fc"]
    ea, eb = _estimates(a), _estimates(b)
    assert ea.keys() == eb.keys() and len(ea) == 2 * 8
    for key in ea:
        for q in STAT_KEYS:
            for part in ("value", "se"):
                assert ea[key][q][part] == pytest.approx(eb[key][q][part], rel=1e-6, abs=0), (key, q, part)
    assert a["test_error"] == b["test_error"]


def test_torchscript_residual_net_shared_modules_and_inplace_ops():
    """A torchvision-style block (one ReLU module called twice, in-place add, downsample) scripted: the same keys
    (``relu#1`` for the second call) and the same values as the eager net, layer by layer."""
    data = load_dataset("digits", size=16)
    kw = dict(n_probe=40, n_sizes=2, n_boot=20, progress=False, test_error=False)
    a = measure(mf.make_resnet(), data, **kw)
    b = measure(torch.jit.script(mf.make_resnet()), data, **kw)
    names = [layer["name"] for layer in a["sizes"][0]["layers"]]
    assert "layer1.0.relu#1" in names and "layer1.1.downsample.0" in names
    assert names == [layer["name"] for layer in b["sizes"][0]["layers"]]
    ea, eb = _estimates(a), _estimates(b)
    for key in ea:
        for q in ("D", "G", "R"):
            assert ea[key][q]["value"] == pytest.approx(eb[key][q]["value"], rel=1e-6), (key, q)


def test_script_layers_see_what_hooks_see():
    """TorchScriptLayers: the value each leaf computes, before later in-place ops change it (act2 is in place)."""
    net = mf.make_net().eval()
    x = torch.randn(5, 1, 28, 28)
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o.clone()))
             for n, m in net.named_modules() if n]
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    taps = vm.TorchScriptLayers(torch.jit.script(mf.make_net()).eval())
    got = {}
    hooks = [taps.get_submodule(n).register_forward_hook(lambda mod, i, o, n=n: got.__setitem__(n, o.clone()))
             for n in taps.layer_names()]
    with torch.no_grad():
        y2 = taps(x)
    assert torch.equal(y, y2) and set(got) == set(seen)
    assert all(torch.equal(got[n], seen[n]) for n in seen)


# ----------------------------------------------------------------------------------------------------------
# agreement with a direct relative_stability call on the same probes and seeds
# ----------------------------------------------------------------------------------------------------------
def test_cli_R_equals_a_direct_relative_stability_call(tmp_path):
    code, out = _run(tmp_path, "run", "--model", "measure_factory:make_net", "--data", "mnist5k", "--n-probe", "60",
                     "--n-sizes", "3", "--n-boot", "30", "--seed", "7", "--batch-size", "25", "--no-progress",
                     *QUIET)
    assert code == 0
    rec = _strict_load(out / "measure.json")
    # default sizes: 3 temperatures log-spaced over the window of c = 3 for 28x28 images
    t_min, t_max = temperature_range(28, 3)
    assert [s["T"] for s in rec["sizes"]] == pytest.approx(list(np.geomspace(t_min, t_max, 3)), rel=1e-12)
    data = load_dataset("mnist5k")
    x = data.x_test[:60]  # the probes: the front of the (seeded) test split, normalised with the train statistics
    model = mf.make_net().eval()
    for k, s in enumerate(rec["sizes"]):
        xd = deform(x.double().numpy(), s["T"], 3, seed=np.random.SeedSequence([7, k, 0]))
        r = relative_stability(model, x, xd, seed=np.random.SeedSequence([7, k, 1]), n_boot=30)
        for q in ("D", "G", "R"):
            assert s["output"][q]["value"] == pytest.approx(getattr(r, q).value, rel=1e-5)
            assert s["output"][q]["se"] == pytest.approx(getattr(r, q).se, rel=1e-4)
        assert s["rms_deformation"] == pytest.approx(
            float(np.sqrt(np.mean(np.sum((xd.astype(np.float32) - x.numpy()).reshape(60, -1) ** 2, axis=1)))),
            rel=1e-5)


def test_sizes_from_delta_and_T():
    plan = deformation_sizes(28, 28, 3, delta=[0.5, 1.0, 2.0])
    Ts = [s["T"] for s in plan["sizes"]]
    # delta = 1/2 pixel is T_min by definition; T scales as delta^2
    assert Ts[0] == pytest.approx(temperature_range(28, 3)[0], rel=1e-12)
    assert Ts[1] / Ts[0] == pytest.approx(4.0, rel=1e-12) and Ts[2] / Ts[1] == pytest.approx(4.0, rel=1e-12)
    assert [s["delta"] for s in plan["sizes"]] == pytest.approx([0.5, 1.0, 2.0], rel=1e-12)
    plan_t = deformation_sizes(12, 20, 3, T=[1e-3])  # rectangular images: the (H, W) lattice sums
    assert plan_t["sizes"][0]["delta"] == pytest.approx(typical_displacement(1e-3, 3, (12, 20)), rel=1e-12)
    one = deformation_sizes(28, 28, 3, n_sizes=1)["sizes"][0]["T"]
    assert one == pytest.approx(math.sqrt(np.prod(temperature_range(28, 3))), rel=1e-12)
    with pytest.raises(ArgumentError, match="^c: no deformation window"):
        deformation_sizes(8, 8, 6)
    with pytest.raises(ArgumentError, match="^delta"):
        deformation_sizes(28, 28, 3, delta=[0.0])
    with pytest.raises(ArgumentError, match="^delta: give delta or T"):
        deformation_sizes(28, 28, 3, delta=[1.0], T=[1e-3])


# ----------------------------------------------------------------------------------------------------------
# model sources: checkpoint, project nets, test error rules
# ----------------------------------------------------------------------------------------------------------
def test_checkpoint_loads_strictly(tmp_path):
    sd = mf.make_net(seed=5).state_dict()
    torch.save(sd, tmp_path / "w.pt")
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "wrapped.pt")
    torch.save({"module." + k: v for k, v in sd.items()}, tmp_path / "dp.pt")
    ref_code, ref = _run(tmp_path, "ref", "--model", "measure_factory:make_net", "--model-arg", "seed=5",
                         "--data", "mnist5k", *FAST, *QUIET)
    assert ref_code == 0
    want = _estimates(_strict_load(ref / "measure.json"))
    for name in ("w.pt", "wrapped.pt", "dp.pt"):
        code, out = _run(tmp_path, f"out_{name}", "--model", "measure_factory:make_net", "--checkpoint",
                         str(tmp_path / name), "--data", "mnist5k", *FAST, *QUIET)
        assert code == 0
        rec = _strict_load(out / "measure.json")
        assert rec["model"]["checkpoint"]["file"].endswith(name)
        got = _estimates(rec)
        assert all(got[k]["R"]["value"] == pytest.approx(want[k]["R"]["value"], rel=1e-6) for k in want)
    assert _strict_load(tmp_path / "out_wrapped.pt" / "measure.json")["model"]["checkpoint"]["entry"] == "state_dict"


def test_checkpoint_mismatch_names_the_keys(tmp_path, capsys):
    torch.save(mf.make_net(width=6).state_dict(), tmp_path / "wide.pt")
    sd = mf.make_net().state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["fc.bias"]
    torch.save(sd, tmp_path / "keys.pt")
    code, _ = _run(tmp_path, "a", "--model", "measure_factory:make_net", "--checkpoint", str(tmp_path / "keys.pt"),
                   "--data", "mnist5k", *FAST)
    err = capsys.readouterr().err
    assert code == 2 and "--checkpoint" in err and "missing keys: fc.bias" in err and "unexpected keys: extra.weight" \
        in err
    code, _ = _run(tmp_path, "b", "--model", "measure_factory:make_net", "--checkpoint", str(tmp_path / "wide.pt"),
                   "--data", "mnist5k", *FAST)
    err = capsys.readouterr().err
    assert code == 2 and "--checkpoint" in err and "size mismatch" in err


def test_project_nets_by_name_and_test_error_rules(tmp_path):
    # the README's offline example, at small size
    code, out = _run(tmp_path, "convnet", "--model", "convnet", "--model-arg", "out_dim=10", "--model-arg", "width=8",
                     "--data", "mnist5k", "--n-probe", "50", "--n-sizes", "3", "--n-boot", "50", "--no-progress")
    assert code == 0
    rec = _strict_load(out / "measure.json")
    _check_schema(rec)
    assert rec["model"]["kwargs"] == {"dim": 2, "in_channels": 1, "out_dim": 10, "width": 8}
    assert rec["layers"]["measured"][:2] == ["blocks.0.linear", "blocks.0.act"]
    assert rec["test_error"]["rule"] == "argmax" and rec["test_error"]["n"] == 1000
    # the argmax error, computed here from the net and the test split
    from verify.models import ConvNet

    net = ConvNet(dim=2, in_channels=1, out_dim=10, width=8).eval()
    data = load_dataset("mnist5k")
    with torch.no_grad():
        pred = net(data.x_test.double()).argmax(dim=1)
    assert rec["test_error"]["value"] == pytest.approx(float((pred != data.y_test).double().mean()), abs=1e-12)
    # one output, ten classes: no rule
    code, out = _run(tmp_path, "fcnet", "--model", "fcnet", "--model-arg", "width=16", "--data", "digits", *FAST,
                     "--no-figures")
    assert code == 0
    err = _strict_load(out / "measure.json")["test_error"]
    assert err["value"] is None and "sign rule" in err["reason"]
    # one output, labels in {-1, 1}: the sign rule
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "pm.npz", x=rng.standard_normal((60, 10, 10)), y=np.where(np.arange(60) % 2, 1, -1))
    code, out = _run(tmp_path, "sign", "--model", "fcnet", "--model-arg", "width=16", "--data",
                     f"npz:{tmp_path / 'pm.npz'}", *FAST[2:], "--n-probe", "12", "--no-figures")
    assert code == 0
    rec = _strict_load(out / "measure.json")
    from verify.models import FCNet

    d = load_dataset(f"npz:{tmp_path / 'pm.npz'}")
    with torch.no_grad():
        f = FCNet((1, 10, 10), width=16)(d.x_test.double())[:, 0]
    want = float(np.mean(np.where(f.numpy() > 0, 1, -1) != d.y_test.numpy()))
    assert rec["test_error"] == {"value": want, "n": 12, "rule": "sign", "split": "test"}


# ----------------------------------------------------------------------------------------------------------
# data sources through the command line
# ----------------------------------------------------------------------------------------------------------
def test_every_data_source_through_the_cli(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((40, 12, 12)), y=np.arange(40) % 3)
    small = ["--n-probe", "4", "--n-sizes", "2", "--n-boot", "10", "--no-progress", "--no-figures"]
    runs = {
        "folder": ["--data", f"folder:{tmp_path / 'imgs'}", "--model-arg", "in_channels=3"],
        "npz": ["--data", f"npz:{tmp_path / 'd.npz'}", "--n-probe", "8"],
        "dataset": ["--data", "measure_factory:make_dataset", "--data-arg", "n=30", "--data-arg", "side=12",
                    "--data-arg", "pil=True", "--data-test-arg", "train=False", "--n-probe", "10"],
        "arrays": ["--data", "measure_factory:make_arrays", "--data-arg", "side=12", "--n-probe", "8"],
        "resized": ["--data", "digits", "--resize", "12", "--n-probe", "10"],
    }
    for name, argv in runs.items():
        code, out = _run(tmp_path, name, "--model", "measure_factory:make_net", "--model-arg", "side=12", *small, *argv)
        assert code == 0, name
        rec = _strict_load(out / "measure.json")
        _check_schema(rec)
        assert rec["data"]["shape"][1:] == [12, 12]
        assert len(rec["sizes"]) == 2
    assert _strict_load(tmp_path / "dataset" / "measure.json")["data"]["split"]["kind"] == "given"
    assert _strict_load(tmp_path / "folder" / "measure.json")["data"]["classes"] == ["a", "b"]


# ----------------------------------------------------------------------------------------------------------
# bad specs: exit 2 naming the flag, before any work
# ----------------------------------------------------------------------------------------------------------
def _bad_cases(tmp_path):
    (tmp_path / "text.pt").write_text("not an archive")
    torch.save(mf.make_net().state_dict(), tmp_path / "sd.pt")
    (tmp_path / "file").write_text("")
    base = ["--model", "measure_factory:make_net", "--data", "mnist5k"]
    return [
        (["--model", "no_such_module_xyz:make", "--data", "mnist5k"], "--model", "unknown module"),
        (["--model", "measure_factory:nope", "--data", "mnist5k"], "--model", "has no attribute"),
        (["--model", "measure_factory:not_a_module", "--data", "mnist5k"], "--model", "not a torch.nn.Module"),
        (["--model", str(tmp_path / "text.pt"), "--data", "mnist5k"], "--model", "not a TorchScript archive"),
        (["--model", str(tmp_path / "sd.pt"), "--data", "mnist5k"], "--model", "--checkpoint FILE"),
        (["--model", "nets.py", "--data", "mnist5k"], "--model", "not an existing file"),
        (base + ["--model-arg", "bogus"], "--model-arg", "KEY=VALUE"),
        (base + ["--model-arg", "width=2", "--model-arg", "width=3"], "--model-arg", "given twice"),
        (base + ["--model-arg", "colour=2"], "--model-arg", "unexpected keyword"),
        (["--model", "measure_factory:make_net", "--data", f"npz:{tmp_path / 'missing.npz'}"], "--data",
         "does not exist"),
        (["--model", "measure_factory:make_net", "--data", f"folder:{tmp_path / 'nope'}"], "--data", "does not exist"),
        (["--model", "measure_factory:make_net", "--data", "no_such_module_xyz:load"], "--data", "unknown module"),
        (["--model", "measure_factory:make_net", "--data", "mnist"], "--data", "unknown data set"),
        (base + ["--data-arg", "root=/x"], "--data", "MODULE:CALLABLE data sets only"),
        (["--model", "measure_factory:make_net", "--model-arg", "side=8", "--data", "digits", "--c", "6"], "--c",
         "no deformation window"),
        (base + ["--c", "0.5"], "--c", ">= 1"),
        (base + ["--n-probe", "5000"], "--n-probe", "holds 1000 images"),
        (base + ["--n-probe", "1"], "--n-probe", ">= 2"),
        (base + ["--layers", "conv1,nope"], "--layers", "unknown names ['nope']"),
        (base + ["--delta", "-1"], "--delta", "> 0"),
        (base + ["--T", "0"], "--T", "> 0"),
        (base + ["--n-boot", "1"], "--n-boot", ">= 2"),
        (base + ["--errors", "se", "--estimator", "median"], "--errors", "needs estimator='mean'"),
        (base + ["--device", "not-a-device"], "--device", "not a torch device"),
        (base + ["--checkpoint", str(tmp_path / "none.pt")], "--checkpoint", "does not exist"),
        (base + ["--checkpoint", str(tmp_path / "text.pt")], "--checkpoint", "cannot read"),
        (base + ["--normalise", "zscore"], "--normalise", "MEAN/STD"),
        (base + ["--resize", "1"], "--resize", "HxW"),
        (base + ["--test-fraction", "1.5"], "--test-fraction", "(0, 1)"),
        (base + ["--out", str(tmp_path / "file")], "--out", "not a directory"),
    ]


def test_bad_specs_exit_2_naming_the_flag(tmp_path, capsys, monkeypatch):
    ran = []
    monkeypatch.setattr(vm, "layerwise_stability", lambda *a, **k: ran.append(1))
    for argv, flag, text in _bad_cases(tmp_path):
        if "--out" not in argv:
            argv = argv + ["--out", str(tmp_path / "out")]
        code = main(argv + ["--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert err.startswith(f"error: {flag}:") and text in err, (argv, err)
    assert not ran  # no measurement started
    # argparse's own checks (exit 2, the flag named)
    assert main(["--model", "m:f", "--data", "mnist5k", "--delta", "1", "--T", "1"]) == 2
    assert "--T" in capsys.readouterr().err
    assert main(["--data", "mnist5k"]) == 2 and "--model" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "--model-arg" in capsys.readouterr().out


def test_out_is_checked_before_the_data_are_loaded(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(vm, "load_dataset", lambda *a, **k: pytest.fail("data loaded before --out was checked"))
    assert main(["--model", "convnet", "--data", "mnist5k", "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err.startswith("error: --out:")


def test_every_flag_has_a_help_text_with_its_default():
    parser = vm._parser()
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, action.dest
        text = formatter._expand_help(action)
        assert "(required)" in text or "(default: " in text, (action.dest, text)
        assert text.count("(default") + text.count("(required)") == 1, (action.dest, text)
    text = parser.format_help()
    assert "(default: 256)" in text and "(default: per_sample)" in text and "(default: measure_out)" in text


# ----------------------------------------------------------------------------------------------------------
# interruption, function API, layers
# ----------------------------------------------------------------------------------------------------------
def test_ctrl_c_leaves_a_valid_partial_json(tmp_path, monkeypatch):
    real = vm.layerwise_stability
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            # the first size is already on disk when the second starts
            rec = _strict_load(tmp_path / "out" / "measure.json")
            assert len(rec["sizes"]) == 1 and not rec["complete"]
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(vm, "layerwise_stability", interrupted)
    code, out = _run(tmp_path, "out", "--model", "measure_factory:make_net", "--data", "mnist5k", "--n-probe", "30",
                     "--n-sizes", "4", "--n-boot", "10", "--no-progress", "--no-test-error")
    assert code == 130
    rec = _strict_load(out / "measure.json")
    _check_schema(rec)
    assert rec["interrupted"] and not rec["complete"] and len(rec["sizes"]) == 1
    assert rec["figures"] and all((out / f).is_file() for f in rec["figures"])
    assert not list(out.glob("*.tmp*"))


def test_measure_function_api(tmp_path):
    net = mf.make_net(side=12)
    net.train()
    data = load_dataset("digits", size=12)
    rec = measure(net, data, n_probe=30, delta=[1.0, 2.0], layers=["conv1", "act2"], estimator="median",
                  errors=None, progress=False, out=tmp_path / "api", figures=False)
    assert net.training  # modes restored
    assert rec["complete"] and rec["figures"] == [] and (tmp_path / "api" / "measure.json").is_file()
    assert [layer["name"] for layer in rec["sizes"][0]["layers"]] == ["conv1", "act2"]
    assert rec["sizes"][0]["output"]["R"]["se"] is None and rec["settings"]["n_boot"] == 0
    assert [s["delta"] for s in rec["sizes"]] == pytest.approx([1.0, 2.0], rel=1e-12)
    json.dumps(rec, allow_nan=False)
    none = measure(net, data, n_probe=30, n_sizes=1, layers="none", n_boot=10, progress=False, test_error=False)
    assert none["sizes"][0]["layers"] == [] and none["test_error"]["reason"] == "not requested"
    unlabelled = load_dataset("measure_factory:make_dataset", kwargs={"n": 30, "side": 12, "labelled": False})
    rec = measure(net, unlabelled, n_probe=5, n_sizes=1, n_boot=10, progress=False)
    assert rec["test_error"] == {"value": None, "reason": "the data set has no labels"}
    with pytest.raises(ArgumentError, match="^n_probe"):
        measure(net, data, n_probe=10_000)
    with pytest.raises(ArgumentError, match="^layers"):
        measure(net, data, layers="conv1")
    with pytest.raises(ArgumentError, match="^seed"):
        measure(net, data, seed=-1)


def test_layer_discovery_skips_what_cannot_be_measured():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.ident = torch.nn.Identity()
            self.pair = torch.nn.Module()
            self.unused = torch.nn.Linear(2, 2)
            self.fc = torch.nn.Linear(2 * 26 * 26, 3)

        def forward(self, x):
            h = self.ident(self.conv(x))
            return self.fc(h.flatten(1))

    names, skipped = vm.model_layers(Odd(), torch.randn(3, 1, 28, 28))
    assert names == ["conv", "fc"]
    assert set(skipped) == {"ident", "pair", "unused"} and "Identity" in skipped["ident"]


def test_torchscript_that_cannot_be_rewritten_is_measured_at_the_output(monkeypatch):
    monkeypatch.setattr(vm, "_script_taps", lambda m: (_ for _ in ()).throw(RuntimeError("no graph")))
    data = load_dataset("digits", size=12)
    ts = torch.jit.script(mf.make_net(side=12))
    rec = measure(ts, data, n_probe=20, n_sizes=1, n_boot=10, progress=False, test_error=False)
    assert rec["sizes"][0]["layers"] == [] and "no graph" in rec["model"]["layers_note"]
    with pytest.raises(ArgumentError, match="^layers"):
        measure(ts, data, n_probe=20, n_sizes=1, layers=["conv1"], progress=False)


# ----------------------------------------------------------------------------------------------------------
# one job per checkpoint (verify.jobs)
# ----------------------------------------------------------------------------------------------------------
def test_one_job_per_checkpoint_local_equals_inline_and_resumes(tmp_path, capsys):
    for s in (1, 2):
        torch.save(mf.make_net(seed=s).state_dict(), tmp_path / f"w{s}.pt")
    cks = [str(tmp_path / "w1.pt"), str(tmp_path / "w2.pt")]
    argv = ["--model", "measure_factory:make_net", "--data", "mnist5k", "--checkpoint", *cks, *FAST,
            "--no-test-error"]
    code_i, out_i = _run(tmp_path, "inline", *argv)
    code_l, out_l = _run(tmp_path, "local", *argv, "--executor", "local")
    assert code_i == code_l == 0
    for name in ("w1", "w2"):
        a, b = _strict_load(out_i / name / "measure.json"), _strict_load(out_l / name / "measure.json")
        _check_schema(b)
        assert a["sizes"] == b["sizes"] and a["model"]["checkpoint"]["file"] == b["model"]["checkpoint"]["file"]
        assert b["complete"] and b["figures"] == ["R_layers.png", "DGR_output.png"]
        assert all((out_l / name / f).is_file() for f in b["figures"])
    # the two checkpoints measure different nets, and each job's record is the one-checkpoint run's
    one_code, one = _run(tmp_path, "one", "--model", "measure_factory:make_net", "--data", "mnist5k",
                         "--checkpoint", cks[1], *FAST, "--no-test-error", "--no-figures")
    assert one_code == 0
    assert _strict_load(one / "measure.json")["sizes"] == _strict_load(out_l / "w2" / "measure.json")["sizes"]
    assert _strict_load(out_l / "w1" / "measure.json")["sizes"] != _strict_load(out_l / "w2" / "measure.json")["sizes"]
    summary = _strict_load(out_l / "measure_checkpoints.json")
    assert summary["complete"] and [c["status"] for c in summary["checkpoints"]] == ["done", "done"]
    assert all(c["log"] and (out_l / "logs") in Path(c["log"]).parents for c in summary["checkpoints"])
    units = sorted((out_l / "units").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in units]
    capsys.readouterr()
    assert main([*argv, "--executor", "local", "--out", str(out_l)]) == 0  # rerun: nothing is measured again
    assert "0 run, 2 reused" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in units] == stamps
    # another configuration in the same folder is refused before any work
    assert main([*argv[:-len(FAST) - 1], "--n-probe", "30", *FAST[2:], "--no-test-error", "--out", str(out_l)]) == 2
    assert "error: --out:" in capsys.readouterr().err


def test_slurm_without_a_cluster_exits_2_naming_executor(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(vm, "load_dataset", lambda *a, **k: pytest.fail("data loaded before --executor was checked"))
    assert main(["--model", "convnet", "--data", "mnist5k", "--executor", "slurm", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: --executor: slurm: no SLURM cluster here")
