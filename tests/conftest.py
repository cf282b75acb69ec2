"""Shared test configuration.

Hypothesis profile: no deadline (numba compiles on first call) and a bounded number of
examples so that the whole suite stays within the CI budget (20 min on 2 cores).
Set HYPOTHESIS_PROFILE=thorough locally for more examples.
"""
import os

import matplotlib

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
