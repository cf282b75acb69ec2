"""The hand-constructed network: exact output, 100% accuracy, torch module == numba forward pass.

Tolerances: the output is an integer overlap computed through float64 sums of trinomial
weights; 1e-9 absolute covers their rounding (values <= 3^(dim k~) ~ 1e4 in these tests).
torch vs numba: 1e-10 (same float64 arithmetic, different summation order).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.scale_detection import NetGeometry, diffeo_moves, forward, make_dataset
from theory.scale_detection import realised_output
from verify.handcrafted import HandcraftedNet


def _overlap(positions, xi, n, periodic):
    """prod_a (xi - |Delta_a|)_+ for positions of shape (P, 2) (1D) or (P, 2, 2) (2D)."""
    a = np.abs(positions[:, 1] - positions[:, 0]).reshape(len(positions), -1)
    if periodic:
        a = np.minimum(a, n - a)
    return np.prod(np.clip(xi - a, 0, None), axis=1).astype(float)


@pytest.mark.parametrize("dim,periodic,xi,n,layers", [
    (1, False, 3, 12, 2), (1, False, 7, 20, 6), (1, True, 5, 10, 4), (1, False, 9, 14, 5),
    (2, False, 3, 8, 3), (2, False, 5, 9, 4), (2, True, 3, 6, 2), (2, True, 5, 11, 3),
])
def test_output_is_overlap_and_accuracy_is_one(dim, periodic, xi, n, layers):
    metric = ("periodic_linf" if periodic else "linf") if dim == 2 else ("periodic" if periodic else "euclidean")
    d = make_dataset(n, xi, dim=dim, metric=metric)
    net = HandcraftedNet(xi, n, dim=dim, layers=layers, periodic=periodic)
    f = net(torch.from_numpy(d.x)).numpy()
    np.testing.assert_allclose(f, _overlap(d.positions, xi, n, periodic), atol=1e-9)
    delta = np.abs(d.positions[:, 1] - d.positions[:, 0]).reshape(len(d), dim)
    if periodic:
        delta = np.minimum(delta, n - delta)
    np.testing.assert_allclose(realised_output(delta if dim == 2 else delta[:, 0], xi), f, atol=1e-9)
    if dim == 1:
        np.testing.assert_allclose(f, np.maximum(xi - d.delta, 0), atol=1e-9)   # f = ReLU(xi - d)
    assert np.all(net.predict(torch.from_numpy(d.x)).numpy() == d.y)
    # perturbed (moved, possibly colliding) inputs: still the overlap of the moved pixels
    xt = diffeo_moves(d, seed=0)
    ft = net(torch.from_numpy(xt)).numpy()
    flat = xt.reshape(len(d), -1)
    coll = flat.max(1) == 2
    assert coll.any() and (~coll).any()
    np.testing.assert_allclose(ft[coll], xi ** dim, atol=1e-9)        # both pixels on one site: full overlap
    # every other sample: the overlap of the two moved pixels, read back from the image
    idx = np.argwhere(flat[~coll] == 1)[:, 1].reshape(-1, 2)
    moved = np.stack([np.stack(np.unravel_index(idx[:, j], xt.shape[1:]), -1) for j in (0, 1)], 1)
    assert np.all(flat[~coll].sum(1) == 2)
    np.testing.assert_allclose(ft[~coll], _overlap(moved, xi, n, periodic), atol=1e-9)


def test_2d_euclidean_labels_errors_exactly_where_linf_and_l2_disagree():
    xi, n = 5, 12
    d = make_dataset(n, xi, dim=2, metric="euclidean")
    pred = HandcraftedNet(xi, n, dim=2, layers=3).predict(torch.from_numpy(d.x)).numpy()
    dl = np.abs(d.positions[:, 1] - d.positions[:, 0]).max(1)
    wrong = pred != d.y
    assert wrong.any()
    np.testing.assert_array_equal(wrong, (dl < xi) & (d.delta >= xi))


@pytest.mark.parametrize("dim,s,xi,n,layers", [(1, 2, 4, 16, 3), (1, 3, 3, 18, 2), (2, 2, 2, 8, 3), (2, 2, 4, 8, 3)])
def test_strided_block_task(dim, s, xi, n, layers):
    d = make_dataset(n, xi, dim=dim, metric="block")
    net = HandcraftedNet(xi, n, dim=dim, stride=s, layers=layers)
    f = net(torch.from_numpy(d.x)).numpy()
    np.testing.assert_allclose(f, (d.y == 1).astype(float), atol=1e-12)
    np.testing.assert_allclose(realised_output(None, xi, stride=s, positions=d.positions), f, atol=1e-12)
    assert np.all(net.predict(torch.from_numpy(d.x)).numpy() == d.y)


@settings(max_examples=10)
@given(st.sampled_from([1, 2]), st.sampled_from([(1, False), (1, True), (2, True)]), st.integers(0, 2**16))
def test_torch_equals_numba(dim, mode, seed):
    stride, periodic = mode
    if stride == 1:
        xi, n, layers = (5, 11, 4) if periodic else (5, 9, 5)
    else:
        xi, n, layers = 4, 8 if dim == 2 else 16, 3
    net = HandcraftedNet(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic)
    geom = NetGeometry.build(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic)
    rng = np.random.default_rng(seed)
    shape = (6, n) if dim == 1 else (6, n, n)
    x = np.zeros(shape)
    x.reshape(6, -1)[np.arange(6), rng.integers(0, n ** dim, 6)] = 1.0
    x = x + 0.3 * rng.standard_normal(shape)            # noisy inputs exercise every ReLU
    a = forward(x, geom)
    b = [t.numpy() for t in net.representations(torch.from_numpy(x))]
    assert len(a) == len(b) == layers + 1
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v.reshape(u.shape), rtol=0, atol=1e-10)


@pytest.mark.parametrize("call, pattern", [
    (lambda: realised_output(np.array([1, 2]), 4), r"^xi must be an odd integer >= 3"),
    (lambda: realised_output(np.array([1, 2]), float("nan")), r"^xi must be an integer"),
    (lambda: realised_output(np.array([1.5, 2.0]), 5), r"^delta must be an integer array"),
    (lambda: realised_output(np.zeros((2, 2, 2), int), 5), r"^delta must be an integer array"),
    (lambda: realised_output(None, 4, stride=2), r"^positions must be an integer array"),
    (lambda: realised_output(None, 4, stride=2, positions=np.zeros((3, 3), int)),
     r"^positions must be an integer array"),
    (lambda: realised_output(np.array([1]), 4, stride=0), r"^stride must be >= 1"),
    # wrong image size: torch would pool it happily and the numba pass would read past the buffer
    (lambda: HandcraftedNet(5, 12, layers=3)(torch.zeros(2, 20, dtype=torch.float64)), r"^x must have shape"),
    (lambda: HandcraftedNet(3, 8, dim=2, layers=2)(torch.zeros(2, 2, 8, 8)), r"^x must have shape"),
    (lambda: forward(np.zeros((2, 7)), NetGeometry.build(5, 9, layers=3)), r"^images must have shape"),
    (lambda: forward(np.zeros((2, 9, 9)), NetGeometry.build(5, 9, layers=3)), r"^images must have shape"),
])
def test_bad_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
