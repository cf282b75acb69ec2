"""Shared test configuration.

Hypothesis profile: no deadline (numba compiles on first call) and a bounded number of
examples so that the whole suite stays within the CI budget (20 min on 2 cores).
Set HYPOTHESIS_PROFILE=thorough locally for more examples. Both profiles are derandomized: many tests
accept a Monte-Carlo estimate within 4 standard errors (false-failure rate ~6e-5 per example), which over
300 fresh random examples per test and run would fail spuriously ~2 % of the time; with fixed examples a
pass or a failure is reproducible.
"""
import os

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               derandomize=True)
settings.register_profile("ci", max_examples=25, **_COMMON)
settings.register_profile("thorough", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
