"""Exact and asymptotic formulas (sympy only; no sampling, no imports from `numerics` or `verify`)."""
