"""theory.arguments (the one validation module) and numerics.testing (the Monte-Carlo check helpers)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numerics.testing import assert_layers_mc_close, assert_mc_close, mc_estimate, torch_devices
from theory.arguments import (ArgumentError, ArgumentTypeError, ArgumentValueError, check_choice, check_flag,
                              check_int, check_real, flag_name)


# ------------------------------------------------------------------------------------------------ arguments
@given(st.integers(-10**6, 10**6), st.integers(-100, 100), st.integers(0, 200))
def test_check_int_accepts_exactly_the_range(v, low, width):
    high = low + width
    if low <= v <= high:
        assert check_int(v, "n", low, high) == v and type(check_int(np.int32(v) if abs(v) < 2**31 else v, "n",
                                                                      low, high)) is int
    else:
        with pytest.raises(ArgumentValueError, match=rf"^n must be an integer >= {low} and <= {high}, got {v}$"):
            check_int(v, "n", low, high)


@pytest.mark.parametrize("bad", [2.0, "3", None, True, np.bool_(False), 1 + 0j, [1]])
def test_check_int_wrong_type_is_a_type_error_that_is_also_a_value_error(bad):
    with pytest.raises(TypeError, match=r"^width must be an integer >= 1") as info:
        check_int(bad, "width", 1)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ArgumentError)
    assert info.value.argument == "width"


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e3, 1e3), st.booleans())
def test_check_real_range_and_finiteness(v, low, inclusive):
    ok = math.isfinite(v) and (v > low or (inclusive and v == low))
    if ok:
        assert check_real(v, "T", low, inclusive) == v
    else:
        with pytest.raises(ArgumentValueError, match=r"^T must be "):
            check_real(v, "T", low, inclusive)


@pytest.mark.parametrize("bad", ["0.1", None, True, 1j, np.complex128(1), [0.1, 0.2], object()])
def test_check_real_wrong_type(bad):
    with pytest.raises(ArgumentTypeError, match=r"^delta must be a real number, got ") as info:
        check_real(bad, "delta")
    assert info.value.argument == "delta"


def test_check_real_upper_bound_and_numpy_scalars():
    assert check_real(np.float32(0.5), "p", 0.0, high=1.0) == 0.5
    assert check_real(np.array(1.0), "p", 0.0, high=1.0) == 1.0
    with pytest.raises(ArgumentValueError, match=r"^p must be >= 0.0 and < 1.0, got 1.0$"):
        check_real(1.0, "p", 0.0, high=1.0, high_inclusive=False)


def test_check_choice_value_and_type():
    assert check_choice("mean", "estimator", ("mean", "median")) == "mean"
    assert check_choice(None, "errors", (None, "se")) is None
    with pytest.raises(ArgumentValueError, match=r"^estimator must be one of \('mean', 'median'\), got 'avg'$"):
        check_choice("avg", "estimator", ("mean", "median"))
    with pytest.raises(ArgumentTypeError, match=r"^estimator must be one of"):
        check_choice(3, "estimator", ("mean", "median"))
    with pytest.raises(ArgumentTypeError):  # a bool never matches the integer 1
        check_choice(True, "dim", (1, 2))
    with pytest.raises(ArgumentTypeError):  # an array is not a choice (no ambiguous-truth-value error)
        check_choice(np.array([1, 2]), "dim", (1, 2))


def test_check_flag_and_flag_name():
    assert check_flag("periodic", np.bool_(True)) is True
    with pytest.raises(ArgumentTypeError, match=r"^periodic must be True or False, got 1$") as info:
        check_flag("periodic", 1)
    assert isinstance(info.value, ValueError) and info.value.argument == "periodic"
    assert flag_name("n_probe") == "--n-probe" and flag_name("--out") == "--out"


# ------------------------------------------------------------------------------------------------ testing
def test_assert_mc_close_passes_and_fails_with_the_numbers():
    assert_mc_close(1.03, 0.01, 1.0)  # 3 se
    with pytest.raises(AssertionError, match=r"5.00 se"):
        assert_mc_close(1.05, 0.01, 1.0)
    assert_mc_close(1.05, 0.01, 1.0, atol=0.011)
    assert_mc_close(1.05, 0.01, 1.0, rtol=0.011)
    with pytest.raises(AssertionError, match="not finite"):
        assert_mc_close(math.nan, 0.01, 1.0)
    with pytest.raises(ValueError, match="^se must be >= 0"):
        assert_mc_close(1.0, -0.1, 1.0)
    with pytest.raises(AssertionError, match=r"at index \(2,\)"):
        assert_mc_close([1.0, 2.0, 3.5], [0.1, 0.1, 0.1], [1.0, 2.0, 3.0])


def test_assert_layers_mc_close_names_the_layer_and_skips_none():
    assert_layers_mc_close([1.0, 5.0], [0.1, 0.1], [1.0, None])
    with pytest.raises(AssertionError, match=r"^D_k 1: "):
        assert_layers_mc_close([1.0, 2.0], [0.1, 0.1], [1.0, 1.0], what="D_k")


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_mc_estimate_coverage_of_a_known_mean(seed):
    """Exponential draws (mean 1): the 4-se check must pass at all but ~6e-5 of seeds; 20 seeds all pass unless
    mc_estimate's s.e. is wrong by a large factor (with se/10 the check fails at nearly every seed)."""
    x = np.random.default_rng(seed).exponential(size=4000)
    m, se = mc_estimate(x)
    assert_mc_close(m, se, 1.0)
    assert abs(se - 1 / math.sqrt(4000)) < 0.2 / math.sqrt(4000)


def test_torch_devices_lists_cpu():
    assert torch_devices()[0] == "cpu"
