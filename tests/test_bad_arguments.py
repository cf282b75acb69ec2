"""Bad input gets a ValueError that names the argument, across the public functions of the scale-detection and
spherical modules (the per-module tests cover the main constructors; this matrix covers the rest)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

import verify.spherical as vs
from numerics.atoms import count_atoms, min_l1_interpolant
from numerics.rotations import geodesic_rotate, random_planes
from numerics.scale_detection import diffeo_moves, make_dataset, simulate_layers
from numerics.sphere import harmonic_power_s2, make_teacher, qmc_sphere, sample_sphere
from theory import spherical as th

X = sample_sphere(10, 3, seed=0)
Y = np.ones(10)
DIRS = sample_sphere(40, 3, seed=1)


def _f(z):
    return z[:, 0]


CASES = [
    # numerics.scale_detection
    ("n_pairs", lambda: make_dataset(12, 3, n_pairs=10**6, seed=0)),
    ("xi", lambda: make_dataset(12, float("nan"))),
    ("xi", lambda: make_dataset(12, True)),
    ("xi", lambda: make_dataset(12, math.inf)),
    ("gap", lambda: make_dataset(12, 3, gap=float("nan"))),
    ("x must have shape", lambda: diffeo_moves(np.zeros((2, 3, 3, 3)))),
    ("samples", lambda: simulate_layers(5, 16, samples=2.5, seed=0)),
    # numerics.atoms
    ("angle", lambda: count_atoms(DIRS, np.ones(40), angle=4.0)),
    ("angle", lambda: count_atoms(DIRS, np.ones(40), angle=0.0)),
    ("weights", lambda: count_atoms(DIRS, np.ones(39))),
    ("y", lambda: min_l1_interpolant(X, Y[:-1], DIRS)),
    ("directions", lambda: min_l1_interpolant(X, Y, DIRS[:, :2])),
    # numerics.sphere
    ("width", lambda: make_teacher(3, 2.0, width=0, seed=0)),
    ("kmax", lambda: harmonic_power_s2(_f, 2.5)),
    ("kmax", lambda: harmonic_power_s2(_f, True)),
    ("kmax", lambda: harmonic_power_s2(_f, -1)),
    # theory.spherical
    ("beta2", lambda: th.ntk(X, beta2=-1.0)),
    ("x1 and x2 must have the same dimension", lambda: th.ntk(X, np.ones((2, 4)))),
    ("n must", lambda: th.arccos_kernel(-1)),
    ("var_f", lambda: th.rotation_stability_prediction(-1)),
    ("P must", lambda: th.eigenlearning_curve([0.5], np.ones(3), np.ones(3), np.ones(3))),
    ("bias", lambda: th.mercer_eigenvalues("ntk", 3, 10, bias=True)),
    ("kmax", lambda: th.mercer_eigenvalues("ntk", 3, -1)),
    ("kmax", lambda: th.mercer_eigenvalues("ntk", 3, 2.5)),
    ("a must", lambda: th.teacher_smoothness(float("nan"))),
    ("P must", lambda: th.predicted_atoms(2.5, "feature")),
    ("k must", lambda: th.harmonic_multiplicity(3, [-1])),
    ("k must", lambda: th.harmonic_multiplicity(3, [1.5])),
    # verify.spherical
    ("seeds", lambda: vs.sweep(ds=(3,), Ps=(8,), seeds=0, progress=False)),
    ("dict_factor", lambda: vs.sweep(ds=(3,), Ps=(8,), dict_factor=0.5, progress=False)),
    ("loss_tol", lambda: vs.train_two_layer(vs.symmetric_init(8, 3, seed=0), X, Y, loss_tol=-1.0)),
    ("patience", lambda: vs.train_two_layer(vs.symmetric_init(8, 3, seed=0), X, Y, patience=0)),
    ("lr", lambda: vs.train_two_layer(vs.symmetric_init(8, 3, seed=0), X, Y, lr=float("nan"))),
    ("model", lambda: vs.train_two_layer("not a model", X, Y)),
]


@pytest.mark.parametrize("name, call", CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_bad_argument_raises_value_error_naming_it(name, call):
    """The message starts with the argument's name (anchored: a bare substring such as "x" matches any text)."""
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}"):
        call()


def test_one_seed_rule_for_numerics():
    """numerics.seeds.generator: the seed rule shared by diffeo, nearest_neighbour, scale_detection, stability."""
    from numerics.seeds import generator
    g = np.random.default_rng(3)
    assert generator(g) is g
    assert generator(5).random() == np.random.default_rng(5).random()
    assert generator(np.random.SeedSequence(5)).random() == np.random.default_rng(np.random.SeedSequence(5)).random()
    for bad in (-1, True, 1.5, "a"):
        with pytest.raises(ValueError, match="^seed must be None, an integer >= 0"):
            generator(bad)


@pytest.mark.parametrize("call", [
    lambda s: sample_sphere(4, 3, seed=s),
    lambda s: make_teacher(3, 2.0, width=8, seed=s),
    lambda s: make_dataset(12, 3, seed=s),
    lambda s: diffeo_moves(make_dataset(12, 3, seed=0), seed=s),
    lambda s: min_l1_interpolant(X, Y, DIRS, seed=s),
    lambda s: qmc_sphere(4, 3, seed=s),
    lambda s: vs.symmetric_init(8, 3, seed=s),
    lambda s: random_planes(3, 2, seed=s),
    lambda s: geodesic_rotate(X, 0.1, seed=s),
], ids=["sample_sphere", "make_teacher", "scale_make_dataset", "diffeo_moves", "min_l1_interpolant", "qmc_sphere",
        "symmetric_init", "random_planes", "geodesic_rotate"])
@pytest.mark.parametrize("bad", [-1, True, 2.5])
def test_seed_rule_everywhere(call, bad):
    """The random functions of sphere, atoms, scale_detection and verify.spherical follow numerics.seeds.generator:
    a negative, boolean or float seed is a ValueError naming ``seed`` (numpy alone accepts True, and says neither
    the name nor the range for the others); a Generator is used as is."""
    with pytest.raises(ValueError, match="^seed must be None, an integer >= 0"):
        call(bad)
    call(np.random.default_rng(0))


def test_one_flag_rule():
    """theory.arguments.check_flag, shared by theory.scale_detection, theory.laplacian, numerics.nearest_neighbour
    and numerics.stability: True/False (numpy too) pass through as bool, 0, 1, None and strings are refused."""
    from theory.arguments import check_flag
    assert check_flag("f", np.True_) is True and check_flag("f", False) is False
    for bad in (0, 1, None, "yes", 1.0):
        with pytest.raises(ValueError, match="^periodic must be True or False"):
            check_flag("periodic", bad)
