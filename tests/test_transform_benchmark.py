"""`python -m benchmarks transform`: bad flags exit 2 naming the flag before any work; a tiny run gives the JSON
record (kornia is a benchmark-only extra: without it the kornia fields are null). Not a timing test."""
import importlib.util
import subprocess
import sys

import pytest
import torch

from benchmarks.transform import main


@pytest.mark.parametrize("argv, flag", [
    (["--batch", "0"], "--batch"),
    (["--repeat", "0"], "--repeat"),
    (["--threads", "-1"], "--threads"),
    (["--device", "tpu"], "--device"),
] + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "--device cuda")]))
def test_bad_flags_exit_2_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and flag in capsys.readouterr().err
    if argv == ["--batch", "0"]:  # and through the dispatcher, as a user runs it
        run = subprocess.run([sys.executable, "-m", "benchmarks", "transform", *argv], capture_output=True, text=True)
        assert run.returncode == 2 and flag in run.stderr


def test_tiny_run_gives_the_record():
    record = main(["--batch", "4", "--repeat", "1", "--threads", "1"])
    assert record["name"] == "transform" and record["batch"] == 4 and record["device"] == "cpu"
    for key in ("ours_s", "numpy_s", "torch_s", "torch_ops_s", "torch_over_numpy"):
        assert record[key] > 0
    has_kornia = importlib.util.find_spec("kornia") is not None
    assert (record["ratio"] is not None) == has_kornia == (record["kornia_s"] is not None)
