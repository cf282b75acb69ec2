"""Every notebook in `notebooks/` (jupytext percent format, i.e. a plain Python script) runs to the end.

The notebooks read NOTEBOOK_QUICK=1 to use small sizes; figures go to a temporary folder.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg", NOTEBOOK_QUICK="1", NOTEBOOK_OUT=str(tmp_path))
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list(tmp_path.glob("*.png")), "notebook wrote no figure"
