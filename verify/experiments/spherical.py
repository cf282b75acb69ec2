"""Spherical model (Petrini, Cagnetta, Vanden-Eijnden & Wyart 2022).

Lazy training keeps the data's rotation symmetry, feature training breaks it.  The experiment itself lives in
``verify.spherical`` (helper "spherical"); this module only forwards to its ``run`` and reports an "info" row when
that module is not in the checkout.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from verify.experiments.common import Unavailable, require, resolve_device, unavailable_record

NAME = "spherical"


def run(*, quick: bool, out_dir: Path, seed: int = 0, device: str | None = None, size: str | None = None,
        progress: bool = True) -> dict:
    try:
        target = require("verify.spherical", "run")
    except Unavailable as exc:
        return unavailable_record(NAME, str(exc))
    kwargs = dict(quick=quick, out_dir=Path(out_dir), seed=seed, device=resolve_device(device))
    params = inspect.signature(target).parameters
    if size is not None and "size" in params:
        kwargs["size"] = size
    if "progress" in params:
        kwargs["progress"] = progress
    record = target(**kwargs)
    record.setdefault("name", NAME)
    return record
