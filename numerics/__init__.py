"""Data, perturbations, simulators and estimators (numpy + numba; may import `theory`)."""
