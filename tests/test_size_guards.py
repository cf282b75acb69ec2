"""Size guards (issue 15): arguments whose cost explodes are refused up front, within a fraction of a second, with
an error that names the argument and states the estimate (or the reason)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from theory.arguments import ArgumentValueError, check_memory, memory_limit


def _fast_refusal(call, name, match):
    t0 = time.perf_counter()
    with pytest.raises(ArgumentValueError, match=match) as e:
        call()
    assert e.value.argument == name
    assert time.perf_counter() - t0 < 2.0, "the refusal must come before the work"
    return str(e.value)


def test_check_memory_states_the_estimate():
    check_memory(memory_limit(), "x", "an array")               # at the limit: accepted
    msg = _fast_refusal(lambda: check_memory(memory_limit() + 1.0, "batch", "the coefficients"), "batch",
                        r"^batch is too large: the coefficients would need")
    assert "GiB" in msg


def test_deform_refuses_a_cut_off_the_image_cannot_resolve():
    """deform on 8x8 pixels with c = 1000 ran 94 s; c <= max(2(N - 1), 16) is allowed (2(N - 1): modes beyond it only
    repeat the pattern of lower ones; 16: below it the cost is negligible)."""
    from numerics.diffeo import deform

    x = np.random.default_rng(0).random((2, 8, 8))
    _fast_refusal(lambda: deform(x, 1e-3, 1000, seed=0), "c", r"^c=1000 is beyond what a 8x8 image resolves")
    _fast_refusal(lambda: deform(x, 1e-3, 17, seed=0), "c", r"^c=17 is beyond")
    assert deform(x, 1e-3, 16, seed=0).shape == x.shape
    y = np.random.default_rng(0).random((1, 16, 16))
    _fast_refusal(lambda: deform(y, 1e-3, 31, seed=0), "c", r"^c=31 is beyond what a 16x16 image")
    assert deform(y, 1e-3, 30, seed=0).shape == y.shape


def test_sample_diffeos_refuses_a_huge_batch():
    from numerics.diffeo import sample_diffeos

    _fast_refusal(lambda: sample_diffeos(10**10, 28, 28, 1e-3, 5, seed=0), "batch", r"^batch is too large")


def test_typical_displacement_exact_refuses_large_c_and_points_to_the_asymptotic_law():
    """c = 300 took 19 s; beyond EXACT_C_MAX the asymptotic law is within 2e-4 (checked here at c = 200)."""
    from numerics.diffeo import EXACT_C_MAX, temperature_for_displacement, temperature_range, typical_displacement

    for call in (lambda: typical_displacement(1e-3, 300, 64), lambda: temperature_for_displacement(0.5, 300, 64),
                 lambda: temperature_range(10**4, 300)):
        _fast_refusal(call, "c", r"^c=300 is too large for method='exact'.*method='asymptotic'")
    assert EXACT_C_MAX == 200
    exact = typical_displacement(1e-3, 200, 64)
    assert abs(typical_displacement(1e-3, 200, 64, method="asymptotic") / exact - 1) < 2e-4
    assert typical_displacement(1e-3, 300, 64, method="asymptotic") > exact


def test_exact_layers_2d_at_large_n_is_refused_with_the_estimate():
    """2D exact_layers took 117 s at n = 64; the estimate refuses it at once, max_seconds=None would run it."""
    from theory.scale_detection import exact_layers, exact_layers_seconds

    msg = _fast_refusal(lambda: exact_layers(3, 64, dim=2, layers=4), "n", r"^n is too large for the exact 2D sums")
    assert "takes about 106 s" in msg
    assert exact_layers_seconds(3, 64, dim=1, layers=4) == 0.0
    assert 5 < exact_layers_seconds(3, 32, dim=2, layers=4) < 20      # measured 11 s
    with pytest.raises(ValueError, match=r"^max_seconds must be"):
        exact_layers(3, 8, dim=2, layers=2, max_seconds=-1)
    assert len(exact_layers(3, 8, dim=2, layers=2, max_seconds=None)) == 3


def test_huge_sample_and_lattice_sizes_are_refused():
    from numerics.rotations import random_rotations
    from numerics.scale_detection import make_dataset
    from numerics.sphere import sample_ball, sample_gaussian, sample_sphere
    from numerics.stability import relative_stability

    for f in (sample_sphere, sample_gaussian, sample_ball):
        _fast_refusal(lambda: f(10**12, 3, seed=0), "P", r"^P is too large")
    _fast_refusal(lambda: random_rotations(1000, 0.1, 10**6, seed=0), "n", r"^n is too large")
    _fast_refusal(lambda: make_dataset(3000, 3, dim=2), "n", r"^n is too large: the \d+ pairs")
    x = np.random.default_rng(0).random((500, 3))
    _fast_refusal(lambda: relative_stability(lambda z: z, x, x + 0.1, n_boot=10**9, seed=0), "n_boot",
                  r"^n_boot is too large")
