"""Unit functions for tests/test_jobs.py: module-level, so that a submitit job in a fresh process imports them (the
test folder is on the job's sys.path because verify.jobs passes the submitting process's path on)."""
from __future__ import annotations

import os
import signal

import numpy as np


def _note(calls: str | None, x) -> None:
    if calls:
        with open(calls, "a") as fh:
            fh.write(f"{x}\n")


def noisy_square(x: int, seed: int, calls: str | None = None, die_unless: str | None = None,
                 interrupt_at: int | None = None, swallow_at: int | None = None) -> dict:
    """``x**2`` plus a normal draw seeded by ``(seed, x)`` (the unit's own parameters). ``calls``: a file that
    gets one line per call. ``die_unless``: if that file does not exist, create it and SIGKILL this process (a job
    that dies mid-run, the first time only). ``interrupt_at`` / ``swallow_at``: at that x, raise KeyboardInterrupt /
    send SIGINT to this process, catch it and return anyway (a training loop that stops early)."""
    _note(calls, x)
    if die_unless is not None and not os.path.exists(die_unless):
        open(die_unless, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    if interrupt_at is not None and x == interrupt_at:
        raise KeyboardInterrupt
    if swallow_at is not None and x == swallow_at:
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
    rng = np.random.default_rng([seed, x])
    return {"x": x, "y": float(x * x + rng.standard_normal()), "draws": rng.standard_normal(3).tolist()}


def boom(x: int) -> dict:
    raise RuntimeError(f"boom at x = {x}")
